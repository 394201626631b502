"""Post-processing rules, each a small pure function (golden cases in tests).

A rule takes the raw completion and what it needs of the context and returns the
cleaned text; "" means "no suggestion". `postprocess` chains them in order.
"""

from __future__ import annotations

from completion.context import Context


def limit_lines(text: str, max_lines: int) -> str:
    """Keep at most max_lines lines; a leading newline (completion on the next line
    after an end-of-line cursor) does not count as a line of its own."""
    lead = ""
    if text.startswith("\n"):
        lead, text = "\n", text[1:]
    lines = text.split("\n")
    return lead + "\n".join(lines[:max_lines])


def drop_suffix_overlap(text: str, line_suffix: str) -> str:
    """Drop the end of a completion that repeats what already follows the cursor on its
    line (auto-closed brackets and quotes): `foo(a` + `)` already in the editor."""
    tail = line_suffix.strip()
    if not tail:
        return text
    first_nl = text.find("\n")
    line, rest = (text, "") if first_nl < 0 else (text[:first_nl], text[first_nl:])
    stripped = line.rstrip()
    for k in range(len(tail), 0, -1):
        if stripped.endswith(tail[:k]) and (k == len(tail) or not rest):
            return stripped[: len(stripped) - k] + rest
    return text


def strip_trailing_whitespace(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n") if text.strip() else ""


def postprocess(text: str, ctx: Context, max_lines: int) -> str:
    text = limit_lines(text, max_lines)
    text = drop_suffix_overlap(text, ctx.line_suffix)
    return strip_trailing_whitespace(text)
