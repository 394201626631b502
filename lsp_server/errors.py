"""Every failure becomes a JSON-RPC error here, in one place; handlers just propagate."""

from __future__ import annotations

import logging

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams

from completion.api import CompletionError, InvalidPosition
from runtime.base import ModelFileError
from runtime.loader import BackendUnavailable


class UnknownDocument(CompletionError):
    """A request named a document the client never opened (or already closed)."""


def to_rpc_error(exc: Exception) -> JsonRpcException:
    """Bad input -> InvalidParams; engine trouble -> RequestFailed with the engine's message; bugs -> InternalError."""
    if isinstance(exc, JsonRpcException):
        return exc
    if isinstance(exc, (InvalidPosition, UnknownDocument)):
        return JsonRpcInvalidParams(message=str(exc))
    if isinstance(exc, (ModelFileError, BackendUnavailable)):
        return JsonRpcException(message=f"quicksilver could not load its model: {exc}",
                                code=int(types.LSPErrorCodes.RequestFailed))
    if isinstance(exc, CompletionError):
        return JsonRpcException(message=str(exc), code=int(types.LSPErrorCodes.RequestFailed))
    return JsonRpcInternalError(message=f"internal error: {type(exc).__name__}: {exc}")


class _ExpectedErrorFilter(logging.Filter):
    """pygls logs a full traceback for every error response; ours already got one log line, so keep only bugs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Unable to deserialize message"):
            return False  # bad params: QuicksilverProtocol answers InvalidParams and logs one line
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, JsonRpcException) or isinstance(exc, JsonRpcInternalError)


def quiet_expected_errors() -> None:
    pygls_log = logging.getLogger("pygls.protocol.json_rpc")
    if not any(isinstance(f, _ExpectedErrorFilter) for f in pygls_log.filters):
        pygls_log.addFilter(_ExpectedErrorFilter())
