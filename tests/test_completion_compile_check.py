"""CPython's compiler as the judge of a Python candidate in its block (completion/compile_check.py):
golden cases, and on real standard-library code the true line is never refused."""

from __future__ import annotations

import random
import sysconfig
from pathlib import Path

import pytest

from completion.compile_check import BREAKS, COMPILES, NEUTRAL, compile_check, enclosing_defs, top_level_block


def verdicts(doc: str, *candidates: str, **kwargs) -> list[int]:
    """doc marks the cursor with `|`."""
    offset = doc.index("|")
    check = compile_check(doc.replace("|", "", 1), offset, **kwargs)
    return [check(c) for c in candidates]


HEADER_HOLE = "import os\n\ndef f(xs):\n    total = 0\n|\n        total += x\n    return total\n\nprint(f([1]))\n"
BROKEN_HEADER_HOLE = "def f(xs):\n    total = 0\n|\n        total += x\n    print(total)\n    y = [1,\n"
STATEMENT_HOLE = "def f(xs):\n    total = 0\n|\n    return total\n"


@pytest.mark.parametrize("doc, candidate, verdict", [
    # the emptied line headed the deeper lines: only a header compiles, a broken line is worse
    (HEADER_HOLE, "    for x in xs:", COMPILES),
    (HEADER_HOLE, "    if x:::", BREAKS),
    # a neutral header there compiles the block, so the line is a header that compiles: not these
    (HEADER_HOLE, "    x = 1", BREAKS),
    (HEADER_HOLE, "    try:", BREAKS),  # no handler below the body
    (HEADER_HOLE, "    # loop", NEUTRAL),
    # ... also when the function is broken further down (mid-edit): they fail before that break
    (BROKEN_HEADER_HOLE, "    try:", BREAKS),
    (BROKEN_HEADER_HOLE, "    x = 1", BREAKS),
    (BROKEN_HEADER_HOLE, "    for x in xs:", NEUTRAL),
    # a complete function: what CPython refuses here is dropped
    (STATEMENT_HOLE, "    total += 1", COMPILES),
    (STATEMENT_HOLE, "    else:", BREAKS),
    (STATEMENT_HOLE, "    break", BREAKS),
    (STATEMENT_HOLE, "        y = 2", BREAKS),  # unexpected indent
    (STATEMENT_HOLE, "  y = 3", BREAKS),  # unindent matching no level
    (STATEMENT_HOLE, "    try:", BREAKS),  # no handler, even with a body given
    (STATEMENT_HOLE, "    for x in xs:", NEUTRAL),  # a header whose body the user may write next
    (STATEMENT_HOLE, "", NEUTRAL),
    # inside a loop, inside a function
    ("def f(a):\n    for i in a:\n        |\n    return 1\n", "break", COMPILES),
    ("def f(a):\n    for i in a:\n        |\n    return 1\n", "else:", BREAKS),
    # broken further down (mid-edit): a sound line is not judged, a broken one is worse
    ("def f(a):\n    b = 1\n    |\n    c = [1,\n", "x = 2", NEUTRAL),
    ("def f(a):\n    b = 1\n    |\n    c = [1,\n", "else:", BREAKS),
    # broken above the cursor: nothing below can be told, unless the candidate mends it
    ("def f(a):\n    b = g(1,\n|\n", "x = 2", NEUTRAL),
    ("def f(a):\n    b = g(1,\n|\n", "      2)", COMPILES),
    # mid-line: the rest of the line follows the insertion
    ("def f(a):\n    return |a\n", "1 + ", COMPILES),
    ("def f(a):\n    return |a\n", "1 +* ", BREAKS),
    # a decorator is judged by its expression when a def or class follows it, else not judged
    ("def f():\n    pass\n|\ndef g():\n    pass\n", "@cache", COMPILES),
    ("def f():\n    pass\n|\ndef g():\n    pass\n", "@cache(", BREAKS),
    ("class C:\n    x = 1\n    |\n    def g(self):\n        pass\n", "@property", COMPILES),
    ("def f():\n    pass\n|\nx = 1\n", "@cache", NEUTRAL),
    # a comment always compiles and says nothing
    (STATEMENT_HOLE, "    # total", NEUTRAL),
    # inside a def's parameter list, and in the body under a signature of several lines
    ("def f(\n    a=g(\n        1,\n|\n    ),\n) -> None:\n    return a\n", "    ),", BREAKS),
    ("def f(\n    a=g(\n        1,\n|\n    ),\n) -> None:\n    return a\n", "        2,", COMPILES),
    ("def f(\n    a,\n) -> None:\n    b = 1\n|\n    return a\n", "    else:", BREAKS),
    # several lines at once
    (STATEMENT_HOLE, "    for x in xs:\n        total += x", COMPILES),
])
def test_golden_verdicts(doc, candidate, verdict):
    assert verdicts(doc, candidate) == [verdict]


