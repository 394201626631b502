"""The language server: thin LSP handlers over the completion engine.

Handlers only adapt LSP types; `QuicksilverServer.complete` is the one path every
completion request takes: resolve the position, skip what should not be completed,
serve from the cache, debounce automatic requests, run the engine off the event loop,
remember the result and refine it in the background, log one timed line, and turn
failures into JSON-RPC errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from lsprotocol import types
from pygls.exceptions import FeatureRequestError
from pygls.lsp.server import LanguageServer

from completion.api import Completion, CompletionRequest
from lsp_server import __version__
from lsp_server.config import ServerConfig, apply_log_level, apply_options
from lsp_server.debounce import Debouncer
from lsp_server.documents import language_enabled, language_for_document, match_line_endings
from lsp_server.errors import UnknownDocument, to_rpc_error
from lsp_server.feedback import Feedback
from lsp_server.protocol import QuicksilverProtocol
from lsp_server.runner import CompletionRunner, Engine, settings_key
from lsp_server.store import DocumentStore

log = logging.getLogger("quicksilver.lsp")


@dataclass(frozen=True)
class Ask:
    """One completion request, whatever its LSP method."""

    method: str  # "inline" or "completion", for the log
    uri: str
    position: types.Position
    automatic: bool  # the editor asked while the user typed (debounced, skipped after deletions)


@dataclass
class Answer:
    completion: Completion | None
    position: types.Position  # where the suggestion goes (a character past the line's end is clamped)
    suggestion_id: str | None = None
    version: int | None = None  # the document version the suggestion was made for (echoed to the client)


class QuicksilverServer(LanguageServer):
    def __init__(self, config: ServerConfig | None = None):
        super().__init__("quicksilver", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                         protocol_cls=QuicksilverProtocol)
        self.config = config or ServerConfig()
        self.documents = DocumentStore()
        self.runner = CompletionRunner(lambda: _load_engine(self.config))  # the config as of the first load
        self.debouncer = Debouncer()
        self.feedback = Feedback()
        self.shutdown_requested = False
        self._closed = False
        self.exit_code = 0  # 1 when the client sends exit without shutdown, as LSP asks

    @property
    def position_encoding(self) -> str:
        return self.workspace.position_encoding or types.PositionEncodingKind.Utf16

    # -- settings -----------------------------------------------------------------------------------------------

    def configure(self, options: Any, source: str = "initialization option") -> ServerConfig:
        """Apply options on top of the current config; returns the previous config."""
        previous = self.config
        self.config, warnings = apply_options(self.config, options, source)
        apply_log_level(self.config.log_level)
        for warning in warnings:
            log.warning("%s", warning)
        if self.config != previous:
            log.info("settings: %s", _describe(self.config))
        return previous

    async def reload_if_needed(self, previous: ServerConfig) -> None:
        """A new model or backend: load it while the old engine keeps serving; on failure keep the old one."""
        if self.config.engine_key == previous.engine_key:
            return
        wanted = self.config
        try:
            engine = await self.runner.reload(partial(_load_engine, wanted))
        except Exception as exc:
            self.config = replace(self.config, model_dir=previous.model_dir, backend=previous.backend,
                                  threads=previous.threads)
            message = f"quicksilver kept its current model: {to_rpc_error(exc).message}"
            log.error("%s", message)
            self.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=message))
            return
        log.info("engine reloaded: %s (model %s)", engine.backend_name, wanted.model_dir or "bundled")

    # -- completions --------------------------------------------------------------------------------------------

    async def complete(self, ask: Ask, on_draft=None) -> Answer:
        """One request; Answer.completion None means no suggestion. Raises JSON-RPC errors only."""
        t0 = time.perf_counter()
        where = f"{ask.method} {ask.uri} {ask.position.line}:{ask.position.character}"
        try:
            answer, note = await self._complete(ask, on_draft)
        except asyncio.CancelledError:
            log.info("%s cancelled after %.1f ms", where, (time.perf_counter() - t0) * 1000)
            raise
        except Exception as exc:
            error = to_rpc_error(exc)
            log.warning("%s failed after %.1f ms: %s", where, (time.perf_counter() - t0) * 1000, error.message)
            raise error from exc
        ms = (time.perf_counter() - t0) * 1000
        result = answer.completion
        if result is None or not result.text:
            log.info("%s %.1f ms: nothing (%s)", where, ms, note)
        else:
            answer.suggestion_id = self.feedback.shown(ask.uri, ask.method, result.text)
            log.info("%s %.1f ms (engine %.1f ms) steps=%d passes=%d chars=%d%s", where, ms, result.latency_ms,
                     result.steps, result.forward_passes, len(result.text), " cached" if result.from_cache else "")
        return answer

    async def _complete(self, ask: Ask, on_draft) -> tuple[Answer, str]:
        doc = self.documents.get(ask.uri)
        if doc is None:
            raise UnknownDocument(f"document is not open: {ask.uri}")
        position = doc.clamped(ask.position, self.position_encoding)
        offset = doc.offset_at(position, self.position_encoding)
        answer = Answer(None, position, version=doc.version)
        config = self.config
        language = language_for_document(doc.language_id, ask.uri)
        if not language_enabled(language, config.settings.enabled_languages):
            return answer, "language off"
        if ask.automatic and doc.last_edit_was_deletion and not config.complete_after_deletion:
            return answer, "automatic request after a deletion"
        line, column = doc.engine_position(offset)
        # a snapshot: edits arriving while the model runs do not touch this request
        request = CompletionRequest(text=doc.engine_text, line=line, column=column, language=language,
                                    document_id=ask.uri)
        if (rest := cached_suggestion(self.runner.view(config.settings), request, offset)) is not None:
            answer.completion = Completion(text=match_line_endings(rest, request.text), from_cache=True)
            return answer, "empty cached suggestion"
        delay_s = self.debouncer.delay_ms(config.debounce_ms) / 1000 if ask.automatic else 0.0
        revision = doc.revision
        identity = (revision, offset, settings_key(config.settings))
        result = await self.runner.run(ask.uri, identity, request, config.settings, delay_s=delay_s,
                                       on_draft=on_draft)
        if result is None:
            return answer, "superseded by a newer request"
        if self.documents.get(ask.uri) is not doc or doc.revision != revision:
            return answer, "the document changed meanwhile"  # a suggestion for text the user no longer sees
        if not result.from_cache:
            self.debouncer.observe_latency(result.latency_ms)
            self._refine_later(request, offset, position, result, config)
        answer.completion = replace(result, text=match_line_endings(result.text, request.text))
        return answer, "empty suggestion" if result.parse_ok is not False else "rejected: worse parse"

    def _refine_later(self, request: CompletionRequest, offset: int, position: types.Position, result: Completion,
                      config: ServerConfig) -> None:
        """Rerun with one token per step (the quality reference) when nothing else waits; the cache gets it,
        filed under the interactive settings so the next request at this cursor is answered with it."""
        s = config.settings
        if not config.background_refinement or s.steps or not s.latency_budget_ms or result.steps >= result.span_len:
            return

        def store(refined: Completion) -> None:
            if refined.text and store_suggestion(self.runner.view(s), request, offset, refined.text):
                log.debug("refined %s %d:%d in %d steps: %r -> %r", request.document_id, position.line,
                          position.character, refined.steps, result.text, refined.text)

        one_per_step = replace(s, latency_budget_ms=0, tokens_per_step=1)
        self.runner.refine(request.document_id or "", request, one_per_step, store)

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Errors outside a request (a failing notification handler) are logged, with no pop-up in the editor;
        request errors were already answered and logged by `complete`."""
        if source is not FeatureRequestError:
            log.error("%s: %s", getattr(source, "__name__", source), error)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        log.info("feedback: %s", self.feedback.summary())
        self.runner.close()


