"""Running estimates of what a context encode and a denoising step cost on this machine.

The engine turns a latency budget into a number of denoising steps, so it needs
to predict, before running them, how long they take. Costs drift (thermal
throttling, other processes, a training job sharing the cores), so every
measurement updates an exponentially weighted least-squares line:

- encode: ms = overhead + per_token * context_tokens;
- one step, per span bucket (8/16/32/64): ms = overhead + per_row * batch.

A short warm-up at start-up gives the first estimates; until then priors apply.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

SPAN_BUCKETS = (8, 16, 32, 64)


@dataclass
class EwLine:
    """Exponentially weighted least-squares fit of y = a + b*x (a, b >= 0).

    When recent x values are all alike (the usual case: one context length or batch
    size in a row) the slope is not identifiable, so the last well-determined slope
    is kept and only the level follows the data; with none yet, y is taken
    proportional to x (the conservative guess for larger x)."""

    decay: float = 0.8
    w: float = 0.0
    sx: float = 0.0
    sy: float = 0.0
    sxx: float = 0.0
    sxy: float = 0.0
    slope: float | None = None

    def update(self, x: float, y: float) -> None:
        d = self.decay
        self.w = d * self.w + 1.0
        self.sx = d * self.sx + x
        self.sy = d * self.sy + y
        self.sxx = d * self.sxx + x * x
        self.sxy = d * self.sxy + x * y
        mx, my = self.sx / self.w, self.sy / self.w
        var = self.sxx / self.w - mx * mx
        if var > 1e-6 * max(mx * mx, 1.0):
            self.slope = max(0.0, (self.sxy / self.w - mx * my) / var)

    @property
    def seen(self) -> bool:
        return self.w > 0

    def predict(self, x: float) -> float:
        mx, my = self.sx / self.w, self.sy / self.w
        if self.slope is None:
            return my * x / mx if mx > 0 else my
        b = self.slope
        a = max(0.0, my - b * mx)
        return a + b * x


class StepCostModel:
    """Predicts encode and step latency (ms) from running measurements."""

    def __init__(self, decay: float = 0.8, span_buckets: tuple[int, ...] = SPAN_BUCKETS,
                 prior_encode_ms_per_token: float = 0.05, prior_step_ms_per_token: float = 0.5):
        self.span_buckets = tuple(sorted(span_buckets))
        self.encode = EwLine(decay)
        self.steps = {s: EwLine(decay) for s in self.span_buckets}
        self.prior_encode_ms_per_token = prior_encode_ms_per_token
        self.prior_step_ms_per_token = prior_step_ms_per_token

    def bucket(self, span_len: int) -> int:
        """The smallest bucket holding span_len (the largest if none does)."""
        for s in self.span_buckets:
            if span_len <= s:
                return s
        return self.span_buckets[-1]

    # --- measurements ------------------------------------------------------
    def observe_encode(self, tokens: int, ms: float) -> None:
        self.encode.update(float(tokens), float(ms))

    def observe_step(self, span_len: int, batch: int, ms: float) -> None:
        self.steps[self.bucket(span_len)].update(float(batch), float(ms))

    # --- predictions -------------------------------------------------------
    def predict_encode_ms(self, tokens: int) -> float:
        if not self.encode.seen:
            return self.prior_encode_ms_per_token * tokens
        return self.encode.predict(float(tokens))

    def predict_step_ms(self, span_len: int, batch: int = 1) -> float:
        """An unmeasured bucket borrows the nearest measured one, scaled by span
        length (step cost is dominated by per-token work: MLPs and the vocabulary projection)."""
        b = self.bucket(span_len)
        line = self.steps[b]
        if line.seen:
            return line.predict(float(batch))
        seen = [s for s in self.span_buckets if self.steps[s].seen]
        if not seen:
            return self.prior_step_ms_per_token * b * batch
        near = min(seen, key=lambda s: (abs(math.log2(s) - math.log2(b)), -s))
        return self.steps[near].predict(float(batch)) * b / near

    def steps_within(self, budget_ms: float, ctx_tokens: int, span_len: int, batch: int = 1,
                     include_encode: bool = False) -> int:
        """How many denoising steps fit in budget_ms (at least 1). The budget is what is
        left for denoising, unless include_encode, which first pays for encoding ctx_tokens."""
        if include_encode:
            budget_ms -= self.predict_encode_ms(ctx_tokens)
        step = self.predict_step_ms(span_len, batch)
        if step <= 0:
            return max(1, span_len)
        return max(1, int(budget_ms // step))

    # --- start-up ------------------------------------------------------------
    def warm_up(self, backend, ctx_lens: tuple[int, ...] = (32, 160), batches: tuple[int, ...] = (1,),
                repeats: int = 2, max_seconds: float = 1.5, seed: int = 0) -> dict:
        """Measure the backend on random ids: per context length one untimed call (first
        calls allocate) then `repeats` timed ones, then the same for each span bucket and
        batch size. Stops early after max_seconds. Returns a summary of the predictions."""
        rng = np.random.default_rng(seed)
        vocab = backend.info.vocab_size
        deadline = time.perf_counter() + max_seconds
        state = None
        for T in ctx_lens:
            ids = rng.integers(0, vocab, (1, T), dtype=np.int64)
            state = backend.encode_context(ids)
            for _ in range(repeats):
                t0 = time.perf_counter()
                state = backend.encode_context(ids)
                self.observe_encode(T, (time.perf_counter() - t0) * 1000)
            if time.perf_counter() > deadline:
                break
        if state is not None:
            for S in self.span_buckets:
                for B in batches:
                    span = rng.integers(0, vocab, (B, S), dtype=np.int64)
                    backend.denoise_span(span, state)
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        backend.denoise_span(span, state)
                        self.observe_step(S, B, (time.perf_counter() - t0) * 1000)
                    if time.perf_counter() > deadline:
                        break
                if time.perf_counter() > deadline:
                    break
        return self.summary()

    def summary(self) -> dict:
        """Current predictions, for logs and benchmarks."""
        return {"encode_ms": {T: round(self.predict_encode_ms(T), 3) for T in (64, 256, 1024)},
                "step_ms": {S: round(self.predict_step_ms(S), 3) for S in self.span_buckets}}
