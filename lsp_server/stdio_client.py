"""A minimal LSP client over a server subprocess's stdio, for replaying traces.

It speaks JSON-RPC with Content-Length frames, answers the few requests a server
sends to its client (configuration, progress tokens, capability registration) the
way an editor does, and timestamps every response when it arrives, so latency is
measured on the client side, as the user would feel it.
"""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

REQUEST_CANCELLED = -32800


class ServerGone(RuntimeError):
    """The server process ended or stopped answering."""


class StdioClient:
    def __init__(self, argv: list[str], cwd: str | Path | None = None, env: dict[str, str] | None = None,
                 stderr: BinaryIO | int = subprocess.DEVNULL):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                     cwd=cwd, env=env)
        self.responses: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self.server_requests = 0
        threading.Thread(target=self._read, daemon=True, name="lsp-client-reader").start()

    # -- wire --------------------------------------------------------------------------------------------------
    def _read(self) -> None:
        out = self.proc.stdout
        while header := out.readline():
            if not header.lower().startswith(b"content-length:"):
                continue
            length = int(header.split(b":")[1])
            while out.readline().strip():
                pass
            message = json.loads(out.read(length))
            received = time.perf_counter()
            if "method" in message and "id" in message:
                self._answer_server_request(message)
            elif "method" not in message:
                self.responses.put((received, message))
        self.responses.put((time.perf_counter(), {"gone": True}))

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        try:
            with self._write_lock:
                self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
                self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise ServerGone(f"the server closed its input (exit code {self.proc.poll()})") from exc

    def _answer_server_request(self, message: dict[str, Any]) -> None:
        self.server_requests += 1
        result: Any = None
        if message["method"] == "workspace/configuration":
            result = [None for _ in (message.get("params") or {}).get("items", [])]
        self._send({"id": message["id"], "result": result})

    # -- API ---------------------------------------------------------------------------------------------------
    def notify(self, method: str, params: Any = None) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: Any = None) -> int:
        """Send a request; its response arrives on `responses` (see `next_response`)."""
        msg_id = next(self._ids)
        self._send({"id": msg_id, "method": method, "params": params})
        return msg_id

    def cancel(self, msg_id: int) -> None:
        self.notify("$/cancelRequest", {"id": msg_id})

    def next_response(self, timeout: float | None) -> tuple[float, dict[str, Any]] | None:
        """(arrival time, response), or None when nothing arrives in time; ServerGone if the server ended."""
        try:
            received, message = self.responses.get(timeout=timeout)
        except queue.Empty:
            return None
        if message.get("gone"):
            raise ServerGone(f"the server ended (exit code {self.proc.wait()})")
        return received, message

    def wait_response(self, msg_id: int, timeout: float) -> tuple[float, dict[str, Any]]:
        """(arrival time, response) of one request; others arriving meanwhile are dropped (use only when idle)."""
        deadline = time.perf_counter() + timeout
        while (left := deadline - time.perf_counter()) > 0:
            got = self.next_response(left)
            if got is not None and got[1].get("id") == msg_id:
                return got
        raise ServerGone(f"no answer to request {msg_id} within {timeout:g} s")

    def call(self, method: str, params: Any = None, timeout: float = 120.0) -> dict[str, Any]:
        """Request and wait for its response."""
        return self.wait_response(self.request(method, params), timeout)[1]

    def rss_mb(self) -> float | None:
        """The server's resident memory (Linux /proc), None elsewhere."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def initialize(self, capabilities: dict[str, Any], options: dict[str, Any] | None = None,
                   timeout: float = 300.0) -> dict[str, Any]:
        reply = self.call("initialize", {"processId": None, "rootUri": None, "capabilities": capabilities,
                                         "clientInfo": {"name": "quicksilver-replay"},
                                         **({"initializationOptions": options} if options else {})}, timeout)
        self.notify("initialized", {})
        return reply

    def close(self, timeout: float = 30.0) -> int:
        """shutdown, exit, and the exit code (the process is killed if it hangs)."""
        try:
            if self.proc.poll() is None:
                self.call("shutdown", None, timeout)
                self.notify("exit")
            return self.proc.wait(timeout=timeout)
        except (ServerGone, subprocess.TimeoutExpired):
            self.proc.kill()
            return self.proc.wait()
