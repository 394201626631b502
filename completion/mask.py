"""The infilling layout: causal context, then a span of MASK tokens.

    <PRE> prefix <SUF> suffix <MID> | MASK x S

The same order as training (both stages), so the context's keys and values are
exactly the autoregressive cache.
"""

from __future__ import annotations

import numpy as np

from runtime.tokenizer import Tokenizer

SPAN_BUCKETS = (8, 16, 32, 64)


def context_ids(tok: Tokenizer, prefix_ids: list[int], suffix_ids: list[int]) -> np.ndarray:
    """(1, T) int64 context ending with <MID>."""
    return np.array([[tok.prefix_id, *prefix_ids, tok.suffix_id, *suffix_ids, tok.middle_id]], dtype=np.int64)


def masked_span(tok: Tokenizer, span_len: int, batch: int = 1) -> np.ndarray:
    """(batch, span_len) int64 of MASK tokens."""
    return np.full((batch, span_len), tok.mask_id, dtype=np.int64)


def candidate_spans(mask_id: int, eos_id: int, lengths: list[int] | tuple[int, ...]) -> np.ndarray:
    """(len(lengths), max(lengths)) int64: one row per candidate span length, all as long as the
    longest so they share one batch; a shorter candidate's row is EOS past its own length, committed
    from the start, which is exactly how training pads a middle to its bucket."""
    rows = np.full((len(lengths), max(lengths)), mask_id, dtype=np.int64)
    for r, n in enumerate(lengths):
        rows[r, n:] = eos_id
    return rows


def bucket_for(n_tokens: int) -> int:
    """Smallest span bucket holding n_tokens (the largest if none does)."""
    for b in SPAN_BUCKETS:
        if n_tokens <= b:
            return b
    return SPAN_BUCKETS[-1]
