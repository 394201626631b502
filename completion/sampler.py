"""The greedy masked-diffusion sampler.

Each step runs the denoiser over the span, predicts every masked position, and
commits the ones whose confidence is above a threshold plus at least
`ceil(remaining / steps_left)` of the most confident, so it always finishes in the
planned number of steps. Committed tokens stay committed; once an EOS is committed
everything after it is EOS, and the first token is never EOS. With `steps == span_len` and no threshold it commits
one token per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from runtime.base import ContextState, DenoiserBackend


@dataclass
class SampleResult:
    tokens: list[int]  # the span, MASK where nothing was committed (only if cancelled)
    steps: int  # denoising steps run
    cancelled: bool = False


@dataclass
class SpecialIds:
    mask: int
    eos: int
    forbidden: tuple[int, ...]  # never predicted: MASK and the FIM markers


def shifted_logits(state: ContextState, step_logits: np.ndarray) -> np.ndarray:
    """Logits for each span position: token 0 from the context's last state,
    token j from the denoiser's output at j - 1. step_logits: (S, V) -> (S, V)."""
    return np.concatenate([state.first_logits[None, :], step_logits[:-1]], axis=0)


def confidences(logits: np.ndarray, forbidden: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Greedy token and its probability per position."""
    logits = logits.astype(np.float32, copy=True)
    logits[:, list(forbidden)] = -np.inf
    best = logits.argmax(axis=-1)
    top = logits[np.arange(len(best)), best]
    probs = 1.0 / np.exp(logits - top[:, None]).sum(axis=-1)
    return best, probs


def choose_commits(masked: np.ndarray, conf: np.ndarray, steps_left: int, threshold: float | None) -> np.ndarray:
    """Indices to commit this step: all masked above threshold, and at least enough
    of the most confident to finish in steps_left steps."""
    candidates = np.flatnonzero(masked)
    if len(candidates) == 0:
        return candidates
    need = math.ceil(len(candidates) / max(1, steps_left))
    order = candidates[np.argsort(-conf[candidates], kind="stable")]
    chosen = order[:need]
    if threshold is not None:
        above = candidates[conf[candidates] >= threshold]
        chosen = np.union1d(chosen, above)
    return np.sort(chosen)


def denoise(backend: DenoiserBackend, state: ContextState, span_len: int, steps: int, ids: SpecialIds,
            threshold: float | None = None, on_step: Callable[[list[int]], None] | None = None,
            is_cancelled: Callable[[], bool] | None = None,
            on_timing: Callable[[float], None] | None = None) -> SampleResult:
    """Fill a span of span_len MASKs in at most `steps` steps."""
    import time

    span = np.full(span_len, ids.mask, dtype=np.int64)
    steps = max(1, min(steps, span_len))
    taken = 0
    while taken < steps:
        masked = span == ids.mask
        if not masked.any():
            break
        if is_cancelled is not None and is_cancelled():
            return SampleResult(span.tolist(), taken, cancelled=True)
        t0 = time.perf_counter()
        out = backend.denoise_span(span[None, :], state)[0]
        if on_timing is not None:
            on_timing((time.perf_counter() - t0) * 1000)
        taken += 1
        logits = shifted_logits(state, out)
        logits[0, ids.eos] = -np.inf  # a suggestion has at least one token: empty helps nobody
        best, conf = confidences(logits, ids.forbidden)
        for j in choose_commits(masked, conf, steps - taken + 1, threshold):
            span[j] = best[j]
        eos_at = np.flatnonzero(span == ids.eos)
        if len(eos_at):  # everything after the first committed EOS is EOS
            span[eos_at[0]:] = ids.eos
        if on_step is not None:
            on_step(span.tolist())
    return SampleResult(span.tolist(), taken)


def committed_prefix(tokens: list[int], ids: SpecialIds) -> list[int]:
    """The committed tokens from the left up to the first MASK or EOS: what a draft can show."""
    out = []
    for t in tokens:
        if t in (ids.mask, ids.eos):
            break
        out.append(t)
    return out
