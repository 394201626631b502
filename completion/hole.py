"""What kind of hole the cursor is in, and what span lengths and line limit it gets.

The syntax tree decides what text alone cannot: whether the cursor is inside a
comment or a string (a `#` or a quote in the line is not enough), whether the
bracket before it is a real one, whether the block it sits in is empty. Without a
tree (unknown language) the same questions are answered from the lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from completion import languages
from completion.api import CompletionSettings
from completion.context import Context
from completion.mask import SPAN_BUCKETS
from completion.syntax import SyntaxView

OPENERS = "([{"
CLOSERS = ")]}"
# What an editor auto-inserts after the cursor: a line suffix made only of these is not "mid-line".
AUTO_CLOSED = set(")]}>\"'`;:, \t")


class HoleKind(StrEnum):
    MID_LINE = "mid_line"
    END_OF_LINE = "end_of_line"
    EMPTY_LINE = "empty_line"
    EMPTY_BLOCK = "empty_block"
    AFTER_OPEN_BRACKET = "after_open_bracket"
    IN_COMMENT = "in_comment"
    IN_STRING = "in_string"


@dataclass(frozen=True)
class HolePlan:
    kind: HoleKind
    spans: tuple[int, ...]  # candidate span lengths, preferred first; the batch is the longest one wide
    max_lines: int  # lines the completion may have


# kind -> (span lengths when single-line, when multi-line allowed, may be multi-line). A length
# below the batch's width is a row with EOS forced past it: a 4-token candidate beside 16 and 8
# costs a third row, not a graph. HumanEval single-line pass@1 (budget off, 1033 holes) with
# (16, 8) 0.0881, (16, 8, 4) 0.0939; held-out exact match 56 -> 62 of 1000 lines.
_PLANS: dict[HoleKind, tuple[tuple[int, ...], tuple[int, ...], bool]] = {
    HoleKind.IN_COMMENT: ((16,), (16,), False),
    HoleKind.IN_STRING: ((8, 16), (8, 16), False),
    HoleKind.MID_LINE: ((8, 16), (8, 16), False),
    HoleKind.AFTER_OPEN_BRACKET: ((16, 32), (32, 64), True),
    HoleKind.END_OF_LINE: ((16, 8, 4), (16, 32), True),
    HoleKind.EMPTY_LINE: ((16, 8, 4), (32, 64), True),
    HoleKind.EMPTY_BLOCK: ((16, 8, 4), (64, 32), True),
}


def _enclosing(view: SyntaxView, byte: int):
    """Nodes containing the byte position, innermost first."""
    node = view.root.descendant_for_byte_range(byte, byte)
    while node is not None:
        yield node
        node = node.parent


def in_comment(view: SyntaxView, offset: int) -> bool:
    b = view.byte_of(offset)
    for probe in {b, max(0, b - 1)}:
        for node in _enclosing(view, probe):
            if languages.is_comment(node.type) and node.start_byte < b:
                # a line comment ends at the end of its line, so its end counts as inside
                if b < node.end_byte or (b == node.end_byte and view.data[b:b + 1] in (b"", b"\n", b"\r")
                                         and not view.data[node.start_byte:b].startswith(b"/*")):
                    return True
    return False


def in_string(view: SyntaxView, offset: int) -> bool:
    b = view.byte_of(offset)
    for node in _enclosing(view, b):
        if node.type in languages.STRING_CODE_TYPES:
            return False
        if languages.is_string(node.type) and node.start_byte < b < node.end_byte:
            return True
        if node.type == "ERROR":
            break
    return False


def in_brackets(view: SyntaxView, offset: int) -> bool:
    """Whether the cursor is inside (...), [...] or {...}, where lines continue at any indentation;
    also True inside a parse error, where nobody can tell."""
    b = view.byte_of(offset)
    for node in _enclosing(view, b):
        if node.type == "ERROR":
            return True
        if node.start_byte < b < node.end_byte and view.data[node.start_byte:node.start_byte + 1] in (b"(", b"[", b"{"):
            return True
    return False


def _quote_open(line_prefix: str, quotes: str = "\"'`") -> bool:
    """An unescaped quote before the cursor on its line that is not closed again."""
    quote = None
    escaped = False
    for ch in line_prefix:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quote is None and ch in quotes:
            quote = ch
        elif ch == quote:
            quote = None
    return quote is not None


def _line_has_error(view: SyntaxView, ctx: Context) -> bool:
    """The smallest node spanning the cursor's line up to the cursor contains or is an error."""
    b = view.byte_of(ctx.offset)
    node = view.root.descendant_for_byte_range(view.byte_of(ctx.offset - len(ctx.line_prefix)), b)
    return node is not None and (node.has_error or any(n.type == "ERROR" for n in _enclosing(view, b)))


