"""Golden cases for each post-processing rule."""

import pytest

from completion.postprocess import drop_suffix_overlap, limit_lines, strip_trailing_whitespace


@pytest.mark.parametrize("text,max_lines,expected", [
    ("return a + b\nprint(x)", 1, "return a + b"),
    ("\n    return a\n    x = 1", 1, "\n    return a"),
    ("a\nb\nc", 2, "a\nb"),
    ("single", 3, "single"),
])
def test_limit_lines(text, max_lines, expected):
    assert limit_lines(text, max_lines) == expected


@pytest.mark.parametrize("text,line_suffix,expected", [
    ("a, b)", ")", "a, b"),  # auto-closed bracket already in the editor
    ("'hello')", "')", "'hello"),  # closing quote + paren
    ("x + 1", ")", "x + 1"),  # nothing repeated
    ("name", "", "name"),
    ("items[0])  ", ")", "items[0]"),
])
def test_drop_suffix_overlap(text, line_suffix, expected):
    assert drop_suffix_overlap(text, line_suffix) == expected


@pytest.mark.parametrize("text,expected", [
    ("return x   ", "return x"),
    ("a  \n  b \n", "a\n  b"),
    ("   \n  ", ""),
])
def test_strip_trailing_whitespace(text, expected):
    assert strip_trailing_whitespace(text) == expected


def test_detect_indent():
    from completion.postprocess import IndentStyle, detect_indent

    assert detect_indent("def f():\n\treturn 1\n") == IndentStyle("\t", 1)
    assert detect_indent("if a:\n  if b:\n    c\n  d\n") == IndentStyle(" ", 2)
    assert detect_indent("class A:\n    def f(self):\n        pass\n") == IndentStyle(" ", 4)
    assert detect_indent("x = 1\ny = 2\n") is None


@pytest.mark.parametrize("line,expected", [
    ("print(x)", 0), ("print(x))", 1), ("print((x)", 1), ("s = ')'", 0), ("s = 'abc", 1), ("a[(b])", 2),
])
def test_line_imbalance(line, expected):
    from completion.postprocess import line_imbalance

    assert line_imbalance(line) == expected
