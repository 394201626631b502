"""Golden cases for the Python block rule (completion/blocks.py), checked against CPython itself
(the engine using it: tests/test_completion_engine.py)."""

import textwrap

import pytest

from completion.blocks import breaks_blocks, compiles_alone, indent_width, leaves_try_open, line_kind, next_code_line
from completion.hole import in_brackets
from completion.syntax import SyntaxCache

BODY = "    for a in xs:\n        {hole}\n            total += a\n    return total\n"


@pytest.mark.parametrize("line,kind", [
    ("if x > 0:", "opens"),
    ("else:  # the rest", "opens"),
    ("return x", "simple"),
    ("d = {'a': 1}", "simple"),
    ("x = f(a,", "continues"),
    ("x = [", "continues"),
    ("y = 1 + \\", "continues"),
    ('s = """doc', "continues"),
    ("lst[1:]", "simple"),
    ("a)", "unknown"),  # closes a bracket opened on an earlier line
    ("", "simple"),
])
def test_line_kind(line, kind):
    assert line_kind(line) == kind


@pytest.mark.parametrize("line_prefix,completion,after,breaks", [
    ("        ", "return False", BODY.split("{hole}")[1], True),  # a statement before a deeper line
    ("        ", "if a > 0:", BODY.split("{hole}")[1], False),
    ("        ", "total = max(total,", BODY.split("{hole}")[1], False),  # continued inside a bracket
    ("        if a", " > 0:", BODY.split("{hole}")[1], False),  # the end of a line
    ("        ", "return False", "\n    return total\n", False),  # the next line is shallower
    ("        ", "x = 1", "\n\n        # a comment\n        y = 2\n", False),  # comments and blank lines skipped
    ("        ", "x = 1", "\n\n  # a shallow comment\n            y = 2\n", True),
    ("        ", "x = 1", "\n", False),  # nothing after
    ("    x = ", "1", " + y\n        z = 2\n", False),  # a mid-line fill is not checked
    ("        ", "", BODY.split("{hole}")[1], False),  # nothing to check
    ("\t", "pass", "\n\t\tx = 1\n", True),  # tabs count as CPython counts them
])
def test_breaks_blocks(line_prefix, completion, after, breaks):
    assert breaks_blocks(line_prefix, completion, after) is breaks


@pytest.mark.parametrize("completion", ["return False", "if a > 0:", "total = 0"])
def test_rule_agrees_with_cpython(completion):
    """The rule says `breaks` exactly when CPython refuses the file with an unexpected indent."""
    prefix, after = ("def f(xs):\n    total = 0\n" + BODY).split("{hole}")
    line_prefix = prefix.split("\n")[-1]
    try:
        compile(prefix + completion + after, "<hole>", "exec")
        refused = False
    except IndentationError as exc:
        refused = "unexpected indent" in str(exc)
    assert breaks_blocks(line_prefix, completion, after) is refused


@pytest.mark.parametrize("line", [
    "x =", "current_string.", "return = []", "result = [.join]", "new_index = np =", "return xt.",
    "result.append(current)string:", "if x > :", "for in range(3):",
    ":", "():",  # no first word at all (the new model wrote these; the rule raised IndexError)
])
def test_lines_that_cannot_compile(line):
    assert not compiles_alone(line)
    assert breaks_blocks("        ", line, "\n        y = 2\n")


@pytest.mark.parametrize("line", [
    "return x", "yield x", "await f()", "break", "continue", "else:", "elif x > 1:", "except ValueError as e:",
    "finally:", "try:", "if x:", "async with a as b:", "x = f(a,", "@dec", "match x:", "case [a, b]:",
    "nonlocal total", "from os import *", "x: int = 3  # typed", "if(len(arr) == 0): return []", "",
    "# a comment", "lambda: 0", "global x",
])
def test_lines_that_compile_or_cannot_be_told_alone(line):
    assert compiles_alone(line)


def test_compiling_a_line_warns_nothing(recwarn):
    assert compiles_alone('x = 1 (2)')  # CPython's SyntaxWarning: 'int' object is not callable
    assert not recwarn.list


