# Quicksilver: `make demo` shows a completion from the bundled model, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_FILE := examples/demo.py
DEMO_POS := 9:13

.PHONY: demo test lint serve clean

$(VENV)/.serve: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@ $(VENV)/.serve

demo: $(VENV)/.serve
	@echo "--- $(DEMO_FILE), cursor at line $(DEMO_POS) ---"
	@cat -n $(DEMO_FILE)
	@echo "--- completion from models/default ---"
	@$(PY) -m lsp_server complete $(DEMO_FILE):$(DEMO_POS)

# pytest exits 5 when it collects no tests; that is not a failure of the suite.
test: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m pytest -q -rs || [ $$? -eq 5 ]

lint: $(VENV)/.dev
	$(PY) -m ruff check .

serve: $(VENV)/.serve
	$(PY) -m lsp_server

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
