"""Replaying traces against the real server and bundled model: the checked-in trace set replays with no
errors and no outdated or misplaced answers; the simulated user accepts what they were about to type;
a session recorded with --record-trace replays; fast typing at recorded timing never gets a stale answer.

Timing is reported by `python -m lsp_server replay` (benchmarks/results/replay.json), not asserted here.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from clients.raw import RawSession

from lsp_server.replay import Replayer, ReplayOptions
from lsp_server.replay_report import ROOT, run_replay, trace_paths
from lsp_server.stdio_client import StdioClient
from lsp_server.trace import Trace, TraceWriter, header, read_trace

MODEL_DIR = ROOT / "models" / "default"
pytestmark = pytest.mark.skipif(not (MODEL_DIR / "encoder.onnx").is_file(), reason=f"bundled model not in {MODEL_DIR}")
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SERVER = [sys.executable, "-m", "lsp_server", "--log-level", "warning"]
# A comment line the model completes with something (the same text the other end-to-end tests use).
HOME_TEXT = "import os\n\n\ndef list_files(path):\n    # return the names of the files in path, sorted by\n"
CURSOR = (4, len("    # return the names of the files in path, sorted by"))


def check_clean(total: dict) -> None:
    assert total["errors"] == 0, total["error_messages"]
    assert total["outdated"] == 0 and total["invalid"] == 0
    assert total["answered"] + total["cancelled_answers"] == total["requests"]  # every request got its answer


def test_the_trace_set_replays_cleanly():
    paths = trace_paths([str(ROOT / "tests" / "traces")])
    report, total = run_replay(paths, ReplayOptions(), [])
    check_clean(report["total"])
    assert report["server_exit_code"] == 0 and not report["server_crashed"] and not report["server_log_errors"]
    assert set(report["per_trace"]) == {p.name for p in paths}
    t = report["total"]
    assert t["keystrokes"] > 1000 and t["shown"] > 0 and t["chars_typed"] > 1000
    assert len(total.latencies_ms) == t["answered"] and report["memory"]["samples"]


# Other comments to try when the model's answer to one is too short to accept.
OTHER_COMMENTS = ("    # read every line of the file and return the", "    # the total size of all the files, in")


def _trace(path: Path, uri: str, typed: str, comment: str | None = None) -> Trace:
    """Open HOME_TEXT (its comment line replaced by `comment`), ask at the comment's end, then type
    `typed` there key by key, asking after each key."""
    text, (line, character) = HOME_TEXT, CURSOR
    if comment is not None:
        text = HOME_TEXT.rsplit("    #", 1)[0] + comment + "\n"
        character = len(comment)
    writer = TraceWriter(path, header("test"))
    writer.event("open", t=0, uri=uri, languageId="python", version=1, text=text)
    writer.event("request", t=1, id=0, method="textDocument/inlineCompletion", uri=uri, line=line,
                 character=character, trigger="automatic")
    for k, ch in enumerate(typed):
        at = {"line": line, "character": character + k}
        writer.event("change", t=100 * (k + 1), uri=uri, version=k + 2, changes=[{"range": {"start": at, "end": at},
                                                                                   "text": ch}])
        writer.event("request", t=100 * (k + 1) + 1, id=k + 1, method="textDocument/inlineCompletion", uri=uri,
                     line=line + (ch == "\n"), character=0 if ch == "\n" else character + k + 1, trigger="automatic")
    writer.close()
    return read_trace(path)


def test_the_user_accepts_a_suggestion_that_is_what_they_were_about_to_type(tmp_path: Path):
    # A budget no machine load can cut, and no background refinement: the same request gets the same answer.
    options = ReplayOptions(init_options={"latencyBudgetMs": 60_000, "backgroundRefinement": False})
    client = StdioClient(SERVER, cwd=ROOT, env=ENV)
    client.initialize({"general": {"positionEncodings": ["utf-16"]}}, options.server_options)
    replayer = Replayer(client, options)
    tried = []
    for k, comment in enumerate((None, *OTHER_COMMENTS)):
        probe = replayer.run(_trace(tmp_path / f"probe{k}.jsonl", f"file:///probe{k}.py", "", comment))
        suggestion = replayer.shown.text if replayer.shown else ""
        assert probe.shown == 1 and suggestion.strip() and "\n" not in suggestion
        tried.append(suggestion)
        if len(suggestion) >= 2:  # nobody presses Tab to save nothing: the simulated user accepts 2 or more
            break
    else:
        pytest.skip(f"the bundled model suggested only {tried!r}: too short to accept")

    typed = suggestion + "\n"  # the user types exactly the suggestion, then Enter
    tally = replayer.run(_trace(tmp_path / "typing.jsonl", "file:///typing.py", typed, comment))
    assert tally.accepted == 1 and tally.chars_accepted == len(suggestion)
    assert tally.chars_saved == len(suggestion) - 1 and tally.chars_typed == len(typed)
    assert tally.keystrokes == 2  # the accept, then Enter: every key of the suggestion was skipped
    assert client.call("quicksilver/stats")["result"]["accepted"] == 1  # the accept command reached the server

    declined = Replayer(client, ReplayOptions(accept=False, init_options=options.init_options))
    tally = declined.run(_trace(tmp_path / "declined.jsonl", "file:///declined.py", typed, comment))
    assert tally.accepted == 0 and tally.keystrokes == len(typed) and tally.chars_saved == 0
    assert client.close() == 0


def test_a_recorded_session_replays(tmp_path: Path):
    uri = "file:///recorded/home.py"
    session = RawSession("--log-level", "warning", "--record-trace", str(tmp_path / "traces"))
    session.initialize({"general": {"positionEncodings": ["utf-16"]}})
    session.open(uri, HOME_TEXT)
    at = {"line": CURSOR[0], "character": CURSOR[1]}
    session.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                            "contentChanges": [{"range": {"start": at, "end": at}, "text": " "}]})
    reply = session.inline(uri, CURSOR[0], CURSOR[1] + 1, trigger=2)
    items = reply["result"]["items"]
    assert session.request("shutdown")["result"] is None
    session.send("exit")
    assert session.wait() == 0

    (path,) = (tmp_path / "traces").glob("quicksilver-*.jsonl")
    trace = read_trace(path)
    kinds = [e["type"] for e in trace.events]
    assert kinds == ["initialize", "open", "change", "request", "answer"]
    answer = trace.events[-1]
    assert answer["items"] == [item["insertText"] for item in items]
    if items:  # the version the server echoes is the one the client sent
        assert items[0]["command"]["arguments"][1] == {"version": 2}

    report, _ = run_replay([path], ReplayOptions(), [])
    check_clean(report["total"])
    assert report["total"]["requests"] == 1


@pytest.mark.parametrize("cancels", [True, False], ids=["client-cancels", "client-never-cancels"])
def test_fast_typing_at_recorded_timing_never_gets_a_stale_answer(tmp_path: Path, cancels: bool):
    """Keys 15 ms apart, faster than the model answers, a request after every eighth key: answers come for the
    document version asked about, and, even from a client that never cancels, hardly ever for text the user
    already changed (the server drops those; only an answer crossing an edit on the wire arrives late)."""
    source = (Path(os.__file__).parent / "shlex.py").read_text()
    uri = "file:///fast/shlex.py"
    writer = TraceWriter(tmp_path / "fast.jsonl", header("test"))
    writer.event("open", t=0, uri=uri, languageId="python", version=1, text=source)
    line = source[: source.index("def split(")].count("\n")
    for k, ch in enumerate("parts = shlex_split_helper(value, posix=True, comments=False, punctuation=None)"):
        at = {"line": line, "character": k}
        writer.event("change", t=15 * k + 5, uri=uri, version=k + 2,
                     changes=[{"range": {"start": at, "end": at}, "text": ch}])
        if k % 8 == 0:
            writer.event("request", t=15 * k + 6, id=k, method="textDocument/inlineCompletion", uri=uri, line=line,
                         character=k + 1, trigger="automatic")
    writer.close()
    options = ReplayOptions(speed=1.0, accept=False, cancel_on_change=cancels)
    report, _ = run_replay([tmp_path / "fast.jsonl"], options, [])
    check_clean(report["total"])
    assert (report["total"]["cancellations_sent"] > 0) == cancels
    assert report["total"]["late"] <= 2


def test_replay_command_rejects_a_bad_trace_with_one_line(tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"hello": 1}\n')
    result = subprocess.run([sys.executable, "-m", "lsp_server", "replay", str(bad)], cwd=ROOT, env=ENV,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {bad}:1: not a quicksilver-trace header"
