"""Golden cases for the Python block rule (completion/blocks.py), checked against CPython itself
(the engine using it: tests/test_completion_engine.py)."""

import textwrap

import pytest

from completion.blocks import breaks_blocks, indent_width, line_kind, next_code_line
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