def cached_suggestion(view: Engine | None, request: CompletionRequest, offset: int) -> str | None:
    """The engine's typed-ahead cache (completion/cache.py), read on the event loop: a hit skips the debounce
    and the queue for the model thread. None without a hit, or without such a cache."""
    cache = getattr(view, "cache", None)
    if cache is None or not hasattr(view, "cache_salt"):
        return None
    return cache.get(request.text, offset, view.cache_salt(request.language)) or None


def store_suggestion(view: Engine | None, request: CompletionRequest, offset: int, text: str) -> bool:
    """File a suggestion in the cache of the engine view it should be served by; False without a cache."""
    cache = getattr(view, "cache", None)
    if cache is None or not hasattr(view, "cache_salt"):
        return False
    cache.put(request.text, offset, text, view.cache_salt(request.language))
    return True


def _load_engine(config: ServerConfig) -> Engine:
    from completion.engine import load_engine  # heavy (numpy, onnxruntime): only once serving

    return load_engine(model_dir=config.model_dir, backend=config.backend, threads=config.threads,
                       settings=config.settings)


def _describe(config: ServerConfig) -> str:
    s = config.settings
    debounce = "adaptive" if config.debounce_ms is None else f"{config.debounce_ms:g} ms"
    return (f"budget {s.latency_budget_ms:g} ms, max lines {s.max_lines}, languages {','.join(s.enabled_languages)}, "
            f"backend {config.backend}, model {config.model_dir or 'bundled'}, debounce {debounce}, "
            f"log {config.log_level}")
