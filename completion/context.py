"""Prefix and suffix windows around the cursor, by token budget.

Only a window of characters near the cursor is ever tokenized, so a 10 MB file
costs the same as a small one. Windows are cut at line boundaries and, when a
syntax tree is at hand, moved to a statement boundary: the prefix starts where a
statement or definition of the scope around the cursor starts (not halfway
through one), the suffix ends where one ends. The suffix is kept generous because
the diffusion model sees all of it at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from completion.api import InvalidPosition
from completion.syntax import SyntaxView
from runtime.tokenizer import Tokenizer

CHARS_PER_TOKEN_GUESS = 4  # first guess of the character window; refined by measuring
MAX_SYNTAX_TRIM = 0.5  # a syntax boundary may cost at most this share of a window


@dataclass
class Context:
    prefix_text: str  # the text of the window before the cursor
    suffix_text: str  # the text of the window after the cursor
    prefix_ids: list[int]
    suffix_ids: list[int]
    line_prefix: str  # the cursor's line up to the cursor
    line_suffix: str  # the cursor's line after the cursor
    offset: int = 0  # the cursor's code-point offset in the document


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


def _fit(text_for: Callable[[int], str], tok: Tokenizer, budget: int, keep_end: bool) -> tuple[str, list[int]]:
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


def _line_start(text: str, at: int) -> int:
    """at itself if only whitespace precedes it on its line, else the start of the next line."""
    ls = text.rfind("\n", 0, at) + 1
    if not text[ls:at].strip():
        return ls
    nl = text.find("\n", at)
    return len(text) if nl < 0 else nl + 1


def syntax_start(view: SyntaxView, text: str, start: int, offset: int) -> int:
    """Move a prefix window's start forward to the first statement boundary of the scope that
    holds both the start and the cursor; the start is kept when none is near enough."""
    if not (view.contains(start) and view.contains(offset)) or offset - start < 2:
        return start
    b0, b1 = view.byte_of(start), view.byte_of(offset)
    node = view.root.descendant_for_byte_range(b0, max(b0, b1 - 1))
    if node is None or node.start_byte == b0:
        return start  # the window already starts where a node starts
    limit = start + int((offset - start) * MAX_SYNTAX_TRIM)
    for child in node.named_children:
        if child.start_byte >= b0:
            at = _line_start(text, view.offset_of(child.start_byte))
            return at if start <= at <= limit else start
    return start


def syntax_end(view: SyntaxView, text: str, offset: int, end: int) -> int:
    """Move a suffix window's end back to the end of the last whole statement of the scope that
    holds the cursor and the end (then to the end of that line)."""
    if not (view.contains(offset) and view.contains(end)) or end - offset < 2 or end >= len(text):
        return end
    b0, b1 = view.byte_of(offset), view.byte_of(end)
    node = view.root.descendant_for_byte_range(b0, max(b0, b1 - 1))
    if node is None or node.end_byte == b1:
        return end
    floor = end - int((end - offset) * MAX_SYNTAX_TRIM)
    for child in reversed(node.named_children):
        if child.end_byte <= b1:
            at = view.offset_of(child.end_byte)
            nl = text.find("\n", at, end)
            at = end if nl < 0 else nl + 1
            return at if floor <= at <= end else end
    return end


def share_budget(text: str, offset: int, tok: Tokenizer, prefix_tokens: int, suffix_tokens: int
                 ) -> tuple[tuple[str, list[int]], tuple[str, list[int]]]:
    """Prefix and suffix windows within prefix_tokens + suffix_tokens in all: a side that reaches the
    document's edge leaves its unused tokens to the other (near the end of a file, where new code
    is written, the suffix is short and the prefix gets the room: the function's signature and
    docstring instead of a window that starts inside the docstring)."""
    def fit_suffix(budget: int) -> tuple[str, list[int]]:
        return _fit(lambda n: _window_after(text, offset, n), tok, budget, keep_end=False)

    suffix = fit_suffix(suffix_tokens)
    spare = suffix_tokens - len(suffix[1]) if offset + len(suffix[0]) >= len(text) else 0
    prefix = _fit(lambda n: _window_before(text, offset, n), tok, prefix_tokens + spare, keep_end=True)
    spare = prefix_tokens - len(prefix[1]) if len(prefix[0]) >= offset else 0
    if spare > 0 and offset + len(suffix[0]) < len(text):
        suffix = fit_suffix(suffix_tokens + spare)
    return prefix, suffix


def build_context(text: str, offset: int, tok: Tokenizer, prefix_tokens: int, suffix_tokens: int,
                  view: SyntaxView | None = None) -> Context:
    (prefix_text, prefix_ids), (suffix_text, suffix_ids) = share_budget(text, offset, tok, prefix_tokens,
                                                                        suffix_tokens)
    if view is not None:
        start = offset - len(prefix_text)
        if text[start:offset] == prefix_text:  # not a token-truncated window (its text is not the document's)
            moved = syntax_start(view, text, start, offset)
            if moved != start:
                prefix_text = text[moved:offset]
                prefix_ids = tok.encode(prefix_text)
        end = offset + len(suffix_text)
        if text[offset:end] == suffix_text:
            moved = syntax_end(view, text, offset, end)
            if moved != end:
                suffix_text = text[offset:moved]
                suffix_ids = tok.encode(suffix_text)
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line_end = len(text) if line_end < 0 else line_end
    return Context(prefix_text, suffix_text, prefix_ids, suffix_ids,
                   line_prefix=text[line_start:offset], line_suffix=text[offset:line_end].rstrip("\r"), offset=offset)
