"""The completion pipeline: position -> context -> mask -> denoise -> post-process.

Knows nothing of LSP. `complete` is blocking CPU work: the server runs it in a
worker thread and passes `is_cancelled`, which is checked between denoising steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from runtime.costs import StepCostModel
from runtime.loader import LoadedModel, load_model

from completion.api import Completion, CompletionRequest, CompletionSettings
from completion.context import build_context, cursor_offset
from completion.hole import classify, span_length
from completion.mask import context_ids
from completion.postprocess import postprocess
from completion.sampler import SpecialIds, committed_prefix, denoise

log = logging.getLogger("quicksilver.completion")


class CompletionEngine:
    def __init__(self, model: LoadedModel, settings: CompletionSettings | None = None,
                 costs: StepCostModel | None = None):
        self.model = model
        self.settings = settings or CompletionSettings()
        self.costs = costs or StepCostModel()
        tok = model.tokenizer
        self.ids = SpecialIds(mask=tok.mask_id, eos=tok.eos_id,
                              forbidden=(tok.mask_id, tok.prefix_id, tok.suffix_id, tok.middle_id))

    @property
    def backend_name(self) -> str:
        return self.model.backend.name

    def plan_steps(self, span_len: int, ctx_tokens: int, elapsed_ms: float) -> tuple[int, float | None]:
        """(steps, confidence threshold). No budget: one token per step, no threshold;
        otherwise as many steps as the remaining budget buys, at most one per token."""
        s = self.settings
        if s.steps:
            return min(s.steps, span_len), s.min_confidence
        if not s.latency_budget_ms or s.latency_budget_ms <= 0:
            return span_len, None
        remaining = s.latency_budget_ms - elapsed_ms
        steps = self.costs.steps_within(remaining, ctx_tokens, span_len)
        return max(1, min(steps, span_len)), s.min_confidence

    def complete(self, request: CompletionRequest, on_draft: Callable[[Completion], None] | None = None,
                 is_cancelled: Callable[[], bool] | None = None) -> Completion:
        t0 = time.perf_counter()
        s = self.settings
        tok = self.model.tokenizer
        offset = cursor_offset(request.text, request.line, request.column)
        ctx = build_context(request.text, offset, tok, s.prefix_tokens, s.suffix_tokens)
        kind = classify(ctx)
        span_len = span_length(kind, s)
        ids = context_ids(tok, ctx.prefix_ids, ctx.suffix_ids)
        t_enc = time.perf_counter()
        state = self.model.backend.encode_context(ids)
        self.costs.observe_encode(ids.shape[1], (time.perf_counter() - t_enc) * 1000)
        steps, threshold = self.plan_steps(span_len, ids.shape[1], (time.perf_counter() - t0) * 1000)

        def finish(tokens: list[int], steps_taken: int, final: bool) -> Completion:
            raw = tok.decode(committed_prefix(tokens, self.ids))
            return Completion(text=postprocess(raw, ctx, s.max_lines), latency_ms=(time.perf_counter() - t0) * 1000,
                              steps=steps_taken, forward_passes=1 + steps_taken, span_len=span_len, final=final)

        step_count = [0]

        def on_step(tokens: list[int]) -> None:
            step_count[0] += 1
            if on_draft is not None:
                on_draft(finish(tokens, step_count[0], final=False))

        result = denoise(self.model.backend, state, span_len, steps, self.ids, threshold,
                         on_step=on_step, is_cancelled=is_cancelled,
                         on_timing=lambda ms: self.costs.observe_step(span_len, 1, ms))
        completion = finish(result.tokens, result.steps, final=True)
        log.debug("completion kind=%s span=%d steps=%d/%d ctx=%d latency=%.1fms chars=%d", kind.value, span_len,
                  result.steps, steps, ids.shape[1], completion.latency_ms, len(completion.text))
        return completion

    def with_settings(self, **changes) -> CompletionEngine:
        """A view of this engine with other settings, sharing the model and costs."""
        return CompletionEngine(self.model, replace(self.settings, **changes), self.costs)


def load_engine(model_dir: str | None = None, backend: str = "auto", threads: int | None = None,
                settings: CompletionSettings | None = None) -> CompletionEngine:
    """Load the model, measure its step costs with a short warm-up, and build the engine."""
    model = load_model(model_dir, backend=backend, threads=threads)
    costs = StepCostModel()
    costs.warm_up(model.backend)
    return CompletionEngine(model, settings, costs)
