"""The trace format, the recorder's translation of JSON-RPC traffic, and the typing generator (no model needed)."""

import json
import os
import stat
from pathlib import Path

import pytest

from benchmarks.typist import Typing, generate, utf16_position
from lsp_server.replay import document_states, typed_chars
from lsp_server.trace import FORMAT, TraceError, TraceRecorder, TraceWriter, header, read_trace

ROOT = Path(__file__).resolve().parents[1]
REAL_SOURCE = Path(os.__file__).parent / "textwrap.py"  # real code, not typed in by hand


def test_writer_and_reader_round_trip(tmp_path: Path):
    path = tmp_path / "t.jsonl"
    writer = TraceWriter(path, header("test"))
    writer.event("open", t=0, uri="file:///a.py", languageId="python", version=1, text="x = 1\n")
    writer.event("change", t=12.5, uri="file:///a.py", version=2,
                 changes=[{"range": {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 0}},
                           "text": "é"}])
    writer.close()
    trace = read_trace(path)
    assert trace.header["format"] == FORMAT and trace.position_encoding == "utf-16"
    assert [e["type"] for e in trace.events] == ["open", "change"] and trace.events[1]["changes"][0]["text"] == "é"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a trace holds the user's code


@pytest.mark.parametrize(("content", "message"), [
    ("", "empty file"),
    ('{"type": "header", "format": "other"}\n', ":1: not a quicksilver-trace header"),
    ('{"type": "header", "format": "quicksilver-trace", "version": 99}\n', ":1: trace version 99"),
    ('{"type": "header", "format": "quicksilver-trace", "version": 1}\n{"t": 0, "type": "open"}\n',
     ":2: open event missing uri, languageId, version, text"),
    ('{"type": "header", "format": "quicksilver-trace", "version": 1}\n{"t": 0, "type": "teleport"}\n',
     ":2: unknown event type 'teleport'"),
    ('{"type": "header", "format": "quicksilver-trace", "version": 1}\nnot json\n', ":2: not JSON"),
])
def test_reader_names_the_file_and_line_of_what_is_wrong(tmp_path: Path, content: str, message: str):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(TraceError, match=message.replace("(", r"\(")) as info:
        read_trace(path)
    assert str(path) in str(info.value)


