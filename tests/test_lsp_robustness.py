"""Bad input never kills the server: each case gets a JSON-RPC error or a valid answer, and the
server then still answers a real completion from the bundled model.

One server process for the module (loading the model takes a while); the tests run in file
order against it. Frames are hand-made (tests/clients/raw.py) so nothing is sanitised on the way.
"""

import json
import os
from pathlib import Path

import pytest
from clients.raw import RawSession, inline_params

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(os.environ.get("QUICKSILVER_MODEL") or ROOT / "models" / "default")
pytestmark = pytest.mark.skipif(not (MODEL_DIR / "encoder.onnx").is_file(), reason=f"bundled model not in {MODEL_DIR}")

HOME = "file:///robust/home.py"
# The cursor ends a comment line: whatever single line the early checkpoint writes there keeps the parse valid.
HOME_TEXT = "import os\n\n\ndef list_files(path):\n    # return the names of the files in path, sorted by\n"
HOME_CURSOR = (4, len("    # return the names of the files in path, sorted by"))
INVALID_PARAMS, PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, CANCELLED = -32602, -32700, -32600, -32601, -32800


@pytest.fixture(scope="module")
def server():
    session = RawSession("--log-level", "warning")
    session.initialize({"general": {"positionEncodings": ["utf-16"]}})
    session.open(HOME, HOME_TEXT)
    yield session
    assert session.request("shutdown")["result"] is None
    session.send("exit")
    assert session.wait() == 0  # it survived everything and exits cleanly


def assert_alive(session: RawSession) -> None:
    """A real completion from the model, inserted at the cursor."""
    reply = session.inline(HOME, *HOME_CURSOR)
    (item,) = reply["result"]["items"]
    assert item["insertText"].strip() and "\n" not in item["insertText"]
    cursor = {"line": HOME_CURSOR[0], "character": HOME_CURSOR[1]}
    assert item["range"] == {"start": cursor, "end": cursor}


def test_serves_before_any_bad_input(server):
    assert_alive(server)


def test_unknown_documents(server):
    assert server.inline("file:///robust/never-opened.py", 0, 0)["error"]["code"] == INVALID_PARAMS
    server.send("textDocument/didChange", {"textDocument": {"uri": "file:///robust/ghost.py", "version": 2},
                                           "contentChanges": [{"text": "x"}]})
    server.send("textDocument/didClose", {"textDocument": {"uri": "file:///robust/ghost.py"}})
    assert_alive(server)


def test_positions_out_of_range_or_negative(server):
    codes = [server.inline(HOME, line, char).get("error", {}).get("code")
             for line, char in [(99, 0), (-1, 0), (0, -5), (2**31, 0), (0, 2**40)]]
    assert codes == [INVALID_PARAMS] * 5
    past_line_end = server.inline(HOME, 0, 500)  # LSP: a character past the line's end means the end
    assert past_line_end["result"]["items"] == [] or \
        past_line_end["result"]["items"][0]["range"]["start"] == {"line": 0, "character": 9}
    assert_alive(server)


@pytest.mark.parametrize(("params", "must_fail"), [
    # lsprotocol's converter coerces a numeric string or a float to int: a valid answer is fine there
    ({"textDocument": {"uri": HOME}, "position": {"line": "4", "character": 3}, "context": {"triggerKind": 1}}, False),
    ({"textDocument": {"uri": HOME}, "position": {"line": 4.5, "character": 3}, "context": {"triggerKind": 1}}, False),
    ({"textDocument": {"uri": HOME}, "position": {"line": "four", "character": 3}, "context": {"triggerKind": 1}},
     True),
    ({"textDocument": 7, "position": {"line": 0, "character": 0}, "context": {"triggerKind": 1}}, True),
    ({"textDocument": {"uri": HOME}, "context": {"triggerKind": 1}}, True),
    ({"textDocument": {"uri": HOME}, "position": {"line": 0, "character": 0}, "context": {"triggerKind": 9}}, True),
    ({"textDocument": {"uri": HOME}, "position": [0, 0], "context": {"triggerKind": 1}}, True),
    ([HOME, 0, 0], True),
    (None, True),
])
def test_wrong_parameter_types(server, params, must_fail):
    reply = server.request("textDocument/inlineCompletion", params)
    if must_fail or "error" in reply:
        assert reply["error"]["code"] == INVALID_PARAMS and reply["error"]["message"]
    else:
        assert isinstance(reply["result"]["items"], list)
    assert_alive(server)


def test_wrong_types_in_notifications_and_unknown_methods(server):
    server.send("textDocument/didOpen", {"textDocument": {"uri": 5, "text": None}})
    server.send("textDocument/didChange", {"textDocument": {"uri": HOME}, "contentChanges": "all of it"})
    server.send("workspace/didChangeConfiguration", {"settings": {"quicksilver": {"latencyBudgetMs": "soon"}}})
    server.send("quicksilver/didDismiss", {"id": ["not", "a", "string"]})
    server.send("no/suchNotification", {"x": 1})
    assert server.request("no/suchRequest", {})["error"]["code"] == METHOD_NOT_FOUND
    reply = server.request("workspace/executeCommand", {"command": "quicksilver.accept", "arguments": [{"id": 1}]})
    assert reply["error"]["code"] == INVALID_PARAMS
    assert_alive(server)


