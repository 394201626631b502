"""Adaptive debounce for automatic requests, from the typing speed (after Tabby's agent).

An automatic request (the editor asking while the user types) waits a moment before the
model runs; a newer request for the document within that time replaces it, so a burst of
keystrokes costs one model run. The wait is `rate x typical interval between edits -
expected latency`, clamped: a fast typist pauses sooner after the last key, and a slow
model should start earlier so the suggestion still appears when the pause begins.
Invoked requests (the user asked) never wait.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class DebounceRules:
    rate: float = 2.0  # how many typical keystroke intervals of silence make a pause
    min_ms: float = 50.0
    max_ms: float = 1000.0
    default_interval_ms: float = 200.0  # until enough edits were seen
    interval_cap_ms: float = 400.0  # longer gaps are pauses, not typing speed
    interval_floor_ms: float = 50.0
    min_samples: int = 10
    window: int = 100
    latency_weight: float = 0.3  # of the newest latency in the running estimate


class Debouncer:
    """Tracks edit intervals and request latency; `delay_ms()` is the wait for the next automatic request."""

    def __init__(self, rules: DebounceRules | None = None, clock: Callable[[], float] = time.monotonic):
        self.rules = rules or DebounceRules()
        self.clock = clock
        self._intervals: deque[float] = deque(maxlen=self.rules.window)
        self._last_edit: float | None = None
        self.expected_latency_ms: float = 0.0

    def on_edit(self) -> None:
        now = self.clock()
        if self._last_edit is not None:
            interval_ms = (now - self._last_edit) * 1000
            if interval_ms < self.rules.interval_cap_ms:
                self._intervals.append(interval_ms)
        self._last_edit = now

    def observe_latency(self, ms: float) -> None:
        w = self.rules.latency_weight
        self.expected_latency_ms = ms if not self.expected_latency_ms else (1 - w) * self.expected_latency_ms + w * ms

    @property
    def typical_interval_ms(self) -> float:
        r = self.rules
        if len(self._intervals) < r.min_samples:
            return r.default_interval_ms
        mean = sum(self._intervals) / len(self._intervals)
        return min(r.interval_cap_ms, max(r.interval_floor_ms, mean))

    def delay_ms(self, fixed_ms: float | None = None) -> float:
        """The adaptive wait, or `fixed_ms` when the user set one (0 turns debouncing off)."""
        if fixed_ms is not None:
            return max(0.0, fixed_ms)
        r = self.rules
        return min(r.max_ms, max(r.min_ms, r.rate * self.typical_interval_ms - self.expected_latency_ms))