def test_recorder_turns_json_rpc_traffic_into_events(tmp_path: Path):
    rec = TraceRecorder(tmp_path)
    uri = "file:///w/a.py"
    rec.incoming({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                  "params": {"clientInfo": {"name": "nvim"}, "initializationOptions": {"maxLines": 2}}})
    rec.outgoing({"jsonrpc": "2.0", "id": 0, "result": {"capabilities": {"positionEncoding": "utf-32"}}})
    rec.incoming({"jsonrpc": "2.0", "method": "textDocument/didOpen",
                  "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": "x"}}})
    change = {"range": {"start": {"line": 0, "character": 1}, "end": {"line": 0, "character": 1}}, "text": "y"}
    rec.incoming({"jsonrpc": "2.0", "method": "textDocument/didChange",
                  "params": {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [change]}})
    rec.incoming({"jsonrpc": "2.0", "id": 5, "method": "textDocument/inlineCompletion",
                  "params": {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 2},
                             "context": {"triggerKind": 2}}})
    rec.incoming({"jsonrpc": "2.0", "id": 6, "method": "textDocument/completion",
                  "params": {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 2}}})
    rec.incoming({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 6}})
    rec.outgoing({"jsonrpc": "2.0", "id": 5, "result": {"items": [{"insertText": " = 2"}]}})
    rec.outgoing({"jsonrpc": "2.0", "id": 6, "error": {"code": -32800, "message": "cancelled"}})
    rec.outgoing({"jsonrpc": "2.0", "id": 77, "result": None})  # not a completion: not recorded
    rec.incoming({"jsonrpc": "2.0", "id": 7, "method": "workspace/executeCommand",
                  "params": {"command": "quicksilver.accept", "arguments": ["qs-1", {"version": 2}]}})
    rec.incoming({"jsonrpc": "2.0", "method": "quicksilver/didDismiss", "params": {"id": "qs-2"}})
    rec.incoming({"jsonrpc": "2.0", "method": "textDocument/didClose", "params": {"textDocument": {"uri": uri}}})
    rec.incoming({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": "garbage"})  # ignored, not fatal
    rec.close()
    trace = read_trace(rec.path)
    kinds = [e["type"] for e in trace.events]
    assert kinds == ["initialize", "open", "change", "request", "request", "cancel", "answer", "answer", "accept",
                     "dismiss", "close"]
    init, _, ch, inline, compl, _, answer, cancelled, accept, dismiss, _ = trace.events
    assert init["position_encoding"] == "utf-32" and init["client"] == {"name": "nvim"}
    assert ch["changes"] == [change] and ch["version"] == 2
    assert (inline["trigger"], compl["trigger"]) == ("automatic", "invoked") and inline["character"] == 2
    assert answer == {**answer, "id": 5, "items": [" = 2"]} and cancelled["error"] == "cancelled"
    assert accept["suggestion"] == "qs-1" and dismiss["suggestion"] == "qs-2"
    assert all(e["t"] >= 0 for e in trace.events)


def test_typist_rebuilds_the_file_with_typos_moves_and_editor_indentation(tmp_path: Path):
    text = REAL_SOURCE.read_text()
    typing = Typing(typo_prob=0.08, defer_prob=0.3, think_prob=0.2)
    summary = generate("textwrap.py", text, "python", tmp_path / "t.jsonl", seed=3, target_chars=400, typing=typing)
    trace = read_trace(tmp_path / "t.jsonl")
    events = trace.events
    assert trace.header["source"] == "generated" and events[0]["type"] == "open" and events[0]["text"] != text
    states = [s for s in document_states(events, "utf-16") if s is not None]
    assert states[-1] == (len(text), hash(text))  # the edits rebuild the real file exactly
    changes = [e for e in events if e["type"] == "change"]
    assert summary["keystrokes"] == sum(not e.get("auto") for e in changes)
    assert any(c["text"] == "" for e in changes for c in e["changes"])  # typos erased with backspace
    assert any(e.get("auto") for e in changes)  # the editor's indentation after Enter
    assert sum(e["type"] == "cursor" for e in events) >= 2  # moved between regions or to a line put off
    assert sum(e["type"] == "request" for e in events) == len(changes)  # one automatic request per edit
    times = [e["t"] for e in events]
    assert times == sorted(times) and 60 < (times[-1] - times[0]) / summary["keystrokes"] < 2000
    assert typed_chars(events) > 400 * 0.8


def test_typist_is_deterministic(tmp_path: Path):
    text = REAL_SOURCE.read_text()
    for name in ("a", "b"):
        generate("textwrap.py", text, "python", tmp_path / f"{name}.jsonl", seed=11, target_chars=200, typing=Typing())
    assert read_trace(tmp_path / "a.jsonl").events == read_trace(tmp_path / "b.jsonl").events


def test_utf16_positions_count_surrogate_pairs():
    text = "a😀b\ncd"
    assert utf16_position(text, 3) == {"line": 0, "character": 4}
    assert utf16_position(text, 5) == {"line": 1, "character": 1}


def test_checked_in_traces_are_valid_and_rebuild_their_documents():
    paths = sorted((ROOT / "tests" / "traces").rglob("*.jsonl"))
    assert len(paths) >= 6
    for path in paths:
        trace = read_trace(path)
        assert trace.header["source"] in ("generated", "neovim", "recorder"), path
        assert any(e["type"] == "request" for e in trace.events), path
        states = document_states(trace.events, trace.position_encoding)
        assert any(s is not None for s in states), path
        opened = json.dumps([e["uri"] for e in trace.events if e["type"] == "open"])
        assert "/home/" not in opened and "/work/" not in opened and "/tmp/" not in opened, path
