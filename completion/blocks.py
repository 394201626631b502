"""Indentation structure of Python: a line followed by a deeper-indented one must open a block.

tree-sitter-python reads a stray indent as a nested block without an ERROR node, so the
parse check lets `return False` through in front of an indented body, and CPython then
refuses the whole file (IndentationError: unexpected indent). On HumanEval's single-line
holes that was 152 of the engine's 686 non-empty answers: a block header was needed and a
plain statement was written. This rule rejects such a line; the engine then keeps its
other candidate, or nothing.

Only the one mistake that is an error whatever comes later is checked. A header (`if x:`)
before a line that is not deeper is not rejected: the user may be about to write its body.
"""

from __future__ import annotations

import io
import tokenize

_OPEN, _CLOSE = "([{", ")]}"


def indent_width(line: str) -> int:
    """Columns of leading whitespace, tabs to multiples of 8 as CPython's tokenizer counts them."""
    expanded = line.expandtabs(8)
    return len(expanded) - len(expanded.lstrip(" "))


def next_code_line(text: str) -> str | None:
    """The first line of text that holds code (not blank, not only a comment), or None."""
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return line.rstrip("\r")
    return None


def line_kind(line: str) -> str:
    """"opens" (ends a block header with `:`), "continues" (an open bracket, a backslash or an
    unfinished string carries it onto the next line), "simple", or "unknown" (a bracket closed
    that this line did not open: it continues an earlier line)."""
    code = line.strip()
    if code.endswith("\\"):
        return "continues"
    depth, last = 0, None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.OP:
                depth += tok.string in _OPEN
                depth -= tok.string in _CLOSE
                if depth < 0:
                    return "unknown"
            if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER,
                                tokenize.INDENT, tokenize.DEDENT):
                last = tok
    except (tokenize.TokenError, SyntaxError):  # EOF inside brackets or a triple-quoted string
        return "continues"
    if depth > 0:
        return "continues"
    return "opens" if last is not None and last.type == tokenize.OP and last.string == ":" else "simple"


def breaks_blocks(line_prefix: str, completion: str, after: str) -> bool:
    """Whether the line the completion finishes is a plain statement followed by a deeper line.
    line_prefix: the cursor line before the cursor; after: the document after the cursor (its
    first line must be blank: mid-line fills are not checked). The caller rules out a cursor
    inside brackets, where indentation is free."""
    rest_of_line, _, following = after.partition("\n")
    if rest_of_line.strip() or not completion.strip():
        return False
    last = (line_prefix + completion).split("\n")[-1]
    if not last.strip():
        return False
    nxt = next_code_line(following)
    if nxt is None or indent_width(nxt) <= indent_width(last):
        return False
    return line_kind(last) == "simple"
