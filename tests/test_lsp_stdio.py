"""The server as a process spoken to with hand-made Content-Length frames: exit codes,
end of input, position encodings and every error path, none of which needs the model.
"""

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER = [sys.executable, "-m", "lsp_server"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
URI = "file:///quicksilver-stdio/x.py"


class RawSession:
    """The server as a subprocess spoken to with hand-made Content-Length frames."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([*SERVER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, cwd=ROOT, env=ENV)
        self.messages: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.next_id = 0

    def _read(self) -> None:
        while header := self.proc.stdout.readline():
            if header.lower().startswith(b"content-length:"):
                length = int(header.split(b":")[1])
                while self.proc.stdout.readline().strip():
                    pass
                self.messages.put(json.loads(self.proc.stdout.read(length)))

    def send(self, method: str, params=None, id_: int | None = None) -> None:
        message = {"jsonrpc": "2.0", "method": method, **({"params": params} if params is not None else {})}
        if id_ is not None:
            message["id"] = id_
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method: str, params=None) -> dict:
        self.next_id += 1
        self.send(method, params, self.next_id)
        while True:
            message = self.messages.get(timeout=60)
            if message.get("id") == self.next_id and "method" not in message:
                return message

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def inline_params(line: int, character: int, uri: str = URI) -> dict:
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character},
            "context": {"triggerKind": 1}}


def test_raw_shutdown_then_exit_returns_0_and_errors_are_answered():
    # UTF-8 negotiated, a model path that does not exist: every error path, no model needed.
    session = RawSession()
    init = session.request("initialize", {"capabilities": {"general": {"positionEncodings": ["utf-8", "utf-16"]}},
                                          "initializationOptions": {"modelPath": "/nonexistent/model"}})
    assert init["result"]["capabilities"]["positionEncoding"] == "utf-8"
    session.send("initialized", {})
    session.send("textDocument/didOpen", {"textDocument": {"uri": URI, "languageId": "python", "version": 1,
                                                           "text": 'x = "é"\n'}})
    errors = {
        "negative": session.request("textDocument/inlineCompletion", inline_params(-1, 0))["error"],
        "unknown": session.request("textDocument/inlineCompletion", inline_params(0, 0, "file:///nope.py"))["error"],
        "past end": session.request("textDocument/completion", inline_params(3, 0))["error"],
        "mid char": session.request("textDocument/inlineCompletion", inline_params(0, 6))["error"],  # é is 2 bytes
        "no model": session.request("textDocument/inlineCompletion", inline_params(0, 8))["error"],  # valid in UTF-8
    }
    assert {k: e["code"] for k, e in errors.items()} == {
        "negative": -32602, "unknown": -32602, "past end": -32602, "mid char": -32602, "no model": -32803}
    assert "Position.line" in errors["negative"]["message"] and "not open" in errors["unknown"]["message"]
    assert "utf-8" in errors["mid char"]["message"]
    assert "could not load its model" in errors["no model"]["message"]
    assert "/nonexistent/model" in errors["no model"]["message"]
    assert session.request("shutdown")["result"] is None
    session.send("exit")
    assert session.wait() == 0


def test_raw_exit_without_shutdown_returns_1():
    session = RawSession()
    session.request("initialize", {"capabilities": {}})
    session.send("exit")
    assert session.wait() == 1


def test_raw_end_of_input_ends_the_process():
    session = RawSession("--log-level", "warning")
    session.request("initialize", {"capabilities": {}})
    session.proc.stdin.close()
    assert session.wait() == 0
