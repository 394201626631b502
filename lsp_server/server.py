"""The language server: thin LSP handlers over the completion engine.

Handlers only adapt LSP types; `QuicksilverServer.complete_at` is the one path every
completion request takes (resolve the position, run the engine off the event loop,
log one timed line, turn failures into JSON-RPC errors).
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from completion.api import Completion, CompletionRequest
from lsp_server import __version__
from lsp_server.config import ServerConfig, apply_initialization_options, apply_log_level
from lsp_server.documents import language_enabled, language_for_document, resolve_position
from lsp_server.errors import UnknownDocument, quiet_expected_errors, to_rpc_error
from lsp_server.runner import CompletionRunner, Engine

log = logging.getLogger("quicksilver.lsp")

# handle_message drops anything whose jsonrpc version is not "2.0".
_ALREADY_ANSWERED = SimpleNamespace(jsonrpc="already answered")


class QuicksilverProtocol(LanguageServerProtocol):
    """Answers requests whose params fail validation (e.g. a negative line) with InvalidParams.

    Stock pygls raises while parsing such a message and never replies, leaving the client waiting.
    """

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcInvalidParams as exc:
            if "id" not in data or "method" not in data:
                raise
            message = f"invalid params for {data['method']}: {_leaf_messages(exc.__cause__)}".rstrip(": ")
            log.warning("request %s: %s", data["id"], message)
            self._send_response(data["id"], error=JsonRpcInvalidParams(message=message).to_response_error())
            return _ALREADY_ANSWERED

    def handle_message(self, message):
        if message is not _ALREADY_ANSWERED:
            super().handle_message(message)


def _leaf_messages(exc: BaseException | None) -> str:
    """The innermost validation messages (e.g. "Position.line should be in range ..."), not cattrs' nesting."""
    if exc is None:
        return ""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(filter(None, (_leaf_messages(e) for e in exc.exceptions)))
    return str(exc)


class QuicksilverServer(LanguageServer):
    def __init__(self, config: ServerConfig | None = None):
        super().__init__("quicksilver", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                         protocol_cls=QuicksilverProtocol)
        self.config = config or ServerConfig()
        self.runner = CompletionRunner(self._load_engine)
        self.shutdown_requested = False
        self.exit_code = 0  # 1 when the client sends exit without shutdown, as LSP asks

    def _load_engine(self) -> Engine:
        from completion.engine import load_engine  # heavy (numpy, onnxruntime): only once serving

        c = self.config
        return load_engine(model_dir=c.model_dir, backend=c.backend, threads=c.threads, settings=c.settings)

    def configure(self, options: Any) -> None:
        self.config, warnings = apply_initialization_options(self.config, options)
        apply_log_level(self.config.log_level)
        for warning in warnings:
            log.warning("%s", warning)

    def build_request(self, uri: str, position: types.Position) -> CompletionRequest | None:
        """The engine request for a cursor, or None when its language is switched off."""
        document = self.workspace.text_documents.get(unquote(uri))
        if document is None:
            raise UnknownDocument(f"document is not open: {uri}")
        text = document.source  # a snapshot: edits arriving meanwhile do not touch this request
        line, column = resolve_position(text, position, self.workspace.position_encoding or "utf-16")
        language = language_for_document(document.language_id, uri)
        if not language_enabled(language, self.config.settings.enabled_languages):
            return None
        return CompletionRequest(text=text, line=line, column=column, language=language)

    async def complete_at(self, method: str, uri: str, position: types.Position) -> Completion | None:
        """Run one request; None means no suggestion. Raises JSON-RPC errors only."""
        t0 = time.perf_counter()
        where = f"{method} {uri} {position.line}:{position.character}"
        try:
            request = self.build_request(uri, position)
            # keyed per method too: an editor asking for ghost text and a popup at once wants both answered
            result = None if request is None else await self.runner.run(f"{method} {uri}", request)
        except asyncio.CancelledError:
            log.info("%s cancelled after %.1f ms", where, (time.perf_counter() - t0) * 1000)
            raise
        except Exception as exc:
            error = to_rpc_error(exc)
            log.warning("%s failed after %.1f ms: %s", where, (time.perf_counter() - t0) * 1000, error.message)
            raise error from exc
        ms = (time.perf_counter() - t0) * 1000
        if result is None:
            log.info("%s %.1f ms: nothing (superseded or language off)", where, ms)
        else:
            log.info("%s %.1f ms (engine %.1f ms) steps=%d passes=%d chars=%d", where, ms, result.latency_ms,
                     result.steps, result.forward_passes, len(result.text))
        return result

    def close(self) -> None:
        self.runner.close()


