"""LSP handlers: each adapts LSP types to one QuicksilverServer call, and `create_server` registers them."""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from lsp_server.config import SECTION, ServerConfig, configuration_section
from lsp_server.errors import quiet_expected_errors
from lsp_server.feedback import ACCEPT_COMMAND, DISMISS_NOTIFICATION, STATS_REQUEST
from lsp_server.results import PartialResults, completion_list, inline_result
from lsp_server.server import Ask, QuicksilverServer

log = logging.getLogger("quicksilver.lsp")


def initialize(ls: QuicksilverServer, params: types.InitializeParams) -> None:
    ls.configure(params.initialization_options)
    client = params.client_info.name if params.client_info else "unnamed client"
    encoding = ls.position_encoding
    log.info("initialize: %s, position encoding %s", client, getattr(encoding, "value", encoding))


async def initialized(ls: QuicksilverServer, params: types.InitializedParams) -> None:
    ls.runner.start_loading()  # warm up now so the first completion does not pay for the load
    await pull_configuration(ls)


async def pull_configuration(ls: QuicksilverServer) -> None:
    """Ask a client that supports workspace/configuration for our section (eglot and VS Code do)."""
    if not (ls.client_capabilities.workspace and ls.client_capabilities.workspace.configuration):
        return
    try:
        values = await ls.workspace_configuration_async(types.ConfigurationParams(
            items=[types.ConfigurationItem(section=SECTION)]))
    except Exception as exc:  # the client's problem, not a reason to stop
        log.info("workspace/configuration failed: %s", exc)
        return
    if values and isinstance(values[0], dict) and values[0]:
        await _reconfigure(ls, values[0], "setting")


async def did_change_configuration(ls: QuicksilverServer, params: types.DidChangeConfigurationParams) -> None:
    section = configuration_section(params.settings)
    if section is None:
        await pull_configuration(ls)  # the LSP 3.17 way: the notification only says "ask me"
        return
    await _reconfigure(ls, section, "setting")


async def _reconfigure(ls: QuicksilverServer, options: Any, source: str) -> None:
    previous = ls.configure(options, source)
    await ls.reload_if_needed(previous)


def did_open(ls: QuicksilverServer, params: types.DidOpenTextDocumentParams) -> None:
    doc = ls.documents.open(params.text_document)
    log.debug("opened %s (%d characters, %d lines)", doc.uri, len(doc.text), doc.line_count)


def did_change(ls: QuicksilverServer, params: types.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    doc = ls.documents.change(uri, params.text_document.version, params.content_changes, ls.position_encoding)
    if doc is None:
        log.warning("change to a document that is not open: %s (ignored)", uri)
        return
    ls.debouncer.on_edit()
    log.debug("changed %s v%s", uri, params.text_document.version)


def did_close(ls: QuicksilverServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.documents.close(uri)
    ls.runner.forget(uri)
    syntax = getattr(ls.runner.loaded(), "syntax", None)
    if syntax is not None and hasattr(syntax, "forget"):
        syntax.forget(uri)  # the engine's incremental parse tree for it


async def inline_completion(ls: QuicksilverServer, params: types.InlineCompletionParams) -> types.InlineCompletionList:
    automatic = params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic
    answer = await ls.complete(Ask("inline", params.text_document.uri, params.position, automatic))
    return inline_result(answer.completion, answer.position, answer.suggestion_id, answer.version)


async def completion(ls: QuicksilverServer, params: types.CompletionParams) -> types.CompletionList:
    # Invoked (typing an identifier or ctrl+space) is the user asking; the re-asks while typing are automatic.
    trigger = params.context.trigger_kind if params.context else types.CompletionTriggerKind.Invoked
    ask = Ask("completion", params.text_document.uri, params.position, trigger != types.CompletionTriggerKind.Invoked)
    if params.partial_result_token is None:
        answer = await ls.complete(ask)
        return completion_list(answer.completion, answer.position, answer.suggestion_id, answer.version)
    token = params.partial_result_token
    stream = PartialResults(lambda value: ls.progress(types.ProgressParams(token=token, value=value)), params.position)
    answer = await ls.complete(ask, on_draft=stream.draft)
    stream.suggestion_id, stream.version = answer.suggestion_id, answer.version
    return stream.finish(answer.completion)


def accept(ls: QuicksilverServer, *arguments: Any) -> None:
    """`quicksilver.accept`, the command on every item: the editor runs it when the suggestion is taken."""
    if not 1 <= len(arguments) <= 2 or not isinstance(arguments[0], str):  # (id, {"version": ...}) as sent
        raise JsonRpcInvalidParams(message=f"{ACCEPT_COMMAND} takes a suggestion id, got {list(arguments)!r}")
    ls.feedback.record(arguments[0], "accepted")


def did_dismiss(ls: QuicksilverServer, params: Any) -> None:
    """`quicksilver/didDismiss {"id": ...}`: the user rejected the suggestion (Esc, or typed past it)."""
    suggestion_id = getattr(params, "id", None) if not isinstance(params, dict) else params.get("id")
    if not isinstance(suggestion_id, str):
        log.warning("%s without a suggestion id: %r", DISMISS_NOTIFICATION, params)
        return
    ls.feedback.record(suggestion_id, "dismissed")


def stats(ls: QuicksilverServer, params: Any) -> dict:
    """Local counters for the user's own tooling: suggestions shown, accepted, dismissed, cache hits,
    contexts encoded in full or continued from the last keystroke's cache."""
    view = ls.runner.view(ls.config.settings)
    cache = getattr(view, "cache", None)
    reuse = getattr(getattr(view, "contexts", None), "stats", None)
    return {**ls.feedback.counts, "cache_hits": getattr(cache, "hits", 0), "cache_misses": getattr(cache, "misses", 0),
            "contexts_encoded": getattr(reuse, "full", 0), "contexts_continued": getattr(reuse, "extended", 0),
            "context_tokens_reused": getattr(reuse, "reused_tokens", 0),
            "backend": getattr(view, "backend_name", None)}  # None until the model is loaded


def shutdown(ls: QuicksilverServer, params: None) -> None:
    ls.shutdown_requested = True
    ls.close()


def exit_(ls: QuicksilverServer, params: None) -> None:
    ls.exit_code = 0 if ls.shutdown_requested else 1


def create_server(config: ServerConfig | None = None) -> QuicksilverServer:
    """A server with every handler registered; lsp_server.transport serves it."""
    server = QuicksilverServer(config)
    quiet_expected_errors()
    features: list[tuple[str, Any, Any]] = [
        (types.INITIALIZE, None, initialize),
        (types.INITIALIZED, None, initialized),
        (types.WORKSPACE_DID_CHANGE_CONFIGURATION, None, did_change_configuration),
        (types.TEXT_DOCUMENT_DID_OPEN, None, did_open),
        (types.TEXT_DOCUMENT_DID_CHANGE, None, did_change),
        (types.TEXT_DOCUMENT_DID_CLOSE, None, did_close),
        (types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions(), inline_completion),
        (types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(), completion),
        (DISMISS_NOTIFICATION, None, did_dismiss),
        (STATS_REQUEST, None, stats),
        (types.SHUTDOWN, None, shutdown),
        (types.EXIT, None, exit_),
    ]
    for method, options, handler in features:
        server.feature(method, options)(handler)
    server.command(ACCEPT_COMMAND)(accept)
    return server
