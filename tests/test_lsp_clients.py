"""Real editors as clients, driven headless, each getting a real completion from the bundled model.

- Neovim (Debian `neovim`, 0.7): its built-in client, `vim.lsp.start_client` + `buf_request_sync`
  (tests/clients/neovim.lua);
- Emacs with eglot (Debian `emacs-nox` + `elpa-eglot`): `completion-at-point` through eglot's capf
  (tests/clients/emacs.el);
- Node.js with `vscode-languageserver-protocol` from npm, as VS Code's client library speaks
  (tests/clients/node/client.mjs; `npm ci` in that folder installs it).

Each starts `python -m lsp_server` from this interpreter itself. A client missing here skips with the
reason; under CI (CI=true) it fails instead, since .ci/run installs all three.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tooling import require

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = ROOT / "tests" / "clients"
NODE_DIR = CLIENTS / "node"
MODEL_DIR = Path(os.environ.get("QUICKSILVER_MODEL") or ROOT / "models" / "default")

# The cursor ends a comment line: whatever single line the early checkpoint writes there keeps the parse valid.
SOURCE = "import os\n\n\ndef list_files(path):\n    # return the names of the files in path, sorted by\n"
LINE, CHARACTER = 4, len("    # return the names of the files in path, sorted by")


@pytest.fixture(autouse=True)
def model_present():
    require((MODEL_DIR / "encoder.onnx").is_file(), f"bundled model not in {MODEL_DIR}")


@pytest.fixture
def workspace(tmp_path: Path) -> dict:
    source = tmp_path / "files.py"
    source.write_text(SOURCE)
    log = tmp_path / "server.log"
    server = [sys.executable, "-m", "lsp_server", "--log-file", str(log)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QS_CMD": json.dumps(server), "QS_FILE": str(source),
           "QS_LINE": str(LINE), "QS_CHARACTER": str(CHARACTER), "QS_OUT": str(tmp_path / "report.json")}
    return {"env": env, "log": log, "report": tmp_path / "report.json", "tmp": tmp_path}


def run_client(argv: list[str], ws: dict, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=cwd, env=ws["env"], capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    server_log = ws["log"].read_text() if ws["log"].exists() else "(no server log)"
    assert result.returncode == 0, f"{argv[0]} failed:\n{result.stdout}\n{result.stderr}\n--- server log\n{server_log}"
    return result


def assert_suggestion(text: str) -> None:
    assert isinstance(text, str) and text.strip() and "\n" not in text


def at(line: int, character: int) -> dict:
    return {"start": {"line": line, "character": character}, "end": {"line": line, "character": character}}


def test_neovim_gets_completions(workspace):
    nvim = shutil.which("nvim")
    require(nvim is not None, "Neovim is not installed (Debian package neovim)")
    run_client([nvim, "--headless", "--clean", "-c", f"luafile {CLIENTS / 'neovim.lua'}"], workspace)
    report = json.loads(workspace["report"].read_text())
    assert report["offset_encoding"] == "utf-16" and report["sync_kind"] == 2  # incremental sync
    (item,) = report["completion"]
    assert_suggestion(item["textEdit"]["newText"])
    assert item["textEdit"]["range"] == at(LINE, CHARACTER)
    (ghost,) = report["inline"]
    assert_suggestion(ghost["insertText"]) and ghost["range"] == at(LINE, CHARACTER)
    for item in report["after_typing"]:  # after Neovim's own incremental didChange
        assert item["range"] == at(LINE, CHARACTER + 4)
    assert report["stopped"]
    assert "initialize: Neovim" in workspace["log"].read_text()


EGLOT_PROBE = """(kill-emacs (if (or (require 'eglot nil t)
                          (progn (dolist (dir (file-expand-wildcards "/usr/share/emacs/site-lisp/elpa/*"))
                                   (add-to-list 'load-path dir))
                                 (require 'eglot nil t)))
                      0 1))"""


def eglot_available(emacs: str) -> bool:
    """Loads eglot the way tests/clients/emacs.el does."""
    return subprocess.run([emacs, "--batch", "--eval", EGLOT_PROBE], capture_output=True, timeout=60).returncode == 0


def test_emacs_eglot_gets_completions(workspace):
    emacs = shutil.which("emacs")
    require(emacs is not None, "Emacs is not installed (Debian package emacs-nox)")
    require(eglot_available(emacs), "eglot is not installed (Debian package elpa-eglot)")
    run_client([emacs, "--batch", "-l", str(CLIENTS / "emacs.el")], workspace)
    report = json.loads(workspace["report"].read_text())
    assert report["server_name"] == "quicksilver"
    (candidate,) = report["capf"]  # what completion-at-point offers, through eglot
    assert_suggestion(candidate)
    (ghost,) = report["inline"]
    assert_suggestion(ghost)
    assert report["after_typing_column"] == CHARACTER + 4 and isinstance(report["after_typing"], list)
    # Emacs 28's jsonrpc kills the process right after sending exit, so no exit code to check here
    assert report["shut_down"]


def test_node_vscode_protocol_client_gets_completions(workspace):
    node = shutil.which("node")
    require(node is not None, "Node.js is not installed")
    require((NODE_DIR / "node_modules" / "vscode-languageserver-protocol").is_dir(),
            f"vscode-languageserver-protocol is not installed: run `npm ci` in {NODE_DIR}")
    result = run_client([node, str(NODE_DIR / "client.mjs")], workspace, cwd=NODE_DIR)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["positionEncoding"] == "utf-16" and report["inlineProvider"]
    (ghost,) = report["inline"]
    assert_suggestion(ghost["insertText"]) and ghost["range"] == at(LINE, CHARACTER)
    assert ghost["command"]["command"] == "quicksilver.accept"
    assert report["accept"] is None  # the command ran
    partials = report["partials"]  # streamed drafts: a CompletionList, then item batches
    assert partials and partials[0]["isIncomplete"] and report["streamedResponse"]["items"] == []
    drafts = partials[0]["items"] + [item for batch in partials[1:] for item in batch]
    for draft in drafts:
        assert_suggestion(draft["textEdit"]["newText"])
    assert report["cancel"] in (-32800, "answered")  # RequestCancelled, or it won the race
    for item in report["afterTyping"]:
        assert item["range"] == at(LINE, CHARACTER + 4)
    assert report["exitCode"] == 0
    assert "suggestion qs-" in workspace["log"].read_text() and "accepted" in workspace["log"].read_text()
