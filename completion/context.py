"""Prefix and suffix windows around the cursor, by token budget.

Only a window of characters near the cursor is ever tokenized, so a 10 MB file
costs the same as a small one. Windows are cut at line boundaries; the suffix is
kept generous because the diffusion model sees all of it at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from completion.api import InvalidPosition
from runtime.tokenizer import Tokenizer

CHARS_PER_TOKEN_GUESS = 4  # first guess of the character window; refined by measuring


@dataclass
class Context:
    prefix_text: str  # the text of the window before the cursor
    suffix_text: str  # the text of the window after the cursor
    prefix_ids: list[int]
    suffix_ids: list[int]
    line_prefix: str  # the cursor's line up to the cursor
    line_suffix: str  # the cursor's line after the cursor


def cursor_offset(text: str, line: int, column: int) -> int:
    """Code-point offset of (line, column); InvalidPosition if outside the document."""
    if line < 0 or column < 0:
        raise InvalidPosition(f"negative position (line {line}, column {column})")
    start = 0
    for _ in range(line):
        nl = text.find("\n", start)
        if nl < 0:
            n_lines = text.count("\n") + 1
            raise InvalidPosition(f"line {line} is past the end of the document ({n_lines} lines)")
        start = nl + 1
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    line_len = end - start - (1 if end > start and text[end - 1] == "\r" else 0)
    if column > line_len:
        raise InvalidPosition(f"column {column} is past the end of line {line} ({line_len} characters)")
    return start + column


def _window_before(text: str, offset: int, n_chars: int) -> str:
    """At most n_chars before offset, starting at a line boundary when possible."""
    start = max(0, offset - n_chars)
    if start > 0:
        nl = text.find("\n", start, offset)
        if nl >= 0:
            start = nl + 1
    return text[start:offset]


def _window_after(text: str, offset: int, n_chars: int) -> str:
    """At most n_chars after offset, ending at a line boundary when possible."""
    end = min(len(text), offset + n_chars)
    if end < len(text):
        nl = text.rfind("\n", offset, end)
        if nl >= 0:
            end = nl + 1
    return text[offset:end]


def _fit(text_for: callable, tok: Tokenizer, budget: int, keep_end: bool) -> tuple[str, list[int]]:
    """Grow or shrink the character window until its tokens fit the budget."""
    n_chars = budget * CHARS_PER_TOKEN_GUESS
    for _ in range(4):
        window = text_for(n_chars)
        ids = tok.encode(window)
        if len(ids) <= budget:
            return window, ids
        n_chars = max(1, int(n_chars * budget / len(ids) * 0.95))
    ids = ids[-budget:] if keep_end else ids[:budget]
    return tok.decode(ids), ids


def build_context(text: str, offset: int, tok: Tokenizer, prefix_tokens: int, suffix_tokens: int) -> Context:
    prefix_text, prefix_ids = _fit(lambda n: _window_before(text, offset, n), tok, prefix_tokens, keep_end=True)
    suffix_text, suffix_ids = _fit(lambda n: _window_after(text, offset, n), tok, suffix_tokens, keep_end=False)
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line_end = len(text) if line_end < 0 else line_end
    return Context(prefix_text, suffix_text, prefix_ids, suffix_ids,
                   line_prefix=text[line_start:offset], line_suffix=text[offset:line_end].rstrip("\r"))
