"""Post-processing rules, each a small pure function (golden cases in tests/golden/).

A rule takes the raw completion and what it needs of the context and returns the
cleaned text; "" means "no suggestion". `postprocess` chains them in order:

    cut at EOS (on token ids, before decoding) -> at most max_lines lines
    -> drop what repeats the rest of the cursor's line (auto-closed brackets, quotes)
    -> drop trailing lines that repeat the next lines -> keep brackets balanced
    -> the file's indentation style -> no trailing whitespace
    -> reject if the parse gets worse (needs a syntax tree: given as a check function)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from completion.context import Context

PAIRS = {")": "(", "]": "[", "}": "{"}
OPEN_TO_CLOSE = {v: k for k, v in PAIRS.items()}
QUOTES = "\"'`"


def cut_at_eos(tokens: list[int], eos: int, mask: int) -> list[int]:
    """The tokens before the first EOS; a draft's first MASK ends it too (nothing after it is decided)."""
    out = []
    for t in tokens:
        if t in (eos, mask):
            break
        out.append(t)
    return out


def limit_lines(text: str, max_lines: int) -> str:
    """Keep at most max_lines lines; a leading newline (completion on the next line
    after an end-of-line cursor) does not count as a line of its own."""
    lead = ""
    if text.startswith("\n"):
        lead, text = "\n", text[1:]
    lines = text.split("\n")
    return lead + "\n".join(lines[:max_lines])


def line_imbalance(line: str) -> int:
    """Unmatched closers + unclosed openers + an unclosed quote, outside strings."""
    stack: list[str] = []
    unmatched = 0
    quote = None
    escaped = False
    for ch in line:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in QUOTES:
            quote = ch
        elif ch in OPEN_TO_CLOSE:
            stack.append(ch)
        elif ch in PAIRS:
            if stack and stack[-1] == PAIRS[ch]:
                stack.pop()
            else:
                unmatched += 1
    return unmatched + len(stack) + (quote is not None)


def drop_suffix_overlap(text: str, line_suffix: str, line_prefix: str = "") -> str:
    """Drop the end of a completion's first line that repeats what already follows the cursor
    (auto-closed brackets and quotes): `foo(a` + `)` already in the editor. Brackets and quotes
    are dropped only when that makes the cursor's line more balanced: in `print(|)`, `len(x)`
    keeps its `)`; other text (`:`, `;`) whenever it repeats."""
    tail = line_suffix.strip()
    if not tail:
        return text
    first_nl = text.find("\n")
    line, rest = (text, "") if first_nl < 0 else (text[:first_nl], text[first_nl:])
    stripped = line.rstrip()
    kept = line_imbalance(line_prefix + stripped + line_suffix)
    for k in range(len(tail), 0, -1):
        overlap = tail[:k]
        if not stripped.endswith(overlap) or (k < len(tail) and rest):
            continue
        dropped = stripped[: len(stripped) - k]
        balance = line_imbalance(line_prefix + dropped + line_suffix)
        structural = any(ch in QUOTES or ch in PAIRS or ch in OPEN_TO_CLOSE for ch in overlap)
        if balance < kept or (balance == kept and not structural):
            return dropped + rest
    return text


def drop_repeated_next_lines(text: str, suffix_text: str, line_suffix: str) -> str:
    """Drop trailing completion lines that repeat the lines after the cursor's line (a closing
    `}` already there, the next statement written again); a completion that is nothing but
    such a repeat becomes ""."""
    after = suffix_text[len(line_suffix):].split("\n")[1:]
    next_lines = [ln.strip() for ln in after if ln.strip()]
    lines = text.split("\n")
    for k in range(min(len(lines), len(next_lines)), 0, -1):
        tail = [ln.strip() for ln in lines[-k:]]
        if all(tail) and tail == next_lines[:k]:
            return "\n".join(lines[:-k]).rstrip()
    return text


def open_brackets(code: str, line_comments: tuple[str, ...] = ("#", "//")) -> list[str]:
    """Brackets opened and not closed in code, outermost first; strings and line comments skipped
    (roughly: quotes do not span lines)."""
    stack: list[str] = []
    for line in code.split("\n"):
        quote = None
        i = 0
        while i < len(line):
            ch = line[i]
            if quote:
                if ch == "\\":
                    i += 1
                elif ch == quote:
                    quote = None
            elif ch in QUOTES:
                quote = ch
            elif any(line.startswith(m, i) for m in line_comments):
                break
            elif ch in OPEN_TO_CLOSE:
                stack.append(ch)
            elif ch in PAIRS and stack and stack[-1] == PAIRS[ch]:
                stack.pop()
            i += 1
    return stack


def _reserved(stack: list[str], line_suffix: str) -> int:
    """How many of the innermost open brackets the rest of the line already closes (auto-closed)."""
    i = len(stack) - 1
    for ch in line_suffix:
        if ch in PAIRS and i >= 0 and stack[i] == PAIRS[ch]:
            i -= 1
        elif ch in PAIRS or ch in OPEN_TO_CLOSE or ch in QUOTES:
            break
    return len(stack) - 1 - i


