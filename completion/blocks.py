"""Python lines CPython would refuse though tree-sitter parses them; the engine drops them.

- A plain statement followed by a deeper-indented line (IndentationError: unexpected
  indent): tree-sitter-python reads the stray indent as a nested block without an ERROR
  node. On HumanEval's single-line holes that was 152 of the engine's 686 non-empty
  answers: a block header was needed and a plain statement was written.
- A line that does not compile on its own (`x =`, `current_string.`, `return = []`):
  tree-sitter's error recovery can absorb a short broken line into the error the empty
  hole already had, so the "no worse" parse check lets it through.

The engine then keeps its other candidate, or nothing. Only mistakes that are errors
whatever the user types next are checked: a header (`if x:`) before a line that is not
deeper stays, since the user may be about to write its body.

- A `try:` header over lines already deeper, with no `except` or `finally` after them
  (`leaves_try_open`): CPython refuses the file until the user writes one, which they may
  mean to, so such a line is ranked below the other candidates rather than dropped. On
  HumanEval's single-line holes the engine wrote `try:` 90 times, all where the loop or
  condition heading the body had been emptied.
"""

from __future__ import annotations

import io
import threading
import tokenize
import warnings

_OPEN, _CLOSE = "([{", ")]}"
# catch_warnings swaps the process's warning filters: two threads checking at once could restore each
# other's copies and leave SyntaxWarnings ignored (or shown) for good. One check at a time (each well under 1 ms).
_WARNINGS_LOCK = threading.Lock()


def indent_width(line: str) -> int:
    """Columns of leading whitespace, tabs to multiples of 8 as CPython's tokenizer counts them."""
    expanded = line.expandtabs(8)
    return len(expanded) - len(expanded.lstrip(" "))


def is_code_line(line: str) -> bool:
    """Whether a line holds code: not blank, not only a comment."""
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def next_code_line(text: str) -> str | None:
    """The first line of text that holds code (not blank, not only a comment), or None."""
    return next((line.rstrip("\r") for line in text.split("\n") if is_code_line(line)), None)


def compile_error_line(source: str) -> int | None:
    """0 when CPython compiles the source, else the 1-based line of its first error (-1 if it names
    none); None when compile() refuses the text itself (null bytes, absurd literals)."""
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a SyntaxWarning ("'int' object is not callable") is not an error
            compile(source, "<candidate>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return exc.lineno if exc.lineno else -1
    except (ValueError, OverflowError, MemoryError, RecursionError):
        return None
    return 0


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


# Lines that need more than the line itself to compile: a decorator needs its def, `nonlocal` a binding
# in an outer function, a future import the top of the file, `case` its match and `match` its cases;
# they are not checked.
_NOT_ALONE = ("@", "nonlocal ", "from __future__", "case ")
_NOT_ALONE_HEADERS = ("match",)
# Clauses that continue an earlier statement: compiled after a statement they may follow.
_CONTINUES = {"else": "if 1:\n    pass\n", "elif": "if 1:\n    pass\n", "except": "try:\n    pass\n",
              "finally": "try:\n    pass\n"}


def compiles_alone(line: str) -> bool:
    """Whether one logical line is valid Python by itself: inside a function and a loop (so
    `return`, `yield`, `break` are fine; `async def` when it awaits), with a body if it opens a
    block, after an `if`/`try` if it is an `else`/`except` clause. True when that cannot be told."""
    code = line.strip()
    kind = line_kind(code)
    if kind in ("continues", "unknown") or not code or code.startswith("#") or code.startswith(_NOT_ALONE):
        return True
    words = code.replace(":", " ").replace("(", " ").split()
    first = words[0] if words else ""  # a line of only ":" or "():" has no first word
    if kind == "opens" and first in _NOT_ALONE_HEADERS:
        return True
    source = _CONTINUES.get(first, "") + code + ("\n    pass\n" if kind == "opens" else "\n")
    if first == "try":
        source += "finally:\n    pass\n"
    if first in ("import", "from"):  # `import *` is only allowed at module level
        program = source
    else:
        wrapper = "async def _w():\n" if "await" in code or "async" in code else "def _w():\n"
        program = wrapper + "    for _ in ():\n" + "".join("        " + ln + "\n" for ln in source.splitlines())
    return compile_error_line(program) in (0, None)  # None: compile() refused the text itself, not its syntax


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
    if "\n" not in completion and not compiles_alone(last):
        return True
    nxt = next_code_line(following)
    if nxt is None or indent_width(nxt) <= indent_width(last):
        return False
    return line_kind(last) == "simple"


def leaves_try_open(line_prefix: str, completion: str, after: str) -> bool:
    """Whether the line the completion finishes is a `try:` whose body is already there (the next
    line of code is deeper) and is followed by no `except` or `finally` at the `try`'s own
    indentation. Arguments as for `breaks_blocks`."""
    rest_of_line, _, following = after.partition("\n")
    if rest_of_line.strip():
        return False
    last = (line_prefix + completion).split("\n")[-1]
    code = last.strip()
    if not (code.startswith("try") and code[3:].strip() == ":"):
        return False
    level = indent_width(last)
    lines = [ln for ln in following.split("\n") if is_code_line(ln)]
    if not lines or indent_width(lines[0]) <= level:
        return False  # no body yet: the user may be about to write it, and its handler
    after_body = next((ln for ln in lines if indent_width(ln) <= level), None)
    if after_body is None or indent_width(after_body) < level:
        return True
    return not after_body.strip().startswith(("except", "finally"))
