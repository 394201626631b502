"""Golden cases of completion/names.py: which names a completion reads that nothing defines."""

from __future__ import annotations

import pytest

from completion.names import bound_names, unknown_names

DOC = '''from typing import List


def count_nums(arr: List[int]) -> int:
    total = 0
    for value in arr:
        total += value
    return total
'''


@pytest.mark.parametrize(("insert", "line_prefix", "expected"), [
    ("    return total", "", []),  # every name is in the document
    ("    return_int(3, 2)", "", ["return_int"]),  # `return` glued to `_int` by a parallel commit
    ("    return count_num", "", ["count_num"]),  # a known name cut short
    ("    returnions_sum_to", "", ["returnions_sum_to"]),
    ("    return len(arr) + max(arr)", "", []),  # builtins
    ("    result = sorted(arr)", "", []),  # a new name the line assigns
    ("    a, b = arr[0], arr[1]", "", []),  # tuple targets
    ("    for i, x in enumerate(arr):", "", []),  # loop targets
    ("    for i in items:", "", ["items"]),  # ... but what the loop reads must exist
    ("    def helper(x, y=1):", "", []),  # a definition and its parameters
    ("    squares = [n * n for n in arr]", "", []),  # comprehension variables
    ("    print(total, end='')", "", []),  # keyword arguments
    ("    return arr.nonexistent_method()", "", []),  # attributes are the object's business
    ("    if (n := len(arr)) > 2:", "", []),  # the walrus binds
    ("    import os", "", []),
    ("    # mentions undefined_thing", "", []),  # comments and strings are not code
    ("    s = 'undefined_thing'", "", []),
    ("nums(arr)", "    return count_", []),  # the name the cursor is inside is judged whole
    ("num(arr)", "    return count_", ["count_num"]),
    ("    return total(", "", []),  # an unclosed bracket: the regex fallback
    ("    return totl(", "", ["totl"]),
    ("", "", []),
])
def test_unknown_names_in_python(insert, line_prefix, expected):
    assert unknown_names(insert, line_prefix, DOC, "python") == expected


def test_other_languages_are_not_checked():
    assert unknown_names("return_int(3, 2);", "  ", "int main() {}", "c") == []
    assert unknown_names("return_int(3, 2)", "", DOC, "py") == ["return_int"]  # an alias of python


def test_bound_names():
    assert bound_names("x = 1\nfor a, b in pairs:\nwith open(p) as fh:") == {"x", "a", "b", "fh"}
