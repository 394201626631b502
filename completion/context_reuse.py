"""Keystroke-to-keystroke reuse of the context's keys and values.

The context (`<PRE> prefix <SUF> suffix <MID>`) is causal: each token sees only the
tokens before it, so the cache of its first P tokens depends on those P tokens alone.
While the user types, the next request's token ids start with most of the last
one's (the prefix window keeps its start, cut at a line boundary; only its end, the
cursor, moves), so only the rest is computed, by the backend's `extend_context`:
the tail of the prefix from the edit on, then the suffix. The result is the full
encode's, up to float rounding (tested), not an approximation. The last context of
each of a few documents is kept, so going back and forth between two files reuses too.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from runtime.base import ContextState, extends

MIN_KEEP = 16  # tokens: reusing fewer saves less than the cache copy costs
MAX_DOCUMENTS = 3  # contexts kept: about 6 MB each at 512 tokens for the bundled model


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
    """Encodes contexts, continuing the cache of the same document's last context where the token ids agree."""

    min_keep: int = MIN_KEEP
    max_documents: int = MAX_DOCUMENTS
    stats: ReuseStats = field(default_factory=ReuseStats)
    _last: OrderedDict[str | None, tuple[object, np.ndarray, ContextState]] = field(
        default_factory=OrderedDict, init=False, repr=False)  # document -> (backend, ids, state)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def encode(self, backend, ids: np.ndarray, document: str | None = None) -> tuple[ContextState, int]:
        """(the state of context ids (1, T), how many of its tokens came from a cached context):
        the document's last one, else the most recent one of any document."""
        flat = np.asarray(ids[0])
        last, keep = self._match(backend, flat, document)
        if keep == len(flat):
            self.stats.same += 1
            self.stats.reused_tokens += keep
            self._remember(document, (backend, last[1], last[2]))
            return last[2], keep
        if keep:
            state = backend.extend_context(ids[:, keep:], last[2], keep)
            self.stats.extended += 1
        else:
            state = backend.encode_context(ids)
            self.stats.full += 1
        self.stats.reused_tokens += keep
        self.stats.encoded_tokens += len(flat) - keep
        self._remember(document, (backend, flat.copy(), state))
        return state, keep

    def reusable(self, backend, ids: np.ndarray, document: str | None = None) -> int:
        """How many of context ids' (1, T) tokens `encode` would take from a cache (T: all, the same
        context again), without encoding: what the engine weighs when it sizes the windows."""
        return self._match(backend, np.asarray(ids[0]), document)[1]

    def _match(self, backend, flat: np.ndarray, document: str | None) -> tuple[tuple | None, int]:
        """(the cached context to continue, tokens kept from it): all of them for the same ids,
        else at most all but the last (its logits start the span), and 0 below min_keep."""
        with self._lock:
            last = self._last.get(document) or (next(reversed(self._last.values())) if self._last else None)
        if last is None or last[0] is not backend or not extends(backend):
            return last, 0
        keep = common_prefix(last[1], flat)
        if keep == len(flat) == len(last[1]):
            return last, keep
        keep = min(keep, len(flat) - 1)
        return last, keep if keep >= self.min_keep else 0

    def _remember(self, document: str | None, entry: tuple[object, np.ndarray, ContextState]) -> None:
        with self._lock:
            self._last[document] = entry
            self._last.move_to_end(document)
            while len(self._last) > self.max_documents:
                self._last.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._last.clear()
