"""Every failure becomes a JSON-RPC error here, in one place; handlers just propagate."""

from __future__ import annotations

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams

from completion.api import CompletionError, InvalidPosition
from runtime.base import ModelFileError


class UnknownDocument(CompletionError):
    """A request named a document the client never opened (or already closed)."""


def to_rpc_error(exc: Exception) -> JsonRpcException:
    """Bad input -> InvalidParams; engine trouble -> RequestFailed with the engine's message; bugs -> InternalError."""
    if isinstance(exc, JsonRpcException):
        return exc
    if isinstance(exc, (InvalidPosition, UnknownDocument)):
        return JsonRpcInvalidParams(message=str(exc))
    if isinstance(exc, ModelFileError):
        return JsonRpcException(message=f"quicksilver could not load its model: {exc}",
                                code=int(types.LSPErrorCodes.RequestFailed))
    if isinstance(exc, CompletionError):
        return JsonRpcException(message=str(exc), code=int(types.LSPErrorCodes.RequestFailed))
    return JsonRpcInternalError(message=f"internal error: {type(exc).__name__}: {exc}")
