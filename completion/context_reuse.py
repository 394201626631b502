"""Keystroke-to-keystroke reuse of the context's keys and values.

The context (`<PRE> prefix <SUF> suffix <MID>`) is causal: each token sees only the
tokens before it, so the cache of its first P tokens depends on those P tokens alone.
While the user types, the next request's token ids start with most of the last
one's (the prefix window keeps its start, cut at a line boundary; only its end, the
cursor, moves), so only the rest is computed, by the backend's `extend_context`:
the tail of the prefix from the edit on, then the suffix. The result is the full
encode's, up to float rounding (tested), not an approximation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from runtime.base import ContextState, extends

MIN_KEEP = 16  # tokens: reusing fewer saves less than the cache copy costs


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading ids two 1-D arrays share."""
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


@dataclass
class ReuseStats:
    full: int = 0  # contexts encoded from scratch
    extended: int = 0  # contexts continued from the last one's cache
    same: int = 0  # contexts identical to the last one (its state served as is)
    reused_tokens: int = 0
    encoded_tokens: int = 0


@dataclass
class ContextReuse:
    """Encodes contexts, continuing the last one's cache where the token ids agree."""

    min_keep: int = MIN_KEEP
    stats: ReuseStats = field(default_factory=ReuseStats)
    _last: tuple[object, np.ndarray, ContextState] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def encode(self, backend, ids: np.ndarray) -> tuple[ContextState, int]:
        """(the state of context ids (1, T), how many of its tokens came from the last context's cache)."""
        flat = np.asarray(ids[0])
        with self._lock:
            last = self._last
        keep = 0
        if last is not None and last[0] is backend and extends(backend):
            keep = common_prefix(last[1], flat)
            if keep == len(flat) == len(last[1]):
                self.stats.same += 1
                self.stats.reused_tokens += keep
                return last[2], keep
            keep = min(keep, len(flat) - 1)  # the last token is always computed: its logits start the span
        if keep >= self.min_keep:
            state = backend.extend_context(ids[:, keep:], last[2], keep)
            self.stats.extended += 1
        else:
            keep = 0
            state = backend.encode_context(ids)
            self.stats.full += 1
        self.stats.reused_tokens += keep
        self.stats.encoded_tokens += len(flat) - keep
        with self._lock:
            self._last = (backend, flat.copy(), state)
        return state, keep

    def clear(self) -> None:
        with self._lock:
            self._last = None
