"""Typed-ahead reuse: the LRU of suggestions keyed by the text around the cursor."""

from __future__ import annotations

from completion.cache import CompletionCache


def _type(text: str, offset: int, typed: str) -> tuple[str, int]:
    return text[:offset] + typed + text[offset:], offset + len(typed)


def test_typing_the_start_of_a_suggestion_serves_the_rest():
    cache = CompletionCache()
    text = "def f(xs):\n    return \n\nprint(f([1]))\n"
    offset = text.index("return ") + len("return ")
    cache.put(text, offset, "sorted(xs)[0]")
    assert cache.get(text, offset) == "sorted(xs)[0]"
    for typed, rest in [("s", "orted(xs)[0]"), ("sorted(", "xs)[0]"), ("sorted(xs)[", "0]")]:
        assert cache.get(*_type(text, offset, typed)) == rest
    assert cache.get(*_type(text, offset, "sorted(xs)[0]")) is None  # all typed: nothing left to suggest


def test_diverging_or_changed_suffix_misses():
    cache = CompletionCache()
    text = "x = \ny = 2\n"
    cache.put(text, 4, "compute(1)")
    assert cache.get(*_type(text, 4, "cx")) is None
    changed = "x = \ny = 3\n"
    assert cache.get(changed, 4) is None
    assert cache.get(text, 3) is None
    assert cache.hits == 0 and cache.misses == 3


def test_settings_and_language_are_part_of_the_key():
    cache = CompletionCache()
    cache.put("a = ", 4, "1", salt="python|steps=1")
    assert cache.get("a = ", 4, salt="python|steps=1") == "1"
    assert cache.get("a = ", 4, salt="python|steps=8") is None


def test_bounded_lru():
    cache = CompletionCache(max_keys=10)
    cache.put("a = ", 4, "12345")  # 5 keys
    cache.put("b = ", 4, "67890")  # 5 more: full
    assert cache.get("a = ", 4) == "12345"  # touch: a's first key becomes most recent
    cache.put("c = ", 4, "uvwxyz")  # 6 keys: evicts a's other four keys and b's first two
    assert len(cache) == 10
    assert cache.get("a = ", 4) == "12345"
    assert cache.get("a = 1", 5) is None
    assert cache.get("c = ", 4) == "uvwxyz"
    assert cache.get("b = ", 4) is None
    assert cache.get("b = 678", 7) == "90"


def test_empty_suggestion_is_remembered_for_the_exact_cursor_only():
    cache = CompletionCache()
    cache.put("x", 1, "")
    assert cache.get("x", 1) == ""
    assert len(cache) == 1


def test_key_uses_a_bounded_window_of_a_huge_document():
    cache = CompletionCache(prefix_chars=100, suffix_chars=50)
    huge = "z = 0\n" * 2_000_000
    offset = len(huge) // 2
    cache.put(huge, offset, "print(z)")
    edited_far_away = "# edit\n" + huge  # text far from the cursor does not change the key
    assert cache.get(*_type(edited_far_away, offset + 7, "pri")) == "nt(z)"
