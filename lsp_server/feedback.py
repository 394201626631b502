"""Accepted and dismissed suggestions, counted on this machine and reported in the log only.

Every suggestion shown gets an id carried by its item's command (`quicksilver.accept`,
which editors run when the suggestion is accepted); a client may also send
`quicksilver/didDismiss` with that id. Nothing is sent anywhere: the counts exist for the
user's own log and for tuning settings such as the latency budget.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

log = logging.getLogger("quicksilver.feedback")

ACCEPT_COMMAND = "quicksilver.accept"
DISMISS_NOTIFICATION = "quicksilver/didDismiss"
STATS_REQUEST = "quicksilver/stats"


@dataclass
class Shown:
    id: str
    uri: str
    method: str
    chars: int
    at: float
    outcome: str | None = None  # "accepted" or "dismissed"


class Feedback:
    """Remembers the last `keep` suggestions shown so an accept or dismiss can be matched to one."""

    def __init__(self, keep: int = 512, clock=time.monotonic):
        self.keep = keep
        self.clock = clock
        self._shown: OrderedDict[str, Shown] = OrderedDict()
        self._ids = itertools.count(1)
        self.counts = {"shown": 0, "accepted": 0, "dismissed": 0, "unknown": 0, "accepted_chars": 0}

    def shown(self, uri: str, method: str, text: str) -> str:
        suggestion = Shown(id=f"qs-{next(self._ids)}", uri=uri, method=method, chars=len(text), at=self.clock())
        self._shown[suggestion.id] = suggestion
        while len(self._shown) > self.keep:
            self._shown.popitem(last=False)
        self.counts["shown"] += 1
        return suggestion.id

    def record(self, suggestion_id: str, outcome: str) -> Shown | None:
        """Count an "accepted" or "dismissed" event once per suggestion; unknown or repeated ids count as unknown."""
        suggestion = self._shown.get(suggestion_id)
        if suggestion is None or suggestion.outcome is not None:
            self.counts["unknown"] += 1
            log.info("%s for unknown or already settled suggestion %r", outcome, suggestion_id)
            return None
        suggestion.outcome = outcome
        self.counts[outcome] += 1
        if outcome == "accepted":
            self.counts["accepted_chars"] += suggestion.chars
        log.info("suggestion %s %s after %.1f s (%s, %d chars); %s", suggestion.id, outcome,
                 self.clock() - suggestion.at, suggestion.method, suggestion.chars, self.summary())
        return suggestion

    def summary(self) -> str:
        c = self.counts
        settled = c["accepted"] + c["dismissed"]
        rate = f"{c['accepted'] / settled:.0%}" if settled else "n/a"
        return (f"shown {c['shown']}, accepted {c['accepted']} ({c['accepted_chars']} chars), "
                f"dismissed {c['dismissed']}, accept rate {rate}")
