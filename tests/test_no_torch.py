"""The language server runs where PyTorch is not installed.

A real environment without torch: a fresh venv of the same interpreter whose
site-packages holds every package of the development venv except torch (symlinked:
no network, under a second), with the repository on PYTHONPATH. `import torch` fails
there exactly as on a serving install, so any serving import of torch (or of a module
importing it) breaks the command below. Chosen over reinstalling the serving
dependencies from PyPI (about 15 s and the network, per run) and over poisoning
`sys.modules["torch"]` (which changes what `importlib.util.find_spec` reports).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from clients import raw

REPO = Path(__file__).resolve().parents[1]
TORCH_DISTRIBUTIONS = ("torch", "torchgen", "functorch")
DEMO = REPO / "examples" / "demo.py"


def _is_torch(name: str) -> bool:
    return name.split("-")[0].split(".")[0].lower() in TORCH_DISTRIBUTIONS


@pytest.fixture(scope="module")
def torchless_python(tmp_path_factory) -> str:
    venv = tmp_path_factory.mktemp("notorch") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    source = Path(sysconfig.get_paths()["purelib"])
    for entry in source.iterdir():
        if not _is_torch(entry.name) and entry.name != "__pycache__" and not (site / entry.name).exists():
            (site / entry.name).symlink_to(entry)
    return str(python)


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "PYTHONPATH": str(REPO)}


def test_torch_is_really_missing_there(torchless_python):
    probe = subprocess.run([torchless_python, "-c", "import onnxruntime, pygls, tokenizers; import torch"],
                           capture_output=True, text=True, env=_env(), cwd=REPO, timeout=120)
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr


def test_complete_command_without_torch(torchless_python):
    run = subprocess.run([torchless_python, "-m", "lsp_server", "complete", f"{DEMO}:5:12"], capture_output=True,
                         text=True, env=_env(), cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "latency:" in run.stderr and "onnxruntime-cpu" in run.stderr
    assert "Traceback" not in run.stderr


def test_stdio_session_without_torch(torchless_python, monkeypatch):
    """initialize -> didOpen -> inlineCompletion -> completion -> shutdown -> exit, answered by the model."""
    monkeypatch.setattr(raw, "SERVER", [torchless_python, "-m", "lsp_server"])
    monkeypatch.setattr(raw, "ENV", _env())
    session = raw.RawSession()
    try:
        init = session.initialize()
        assert "inlineCompletionProvider" in init["result"]["capabilities"]
        uri = DEMO.as_uri()
        session.open(uri, DEMO.read_text())
        inline = session.inline(uri, 4, 11, timeout=300)
        assert "error" not in inline, inline
        items = inline["result"]["items"] if isinstance(inline["result"], dict) else inline["result"]
        assert isinstance(items, list) and all(isinstance(i["insertText"], str) for i in items)
        completion = session.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                                 "position": {"line": 6, "character": 8}})
        assert "error" not in completion, completion
        assert session.request("shutdown")["result"] is None
        session.send("exit")
        assert session.wait() == 0
    finally:
        session.close()