def inline_result(completion: Completion | None, position: types.Position) -> types.InlineCompletionList:
    """Ghost text inserted at the cursor; an empty list means no suggestion."""
    if completion is None or not completion.text:
        return types.InlineCompletionList(items=[])
    at_cursor = types.Range(start=position, end=position)
    return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=completion.text, range=at_cursor)])


def completion_label(text: str) -> str:
    """The first line, or the first non-blank one when the suggestion starts with a newline."""
    lines = text.split("\n")
    return lines[0] if lines[0].strip() else next((line.strip() for line in lines if line.strip()), text)


def completion_list(completion: Completion | None, position: types.Position) -> types.CompletionList:
    """One item for clients without inline completion; incomplete so typing asks again."""
    if completion is None or not completion.text:
        return types.CompletionList(is_incomplete=True, items=[])
    item = types.CompletionItem(
        label=completion_label(completion.text),
        kind=types.CompletionItemKind.Text,
        detail="quicksilver",
        sort_text="0",
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=types.Range(start=position, end=position), new_text=completion.text),
    )
    return types.CompletionList(is_incomplete=True, items=[item])


def initialize(ls: QuicksilverServer, params: types.InitializeParams) -> None:
    ls.configure(params.initialization_options)
    client = params.client_info.name if params.client_info else "unnamed client"
    encoding = ls.workspace.position_encoding
    log.info("initialize: %s, position encoding %s", client, getattr(encoding, "value", encoding))


def initialized(ls: QuicksilverServer, params: types.InitializedParams) -> None:
    ls.runner.start_loading()  # warm up now so the first completion does not pay for the load


def did_open(ls: QuicksilverServer, params: types.DidOpenTextDocumentParams) -> None:
    log.debug("opened %s", params.text_document.uri)  # pygls's workspace stores the text


def did_change(ls: QuicksilverServer, params: types.DidChangeTextDocumentParams) -> None:
    log.debug("changed %s v%d", params.text_document.uri, params.text_document.version)


def did_close(ls: QuicksilverServer, params: types.DidCloseTextDocumentParams) -> None:
    log.debug("closed %s", params.text_document.uri)  # pygls's workspace forgets it


async def inline_completion(ls: QuicksilverServer, params: types.InlineCompletionParams) -> types.InlineCompletionList:
    completion = await ls.complete_at("inline", params.text_document.uri, params.position)
    return inline_result(completion, params.position)


async def completion(ls: QuicksilverServer, params: types.CompletionParams) -> types.CompletionList:
    result = await ls.complete_at("completion", params.text_document.uri, params.position)
    return completion_list(result, params.position)


def shutdown(ls: QuicksilverServer, params: None) -> None:
    ls.shutdown_requested = True
    ls.close()


def exit_(ls: QuicksilverServer, params: None) -> None:
    ls.exit_code = 0 if ls.shutdown_requested else 1


def create_server(config: ServerConfig | None = None) -> QuicksilverServer:
    """A server with every handler registered; `start_io()` serves it."""
    server = QuicksilverServer(config)
    quiet_expected_errors()
    features: list[tuple[str, Any, Any]] = [
        (types.INITIALIZE, None, initialize),
        (types.INITIALIZED, None, initialized),
        (types.TEXT_DOCUMENT_DID_OPEN, None, did_open),
        (types.TEXT_DOCUMENT_DID_CHANGE, None, did_change),
        (types.TEXT_DOCUMENT_DID_CLOSE, None, did_close),
        (types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions(), inline_completion),
        (types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(), completion),
        (types.SHUTDOWN, None, shutdown),
        (types.EXIT, None, exit_),
    ]
    for method, options, handler in features:
        server.feature(method, options)(handler)
    return server