def test_malformed_json_and_broken_frames(server):
    server.frame(b'{"jsonrpc": "2.0", "id": 90, "method": "textDocument/inlineCompletion", "params": {')
    assert server.response(None, 30)["error"]["code"] == PARSE_ERROR
    server.frame(b"[1, 2, 3]")
    assert server.response(None, 30)["error"]["code"] == INVALID_REQUEST
    server.frame(b'{"jsonrpc": "1.0", "id": 91, "method": "shutdown"}')
    assert server.response(91, 30)["error"]["code"] == INVALID_REQUEST
    server.write(b"X-Garbage: yes\r\n\r\n")  # headers without Content-Length: skipped
    server.write(b"Content-Length: twelve\r\n\r\n")
    server.write(b"Content-Length: 0\r\n\r\n")  # an empty body is not JSON
    assert server.response(None, 30)["error"]["code"] == PARSE_ERROR
    assert_alive(server)


def test_binary_bytes(server):
    server.frame(b'{"jsonrpc": "2.0", "id": 92, "method": "initialize", "params": {"x": "\xff\xfe\x00\x81"}}')
    assert server.response(None, 30)["error"]["code"] == PARSE_ERROR  # not UTF-8
    uri = "file:///robust/binary.py"
    text = "data = b'\x00\x01\x02\x1b[0m\x7f'\n\x0c\n# after a form feed and NULs, the cursor is here: \n"
    server.open(uri, text)
    reply = server.inline(uri, 3, len("# after a form feed and NULs, the cursor is here: "))
    assert isinstance(reply["result"]["items"], list)
    assert_alive(server)


def test_crlf_documents(server):
    uri = "file:///robust/crlf.py"
    server.open(uri, "def f(x):\r\n    # double x and return it\r\n    return x\r\n")
    reply = server.inline(uri, 1, len("    # double x and return it"))
    for item in reply["result"]["items"]:
        bare = item["insertText"].replace("\r\n", "")  # a CRLF document gets CRLF line breaks, nothing else
        assert item["range"]["start"] == {"line": 1, "character": 28} and "\r" not in bare and "\n" not in bare
    server.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
        {"range": {"start": {"line": 2, "character": 12}, "end": {"line": 2, "character": 12}},
         "text": " * 2\r\n\r\n# next\r\n"}]})
    reply = server.inline(uri, 4, len("# next"))
    assert isinstance(reply["result"]["items"], list)
    assert server.inline(uri, 7, 0)["error"]["code"] == INVALID_PARAMS  # 7 lines now: 0..6
    assert_alive(server)


def test_surrogate_pairs_and_lone_surrogates(server):
    uri = "file:///robust/emoji.py"
    # json.dumps escapes the emoji as the pair \\ud83d\\ude0b and the lone surrogate as \\ud800, as editors send them
    server.open(uri, 's = "😋"  # yum \nt = "\ud800"  # lone \n')
    assert server.inline(uri, 0, 6)["error"]["code"] == INVALID_PARAMS  # between the halves of the emoji
    after_emoji = server.inline(uri, 0, len('s = "😋"  # yum') + 1)  # +1: the emoji is two UTF-16 units
    assert isinstance(after_emoji["result"]["items"], list)
    lone = server.inline(uri, 1, len('t = "\ud800"  # lone'))  # one UTF-16 unit, sent to the model as U+FFFD
    assert isinstance(lone["result"]["items"], list)
    assert_alive(server)


def test_a_10_mb_file(server):
    source = (Path(os.__file__).parent / "argparse.py").read_text()
    text = (source * (10_000_000 // len(source) + 1))[:10_000_000]
    text = text[: text.rfind("\n") + 1] + "# the end of a very long file, and then \n"
    lines = text.split("\n")
    uri = "file:///robust/huge.py"
    server.open(uri, text)
    end = server.inline(uri, len(lines) - 2, len(lines[-2]), timeout=300)
    middle = server.inline(uri, len(lines) // 2, len(lines[len(lines) // 2]), timeout=300)
    assert isinstance(end["result"]["items"], list) and isinstance(middle["result"]["items"], list)
    server.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
        {"range": {"start": {"line": 100, "character": 0}, "end": {"line": 100, "character": 0}}, "text": "# edit\n"}]})
    assert isinstance(server.inline(uri, 100, 6, timeout=300)["result"]["items"], list)
    server.send("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert_alive(server)


def test_a_storm_of_requests_each_cancelling_the_last(server):
    first_id = server.next_id + 1
    for n in range(200):
        server.next_id += 1
        server.send("textDocument/inlineCompletion", inline_params(HOME, *HOME_CURSOR, trigger=2), server.next_id)
        if n:
            server.send("$/cancelRequest", {"id": server.next_id - 1})
    replies = [server.response(id_, 300) for id_ in range(first_id, server.next_id + 1)]
    outcomes = {json.dumps(sorted(r.keys())) for r in replies}
    assert outcomes <= {json.dumps(["id", "jsonrpc", "result"]), json.dumps(["error", "id", "jsonrpc"])}
    assert all(r["error"]["code"] == CANCELLED for r in replies if "error" in r)
    assert "result" in replies[-1]  # the last one was never cancelled
    assert_alive(server)
