"""JSON-RPC hardening over pygls: every request gets an answer, whatever arrives.

Stock pygls leaves some clients waiting forever: a request whose params fail validation
(a negative line) is dropped while parsing, requests after `shutdown` are ignored, and a
body that is not JSON only shows up in the server's log. Here they get InvalidParams,
InvalidRequest and ParseError (id null, as JSON-RPC asks). Document sync is ours
(lsp_server/store.py), so pygls's own document store is bypassed.

pygls 2.1 files the future of every generator handler (its built-in document-sync
notifications among them) under a fresh UUID in `_request_futures` and removes it only
when it sends a response, which a notification never gets: ~1 KB per keystroke,
for ever (found by a 20,000-keystroke soak). Finished handlers are forgotten here.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from types import SimpleNamespace
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcInvalidRequest, JsonRpcParseError
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

log = logging.getLogger("quicksilver.lsp")

# handle_message drops anything whose jsonrpc version is not "2.0".
_ALREADY_ANSWERED = SimpleNamespace(jsonrpc="already answered")
SERVER_NOT_INITIALIZED = -32002


class QuicksilverProtocol(LanguageServerProtocol):
    initialized = False  # set once `initialize` was received
    recorder = None  # a lsp_server.trace.TraceRecorder when the user asked for --record-trace

    def receive(self, body: bytes) -> None:
        """Parse and handle one message body; never raises except SystemExit (the `exit` notification)."""
        try:
            data = json.loads(body)
        except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
            log.warning("malformed message (%d bytes): %s", len(body), exc)
            self.send_error(None, JsonRpcParseError(message=f"parse error: {exc}"))
            return
        if not isinstance(data, dict):
            log.warning("message is a JSON %s, not an object", type(data).__name__)
            self.send_error(None, JsonRpcInvalidRequest(message="a message must be a JSON object"))
            return
        if data.get("jsonrpc") != self.VERSION:
            log.warning("not a JSON-RPC 2.0 message: jsonrpc=%r", data.get("jsonrpc"))
            if "id" in data and "method" in data:
                self.send_error(data["id"], JsonRpcInvalidRequest(message="not a JSON-RPC 2.0 message"))
            return
        if self.recorder is not None:
            self.recorder.incoming(data)
        if "method" in data:
            data.setdefault("params", None)  # JSON-RPC lets params be omitted; pygls's generic types need the key
        try:
            message = self.structure_message(data)
        except JsonRpcException as exc:  # a notification with bad params: nobody to answer
            log.warning("dropping notification %r: %s", data.get("method"), _leaf_messages(exc.__cause__) or exc)
            return
        try:
            self.handle_message(message)
        except Exception:  # a bug in a handler must not end the server
            log.exception("failed to handle %r", data.get("method"))

    def _send_data(self, data: Any):
        if self.recorder is not None and data:
            try:
                self.recorder.outgoing(json.loads(json.dumps(data, default=self._serialize_message)))
            except (TypeError, ValueError) as exc:
                log.warning("trace recorder: %s", exc)
        super()._send_data(data)

    def send_error(self, msg_id: Any, error: JsonRpcException) -> None:
        """An error response; msg_id None is sent as null (unknown id)."""
        self._send_data({"jsonrpc": "2.0", "id": msg_id, "error": {"code": error.code, "message": error.message}})

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if "id" not in data or "method" not in data:
                raise
            reason = _leaf_messages(exc.__cause__)
            message = f"invalid params for {data['method']}: {reason}".rstrip(": ")
            log.warning("request %s: %s", data["id"], message)
            self._send_response(data["id"], error=JsonRpcInvalidParams(message=message).to_response_error())
            return _ALREADY_ANSWERED

    def handle_message(self, message):
        if message is _ALREADY_ANSWERED:
            return
        method = getattr(message, "method", None)
        msg_id = getattr(message, "id", None)
        is_request = method is not None and msg_id is not None
        if is_request and self._shutdown and method != types.EXIT:
            self.send_error(msg_id, JsonRpcInvalidRequest(message=f"{method}: the server is shutting down"))
            return
        if not self.initialized and method not in (types.INITIALIZE, types.EXIT):
            if is_request:
                self.send_error(msg_id, JsonRpcException(code=SERVER_NOT_INITIALIZED,
                                                         message=f"{method}: initialize first"))
            return
        if method == types.INITIALIZE:
            self.initialized = True
        super().handle_message(message)

    def _execute_handler(self, msg_id: Any, handler: Any, *args: Any, **kwargs: Any) -> None:
        super()._execute_handler(msg_id, handler, *args, **kwargs)
        if (future := self._request_futures.get(msg_id)) is not None:
            future.add_done_callback(partial(self._forget_future, msg_id))

    def _forget_future(self, msg_id: Any, future: Any) -> None:
        """Drop a finished handler's future (a request's is also dropped when its response is sent)."""
        if self._request_futures.get(msg_id) is future:
            del self._request_futures[msg_id]

    # Our document store does the syncing; these replace pygls's built-ins, which keep their own copy.
    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        yield from self._user_handler(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        yield from self._user_handler(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        yield from self._user_handler(types.TEXT_DOCUMENT_DID_CLOSE, params)

    def _user_handler(self, method: str, params: Any):
        if (handler := self.fm.features.get(method)) is not None:
            yield handler, (params,), None


def _leaf_messages(exc: BaseException | None) -> str:
    """The innermost validation messages (e.g. "Position.line should be in range ..."), not cattrs' nesting."""
    if exc is None:
        return ""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(filter(None, (_leaf_messages(e) for e in exc.exceptions)))
    return str(exc)
