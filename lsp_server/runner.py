"""Model work off the event loop: one worker thread, jobs per document, cancellation between steps.

- One job per document: a newer request for a document stops the older job (whatever the
  method) because the older cursor or text is stale; a request for the very same snapshot
  (document revision, cursor, settings) joins the running job instead, so an editor asking
  for ghost text and a completion popup at once gets both from one model run.
- pygls cancels an async handler's task on `$/cancelRequest`, but a thread cannot be
  interrupted, so every engine call gets `is_cancelled`, a flag the job sets when it is
  superseded or all its requests were cancelled; the engine checks it before each step.
- A job stopped while still queued never starts the engine (no wasted context encode).
- Background refinement runs at the lowest priority: any foreground job stops it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from completion.api import Completion, CompletionRequest, CompletionSettings

log = logging.getLogger("quicksilver.lsp")


class Engine(Protocol):
    backend_name: str

    def complete(self, request: CompletionRequest, on_draft: Callable[[Completion], None] | None = None,
                 is_cancelled: Callable[[], bool] | None = None) -> Completion: ...

    def with_settings(self, **changes) -> Engine: ...


@dataclass(eq=False)
class Job:
    key: str  # the document
    identity: tuple | None  # what it computes; None for background work, which nothing joins
    request: CompletionRequest
    settings: CompletionSettings
    stop_event: threading.Event = field(default_factory=threading.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # ends a debounce wait early
    listeners: list[Callable[[Completion], None]] = field(default_factory=list)
    waiters: int = 0
    task: asyncio.Task | None = None

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

    @property
    def stopped(self) -> bool:
        return self.stop_event.is_set()


class CompletionRunner:
    """Runs engine calls one at a time in a worker thread, newest request first."""

    def __init__(self, load: Callable[[], Engine]):
        self._load = load
        # One worker: two CPU-bound denoisers at once would only slow each other down.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quicksilver-model")
        self._engine: asyncio.Future[Engine] | None = None
        self._jobs: dict[str, Job] = {}
        self._background: Job | None = None
        self._views: dict[tuple, Engine] = {}

    # -- the engine ---------------------------------------------------------------------------------------------

    def start_loading(self) -> asyncio.Future[Engine]:
        """Begin loading the engine in the worker (once); the event loop keeps serving meanwhile."""
        if self._engine is None:
            self._engine = asyncio.get_running_loop().run_in_executor(self._pool, _timed_load, self._load)
            self._engine.add_done_callback(_log_load_error)
        return self._engine

    def loaded(self) -> Engine | None:
        """The engine if it finished loading, else None (never waits)."""
        if self._engine is None or not self._engine.done() or self._engine.cancelled():
            return None
        return None if self._engine.exception() is not None else self._engine.result()

    def view(self, settings: CompletionSettings) -> Engine | None:
        """The loaded engine with these settings, one view per distinct settings kept for the server's life:
        a view owns state that must outlive a request (the engine's typed-ahead cache), so it is not rebuilt
        per request. None until the engine is loaded."""
        engine = self.loaded()
        if engine is None:
            return None
        key = settings_key(settings)
        if (view := self._views.get(key)) is None:
            view = self._views[key] = engine.with_settings(**vars(settings))
        return view

    async def engine(self) -> Engine:
        # shield: a cancelled request must not cancel the load every other request waits for.
        return await asyncio.shield(self.start_loading())

    async def reload(self, load: Callable[[], Engine]) -> Engine:
        """Load another engine (after the work already queued); raises, keeping the old one, if it fails."""
        self.stop_background()
        engine = await asyncio.get_running_loop().run_in_executor(self._pool, _timed_load, load)
        self._load = load
        self._engine = asyncio.get_running_loop().create_future()
        self._engine.set_result(engine)
        self._views.clear()
        return engine

    # -- foreground requests ------------------------------------------------------------------------------------

    async def run(self, key: str, identity: tuple, request: CompletionRequest, settings: CompletionSettings, *,
                  delay_s: float = 0.0, on_draft: Callable[[Completion], None] | None = None) -> Completion | None:
        """The engine's answer, or None when a newer request for `key` superseded this one.

        `delay_s` is the debounce: the job waits that long first and gives up if superseded meanwhile.
        `on_draft` receives every improved draft (on the event loop) while the job runs.
        """
        job = self._jobs.get(key)
        if job is None or job.identity != identity or job.stopped:
            if job is not None:
                job.stop()  # superseded: its cursor or text is stale
            self.stop_background()
            job = Job(key, identity, request, settings)
            self._jobs[key] = job
            job.task = asyncio.ensure_future(self._execute(job, delay_s))
        job.waiters += 1
        if on_draft is not None:
            job.listeners.append(on_draft)
        try:
            return await asyncio.shield(job.task)
        finally:
            job.waiters -= 1
            if on_draft is not None:
                job.listeners.remove(on_draft)
            if job.waiters == 0 and not job.task.done():
                job.stop()  # every request for it was cancelled: the worker stops at its next step

    def pending(self, key: str) -> bool:
        return key in self._jobs

    # -- background refinement ----------------------------------------------------------------------------------

    def refine(self, key: str, request: CompletionRequest, settings: CompletionSettings,
               on_done: Callable[[Completion], None]) -> None:
        """Run `request` again with `settings` when nothing else waits; `on_done` gets the result unless stopped."""
        self.stop_background()
        job = Job(key, None, request, settings)
        self._background = job
        job.task = asyncio.ensure_future(self._execute(job, 0.0))
        job.task.add_done_callback(lambda task: _deliver(task, on_done))

    def stop_background(self) -> None:
        if self._background is not None:
            self._background.stop()
            self._background = None

    # -- shared -------------------------------------------------------------------------------------------------

    async def _execute(self, job: Job, delay_s: float) -> Completion | None:
        try:
            if delay_s > 0:
                try:
                    await asyncio.wait_for(job.wake.wait(), delay_s)
                except TimeoutError:
                    pass
            if job.stopped:
                return None
            await self.engine()
            if job.stopped:
                return None
            view = self.view(job.settings)
            loop = asyncio.get_running_loop()
            streaming = bool(job.listeners)

            def on_step(draft: Completion) -> None:
                loop.call_soon_threadsafe(_dispatch, job, draft)

            def work() -> Completion | None:
                if job.stopped:  # superseded while queued behind other work
                    return None
                return view.complete(job.request, on_draft=on_step if streaming else None,
                                     is_cancelled=job.stop_event.is_set)

            result = await loop.run_in_executor(self._pool, work)
            return None if job.stopped else result
        finally:
            if self._jobs.get(job.key) is job:
                del self._jobs[job.key]
            if self._background is job:
                self._background = None

    def forget(self, key: str) -> None:
        """The document closed: stop its work."""
        if (job := self._jobs.pop(key, None)) is not None:
            job.stop()
        if self._background is not None and self._background.key == key:
            self.stop_background()

    def close(self) -> None:
        """Stop all work so the process can exit: running calls stop at their next step."""
        for job in self._jobs.values():
            job.stop()
        self.stop_background()
        self._pool.shutdown(wait=False, cancel_futures=True)


def settings_key(settings: CompletionSettings) -> tuple:
    """A hashable identity of the settings (lists become tuples)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in vars(settings).items()))


def _timed_load(load: Callable[[], Engine]) -> Engine:
    t0 = time.perf_counter()
    engine = load()
    log.info("engine loaded: backend %s in %.0f ms", engine.backend_name, (time.perf_counter() - t0) * 1000)
    return engine


def _dispatch(job: Job, draft: Completion) -> None:
    if job.stopped:
        return
    for listener in list(job.listeners):
        try:
            listener(draft)
        except Exception:  # a listener's failure must not end the job
            log.exception("draft listener failed")


def _deliver(task: asyncio.Task, on_done: Callable[[Completion], None]) -> None:
    if task.cancelled():
        return
    if (exc := task.exception()) is not None:
        log.warning("background refinement failed: %s", exc)
    elif (result := task.result()) is not None:
        on_done(result)


def _log_load_error(future: asyncio.Future) -> None:
    # Reading the exception here also keeps asyncio from warning that nobody retrieved it.
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.error("engine failed to load: %s", exc)
