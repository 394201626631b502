"""The denoiser's left-to-right likelihood of a finished candidate, to rank answers of different passes.

A sampler pass ranks its own rows by the confidence each token had when committed, which
depends on the order the pass committed them in; two passes opening with different words
are better compared by one measure for both. Because the context is causal and the span
sees itself in both directions, the denoiser gives log p(token j | context, tokens < j)
from a span whose first j tokens are the candidate's and the rest MASK: one batch of
n rows (one per token, the EOS that ends the line included) scores a candidate of n - 1
tokens in one call. On 2000 held-out lines (the bundled model, first pass against an
alternative opening word) ranking by the summed log-probability picked 134 exact lines,
by mean committed confidence 125, by the mean log-probability 130 (a perfect pick: 140).
"""

from __future__ import annotations

import numpy as np

from completion.mask import SPAN_BUCKETS, bucket_for
from completion.sampler import SpecialIds
from runtime.base import ContextState, DenoiserBackend

MAX_SCORED_TOKENS = SPAN_BUCKETS[-1] - 1  # one row per token: longer candidates are cut (the EOS still ends them)


def scored_tokens(tokens: list[int], ids: SpecialIds) -> list[int]:
    """The tokens scored for a candidate: its own (up to MAX_SCORED_TOKENS), then the EOS that ends it."""
    return [*tokens[:MAX_SCORED_TOKENS], ids.eos]


def left_to_right_rows(tokens: list[int], ids: SpecialIds, aligned: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(spans (n, S), logit rows (n, 1)) for a candidate's n scored tokens: row j shows tokens < j
    and masks the rest; its logits for token j come from output j - 1 (Dream's shift; token 0
    from the context's first logits, so its row index is a placeholder), or from output j where
    the backend aligned them (runtime/hf)."""
    n = len(tokens)
    spans = np.full((n, bucket_for(n)), ids.mask, dtype=np.int64)
    for j in range(1, n):
        spans[j, :j] = tokens[:j]
    rows = np.arange(n) if aligned else np.maximum(np.arange(n) - 1, 0)
    return spans, rows[:, None]


def log_likelihood(backend: DenoiserBackend, state: ContextState, tokens: list[int], ids: SpecialIds) -> float:
    """Sum of log p(token j | context, tokens < j) over `scored_tokens(tokens)`, special tokens
    other than EOS excluded from the distribution as the sampler excludes them."""
    scored = scored_tokens(tokens, ids)
    spans, rows = left_to_right_rows(scored, ids, state.aligned)
    logits = np.array(backend.denoise_span(spans, state, rows)[:, 0, :], dtype=np.float32)
    if not state.aligned:
        logits[0] = state.first_logits
    logits[:, list(ids.forbidden)] = -np.inf
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(log_probs[np.arange(len(scored)), scored].sum())


class Scorer:
    """text -> `log_likelihood` of its tokens, memoized; `calls` counts the denoiser calls made."""

    def __init__(self, backend: DenoiserBackend, state: ContextState, tokenizer, ids: SpecialIds):
        self.backend, self.state, self.tokenizer, self.ids = backend, state, tokenizer, ids
        self.memo: dict[str, float] = {}

    def __call__(self, text: str) -> float:
        if text not in self.memo:
            self.memo[text] = log_likelihood(self.backend, self.state, self.tokenizer.encode(text), self.ids)
        return self.memo[text]

    @property
    def calls(self) -> int:
        return len(self.memo)


def prefer_second(first: tuple[str, tuple], second: tuple[str, tuple], score=None) -> bool:
    """Whether the second (text, rank) of two passes' picks beats the first: by the sound part of
    the engine's rank (keeps the parse and how it compiles, non-empty, known names, no open `try:`;
    the first four fields); between two equally sound different texts by `score` (text -> log-likelihood) when
    given, else by the rest of the rank (finished, then confidence)."""
    (text_a, rank_a), (text_b, rank_b) = first, second
    if rank_a[:4] != rank_b[:4] or score is None or text_a == text_b or not text_a:
        return rank_b > rank_a
    return score(text_b) > score(text_a)
