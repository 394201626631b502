"""What each candidate is checked against before one is shown: the parse, Python's block rules
and compiler, the names it reads. Built once per request (`candidate_checks`: the cursor's line, the text after
it and whether the block rules apply are worked out there once); the engine ranks by them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from completion import languages
from completion.api import CompletionRequest, CompletionSettings
from completion.blocks import breaks_blocks, leaves_try_open
from completion.compile_check import NEUTRAL, compile_check
from completion.context import Context
from completion.hole import HoleKind, in_brackets
from completion.names import unknown_names
from completion.syntax import SyntaxCache, SyntaxView

log = logging.getLogger("quicksilver.completion")

# Holes whose line the block rules check: a whole line or the end of one (not mid-line fills, comments, strings).
BLOCK_CHECKED_HOLES = (HoleKind.EMPTY_LINE, HoleKind.EMPTY_BLOCK, HoleKind.END_OF_LINE)
BLOCK_LOOKAHEAD_CHARS = 8_000  # enough to reach the next line of code past blank and comment lines


@dataclass(frozen=True)
class CandidateChecks:
    """What the engine asks of each candidate text."""

    keeps_parse: Callable[[str], bool | None] | None  # False drops it (None: not checked)
    reads_unknown: Callable[[str], list[str]]  # names the document never mentions: ranked lower
    leaves_try_open: Callable[[str], bool]  # a `try:` over a body no handler follows: ranked lower
    compiles: Callable[[str], int] = lambda _text: NEUTRAL  # CPython's verdict (completion/compile_check.py)


def candidate_checks(syntax: SyntaxCache, view: SyntaxView | None, request: CompletionRequest, offset: int,
                     ctx: Context, kind: HoleKind, settings: CompletionSettings) -> CandidateChecks:
    text = request.text
    line_prefix = text[text.rfind("\n", 0, offset) + 1:offset]
    after = text[offset:offset + BLOCK_LOOKAHEAD_CHARS]
    blocks = block_rules_apply(view, offset, text, kind)
    return CandidateChecks(
        parse_check(syntax, view, offset, line_prefix, after, blocks) if settings.reject_parse_errors else None,
        names_check(request, ctx) if settings.rank_known_names else lambda _text: [],
        (lambda insert: leaves_try_open(line_prefix, insert, after)) if blocks else lambda _text: False,
        compile_check(text, offset) if settings.reject_parse_errors and settings.compile_python
        and request.language == "python" else lambda _text: NEUTRAL)


def block_rules_apply(view: SyntaxView | None, offset: int, text: str, kind: HoleKind | None) -> bool:
    """Whether completion/blocks.py's rules hold here: an indentation-based language, a hole that
    ends its line, outside brackets and not after a backslash (where lines continue freely)."""
    if view is None:
        return False
    spec = languages.grammar(view.language)
    line_start = text.rfind("\n", 0, offset) + 1
    continued = text[max(0, line_start - 3):line_start].rstrip("\r\n").endswith("\\")
    return (spec is not None and not spec.brace_blocks and kind in BLOCK_CHECKED_HOLES
            and not continued and not in_brackets(view, offset))


def parse_check(syntax: SyntaxCache, view: SyntaxView | None, offset: int, line_prefix: str, after: str,
                check_blocks: bool) -> Callable[[str], bool | None] | None:
    """A function telling whether inserting a text at the cursor keeps the parse no worse, and,
    where the block rules apply, does not put a plain statement before a deeper line
    (completion/blocks.py: tree-sitter does not see that mistake). line_prefix: the cursor line
    before the cursor; after: the document after it."""
    if view is None:
        return None
    parser = syntax.parser(view.language)
    before = view.errors()

    def keeps_parse(insert: str) -> bool | None:
        if check_blocks and breaks_blocks(line_prefix, insert, after):
            return False
        try:
            return view.errors_with_insertion(offset, insert, parser).no_worse_than(
                before, len(insert.encode("utf-8")))
        except Exception as exc:  # unchecked rather than lost
            log.warning("parse check failed for %s: %s", view.language, exc)
            return None

    return keeps_parse


def names_check(request: CompletionRequest, ctx: Context) -> Callable[[str], list[str]]:
    """A function giving the names a candidate reads that the document never mentions
    (completion/names.py); [] where the language is unchecked."""
    return lambda text: unknown_names(text, ctx.line_prefix, request.text, request.language)
