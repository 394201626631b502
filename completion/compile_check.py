"""CPython's own compiler as the judge of a Python candidate, in the block around the cursor.

tree-sitter's error recovery accepts lines CPython refuses because of what surrounds them: an
`else:` with no `if` above it, `break` outside a loop, a header whose body is not indented
under it, a `try:` with no handler, a line dedented to a level no block opened. Compiling
the enclosing def (or top-level statement) with the candidate inserted catches all of these,
and costs ~5 us a line (a 40-line function: 0.2 ms), so each candidate is compiled in its
real surroundings.

The verdict is relative to the text without the candidate, since the user's code is often
mid-edit and broken already:

- COMPILES (2): the block compiles with the candidate in it. In a complete file the true
  line always does, so these candidates rank first.
- NEUTRAL (1): nothing learnt: too big, broken before and after at the same place, a
  comment, a triple quote (it turns the lines around it into string or code), or a block
  header whose body is not written yet (it compiles with a `pass` body: the user may be
  about to write the body).
- BREAKS (0): the block compiled, or failed further down, and the candidate makes it fail
  earlier; the engine drops it as it drops a candidate that breaks the tree-sitter parse.
"""

from __future__ import annotations

import re

from completion.blocks import compile_error_line, indent_width, is_code_line
from completion.indent import leading

BREAKS, NEUTRAL, COMPILES = 0, 1, 2
MAX_BLOCK_CHARS = 16_000  # ~400 lines: ~2 ms a compile; larger blocks are not checked
# Column-0 lines that continue a statement: a clause, a closing bracket, or a quote (a string's closing
# line: a statement rarely opens with a string below the module docstring).
_CONTINUATION = re.compile(r"(else|elif|except|finally)\b|[)\]}'\"]")
_DEF = re.compile(r"[ \t]*(async[ \t]+)?def[ \t]")
_DECORATED = re.compile(r"(async\s+def|def|class)\b|@")  # what a decorator line may stand above


def _starts_statement(line: str) -> bool:
    """A line at column 0 that begins a top-level statement (not a clause or bracket continuing one)."""
    return bool(line) and line[0] not in " \t\r\n#" and not _CONTINUATION.match(line)


def _quotes(text: str, start: int, end: int) -> int:
    """Triple quotes in text[start:end]: an odd count before a line puts it inside a string."""
    return text.count('"""', start, end) + text.count("'''", start, end)


def top_level_block(text: str, offset: int, max_chars: int = MAX_BLOCK_CHARS) -> tuple[int, int] | None:
    """(start, end) offsets of the top-level statement around offset: from the nearest column-0
    statement start at or above the cursor line to the next one below it (or the ends of the
    text), skipping column-0 lines inside triple-quoted strings (a module docstring's lines);
    None when it spans more than max_chars."""
    start = text.rfind("\n", 0, offset) + 1
    inside = _quotes(text, 0, start) % 2
    while start > 0 and (inside or not _starts_statement(text[start:start + 8])):
        if offset - start > max_chars:
            return None
        above = text.rfind("\n", 0, start - 1) + 1
        inside ^= _quotes(text, above, start) % 2
        start = above
    end = text.find("\n", offset)
    while end != -1 and (_quotes(text, start, end) % 2 or not _starts_statement(text[end + 1:end + 9])):
        if end - start > max_chars:
            return None
        end = text.find("\n", end + 1)
    end = len(text) if end == -1 else end + 1
    return (start, end) if end - start <= max_chars else None


def enclosing_defs(text: str, offset: int, max_chars: int = MAX_BLOCK_CHARS) -> list[tuple[int, int, int]]:
    """(start, end, indentation) of each `def` whose body holds offset, innermost first, found by
    indentation within max_chars of the cursor (lines inside triple-quoted strings do not count);
    only those of at most max_chars."""
    lo = text.rfind("\n", 0, max(0, offset - max_chars)) + 1
    hi = text.find("\n", offset + max_chars)
    lines = text[lo:len(text) if hi == -1 else hi].split("\n")
    starts, code = [lo], []
    inside = _quotes(text, 0, lo) % 2
    for line in lines:
        # a line that opens with a closing bracket continues the one above (a def's `) -> None:`): no level
        code.append(not inside and is_code_line(line) and line.lstrip()[:1] not in ")]}")
        inside ^= _quotes(line, 0, len(line)) % 2
        starts.append(starts[-1] + len(line) + 1)
    row = max(r for r in range(len(lines)) if starts[r] <= offset)
    found = []
    floor = None  # the least indentation of a code line between the one looked at and the cursor's
    for r in range(row - 1, -1, -1):
        if not code[r]:
            continue
        level = indent_width(lines[r])
        if _DEF.match(lines[r]) and (floor is None or floor > level):  # the cursor is inside its body
            end = next((e for e in range(row + 1, len(lines)) if code[e] and indent_width(lines[e]) <= level), None)
            block = (starts[r], starts[end] if end is not None else len(text), level)
            if (end is None and hi != -1) or block[1] - block[0] > max_chars:
                break  # runs past the window, or too big: so is every def around it
            found.append(block)
        floor = level if floor is None else min(floor, level)
        if floor == 0:
            break  # a column-0 line lies between: no def further up holds the cursor
    return found


def _body_indent(line: str) -> str:
    lead = leading(line)
    return lead + ("\t" if lead.startswith("\t") else "    ")


