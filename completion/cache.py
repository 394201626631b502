"""Typed-ahead reuse: a bounded LRU of suggestions keyed by the text around the cursor.

When a suggestion C is made with text P before the cursor and S after it, the
cache also files "the rest of C" under every P + C[:i]: while the user types the
start of the suggestion, each keystroke's request finds the remainder without a
model call. Keys hash a fixed number of characters before and after the cursor
(not the token windows, whose start moves as the user types) plus whatever else
changes the answer (language, settings), so a 10 MB file costs the same as a small one.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

PREFIX_CHARS = 1500
SUFFIX_CHARS = 500
MAX_KEYS = 4096  # each suggestion takes one key per character of it


class CompletionCache:
    def __init__(self, max_keys: int = MAX_KEYS, prefix_chars: int = PREFIX_CHARS, suffix_chars: int = SUFFIX_CHARS):
        self.max_keys = max_keys
        self.prefix_chars = prefix_chars
        self.suffix_chars = suffix_chars
        self._entries: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _key(self, before: str, after: str, salt: str) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        for part in (salt, before[-self.prefix_chars:], after[: self.suffix_chars]):
            h.update(part.encode("utf-8", errors="surrogatepass"))
            h.update(b"\x00\xff")  # a separator no UTF-8 text contains
        return h.digest()

    def get(self, text: str, offset: int, salt: str = "") -> str | None:
        """The (rest of the) suggestion for this cursor, or None."""
        key = self._key(text[max(0, offset - self.prefix_chars):offset], text[offset:offset + self.suffix_chars], salt)
        with self._lock:
            rest = self._entries.get(key)
            if rest is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return rest

    def put(self, text: str, offset: int, suggestion: str, salt: str = "") -> None:
        """File the suggestion for this cursor and its remainders for each typed-ahead prefix of it."""
        before = text[max(0, offset - self.prefix_chars - len(suggestion)):offset]
        after = text[offset:offset + self.suffix_chars]
        keys = [(self._key(before + suggestion[:i], after, salt), suggestion[i:])
                for i in range(max(1, len(suggestion)))]
        with self._lock:
            for key, rest in keys:
                self._entries[key] = rest
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
