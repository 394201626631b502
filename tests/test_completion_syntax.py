"""Incremental parsing per document, window parsing of huge files, and the language registry."""

from __future__ import annotations

import random

import pytest

from completion import languages
from completion.syntax import SyntaxCache, edit_between, error_stats, keeps_parse, parse, window_bounds

SNIPPETS = {
    "python": "def f(x):\n    return x + 1\n",
    "javascript": "function f(x) { return x + 1; }\n",
    "javascriptreact": "const A = () => <div>{x}</div>;\n",
    "typescript": "function f(x: number): number { return x + 1; }\n",
    "typescriptreact": "const A = (p: P) => <div>{p.x}</div>;\n",
    "rust": "fn f(x: i32) -> i32 { x + 1 }\n",
    "go": "package main\n\nfunc f(x int) int { return x + 1 }\n",
    "c": "int f(int x) { return x + 1; }\n",
    "cpp": "template <typename T> T f(T x) { return x + 1; }\n",
    "java": "class A { int f(int x) { return x + 1; } }\n",
}


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_every_listed_language_parses_cleanly(language):
    tree = parse(SNIPPETS[language], language)
    assert tree is not None, f"no grammar for {language}"
    assert not tree.root_node.has_error, str(tree.root_node)


def test_unknown_languages_have_no_tree():
    assert parse("anything", "markdown") is None
    assert SyntaxCache().view("x", 0, "plaintext", "doc") is None
    assert languages.canonical("typescriptreact") == "tsx" and languages.canonical("javascriptreact") == "javascript"


def test_edit_between_describes_one_contiguous_edit():
    old, new = b"abc\ndef\nghi", b"abc\ndXYef\nghi"
    e = edit_between(old, new)
    assert (e["start_byte"], e["old_end_byte"], e["new_end_byte"]) == (5, 5, 7)
    assert e["start_point"] == (1, 1) and e["new_end_point"] == (1, 3)
    assert edit_between(old, old) is None
    # multi-byte characters: the edit never starts or ends inside one
    e = edit_between("aé b".encode(), "aè b".encode())
    assert e["start_byte"] == 1 and e["old_end_byte"] == 3 and e["new_end_byte"] == 3


def _random_edit(text: str, rng: random.Random) -> str:
    i = rng.randrange(len(text) + 1)
    j = min(len(text), i + rng.choice([0, 0, 1, 3, 12]))
    insert = rng.choice(["", "x", "(", ")", "\n    ", "é😀", "return 1\n", "def g():\n    pass\n", ":"])
    return text[:i] + insert + text[j:]


@pytest.mark.parametrize("language,seed", [("python", 0), ("c", 1), ("typescriptreact", 2), ("rust", 3)])
def test_incremental_parse_matches_a_fresh_parse(language, seed):
    """The per-document tree after many random edits (typing, deleting, pasting, non-ASCII)
    is the tree a fresh parse gives."""
    rng = random.Random(seed)
    cache = SyntaxCache()
    text = SNIPPETS[language] * 20
    for _ in range(60):
        text = _random_edit(text, rng)
        view = cache.view(text, len(text) // 2, language, document_id="doc")
        assert not view.windowed and view.text == text
        assert str(view.root) == str(parse(text, language).root_node)
    assert cache.stats["full"] == 1 and cache.stats["incremental"] + cache.stats["unchanged"] == 59


def test_documents_are_lru_bounded_and_forgettable():
    cache = SyntaxCache(max_documents=2)
    for doc in ("a", "b", "c"):
        cache.view("x = 1\n", 0, "python", document_id=doc)
    cache.view("x = 1\n", 0, "python", document_id="a")  # evicted: parsed from scratch again
    assert cache.stats["full"] == 4
    cache.view("x = 2\n", 0, "python", document_id="a")
    assert cache.stats["incremental"] == 1
    cache.forget("a")
    cache.view("x = 3\n", 0, "python", document_id="a")
    assert cache.stats["full"] == 5


def test_huge_document_parses_only_a_window():
    """A 10 MB file is never parsed whole: a window around the cursor, starting at an unindented line."""
    body = "".join(f"def f{i}(x):\n    y = x + {i}\n    return y\n\n" for i in range(220_000))
    assert len(body) > 10_000_000
    cache = SyntaxCache()
    offset = body.index("def f150000(")
    view = cache.view(body, offset + 20, "python", document_id="huge")
    assert view.windowed and len(view.text) <= 3 * cache.window_chars
    assert view.base <= offset + 20 <= view.base + len(view.text)
    assert body[view.base] == "d" and (view.base == 0 or body[view.base - 1] == "\n")
    assert not view.root.has_error
    assert cache.stats == {"full": 0, "incremental": 0, "unchanged": 0, "window": 1}
    node = view.root.descendant_for_byte_range(view.byte_of(offset), view.byte_of(offset) + 3)
    assert view.offset_of(node.start_byte) == offset  # offsets map back to the document


def test_window_bounds_prefer_unindented_lines():
    text = ("def g():\n" + "    indented()\n" * 8) * 40
    offset = len(text) // 2
    start, end = window_bounds(text, offset, chars=200)
    assert start <= offset - 200 and text[start:start + 8] == "def g():" and text[start - 1] == "\n"
    assert text[end - 1] == "\n" and offset + 200 <= end
    flat = "    x()\n" * 200  # no unindented line near: a line start will do
    start, _ = window_bounds(flat, 1000, chars=200)
    assert start == 800 and flat[start - 1] == "\n"


def test_byte_offsets_with_non_ascii_text():
    text = "s = 'é😀'\nt = s\n"
    view = SyntaxCache().view(text, text.index("t ="), "python", document_id="u")
    b = view.byte_of(text.index("t ="))
    assert view.data[b:b + 3] == b"t ="
    assert view.offset_of(b) == text.index("t =")


def test_error_stats_and_keeps_parse():
    assert error_stats(parse("x = (1 +\ny = 2\n", "python")).count >= 1
    assert error_stats(parse("x = 1\n", "python")).count == 0
    assert keeps_parse("x = \n", 4, "1", "python") is True
    assert keeps_parse("x = 1\ny = 2\n", 6, "((", "python") is False
    assert keeps_parse("text", 0, "((", "plaintext") is None


def test_insertion_check_matches_a_fresh_parse():
    text = "def f(x):\n    y = 1\n    return y\n"
    cache = SyntaxCache()
    view = cache.view(text, 20, "python", document_id="d")
    parser = cache.parser("python")
    for insert in ["z = 2\n    ", "((", "'", "pass"]:
        fresh = error_stats(parse(text[:20] + insert + text[20:], "python"))
        assert view.errors_with_insertion(20, insert, parser) == fresh
    assert view.errors().count == 0  # the view's own tree was not touched