def _last_token_is_opener(view: SyntaxView | None, ctx: Context) -> bool:
    stripped = ctx.line_prefix.rstrip()
    if not stripped or stripped[-1] not in OPENERS:
        return False
    if view is None:
        return True
    b = view.byte_of(ctx.offset - (len(ctx.line_prefix) - len(stripped)) - 1)
    leaf = view.root.descendant_for_byte_range(b, b + 1)
    return leaf is not None and leaf.type in OPENERS


def _neighbour_lines(ctx: Context) -> tuple[str | None, str | None]:
    """The last non-blank line before the cursor's line and the first after it (None at a window end)."""
    before = ctx.prefix_text[: len(ctx.prefix_text) - len(ctx.line_prefix)]
    prev = next((ln for ln in reversed(before.split("\n")) if ln.strip()), None)
    after = ctx.suffix_text[len(ctx.line_suffix):].split("\n")[1:]
    nxt = next((ln for ln in after if ln.strip()), None)
    return prev, nxt


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _code_end(line: str) -> str:
    """The line without a trailing comment (roughly) and whitespace."""
    for marker in (" #", "//"):
        if marker in line and not _quote_open(line[: line.index(marker)]):
            line = line[: line.index(marker)]
    return line.rstrip()


def empty_block(view: SyntaxView | None, ctx: Context, line_based_blocks: bool) -> bool:
    """The cursor is on a blank line that is the whole body of a block: `def f():` / `{` above,
    a dedent / `}` below (tree: the block node around the cursor has no statements)."""
    if view is not None and not line_based_blocks:
        for node in _enclosing(view, view.byte_of(ctx.offset)):
            if node.type in languages.BLOCK_TYPES:
                return not any(not languages.is_comment(c.type) for c in node.named_children)
            if node.type == "ERROR":
                break
    prev, nxt = _neighbour_lines(ctx)
    if prev is None:
        return False
    prev_code = _code_end(prev)
    if prev_code.endswith("{"):
        return nxt is not None and nxt.strip().startswith("}")
    if prev_code.endswith(":") and line_based_blocks:
        return nxt is None or _indent(nxt) <= _indent(prev)
    return False


def classify(ctx: Context, view: SyntaxView | None = None) -> HoleKind:
    """The hole at ctx's cursor; `view` is the syntax tree when the language has one."""
    if view is None:
        if ctx.line_prefix.lstrip().startswith(("#", "//", "/*", "* ")):
            return HoleKind.IN_COMMENT
        if _quote_open(ctx.line_prefix):
            return HoleKind.IN_STRING
    else:
        if in_comment(view, ctx.offset):
            return HoleKind.IN_COMMENT
        if in_string(view, ctx.offset):
            return HoleKind.IN_STRING
        # an unterminated string parses as an ERROR, not a string: then count quotes (not ' in Rust: lifetimes)
        quotes = "\"`" if view.language == "rust" else "\"'`"
        if _line_has_error(view, ctx) and _quote_open(ctx.line_prefix, quotes):
            return HoleKind.IN_STRING
    if any(ch not in AUTO_CLOSED for ch in ctx.line_suffix):
        return HoleKind.MID_LINE
    if not ctx.line_prefix.strip():
        spec = languages.grammar(view.language) if view is not None else None
        line_based = spec is None or not spec.brace_blocks
        return HoleKind.EMPTY_BLOCK if empty_block(view, ctx, line_based) else HoleKind.EMPTY_LINE
    if _last_token_is_opener(view, ctx):
        prev, nxt = _neighbour_lines(ctx)
        if ctx.line_prefix.rstrip().endswith("{") and nxt is not None and nxt.strip().startswith("}"):
            return HoleKind.EMPTY_BLOCK
        return HoleKind.AFTER_OPEN_BRACKET
    return HoleKind.END_OF_LINE


def plan_hole(kind: HoleKind, settings: CompletionSettings) -> HolePlan:
    """Span candidates and line limit: a line of code is ~10 tokens, so 16 covers most lines and 8
    most mid-line fills, and a short 4 keeps the model from padding a short line out; multi-line
    holes (when max_lines allows) get 32-64."""
    single, multi, may_be_multi = _PLANS[kind]
    multi_line = may_be_multi and settings.max_lines > 1
    lines = settings.max_lines if multi_line else 1
    if settings.span_len:
        return HolePlan(kind, (settings.span_len,), lines)
    spans = tuple(s for s in (multi if multi_line else single) if s <= SPAN_BUCKETS[-1])
    return HolePlan(kind, spans or (16,), lines)


def span_length(kind: HoleKind, settings: CompletionSettings) -> int:
    """The preferred span length (the first candidate)."""
    return plan_hole(kind, settings).spans[0]
