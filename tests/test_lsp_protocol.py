"""The JSON-RPC layer in process: what every message leaves behind.

A language server lives all day and gets a notification per keystroke, so anything a
notification leaves in memory is a leak (pygls 2.1 keeps a future per generator-handled
notification; lsp_server/protocol.py drops them). Driven through `receive`, the entry
point the stdio transport calls, with the output captured instead of written."""

from __future__ import annotations

import asyncio
import json

from lsp_server.handlers import create_server

URI = "file:///leak/typing.py"


def _frame(method: str, params: dict, msg_id: int | None = None) -> bytes:
    message = {"jsonrpc": "2.0", "method": method, "params": params}
    if msg_id is not None:
        message["id"] = msg_id
    return json.dumps(message).encode()


def test_keystroke_notifications_leave_no_futures_behind():
    async def session() -> tuple[int, list]:
        ls = create_server()
        proto = ls.protocol
        sent: list = []
        # the stdio transport is not connected here: keep what would be written, as JSON
        proto._send_data = lambda data: sent.append(json.loads(json.dumps(data, default=proto._serialize_message)))
        proto.receive(_frame("initialize", {"capabilities": {}, "processId": None}, msg_id=1))
        await asyncio.sleep(0.05)
        proto.receive(_frame("initialized", {}))
        proto.receive(_frame("textDocument/didOpen", {"textDocument": {
            "uri": URI, "languageId": "python", "version": 1, "text": ""}}))
        for i in range(300):  # type 300 characters
            proto.receive(_frame("textDocument/didChange", {
                "textDocument": {"uri": URI, "version": i + 2},
                "contentChanges": [{"range": {"start": {"line": 0, "character": i}, "end": {"line": 0, "character": i}},
                                    "text": "x"}]}))
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        assert ls.documents.get(URI).text == "x" * 300  # the edits were applied
        left = len(proto._request_futures)
        ls.runner.close()
        return left, sent

    left, sent = asyncio.run(session())
    assert any(m.get("id") == 1 and "result" in m for m in sent)  # initialize was answered
    assert left <= 2, f"{left} handler futures kept after 300 keystrokes"

