"""CompletionRunner: off-loop work, supersession and cancellation, with a stand-in engine.

The stand-in only exercises the runner's own wiring; the real engine is covered end to end
in test_lsp_e2e.py.
"""

import asyncio
import threading
import time

import pytest

from completion.api import Completion, CompletionRequest
from lsp_server.runner import CompletionRunner
from runtime.base import ModelFileError

pytestmark = pytest.mark.asyncio


class StepEngine:
    """Its first call takes `steps` steps of `step_s` seconds, later calls one; is_cancelled is checked
    between steps like the real engine does."""

    backend_name = "stand-in"

    def __init__(self, steps: int = 1, step_s: float = 0.0):
        self.steps, self.step_s = steps, step_s
        self.started = threading.Event()
        self.calls: list[dict] = []

    def complete(self, request, on_draft=None, is_cancelled=None) -> Completion:
        self.started.set()
        call = {"thread": threading.current_thread().name, "steps": 0, "cancelled": False}
        self.calls.append(call)
        for _ in range(self.steps if len(self.calls) == 1 else 1):
            if is_cancelled and is_cancelled():
                call["cancelled"] = True
                break
            time.sleep(self.step_s)
            call["steps"] += 1
        return Completion(text=request.text[::-1], steps=call["steps"])


def request(text: str = "abc") -> CompletionRequest:
    return CompletionRequest(text=text, line=0, column=len(text))


async def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_runs_the_engine_in_the_worker_thread():
    engine = StepEngine()
    runner = CompletionRunner(lambda: engine)
    result = await runner.run("doc", request("abc"))
    assert result.text == "cba"
    assert engine.calls[0]["thread"].startswith("quicksilver-model")
    runner.close()


async def test_newer_request_for_the_same_document_supersedes_the_older():
    engine = StepEngine(steps=200, step_s=0.01)
    runner = CompletionRunner(lambda: engine)
    older = asyncio.ensure_future(runner.run("doc", request("old")))
    await wait_for(engine.started.is_set)
    newer = await runner.run("doc", request("new"))
    assert await older is None  # superseded: nothing to show
    assert engine.calls[0]["cancelled"] and engine.calls[0]["steps"] < 200
    assert newer.text == "wen" and not engine.calls[1]["cancelled"]
    runner.close()


async def test_other_documents_do_not_supersede():
    engine = StepEngine(steps=5, step_s=0.01)
    runner = CompletionRunner(lambda: engine)
    a, b = await asyncio.gather(runner.run("a", request("a1")), runner.run("b", request("b1")))
    assert (a.text, b.text) == ("1a", "1b")
    runner.close()


async def test_cancelling_the_task_stops_the_worker_between_steps():
    engine = StepEngine(steps=500, step_s=0.01)
    runner = CompletionRunner(lambda: engine)
    task = asyncio.ensure_future(runner.run("doc", request()))
    await wait_for(engine.started.is_set)
    task.cancel()  # what pygls does on $/cancelRequest
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for(lambda: engine.calls[0]["cancelled"])
    assert engine.calls[0]["steps"] < 500
    # the worker is free again for the next request
    assert (await runner.run("doc", request("x"))).text == "x"
    runner.close()


async def test_the_engine_loads_once_and_a_cancelled_request_does_not_cancel_the_load():
    loads = []

    def load():
        time.sleep(0.1)
        loads.append(1)
        return StepEngine()

    runner = CompletionRunner(load)
    first = asyncio.ensure_future(runner.run("a", request()))
    await asyncio.sleep(0.02)
    first.cancel()
    second = await runner.run("b", request("ok"))
    assert second.text == "ko" and loads == [1]
    await runner.run("c", request())
    assert loads == [1]
    runner.close()


async def test_a_load_error_reaches_every_request():
    def load():
        raise ModelFileError("model config not found: /nowhere/config.json")

    runner = CompletionRunner(load)
    for key in ("a", "b"):
        with pytest.raises(ModelFileError, match="/nowhere/config.json"):
            await runner.run(key, request())
    runner.close()