def balance_brackets(text: str, prefix_text: str, line_suffix: str = "") -> str:
    """Keep brackets balanced: cut the completion at a closer that matches nothing it may close:
    brackets open before the cursor are fair game unless the rest of the line closes them (the
    editor's auto-closed `)`); on a single line that ends a complete-looking expression with
    brackets of its own still open and nothing after the cursor, close them."""
    stack = open_brackets(prefix_text)
    floor = len(stack) if _reserved(stack, line_suffix) else 0
    base = len(stack)
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1:i] != "\\":
                quote = None
            elif ch == "\n":
                quote = None
            continue
        if ch in QUOTES:
            quote = ch
        elif ch in OPEN_TO_CLOSE:
            stack.append(ch)
        elif ch in PAIRS:
            if len(stack) <= floor or stack[-1] != PAIRS[ch]:
                return text[:i].rstrip()
            stack.pop()
            base = min(base, len(stack))
    own = stack[base:]
    ends_cleanly = text.rstrip()[-1:] not in ("", ",", "(", "[", "{", ".", "+", "-", "*", "/", "=", " ")
    if own and "\n" not in text.strip("\n") and not line_suffix.strip() and ends_cleanly and quote is None:
        return text.rstrip() + "".join(OPEN_TO_CLOSE[c] for c in reversed(own))
    return text


@dataclass(frozen=True)
class IndentStyle:
    char: str  # "\t" or " "
    width: int  # spaces per level (1 for tabs)


def detect_indent(sample: str) -> IndentStyle | None:
    """The file's indentation from a sample of it: tabs or spaces (whichever starts more lines),
    and for spaces the most common step between successive indentation levels."""
    tabs = spaces = 0
    steps: Counter[int] = Counter()
    prev = 0
    for line in sample.split("\n"):
        if not line.strip():
            continue
        lead = line[: len(line) - len(line.lstrip(" \t"))]
        if lead.startswith("\t"):
            tabs += 1
        elif lead.startswith(" "):
            spaces += 1
            if len(lead) > prev and len(lead) - prev in (2, 3, 4, 8):
                steps[len(lead) - prev] += 1
        prev = len(lead) if not lead.startswith("\t") else prev
    if tabs > spaces:
        return IndentStyle("\t", 1)
    if spaces == 0:
        return None
    return IndentStyle(" ", steps.most_common(1)[0][0] if steps else 4)


def match_indentation(text: str, style: IndentStyle | None, base_indent: str = "") -> str:
    """Re-indent the completion's lines after the first in the file's style: tabs <-> spaces, and
    a different space width (relative to base_indent, the cursor line's indentation)."""
    if style is None or "\n" not in text:
        return text
    lines = text.split("\n")
    leads = [ln[: len(ln) - len(ln.lstrip(" \t"))] for ln in lines]
    base = len(base_indent.expandtabs(style.width if style.char == " " else 4))
    own_width = 4
    if style.char == " ":
        deltas = [len(ld) - base for ld, ln in zip(leads[1:], lines[1:], strict=True)
                  if ln.strip() and "\t" not in ld and len(ld) > base]
        own_width = math.gcd(*deltas) if deltas else style.width
    out = [lines[0]]
    for lead, line in zip(leads[1:], lines[1:], strict=True):
        body = line[len(lead):]
        if style.char == "\t":
            n = len(lead.expandtabs(4))
            new = "\t" * (n // 4) + " " * (n % 4)
        elif "\t" in lead:
            new = lead.expandtabs(style.width)
        elif own_width not in (style.width, 0) and len(lead) > base and own_width > 1:
            rel = len(lead) - base
            new = " " * (base + rel // own_width * style.width + rel % own_width)
        else:
            new = lead
        out.append(new + body)
    return "\n".join(out)


def strip_trailing_whitespace(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n") if text.strip() else ""


def reject_parse_worse(text: str, keeps_parse: Callable[[str], bool | None]) -> str:
    """"" when inserting the completion adds tree-sitter errors; kept when the language has no
    grammar (keeps_parse returns None)."""
    if not text:
        return text
    return "" if keeps_parse(text) is False else text


def postprocess(text: str, ctx: Context, max_lines: int,
                keeps_parse: Callable[[str], bool | None] | None = None) -> str:
    text = limit_lines(text, max_lines)
    text = drop_suffix_overlap(text, ctx.line_suffix, ctx.line_prefix)
    text = drop_repeated_next_lines(text, ctx.suffix_text, ctx.line_suffix)
    text = balance_brackets(text, ctx.prefix_text, ctx.line_suffix)
    base = ctx.line_prefix[: len(ctx.line_prefix) - len(ctx.line_prefix.lstrip(" \t"))]
    text = match_indentation(text, detect_indent(ctx.prefix_text + ctx.suffix_text), base)
    text = strip_trailing_whitespace(text)
    if keeps_parse is not None:
        text = reject_parse_worse(text, keeps_parse)
    return text
