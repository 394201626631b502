"""CompletionRunner: off-loop work, per-document supersession, joining, debounce, background
refinement, reloads, and cancellation between denoising steps.

A stand-in engine exercises the runner's own wiring deterministically; the last test runs
the real engine with the bundled model and counts the steps taken after a cancellation.
"""

import asyncio
import threading
import time
from pathlib import Path

import pytest

from completion.api import Completion, CompletionRequest, CompletionSettings
from lsp_server.runner import CompletionRunner
from runtime.base import ModelFileError

pytestmark = pytest.mark.asyncio
SETTINGS = CompletionSettings()
MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "default"


class StepEngine:
    """Takes `steps` steps of `step_s` seconds (1 step after the first call unless `every_call`), checking
    is_cancelled before each step like the real engine, and reporting a draft after each."""

    backend_name = "stand-in"

    def __init__(self, steps: int = 1, step_s: float = 0.0, every_call: bool = False):
        self.steps, self.step_s, self.every_call = steps, step_s, every_call
        self.started = threading.Event()
        self.calls: list[dict] = []
        self.settings = SETTINGS

    def with_settings(self, **changes):
        view = StepEngine.__new__(StepEngine)
        view.__dict__ = {**self.__dict__, "settings": CompletionSettings(**changes)}
        return view

    def complete(self, request, on_draft=None, is_cancelled=None) -> Completion:
        self.started.set()
        call = {"thread": threading.current_thread().name, "steps": 0, "cancelled": False,
                "budget": self.settings.latency_budget_ms}
        self.calls.append(call)
        for _ in range(self.steps if self.every_call or len(self.calls) == 1 else 1):
            if is_cancelled and is_cancelled():
                call["cancelled"] = True
                break
            time.sleep(self.step_s)
            call["steps"] += 1
            if on_draft:
                on_draft(Completion(text=request.text[::-1][: call["steps"]], final=False))
        return Completion(text=request.text[::-1], steps=call["steps"])


def request(text: str = "abc") -> CompletionRequest:
    return CompletionRequest(text=text, line=0, column=len(text))


async def run(runner: CompletionRunner, key: str, text: str, identity=None, **kwargs):
    return await runner.run(key, identity or (text,), request(text), SETTINGS, **kwargs)


async def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_runs_the_engine_in_the_worker_thread():
    engine = StepEngine()
    runner = CompletionRunner(lambda: engine)
    assert (await run(runner, "doc", "abc")).text == "cba"
    assert engine.calls[0]["thread"].startswith("quicksilver-model")
    runner.close()


async def test_newer_request_for_the_same_document_supersedes_the_older():
    engine = StepEngine(steps=200, step_s=0.01)
    runner = CompletionRunner(lambda: engine)
    older = asyncio.ensure_future(run(runner, "doc", "old"))
    await wait_for(engine.started.is_set)
    newer = await run(runner, "doc", "new")
    assert await older is None  # superseded: nothing to show
    assert engine.calls[0]["cancelled"] and engine.calls[0]["steps"] < 200
    assert newer.text == "wen" and not engine.calls[1]["cancelled"]
    runner.close()


async def test_the_same_snapshot_joins_the_running_job():
    engine = StepEngine(steps=5, step_s=0.01)
    runner = CompletionRunner(lambda: engine)
    a, b = await asyncio.gather(run(runner, "doc", "same"), run(runner, "doc", "same"))
    assert a is b and a.text == "emas" and len(engine.calls) == 1
    runner.close()


async def test_other_documents_do_not_supersede():
    engine = StepEngine(steps=5, step_s=0.01)
    runner = CompletionRunner(lambda: engine)
    a, b = await asyncio.gather(run(runner, "a", "a1"), run(runner, "b", "b1"))
    assert (a.text, b.text) == ("1a", "1b")
    runner.close()


async def test_cancelling_the_only_request_stops_the_worker_between_steps():
    engine = StepEngine(steps=500, step_s=0.01)
    runner = CompletionRunner(lambda: engine)
    task = asyncio.ensure_future(run(runner, "doc", "abc"))
    await wait_for(engine.started.is_set)
    task.cancel()  # what pygls does on $/cancelRequest
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for(lambda: engine.calls[0]["cancelled"])
    assert engine.calls[0]["steps"] < 500
    assert (await run(runner, "doc", "x")).text == "x"  # the worker is free again
    runner.close()


async def test_cancelling_one_of_two_joined_requests_keeps_the_job():
    engine = StepEngine(steps=10, step_s=0.01)
    runner = CompletionRunner(lambda: engine)
    first = asyncio.ensure_future(run(runner, "doc", "abc"))
    second = asyncio.ensure_future(run(runner, "doc", "abc"))
    await wait_for(engine.started.is_set)
    first.cancel()
    assert (await second).text == "cba" and not engine.calls[0]["cancelled"]
    runner.close()


async def test_a_job_superseded_while_queued_never_reaches_the_engine():
    engine = StepEngine(steps=50, step_s=0.01, every_call=True)
    runner = CompletionRunner(lambda: engine)
    busy = asyncio.ensure_future(run(runner, "a", "busy"))
    await wait_for(engine.started.is_set)
    queued = asyncio.ensure_future(run(runner, "b", "queued"))  # waits for the worker behind "busy"
    await asyncio.sleep(0.05)
    latest = await run(runner, "b", "latest")
    assert await queued is None and latest.text == "tsetal"
    assert len(engine.calls) == 2  # "busy" and "latest": "queued" never started
    await busy
    runner.close()


