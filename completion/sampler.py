"""The greedy masked-diffusion sampler.

Each step runs the denoiser over the span, predicts every masked position, and
commits the ones whose confidence is above a threshold plus at least
`ceil(remaining / steps_left)` of the most confident, so it always finishes in the
planned number of steps. Committed tokens stay committed; once an EOS is committed
everything after it is EOS, and the first token is never EOS. With `steps == span_len` and no threshold it commits
one token per step.

Several candidate span lengths can share one batch (one context, B rows of the same
length S): a shorter candidate's row has EOS committed past its length from the
start. Guessing the hole's length is the hard part of diffusion infilling, so
trying several lengths at once and keeping the best is cheap insurance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from completion.mask import candidate_spans
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

    @classmethod
    def from_tokenizer(cls, tok) -> SpecialIds:
        """The ids of a tokenizer with mask/eos/FIM-marker ids (runtime/tokenizer.py, runtime/hf)."""
        return cls(mask=tok.mask_id, eos=tok.eos_id,
                   forbidden=(tok.mask_id, tok.prefix_id, tok.suffix_id, tok.middle_id))


def logit_rows(state: ContextState, masked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(masked positions, the denoiser outputs that predict them) for a batch of spans (B, S):
    token j comes from output j - 1 (the shift; token 0 from the context's last state), or from
    output j where the backend aligned them (runtime/hf). Only masked positions are asked for:
    committed ones need nothing, and the vocabulary projection is the largest product of a step.
    Rows are padded to one length R by repeating their last index; returns per-row positions
    and rows (B, R) int64."""
    positions = [np.flatnonzero(m) for m in masked]
    R = max(1, max(len(p) for p in positions))
    rows = np.zeros((len(positions), R), dtype=np.int64)
    for r, p in enumerate(positions):
        want = p if state.aligned else np.maximum(p - 1, 0)
        if len(want):
            rows[r, :len(want)], rows[r, len(want):] = want, want[-1]
    return positions, rows