def test_the_block_is_the_top_level_statement_around_the_cursor():
    doc = "x = 1\n\n@dec\ndef f():\n    if a:\n        pass\nelse_ = 2\nclass C:\n    y = (\n1)\n"
    offset = doc.index("pass")
    start, end = top_level_block(doc, offset)
    assert doc[start:end] == "def f():\n    if a:\n        pass\n"
    # a column-0 `else`, `except` or closing bracket continues the statement above it
    doc2 = "if a:\n    b = 1\nelse:\n    c = 2\n)\nd = 3\n"
    start, end = top_level_block(doc2, doc2.index("b = 1"))
    assert doc2[start:end] == "if a:\n    b = 1\nelse:\n    c = 2\n)\n"


def test_a_method_of_a_large_class_is_compiled_on_its_own():
    methods = "".join(f"    def m{i}(self):\n        return {i}\n\n" for i in range(800))
    doc = "class C:\n" + methods + "    def g(self, xs):\n        n = 0\n|\n        return n\n" + methods
    offset, clean = doc.index("|"), doc.replace("|", "")
    assert top_level_block(clean, offset) is None  # the class is too big to compile per candidate
    start, end, _level = enclosing_defs(clean, offset)[-1]
    assert clean[start:end].startswith("    def g(self, xs):") and clean[start:end].endswith("return n\n")
    assert verdicts(doc, "        n += 1", "        else:", "        if n:") == [COMPILES, BREAKS, NEUTRAL]


def test_too_big_or_unreadable_is_not_judged():
    huge = "def f():\n" + "    x = 1\n" * 3000 + "|\n    return x\n"
    assert verdicts(huge, "    else:", "    y = 2") == [NEUTRAL, NEUTRAL]
    assert verdicts("def f():\n    a = '\0'\n|\n", "    else:") == [NEUTRAL]  # a null byte: compile() refuses the text


def test_compiling_prints_no_warning(capsys):
    assert verdicts("def f():\n    |\n", "return '\\d'") == [COMPILES]  # an invalid escape warns in CPython
    assert capsys.readouterr().err == ""


def _stdlib_lines(n: int, seed: int = 7) -> list[tuple[str, int, str]]:
    """(document with one line emptied, offset of that line, the line) from standard-library modules."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    files = [lib / name for name in ("textwrap.py", "ast.py", "argparse.py", "dataclasses.py", "json/decoder.py")]
    rng = random.Random(seed)
    out = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        rows = [i for i, line in enumerate(lines) if line.strip()]
        for i in rng.sample(rows, n // len(files)):
            offset = sum(len(line) + 1 for line in lines[:i])
            out.append(("\n".join(lines[:i] + [""] + lines[i + 1:]), offset, lines[i]))
    return out


def test_the_true_line_of_real_code_is_never_refused():
    """Soundness on real code: put back the line a standard-library module had, and the verdict
    is COMPILES (or NEUTRAL where the block is too big): never BREAKS."""
    counts = {BREAKS: 0, NEUTRAL: 0, COMPILES: 0}
    for doc, offset, line in _stdlib_lines(200):
        counts[compile_check(doc, offset)(line)] += 1
    assert counts[BREAKS] == 0
    assert counts[COMPILES] >= 150, counts