async def test_debounced_request_superseded_during_its_wait_never_runs():
    engine = StepEngine()
    runner = CompletionRunner(lambda: engine)
    await runner.engine()
    waiting = asyncio.ensure_future(run(runner, "doc", "typing", delay_s=5.0))
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    assert (await run(runner, "doc", "typed")).text == "depyt"
    assert await waiting is None and time.monotonic() - t0 < 4.0
    assert len(engine.calls) == 1
    assert (await run(runner, "doc", "late", delay_s=0.05)).text == "etal"  # not superseded: runs after its wait
    runner.close()


async def test_drafts_reach_listeners_on_the_event_loop():
    engine = StepEngine(steps=3, step_s=0.01)
    runner = CompletionRunner(lambda: engine)
    drafts = []
    loop_thread = threading.current_thread()
    result = await run(runner, "doc", "abc", on_draft=lambda d: drafts.append((d.text, threading.current_thread())))
    assert [text for text, _ in drafts] == ["c", "cb", "cba"] and result.text == "cba"
    assert all(thread is loop_thread for _, thread in drafts)
    runner.close()


async def test_background_refinement_delivers_and_yields_to_foreground_work():
    engine = StepEngine(steps=100, step_s=0.01, every_call=True)
    runner = CompletionRunner(lambda: engine)
    await runner.engine()
    refined = []
    runner.refine("doc", request("slow"), CompletionSettings(latency_budget_ms=0), refined.append)
    await wait_for(engine.started.is_set)
    assert (await run(runner, "other", "x")).text == "x"  # stops the refinement within a step
    assert engine.calls[0]["cancelled"] and engine.calls[0]["budget"] == 0 and refined == []
    engine.steps = 2
    done = asyncio.get_running_loop().create_future()
    runner.refine("doc", request("quick"), SETTINGS, lambda c: done.set_result(c))
    assert (await asyncio.wait_for(done, 5)).text == "kciuq"
    runner.close()


async def test_reload_swaps_the_engine_and_a_failed_reload_keeps_the_old_one():
    old, new = StepEngine(), StepEngine()
    runner = CompletionRunner(lambda: old)
    await run(runner, "doc", "a")
    assert await runner.reload(lambda: new) is new
    await run(runner, "doc", "b")

    def broken():
        raise ModelFileError("model config not found: /nowhere/config.json")

    with pytest.raises(ModelFileError):
        await runner.reload(broken)
    await run(runner, "doc", "c")
    assert (len(old.calls), len(new.calls)) == (1, 2)
    runner.close()


async def test_the_engine_loads_once_and_a_cancelled_request_does_not_cancel_the_load():
    loads = []

    def load():
        time.sleep(0.1)
        loads.append(1)
        return StepEngine()

    runner = CompletionRunner(load)
    first = asyncio.ensure_future(run(runner, "a", "abc"))
    await asyncio.sleep(0.02)
    first.cancel()
    assert (await run(runner, "b", "ok")).text == "ko" and loads == [1]
    await run(runner, "c", "abc")
    assert loads == [1] and runner.loaded() is not None
    runner.close()


async def test_a_load_error_reaches_every_request():
    def load():
        raise ModelFileError("model config not found: /nowhere/config.json")

    runner = CompletionRunner(load)
    for key in ("a", "b"):
        with pytest.raises(ModelFileError, match="/nowhere/config.json"):
            await run(runner, key, "abc")
    assert runner.loaded() is None
    runner.close()


@pytest.mark.skipif(not (MODEL_DIR / "encoder.onnx").is_file(), reason=f"bundled model not in {MODEL_DIR}")
async def test_cancel_stops_the_real_engine_within_one_denoising_step():
    """The real engine and model; the wrapper only counts steps and cancels from inside the second one."""
    from completion.engine import load_engine

    real = load_engine()
    loop = asyncio.get_running_loop()
    seen = {"steps": 0, "at_cancel": None}
    holder = {}

    class Counting:
        backend_name = real.backend_name

        def with_settings(self, **changes):
            view = Counting()
            view.inner = real.with_settings(**changes)
            return view

        def complete(self, request, on_draft=None, is_cancelled=None):
            def counting_draft(draft):
                seen["steps"] += 1
                if seen["steps"] == 2:  # cancel now, and wait until the runner has raised the flag
                    loop.call_soon_threadsafe(holder["task"].cancel)
                    deadline = time.monotonic() + 10
                    while not is_cancelled() and time.monotonic() < deadline:
                        time.sleep(0.001)
                    seen["at_cancel"] = seen["steps"]

            return self.inner.complete(request, on_draft=counting_draft, is_cancelled=is_cancelled)

    runner = CompletionRunner(lambda: Counting())
    source = "import os\n\n\ndef list_files(path):\n    # return the names of the files in path, sorted\n    \n"
    unlimited = CompletionSettings(latency_budget_ms=0, max_lines=4, span_candidates=1, reject_parse_errors=False)
    req = CompletionRequest(text=source, line=5, column=4, language="python")
    holder["task"] = asyncio.ensure_future(runner.run("doc", ("x",), req, unlimited, on_draft=lambda d: None))
    with pytest.raises(asyncio.CancelledError):
        await holder["task"]
    await wait_for(lambda: seen["at_cancel"] is not None and not runner.pending("doc"), timeout=30)
    await asyncio.sleep(0.2)  # any step still running would have reported its draft by now
    assert seen["at_cancel"] == 2 and seen["steps"] == 2  # not one step after the flag was raised
    runner.close()
