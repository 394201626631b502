"""The server as a subprocess spoken to with hand-made Content-Length frames.

Used where a library client would refuse to send what the test needs (malformed JSON,
raw bytes, wrong types) and to watch exit codes.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, "-m", "lsp_server"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


class RawSession:
    def __init__(self, *args: str, log_file: Path | None = None):
        extra = ["--log-file", str(log_file)] if log_file else []
        self.proc = subprocess.Popen([*SERVER, *extra, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, cwd=ROOT, env=ENV)
        self.messages: queue.Queue = queue.Queue()
        self.notifications: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.next_id = 0

    def _read(self) -> None:
        while header := self.proc.stdout.readline():
            if header.lower().startswith(b"content-length:"):
                length = int(header.split(b":")[1])
                while self.proc.stdout.readline().strip():
                    pass
                self.messages.put(json.loads(self.proc.stdout.read(length)))

    def write(self, raw: bytes) -> None:
        self.proc.stdin.write(raw)
        self.proc.stdin.flush()

    def frame(self, body: bytes) -> None:
        self.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def send(self, method: str, params=None, id_=None) -> None:
        message = {"jsonrpc": "2.0", "method": method, **({"params": params} if params is not None else {})}
        if id_ is not None:
            message["id"] = id_
        self.frame(json.dumps(message).encode())

    def request(self, method: str, params=None, timeout: float = 120) -> dict:
        self.next_id += 1
        self.send(method, params, self.next_id)
        return self.response(self.next_id, timeout)

    def response(self, id_, timeout: float = 120) -> dict:
        """The response with this id (None: one with id null); notifications seen meanwhile are kept."""
        while True:
            message = self.messages.get(timeout=timeout)
            if "method" in message:
                self.notifications.append(message)
            elif message.get("id") == id_:
                return message

    def initialize(self, capabilities: dict | None = None, options: dict | None = None) -> dict:
        result = self.request("initialize", {"processId": None, "rootUri": None, "capabilities": capabilities or {},
                                             **({"initializationOptions": options} if options else {})})
        self.send("initialized", {})
        return result

    def open(self, uri: str, text: str, language: str = "python") -> None:
        self.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": language, "version": 1,
                                                            "text": text}})

    def inline(self, uri: str, line: int, character: int, trigger: int = 1, timeout: float = 120) -> dict:
        return self.request("textDocument/inlineCompletion", inline_params(uri, line, character, trigger), timeout)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def inline_params(uri: str, line: int, character: int, trigger: int = 1) -> dict:
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character},
            "context": {"triggerKind": trigger}}
