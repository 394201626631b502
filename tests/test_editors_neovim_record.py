"""The Neovim plugin's `record_trace` option, in a real Neovim against the real server and the bundled model.

editors/neovim/test/record_trace.lua (the driver tests/traces/record_neovim.py records the checked-in traces
with) types a few lines key by key into a child `nvim --embed`, with the plugin started with `record_trace` set:
the server must write a trace there that read_trace accepts, holding the open, Neovim's own incremental edits
(with ranges) and the plugin's automatic requests for the typed text, and whose edits rebuild the buffer.
Nothing is asserted about the suggestions (the bundled model is an early checkpoint).
Skips without Neovim; fails instead under CI (CI=true), where .ci/run installs it (Debian `neovim`, 0.7).
"""

import importlib.util
import shutil
import stat
import sys
from pathlib import Path

import pytest
from tooling import require

from lsp_server.trace import read_trace

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "models" / "default"
SOURCE = "import os\n\n\ndef list_files(path):\n    return sorted(os.listdir(path))\n"
# Typed on a new line opened above `def list_files` (line 4) with `O`, which gives TYPED its last newline.
TYPED = "def twice(x):\n    return 2 * x\n"
OPEN_AT = 4


def load_recorder():
    """tests/traces/record_neovim.py (a script, not a package module): the driver's runner and checks."""
    if "record_neovim" in sys.modules:
        return sys.modules["record_neovim"]
    spec = importlib.util.spec_from_file_location("record_neovim", ROOT / "tests" / "traces" / "record_neovim.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def keys_for(recorder, text: str) -> list:
    """One key every 120 ms (the plugin's debounce is 75 ms: each key gets its request), a typo erased with <BS>,
    and a pause after the first line, so a request has time to be answered."""
    keys = [[recorder.key_of(ch), 120] for ch in text]
    keys[text.index("\n") + 1][1] = 600
    k = text.index("x")  # "twice(c" <BS> "x)"
    keys[k:k] = [["c", 120], ["<BS>", 300]]
    return keys


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict:
    require(shutil.which("nvim") is not None, "Neovim is not installed (Debian package neovim)")
    require((MODEL_DIR / "encoder.onnx").is_file(), f"bundled model not in {MODEL_DIR}")
    recorder = load_recorder()
    workdir = tmp_path_factory.mktemp("nvim-record")
    source = workdir / "files.py"
    source.write_text(SOURCE)
    keys = keys_for(recorder, TYPED.removesuffix("\n"))
    report = recorder.run_driver(source, "python", OPEN_AT, keys, workdir, start="O", timeout=600)
    report["recorder"] = recorder
    report["uri"] = source.resolve().as_uri()
    report["record_dir"] = workdir / "record"
    return report


def test_the_plugin_starts_the_server_recording(recorded):
    assert recorded["steps"] == ["initialized", "insert mode", "typed", "left insert mode", "stopped"]
    assert recorded["stopped"]
    (path,) = [Path(p) for p in recorded["trace_files"]]
    assert path.parent == recorded["record_dir"] and path.name.startswith("quicksilver-")
    assert list(recorded["record_dir"].glob("*.jsonl")) == [path]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # traces hold code: readable by the user only
    assert "recording this session" in recorded["server_log"] and str(path) in recorded["server_log"]


def test_the_trace_holds_neovims_edits_and_requests(recorded):
    expected = SOURCE.replace("def list_files", TYPED + "def list_files", 1)
    final = recorded["recorder"].buffer_text(recorded)
    assert final == expected  # the keys typed exactly the text: no autoindent, Tab mapping or typo left

    trace = read_trace(recorded["trace_files"][0])
    assert trace.header["source"] == "recorder"
    events, uri = trace.events, recorded["uri"]
    kinds = [e["type"] for e in events]
    (init,) = [e for e in events if e["type"] == "initialize"]
    assert init["client"]["name"] == "Neovim" and init["options"] == {}
    (opened,) = [e for e in events if e["type"] == "open"]
    assert opened["uri"] == uri and opened["languageId"] == "python" and opened["text"] == SOURCE
    assert kinds.index("open") < kinds.index("change")

    changes = [e for e in events if e["type"] == "change"]
    assert len(changes) >= len(TYPED) + 2  # `O`, every typed key, the typo and its <BS>
    assert all(e["uri"] == uri and e["changes"] for e in changes)
    assert all("range" in c for e in changes for c in e["changes"])  # incremental, as Neovim syncs
    assert any(c["text"] == "" for e in changes for c in e["changes"])  # the <BS>: a deletion by range
    assert recorded["recorder"].rebuild(events, trace.position_encoding)[uri] == final

    requests = [e for e in events if e["type"] == "request"]
    assert len(requests) >= 3 and all(r["uri"] == uri for r in requests)
    assert all(r["method"] == "textDocument/inlineCompletion" and r["trigger"] == "automatic" for r in requests)
    typed_lines = range(OPEN_AT - 1, OPEN_AT - 1 + TYPED.count("\n") + 1)
    assert all(r["line"] in typed_lines for r in requests)  # asked where the text was being typed
    assert {r["line"] for r in requests} >= {OPEN_AT - 1, OPEN_AT}  # on both typed lines
    answered = {e["id"] for e in events if e["type"] == "answer"}
    assert answered == {r["id"] for r in requests}  # every request got its answer (or its cancellation)
    assert all(e["t"] >= 0 for e in events)
