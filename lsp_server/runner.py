"""Model work off the event loop: one worker thread, cancellation between denoising steps.

pygls cancels an async handler's task on `$/cancelRequest`, but a thread cannot be
interrupted, so every engine call gets an `is_cancelled` flag: the task sets it when it
is cancelled (or superseded) and the engine stops at its next step.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Protocol

from completion.api import Completion, CompletionRequest

log = logging.getLogger("quicksilver.lsp")


class Engine(Protocol):
    backend_name: str

    def complete(self, request: CompletionRequest, on_draft: Callable[[Completion], None] | None = None,
                 is_cancelled: Callable[[], bool] | None = None) -> Completion: ...


class CompletionRunner:
    """Runs engine calls one at a time; a newer request for the same key supersedes the older one."""

    def __init__(self, load: Callable[[], Engine]):
        self._load = load
        # One worker: two CPU-bound denoisers at once would only slow each other down.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quicksilver-model")
        self._engine: asyncio.Future[Engine] | None = None
        self._inflight: dict[str, threading.Event] = {}

    def start_loading(self) -> asyncio.Future[Engine]:
        """Begin loading the engine in the worker (once); the event loop keeps serving meanwhile."""
        if self._engine is None:
            self._engine = asyncio.get_running_loop().run_in_executor(self._pool, self._timed_load)
            self._engine.add_done_callback(_log_load)
        return self._engine

    def _timed_load(self) -> Engine:
        t0 = time.perf_counter()
        engine = self._load()
        log.info("engine loaded: backend %s in %.0f ms", engine.backend_name, (time.perf_counter() - t0) * 1000)
        return engine

    async def engine(self) -> Engine:
        # shield: a cancelled request must not cancel the load every other request waits for.
        return await asyncio.shield(self.start_loading())

    async def run(self, key: str, request: CompletionRequest) -> Completion | None:
        """The engine's answer, or None when a newer request for `key` superseded this one."""
        stop = threading.Event()
        if (older := self._inflight.get(key)) is not None:
            older.set()
        self._inflight[key] = stop
        try:
            engine = await self.engine()
            if stop.is_set():
                return None
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._pool, partial(engine.complete, request, is_cancelled=stop.is_set))
            return None if stop.is_set() else result
        finally:
            stop.set()  # when this task was cancelled, the worker sees it at its next step
            if self._inflight.get(key) is stop:
                del self._inflight[key]

    def close(self) -> None:
        """Stop all work so the process can exit: running calls stop at their next step."""
        for stop in self._inflight.values():
            stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _log_load(future: asyncio.Future) -> None:
    # Reading the exception here also keeps asyncio from warning that nobody retrieved it.
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.error("engine failed to load: %s", exc)
