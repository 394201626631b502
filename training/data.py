"""Training examples cut the way inference sees them.

The cursor and the end of the middle are chosen as character positions, then the
prefix, middle and suffix are tokenized separately (BPE never merges across the
cursor, just as at inference). Span kinds mix whole lines, the rest of a line after
a mid-line cursor, multi-line blocks, random spans and empty middles.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from completion.mask import SPAN_BUCKETS
from completion.mask import context_ids as completion_context_ids
from runtime.tokenizer import Tokenizer

SPAN_KINDS = ("line", "rest_of_line", "block", "random", "empty")
SPAN_KIND_WEIGHTS = (0.35, 0.2, 0.2, 0.2, 0.05)
CHARS_PER_TOKEN = 3.2  # a little under the corpus average so windows are rarely short


@dataclass
class FimParts:
    prefix: list[int]
    middle: list[int]
    suffix: list[int]
    kind: str


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    return starts


def choose_hole(text: str, rng: random.Random, kind: str) -> tuple[int, int]:
    """Character positions (cursor, end of middle) of a hole of the given kind."""
    starts = _line_starts(text)
    n = len(starts)
    li = rng.randrange(n)
    line_start = starts[li]
    line_end = starts[li + 1] - 1 if li + 1 < n else len(text)
    line = text[line_start:line_end]
    indent = len(line) - len(line.lstrip(" \t"))
    if kind == "line":
        cursor = line_start + (indent if rng.random() < 0.5 else 0)
        return cursor, line_end
    if kind == "rest_of_line":
        cursor = rng.randint(line_start + indent, max(line_start + indent, line_end))
        return cursor, line_end
    if kind == "block":
        last = min(n - 1, li + rng.randint(1, 7))
        end = starts[last + 1] - 1 if last + 1 < n else len(text)
        return line_start + (indent if rng.random() < 0.5 else 0), end
    if kind == "empty":
        cursor = rng.randint(line_start, line_end)
        return cursor, cursor
    cursor = rng.randrange(len(text) + 1)
    return cursor, min(len(text), cursor + rng.randint(1, 200))


def sample_parts(text: str, tok: Tokenizer, rng: random.Random, seq_len: int,
                 max_middle: int, kind: str | None = None) -> FimParts:
    """A window of the document split into tokenized prefix / middle / suffix."""
    window = int(seq_len * CHARS_PER_TOKEN)
    if len(text) > window:
        start = rng.randrange(len(text) - window)
        start = text.rfind("\n", 0, start) + 1  # start on a line boundary
        text = text[start:start + window]
    kind = kind or rng.choices(SPAN_KINDS, SPAN_KIND_WEIGHTS)[0]
    cursor, end = choose_hole(text, rng, kind)
    prefix, middle, suffix = tok.encode_batch([text[:cursor], text[cursor:end], text[end:]])
    return FimParts(prefix, middle[:max_middle], suffix, kind)


def fit_context(prefix: list[int], suffix: list[int], budget: int, rng: random.Random) -> tuple[list[int], list[int]]:
    """Keep the end of the prefix and the start of the suffix within budget tokens."""
    budget = max(0, budget)
    if len(prefix) + len(suffix) <= budget:
        return prefix, suffix
    share = rng.uniform(0.4, 0.8)
    p = min(len(prefix), max(budget - len(suffix), int(budget * share)))
    s = budget - p
    return prefix[len(prefix) - p:], suffix[:s]


def context_ids(tok: Tokenizer, prefix: list[int], suffix: list[int]) -> list[int]:
    """<PRE> prefix <SUF> suffix <MID>: the same causal context as inference builds."""
    return completion_context_ids(tok, prefix, suffix)[0].tolist()


def span_bucket(n_tokens: int) -> int:
    """Smallest bucket that holds the middle and at least one EOS."""
    for b in SPAN_BUCKETS:
        if n_tokens + 1 <= b:
            return b
    return SPAN_BUCKETS[-1]


def ar_batch(docs: list[str], tok: Tokenizer, rng: random.Random, batch: int, seq_len: int):
    """Stage 1: (inputs, targets) int64 arrays (B, T); targets -100 on padding."""
    inputs = np.full((batch, seq_len), tok.eos_id, dtype=np.int64)
    targets = np.full((batch, seq_len), -100, dtype=np.int64)
    for b in range(batch):
        parts = sample_parts(rng.choice(docs), tok, rng, seq_len, max_middle=min(128, seq_len // 2))
        middle = parts.middle + [tok.eos_id]
        prefix, suffix = fit_context(parts.prefix, parts.suffix, seq_len + 1 - len(middle) - 3, rng)
        seq = context_ids(tok, prefix, suffix) + middle
        n = len(seq) - 1
        inputs[b, :n] = seq[:-1]
        targets[b, :n] = seq[1:]
    return inputs, targets


@dataclass
class InfillBatch:
    ids: np.ndarray  # (B, T) context, then the noisy span, then padding
    ctx_len: np.ndarray  # (B,) context length including <MID>
    span_len: np.ndarray  # (B,) bucket length
    span_targets: np.ndarray  # (B, 64) clean span tokens, -100 past the bucket
    span_weights: np.ndarray  # (B, 64) loss weight per masked span position, 0 elsewhere
    ctx_targets: np.ndarray  # (B, T) next-token targets inside the context, -100 elsewhere


def infill_batch(docs: list[str], tok: Tokenizer, rng: random.Random, batch: int, seq_len: int,
                 eps: float = 0.05) -> InfillBatch:
    """Stage 2: mask each span token with probability t ~ U(eps, 1); EOS padding after
    the first EOS is down-weighted so one example's padding counts as one token."""
    S = SPAN_BUCKETS[-1]
    out = InfillBatch(
        ids=np.full((batch, seq_len), tok.eos_id, dtype=np.int64),
        ctx_len=np.zeros(batch, dtype=np.int64),
        span_len=np.zeros(batch, dtype=np.int64),
        span_targets=np.full((batch, S), -100, dtype=np.int64),
        span_weights=np.zeros((batch, S), dtype=np.float32),
        ctx_targets=np.full((batch, seq_len), -100, dtype=np.int64),
    )
    for b in range(batch):
        parts = sample_parts(rng.choice(docs), tok, rng, seq_len, max_middle=S)
        L = span_bucket(len(parts.middle))
        span = (parts.middle + [tok.eos_id] * L)[:L]
        prefix, suffix = fit_context(parts.prefix, parts.suffix, seq_len - L - 3, rng)
        ctx = context_ids(tok, prefix, suffix)
        c = len(ctx)
        out.ids[b, :c] = ctx
        out.ctx_len[b], out.span_len[b] = c, L
        put_noised_span(out, b, span, len(parts.middle), tok.mask_id, rng, eps)
        out.ctx_targets[b, :c - 1] = ctx[1:]
    return out


def put_noised_span(out: InfillBatch, b: int, span: list[int] | np.ndarray, n_mid: int, mask_id: int,
                    rng: random.Random, eps: float = 0.05) -> None:
    """Row b's span (its bucket's length, n_mid real tokens then EOS) after its context: each token
    masked with probability t ~ U(eps, 1), at least one; the loss weights the masked positions,
    the EOS padding after the first EOS down-weighted so it counts as one token."""
    c, L = int(out.ctx_len[b]), len(span)
    t = rng.uniform(eps, 1.0)
    masked = np.array([rng.random() < t for _ in range(L)])
    if not masked.any():
        masked[rng.randrange(L)] = True
    out.ids[b, c:c + L] = np.where(masked, mask_id, np.asarray(span))
    out.span_targets[b, :L] = span
    pad_positions = max(0, L - n_mid - 1)  # EOS after the first one
    weights = np.ones(L, dtype=np.float32)
    if pad_positions:
        weights[n_mid + 1:] = 1.0 / pad_positions
    out.span_weights[b, :L] = weights * masked