def test_dictionary_entries_are_inside_brackets():
    """A dict entry line does not compile alone; inside its brackets the rule leaves it alone."""
    doc = "NAMES = {\n    1: 'One',\n    \n    3: 'Three',\n}\n"
    hole = doc.index("    \n    3") + 4
    assert not compiles_alone("    2: 'Two',")
    assert in_brackets(SyntaxCache().view(doc, hole, "python"), hole)


def test_helpers():
    assert indent_width("\t  x") == 10 and indent_width("    x") == 4
    assert next_code_line("\n  # c\n\n   y = 1\nz") == "   y = 1" and next_code_line("\n# only\n") is None


def test_inside_brackets_is_not_checked():
    doc = textwrap.dedent("""\
        result = call(
            first,

                deeper_argument,
        )
        def g():
            x = 1
    """)
    syntax = SyntaxCache()
    inside = doc.index("first,") + len("first,\n")
    outside = doc.index("    x = 1")
    assert in_brackets(syntax.view(doc, inside, "python"), inside)
    assert not in_brackets(syntax.view(doc, outside, "python"), outside)


AFTER_BODY = "\n            total += a\n        return total\n"


@pytest.mark.parametrize("line_prefix,completion,after,left_open", [
    ("        ", "try:", AFTER_BODY, True),  # a body already there, nothing handles it
    ("        ", "try:", "\n            total += a\n        except ValueError:\n            pass\n", False),
    ("        ", "try:", "\n            total += a\n\n        # done\n        finally:\n            pass\n", False),
    ("        ", "try:", "\n            total += a\n", True),  # the file ends after the body
    ("        ", "try:", "\n            total += a\n    return total\n", True),  # a shallower line
    ("        ", "try:", "\n        return total\n", False),  # no body yet: the user may write it
    ("        ", "try:", "\n", False),
    ("        ", "try:  # risky", AFTER_BODY, False),  # not the bare header (a comment): not checked
    ("        t", "ry:", AFTER_BODY, True),  # the end of a line
    ("        ", "for a in xs:", AFTER_BODY, False),
    ("        ", "try_it()", AFTER_BODY, False),
    ("    x = ", "try:", " y\n", False),  # a mid-line fill is not checked
])
def test_leaves_try_open(line_prefix, completion, after, left_open):
    assert leaves_try_open(line_prefix, completion, after) is left_open


HANDLED = "\n            total += a\n        {clause}:\n            pass\n"


@pytest.mark.parametrize("after", [AFTER_BODY, HANDLED.format(clause="except ValueError"),
                                   HANDLED.format(clause="finally")])
def test_try_rule_agrees_with_cpython(after):
    """`leaves_try_open` exactly when CPython wants an `except` or `finally` block."""
    prefix = "def f(xs):\n    for a in xs:\n        "
    try:
        compile(prefix + "try:" + after, "<hole>", "exec")
        refused = False
    except SyntaxError as exc:
        refused = "except" in str(exc)
    assert leaves_try_open("        ", "try:", after) is refused


def test_compile_checks_from_many_threads_leave_the_warning_filters_alone():
    """The server may check candidates on several threads; catch_warnings swaps the process's
    filters, so unguarded checks could restore each other's copies (and leave warnings ignored)."""
    import sys
    import threading
    import warnings

    from completion.blocks import compile_error_line

    source = "x = 1\nx(2)\ny = '\\d'\n"  # SyntaxWarning ('int' is not callable), invalid escape
    before = list(warnings.filters)
    errors: list[int | None] = []

    def check() -> None:
        for _ in range(1000):
            errors.append(compile_error_line(source))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show at once
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            expected = list(warnings.filters)
            threads = [threading.Thread(target=check) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert warnings.filters == expected
    finally:
        sys.setswitchinterval(interval)
    assert warnings.filters == before
    assert errors == [0] * 4000
    assert [w for w in caught if "candidate" in str(w.filename)] == []