class _Block:
    """The text around the cursor that candidates are compiled in, and how it compiles without one."""

    def __init__(self, text: str, offset: int, start: int, end: int):
        wrapper = "if 1:\n" if text[start:start + 1] in (" ", "\t") else ""  # an indented def compiles under it
        self.head, self.tail = wrapper + text[start:offset], text[offset:end]
        self.cursor_line = self.head.count("\n") + 1
        self.before = compile_error_line(self.head + self.tail)


class CompileCheck:
    """Callable: the verdict on inserting a text at the cursor (memoized by text)."""

    def __init__(self, text: str, offset: int, max_chars: int = MAX_BLOCK_CHARS):
        self.text, self.offset, self.max_chars = text, offset, max_chars
        self.defs = enclosing_defs(text, offset, max_chars)
        self.blocks: dict[int, _Block | None] = {}  # by index into defs (-1: the top-level statement), when asked
        self.line_start = text.rfind("\n", 0, offset) + 1
        self.eol = text.find("\n", offset)  # -1: the cursor is on the last line
        self.rest_of_line = text[offset:len(text) if self.eol == -1 else self.eol]
        self.memo: dict[str, int] = {}
        self.blank_line = not (text[self.line_start:offset] + self.rest_of_line).strip()
        self.header_memo: dict[str, int | None] = {}  # by indentation: see before_header

    def block_for(self, indent: int) -> _Block | None:
        """The block a line indented by `indent` is compiled in: the outermost def it lies in."""
        key = next((i for i in range(len(self.defs) - 1, -1, -1) if self.defs[i][2] < indent), -1)
        if key not in self.blocks:
            span = self.defs[key][:2] if key >= 0 else top_level_block(self.text, self.offset, self.max_chars)
            self.blocks[key] = None if span is None else _Block(self.text, self.offset, *span)
        return self.blocks[key]

    def __call__(self, insert: str) -> int:
        if insert not in self.memo:
            self.memo[insert] = self.verdict(insert)
        return self.memo[insert]

    def decorator_verdict(self, lines: list[str]) -> int:
        """A decorator line belongs to the def or class under it, which may lie past the block: judged
        by its own expression when one follows at its indentation, else not judged."""
        if len(lines) != 1:
            return NEUTRAL
        following = [] if self.eol == -1 else self.text[self.eol + 1:self.eol + 1 + 4096].split("\n")
        below = next((line for line in following if is_code_line(line)), None)
        if below is None or indent_width(below) != indent_width(lines[0]) or not _DECORATED.match(below.lstrip()):
            return NEUTRAL
        return COMPILES if compile_error_line(lines[0].strip() + "\ndef _():\n    pass\n") == 0 else BREAKS

    def verdict(self, insert: str) -> int:
        if not insert or _quotes(insert, 0, len(insert)) or "nonlocal" in insert:
            return NEUTRAL  # a triple quote makes the lines around it string or code; `nonlocal` needs an outer def
        lines = (self.text[self.line_start:self.offset] + insert).split("\n")
        if not any(is_code_line(line) for line in lines):
            return NEUTRAL  # a comment always compiles, and says nothing
        if insert.lstrip().startswith("@"):
            return self.decorator_verdict(lines)
        block = self.block_for(next((indent_width(ln) for ln in lines if ln.strip()), 0))
        if block is None or block.before in (None, -1):
            return NEUTRAL
        added = insert.count("\n")
        after = compile_error_line(block.head + insert + block.tail)
        if after == 0:
            return COMPILES
        if after is None or after == -1:
            return NEUTRAL
        if lines[-1].rstrip().endswith(":") and not self.rest_of_line.strip():  # a header: give it a body to judge
            padded = compile_error_line(block.head + insert + "\n" + _body_indent(lines[-1]) + "pass" + block.tail)
            if padded == 0:
                return NEUTRAL
            if padded not in (None, -1):
                after, added = padded, added + 1
        before = self.before_header(block, lines[0]) if self.blank_line else block.before
        if before == 0:
            return BREAKS
        if after > block.cursor_line + added:  # below the insertion: back to the lines' numbers without it
            after -= added
        elif after >= block.cursor_line:
            after = block.cursor_line
        return BREAKS if before >= block.cursor_line and after < before else NEUTRAL

    def before_header(self, block: _Block, line: str) -> int | None:
        """How the block compiles with a neutral header (`if 1:`) at the candidate's indentation on
        the cursor's blank line, where that does better than the bare hole. An emptied line above
        deeper lines leaves them orphaned, so the bare hole fails right under the cursor and any
        candidate looks no worse; if a header there makes the block compile, the line must be a
        header that compiles, and a `try:` without a handler or a plain statement (`x = 1`) over
        the body cannot be it. Asked only where the bare hole failed (verdict returns earlier
        when it could not be compiled), so a complete file costs no extra compile."""
        if block.before == 0:
            return 0
        lead = leading(line)
        if lead not in self.header_memo:
            self.header_memo[lead] = compile_error_line(block.head + lead[self.offset - self.line_start:] + "if 1:"
                                                        + block.tail)
        header = self.header_memo[lead]
        if header == 0 or (header not in (None, -1) and header > block.before):
            return header
        return block.before


def compile_check(text: str, offset: int, max_chars: int = MAX_BLOCK_CHARS) -> CompileCheck:
    """The verdict (COMPILES / NEUTRAL / BREAKS) on inserting a text at offset of a Python
    document, as a callable. The block is the outermost def around the cursor that holds the
    inserted line (compiled under `if 1:` when indented: a closure with its `nonlocal` names'
    owner), else the top-level statement; none over max_chars."""
    return CompileCheck(text, offset, max_chars)
