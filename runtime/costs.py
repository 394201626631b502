"""Running estimates of what a context encode and a denoising step cost on this machine.

The engine turns a latency budget into a number of denoising steps, so it needs
to predict, before running them, how long they take. Costs drift (thermal
throttling, other processes, a training job sharing the cores), so every
measurement updates an exponentially weighted least-squares line:

- encode: ms = overhead + per_token * context_tokens;
- one step, per span bucket (8/16/32/64) and context bucket (128/512/2048/8192):
  ms = overhead + per_row * batch. Attention over the cached context makes a step
  slower with a longer context (on this machine a 32-token step costs about twice as
  much at 2,048 context tokens as at 128), so a prediction interpolates linearly in
  context length between the measured context buckets of its span bucket.

A step's context is the one last encoded (the engine encodes, then steps), unless
given. A short warm-up at start-up gives the first estimates; until then priors apply.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

SPAN_BUCKETS = (8, 16, 32, 64)
CONTEXT_BUCKETS = (128, 512, 2048, 8192)
UNKNOWN_CONTEXT = 256  # where steps land when no context was ever encoded or given


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


@dataclass
class _Cell:
    """Step costs of one (span bucket, context bucket): a line over batch size, and the
    (exponentially weighted) mean context length it was measured at."""

    line: EwLine
    ctx_w: float = 0.0
    ctx_sum: float = 0.0

    def update(self, batch: float, ctx: float, ms: float) -> None:
        self.line.update(batch, ms)
        self.ctx_w = self.line.decay * self.ctx_w + 1.0
        self.ctx_sum = self.line.decay * self.ctx_sum + ctx

    @property
    def ctx(self) -> float:
        return self.ctx_sum / self.ctx_w


def _interpolate(points: list[tuple[float, float]], x: float) -> float:
    """Piecewise-linear through (x, y) points sorted by x. Beyond the ends the nearest
    segment's slope continues from the nearest point, but never downwards: more context
    never makes a step cheaper, so a noisy decrease between two measurements is not
    extrapolated."""
    if len(points) == 1:
        return points[0][1]
    if x <= points[0][0] or x >= points[-1][0]:
        (x0, y0), (x1, y1) = points[:2] if x <= points[0][0] else points[-2:]
        slope = max(0.0, (y1 - y0) / (x1 - x0)) if x1 > x0 else 0.0
        anchor_x, anchor_y = (x0, y0) if x <= points[0][0] else (x1, y1)
        return max(0.0, anchor_y + slope * (x - anchor_x))
    i = next(k for k in range(1, len(points)) if x <= points[k][0])
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 > x0 else y1


class StepCostModel:
    """Predicts encode and step latency (ms) from running measurements."""

    def __init__(self, decay: float = 0.8, span_buckets: tuple[int, ...] = SPAN_BUCKETS,
                 prior_encode_ms_per_token: float = 0.05, prior_step_ms_per_token: float = 0.5,
                 context_buckets: tuple[int, ...] = CONTEXT_BUCKETS):
        self.decay = decay
        self.span_buckets = tuple(sorted(span_buckets))
        self.context_buckets = tuple(sorted(context_buckets))
        self.encode = EwLine(decay)
        self.cells: dict[tuple[int, int], _Cell] = {}
        self.last_context: int | None = None
        self.prior_encode_ms_per_token = prior_encode_ms_per_token
        self.prior_step_ms_per_token = prior_step_ms_per_token

    def bucket(self, span_len: int) -> int:
        """The smallest bucket holding span_len (the largest if none does)."""
        for s in self.span_buckets:
            if span_len <= s:
                return s
        return self.span_buckets[-1]

    def context_bucket(self, ctx_tokens: int) -> int:
        for c in self.context_buckets:
            if ctx_tokens <= c:
                return c
        return self.context_buckets[-1]

    @property
    def steps(self) -> dict[int, list[_Cell]]:
        """Measured cells per span bucket (what has been seen where)."""
        out: dict[int, list[_Cell]] = {s: [] for s in self.span_buckets}
        for (s, _), cell in sorted(self.cells.items()):
            out[s].append(cell)
        return out

    # --- measurements ------------------------------------------------------
    def observe_encode(self, tokens: int, ms: float) -> None:
        self.encode.update(float(tokens), float(ms))
        self.last_context = int(tokens)

    def observe_context(self, tokens: int) -> None:
        """A context continued from a cache rather than encoded: its time says nothing about a full
        encode, but the steps that follow attend to all its tokens."""
        self.last_context = int(tokens)

    def observe_step(self, span_len: int, batch: int, ms: float, ctx_tokens: int | None = None) -> None:
        ctx = self._context(ctx_tokens)
        key = (self.bucket(span_len), self.context_bucket(ctx))
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = _Cell(EwLine(self.decay))
        cell.update(float(batch), float(ctx), float(ms))

    def _context(self, ctx_tokens: int | None) -> int:
        if ctx_tokens is not None:
            return int(ctx_tokens)
        return self.last_context if self.last_context is not None else UNKNOWN_CONTEXT

    # --- predictions -------------------------------------------------------
    def predict_encode_ms(self, tokens: int) -> float:
        if not self.encode.seen:
            return self.prior_encode_ms_per_token * tokens
        return self.encode.predict(float(tokens))

    def _span_prediction(self, span_bucket: int, batch: int, ctx: int) -> float | None:
        points = sorted((c.ctx, c.line.predict(float(batch))) for (s, _), c in self.cells.items() if s == span_bucket)
        return _interpolate(points, float(ctx)) if points else None

    def predict_step_ms(self, span_len: int, batch: int = 1, ctx_tokens: int | None = None) -> float:
        """One step's cost at this span, batch and context (default: the last encoded one).
        An unmeasured span bucket borrows the nearest measured one, scaled by span length
        (step cost is dominated by per-token work: MLPs and the vocabulary projection)."""
        b = self.bucket(span_len)
        ctx = self._context(ctx_tokens)
        own = self._span_prediction(b, batch, ctx)
        if own is not None:
            return own
        seen = sorted({s for s, _ in self.cells})
        if not seen:
            return self.prior_step_ms_per_token * b * batch
        near = min(seen, key=lambda s: (abs(math.log2(s) - math.log2(b)), -s))
        return self._span_prediction(near, batch, ctx) * b / near

    def steps_within(self, budget_ms: float, ctx_tokens: int, span_len: int, batch: int = 1,
                     include_encode: bool = False) -> int:
        """How many denoising steps fit in budget_ms (at least 1). The budget is what is
        left for denoising, unless include_encode, which first pays for encoding ctx_tokens."""
        if include_encode:
            budget_ms -= self.predict_encode_ms(ctx_tokens)
        step = self.predict_step_ms(span_len, batch, ctx_tokens)
        if step <= 0:
            return max(1, span_len)
        return max(1, int(budget_ms // step))

    # --- start-up ------------------------------------------------------------
    def warm_up(self, backend, ctx_lens: tuple[int, ...] = (64, 448), batches: tuple[int, ...] = (1,),
                repeats: int = 2, max_seconds: float = 1.5, seed: int = 0) -> dict:
        """Measure the backend on random ids: per context length (the second near the
        engine's usual context of a few hundred tokens) one untimed encode (first calls
        allocate) then `repeats` timed ones, then the same for each span bucket and batch
        size over that context. Each configuration is observed once, at the fastest of its
        repeats: a moment of contention at start-up would otherwise skew the first plans
        (serving then updates the estimates with every real call). Stops early after
        max_seconds. Returns a summary."""
        rng = np.random.default_rng(seed)
        vocab = backend.info.vocab_size
        deadline = time.perf_counter() + max_seconds

        def fastest(fn, untimed_first: bool = True) -> float:
            if untimed_first:
                fn()
            best = math.inf
            for _ in range(max(1, repeats)):
                t0 = time.perf_counter()
                fn()
                best = min(best, (time.perf_counter() - t0) * 1000)
            return best

        for T in ctx_lens:
            if time.perf_counter() > deadline:
                break
            ids = rng.integers(0, vocab, (1, T), dtype=np.int64)
            state = backend.encode_context(ids)  # untimed: the first call at a new length allocates
            self.observe_encode(T, fastest(lambda ids=ids: backend.encode_context(ids), untimed_first=False))
            for S in self.span_buckets:
                for B in batches:
                    if time.perf_counter() > deadline:
                        break
                    span = rng.integers(0, vocab, (B, S), dtype=np.int64)
                    ms = fastest(lambda span=span, state=state: backend.denoise_span(span, state))
                    self.observe_step(S, B, ms, ctx_tokens=T)
        return self.summary()

    def summary(self) -> dict:
        """Current predictions, for logs and benchmarks: step costs at the last encoded
        context, and per context length."""
        return {"encode_ms": {T: round(self.predict_encode_ms(T), 3) for T in (64, 256, 1024)},
                "step_ms": {S: round(self.predict_step_ms(S), 3) for S in self.span_buckets},
                "step_ms_by_context": {S: {T: round(self.predict_step_ms(S, ctx_tokens=T), 3) for T in (128, 512, 2048)}
                                       for S in self.span_buckets}}
