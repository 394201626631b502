"""The server as a process over stdio with hand-made frames: exit codes, end of input, position
encodings, the request lifecycle and the error paths that need no model, plus `--tcp`."""

import re
import socket
import subprocess
import time

import pytest
from clients.raw import ENV, ROOT, SERVER, RawSession

URI = "file:///quicksilver-stdio/x.py"


def test_errors_are_answered_and_shutdown_then_exit_returns_0():
    # UTF-8 negotiated, a model path that does not exist: every error path, no model needed.
    session = RawSession()
    init = session.initialize({"general": {"positionEncodings": ["utf-8", "utf-16"]}},
                              {"modelPath": "/nonexistent/model"})
    assert init["result"]["capabilities"]["positionEncoding"] == "utf-8"
    session.open(URI, 'x = "é"\n')
    errors = {
        "negative": session.inline(URI, -1, 0)["error"],
        "unknown": session.inline("file:///nope.py", 0, 0)["error"],
        "past end": session.request("textDocument/completion", {"textDocument": {"uri": URI},
                                                                 "position": {"line": 3, "character": 0}})["error"],
        "mid char": session.inline(URI, 0, 6)["error"],  # é is 2 bytes in UTF-8
        "no model": session.inline(URI, 0, 8)["error"],  # valid in UTF-8
    }
    assert {k: e["code"] for k, e in errors.items()} == {
        "negative": -32602, "unknown": -32602, "past end": -32602, "mid char": -32602, "no model": -32803}
    assert "Position.line" in errors["negative"]["message"] and "not open" in errors["unknown"]["message"]
    assert "utf-8" in errors["mid char"]["message"] and "past the end" in errors["past end"]["message"]
    assert "could not load its model" in errors["no model"]["message"]
    assert "/nonexistent/model" in errors["no model"]["message"]
    assert session.request("shutdown")["result"] is None
    after = session.request("textDocument/inlineCompletion", {"textDocument": {"uri": URI},
                                                              "position": {"line": 0, "character": 0},
                                                              "context": {"triggerKind": 1}})
    assert after["error"]["code"] == -32600 and "shutting down" in after["error"]["message"]
    session.send("exit")
    assert session.wait() == 0


def test_requests_before_initialize_get_server_not_initialized():
    session = RawSession()
    early = session.request("textDocument/completion", {"textDocument": {"uri": URI},
                                                        "position": {"line": 0, "character": 0}})
    assert early["error"]["code"] == -32002
    assert "result" in session.initialize()
    session.proc.stdin.close()
    assert session.wait() == 0


def test_position_encodings_utf16_by_default_utf32_when_offered():
    for offered, chosen in [(None, "utf-16"), (["utf-32"], "utf-32"), (["utf-7", "utf-16"], "utf-16")]:
        session = RawSession()
        caps = {"general": {"positionEncodings": offered}} if offered else {}
        assert session.initialize(caps)["result"]["capabilities"]["positionEncoding"] == chosen
        session.proc.stdin.close()
        assert session.wait() == 0


def test_exit_without_shutdown_returns_1():
    session = RawSession()
    session.initialize()
    session.send("exit")
    assert session.wait() == 1


def test_end_of_input_ends_the_process():
    session = RawSession("--log-level", "warning")
    session.initialize()
    session.proc.stdin.close()
    assert session.wait() == 0


def test_tcp_listens_on_loopback_only_and_serves_one_client(tmp_path):
    log_file = tmp_path / "server.log"
    proc = subprocess.Popen([*SERVER, "--tcp", "0", "--log-file", str(log_file)], cwd=ROOT, env=ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (match := re.search(r"listening on (\S+):(\d+)", log_file.read_text() if log_file.exists() else "")):
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start listening"
            time.sleep(0.05)
        host, port = match.group(1), int(match.group(2))
        assert host == "127.0.0.1"
        with socket.create_connection((host, port), timeout=30) as conn:
            body = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}'
            conn.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            reply = b""
            while b'"result"' not in reply:
                chunk = conn.recv(65536)
                assert chunk, "connection closed before the reply"
                reply += chunk
            assert b'"positionEncoding": "utf-16"' in reply and b'"serverInfo"' in reply
            for message in (b'{"jsonrpc":"2.0","id":2,"method":"shutdown"}', b'{"jsonrpc":"2.0","method":"exit"}'):
                conn.sendall(b"Content-Length: %d\r\n\r\n" % len(message) + message)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


MODEL_DIR = ROOT / "models" / "default"


@pytest.mark.skipif(not (MODEL_DIR / "encoder.onnx").is_file(), reason=f"bundled model not in {MODEL_DIR}")
@pytest.mark.parametrize(("encoding", "units"), [("utf-8", lambda s: len(s.encode())), ("utf-32", len),
                                                 ("utf-16", lambda s: len(s.encode("utf-16-le")) // 2)])
def test_completions_in_each_negotiated_encoding(encoding, units):
    line = "    # café 😋, then the area of the"
    session = RawSession("--log-level", "warning")
    init = session.initialize({"general": {"positionEncodings": [encoding]}})
    assert init["result"]["capabilities"]["positionEncoding"] == encoding
    session.open(URI, f"def area(r):\n{line}\n")
    reply = session.inline(URI, 1, units(line))
    (item,) = reply["result"]["items"]
    assert item["insertText"].strip()
    assert item["range"]["start"] == {"line": 1, "character": units(line)}
    session.proc.stdin.close()
    assert session.wait() == 0