def masked_logits(state: ContextState, row_logits: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Logits of one span's masked positions from the denoiser's outputs at `logit_rows`:
    row_logits (R, V) -> (len(positions), V), a copy; token 0 from the context's first_logits."""
    logits = np.array(row_logits[:len(positions)], dtype=np.float32)
    if not state.aligned and len(positions) and positions[0] == 0:
        logits[0] = state.first_logits
    return logits


def confidences(logits: np.ndarray, forbidden: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Greedy token and its probability per row; `logits` (float32, owned by the caller) is overwritten."""
    logits = np.asarray(logits, dtype=np.float32)
    logits[:, list(forbidden)] = -np.inf
    best = logits.argmax(axis=-1)
    top = logits[np.arange(len(best)), best]
    logits -= top[:, None]
    np.exp(logits, out=logits)
    return best, 1.0 / logits.sum(axis=-1)


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


@dataclass
class BatchResult:
    rows: list[list[int]]  # one span per candidate length, all max(lengths) long
    confidence: list[list[float]]  # probability each token had when committed (0 where forced or masked)
    lengths: list[int]
    steps: int
    cancelled: bool = False

    def finished(self, r: int, eos: int) -> bool:
        """Whether row r decided where it ends (an EOS the model committed within its length):
        a row that ran out of room stops mid-line (`current_`), wherever its tokens are good."""
        return eos in self.rows[r][: self.lengths[r]]

    def mean_confidence(self, r: int, eos: int) -> float:
        """Mean committed-token probability of row r up to and including its first EOS (the
        decision to stop counts too); forced EOS padding does not count."""
        row, conf = self.rows[r], self.confidence[r]
        end = next((j + 1 for j, t in enumerate(row) if t == eos), len(row))
        vals = [c for c in conf[: min(end, self.lengths[r])] if c > 0]
        return sum(vals) / len(vals) if vals else 0.0


def first_token(first_logits: np.ndarray, allowed: np.ndarray, ids: SpecialIds) -> tuple[int, float]:
    """The most likely first span token among `allowed` (a vocabulary mask), and its probability
    under the model's whole distribution (never EOS, MASK or a marker)."""
    logits = np.array(first_logits, dtype=np.float32)
    logits[[ids.eos, *ids.forbidden]] = -np.inf
    token = int(np.where(allowed, logits, -np.inf).argmax())
    logits -= logits.max()
    probs = np.exp(logits)
    return token, float(probs[token] / probs.sum())


def denoise_steps(backend: DenoiserBackend, state: ContextState, lengths: list[int] | tuple[int, ...], steps: int,
                  ids: SpecialIds, threshold: float | None = None, is_cancelled: Callable[[], bool] | None = None,
                  on_timing: Callable[[int, int, float], None] | None = None,
                  first_allowed: np.ndarray | None = None,
                  banned: Sequence[tuple[int, int]] = ()) -> Iterator[BatchResult]:
    """Fill one span per candidate length in one batch over the shared context, in at most
    `steps` steps, yielding the state after every step (the last yield is the result). Rows
    are padded to the longest with EOS committed from the start; a row leaves the batch once
    nothing in it is masked. on_timing(span_len, batch, ms) after each denoiser call.

    first_allowed (a vocabulary mask) limits the first token (completion/indent.py: the
    indentation of a blank line). Its logits come from the context alone, so it is committed
    before the first step and every other position sees it from the start.

    banned: (position, token) pairs never committed there, in any row: a second attempt
    steered away from the first word of candidates that broke the parse."""
    span = candidate_spans(ids.mask, ids.eos, lengths)
    conf_kept = np.zeros(span.shape, dtype=np.float32)
    ban_at: dict[int, list[int]] = {}
    for pos, token in banned:
        ban_at.setdefault(pos, []).append(token)
    if first_allowed is not None and not state.aligned:
        if 0 in ban_at and first_allowed.sum() > len(ban_at[0]):  # never ban every allowed start
            first_allowed = first_allowed.copy()
            first_allowed[ban_at[0]] = False
        span[:, 0], conf_kept[:, 0] = first_token(state.first_logits, first_allowed, ids)
    S = span.shape[1]
    steps = max(1, min(steps, max(lengths)))
    taken = 0
    snapshot = BatchResult(span.tolist(), conf_kept.tolist(), list(lengths), taken)
    while taken < steps:
        active = np.flatnonzero((span == ids.mask).any(axis=1))
        if len(active) == 0:
            break
        if is_cancelled is not None and is_cancelled():
            snapshot.cancelled = True
            break
        t0 = time.perf_counter()
        masked_rows = span[active] == ids.mask
        all_positions, rows = logit_rows(state, masked_rows)
        out = backend.denoise_span(span[active], state, rows)
        if on_timing is not None:
            on_timing(S, len(active), (time.perf_counter() - t0) * 1000)
        taken += 1
        for k, r in enumerate(active):
            masked, positions = masked_rows[k], all_positions[k]
            logits = masked_logits(state, out[k], positions)
            if positions[0] == 0:
                logits[0, ids.eos] = -np.inf  # a suggestion has at least one token: empty helps nobody
                if first_allowed is not None:
                    logits[0, ~first_allowed] = -np.inf
            for i, pos in enumerate(positions):
                if pos in ban_at:
                    logits[i, ban_at[pos]] = -np.inf
            best, conf = np.zeros(S, dtype=np.int64), np.zeros(S, dtype=np.float32)
            best[positions], conf[positions] = confidences(logits, ids.forbidden)
            for j in choose_commits(masked, conf, steps - taken + 1, threshold):
                span[r, j] = best[j]
                conf_kept[r, j] = conf[j]
            eos_at = np.flatnonzero(span[r] == ids.eos)
            if len(eos_at):  # everything after the first committed EOS is EOS
                span[r, eos_at[0]:] = ids.eos
        snapshot = BatchResult(span.tolist(), conf_kept.tolist(), list(lengths), taken)
        yield snapshot
    if snapshot.cancelled or taken == 0:
        yield snapshot


def denoise_rows(backend: DenoiserBackend, state: ContextState, lengths: list[int] | tuple[int, ...], steps: int,
                 ids: SpecialIds, threshold: float | None = None,
                 on_step: Callable[[list[list[int]]], None] | None = None,
                 is_cancelled: Callable[[], bool] | None = None,
                 on_timing: Callable[[int, int, float], None] | None = None,
                 first_allowed: np.ndarray | None = None, banned: Sequence[tuple[int, int]] = ()) -> BatchResult:
    """`denoise_steps` run to the end; on_step(rows) after every step."""
    result = None
    for result in denoise_steps(backend, state, lengths, steps, ids, threshold, is_cancelled, on_timing,
                                first_allowed, banned):
        if on_step is not None and not result.cancelled and result.steps > 0:
            on_step(result.rows)
    return result


def denoise(backend: DenoiserBackend, state: ContextState, span_len: int, steps: int, ids: SpecialIds,
            threshold: float | None = None, on_step: Callable[[list[int]], None] | None = None,
            is_cancelled: Callable[[], bool] | None = None,
            on_timing: Callable[[float], None] | None = None) -> SampleResult:
    """Fill a span of span_len MASKs in at most `steps` steps (one row of `denoise_rows`)."""
    result = denoise_rows(backend, state, [span_len], steps, ids, threshold,
                          on_step=None if on_step is None else lambda rows: on_step(rows[0]),
                          is_cancelled=is_cancelled,
                          on_timing=None if on_timing is None else lambda _s, _b, ms: on_timing(ms))
    return SampleResult(result.rows[0], result.steps, result.cancelled)


def committed_prefix(tokens: list[int], ids: SpecialIds) -> list[int]:
    """The committed tokens from the left up to the first MASK or EOS: what a draft can show."""
    out = []
    for t in tokens:
        if t in (ids.mask, ids.eos):
            break
        out.append(t)
    return out
