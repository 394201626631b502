import time

import pytest

from completion.api import InvalidPosition
from completion.context import build_context, cursor_offset


def test_cursor_offset_counts_code_points():
    text = "a😀b\nxy\r\nlast"
    assert cursor_offset(text, 0, 2) == 2
    assert cursor_offset(text, 1, 2) == text.index("\r")
    assert cursor_offset(text, 2, 4) == len(text)


@pytest.mark.parametrize("line,col,msg", [(-1, 0, "negative"), (0, -2, "negative"), (5, 0, "past the end"),
                                          (1, 3, "past the end of line 1")])
def test_cursor_offset_rejects_out_of_range(line, col, msg):
    with pytest.raises(InvalidPosition, match=msg):
        cursor_offset("abc\nxy\r\nz", line, col)


def test_windows_fit_budget_and_cut_at_lines(tokenizer):
    text = "".join(f"value_{i} = compute({i}, name='item{i}')\n" for i in range(2000))
    offset = text.index("value_1000")
    ctx = build_context(text, offset, tokenizer, prefix_tokens=100, suffix_tokens=60)
    assert len(ctx.prefix_ids) <= 100 and len(ctx.suffix_ids) <= 60
    assert ctx.prefix_text.startswith("value_") and text[:offset].endswith(ctx.prefix_text)
    assert text[offset:].startswith(ctx.suffix_text)
    assert ctx.line_prefix == "" and ctx.line_suffix.startswith("value_1000")


def test_huge_document_costs_like_a_small_one(tokenizer):
    small = "x = 1\n" * 100
    huge = "x = 1\n" * 2_000_000  # 12 MB
    t0 = time.perf_counter()
    build_context(small, len(small) // 2, tokenizer, 256, 128)
    t_small = time.perf_counter() - t0
    t0 = time.perf_counter()
    ctx = build_context(huge, len(huge) // 2, tokenizer, 256, 128)
    t_huge = time.perf_counter() - t0
    assert len(ctx.prefix_ids) <= 256
    # the window is bounded: the big file is not tokenized whole (orders of magnitude, not wall-clock limits)
    assert t_huge < 50 * t_small + 0.5


def _view(text, offset, language="python"):
    from completion.syntax import SyntaxCache

    return SyntaxCache().view(text, offset, language, document_id="t")


def test_prefix_starts_at_a_statement_not_inside_one(tokenizer):
    """Token budget alone would start the prefix inside the multi-line call; the tree moves it to the
    next statement of the scope around the cursor."""
    call = "result = compute(\n" + "".join(f"    arg_{i},\n" for i in range(40)) + ")\n"
    text = call + "".join(f"value_{i} = {i}\n" for i in range(20)) + "total = "
    offset = len(text)
    plain = build_context(text, offset, tokenizer, prefix_tokens=150, suffix_tokens=0)
    assert plain.prefix_text.startswith("    arg_")  # a line boundary, but mid-statement
    ctx = build_context(text, offset, tokenizer, 150, 0, view=_view(text, offset))
    assert ctx.prefix_text.startswith("value_0 = 0\n") and len(ctx.prefix_ids) <= 150
    assert ctx.prefix_ids == tokenizer.encode(ctx.prefix_text)


def test_suffix_ends_after_a_whole_statement(tokenizer):
    head = "".join(f"p_{i} = {i}\n" for i in range(60))  # more than the prefix budget: nothing to share
    text = head + "x = \n" + "".join(f"y_{i} = {i}\n" for i in range(10)) + "z = call(\n" + "    a,\n" * 40 + ")\n"
    offset = len(head) + 4
    plain = build_context(text, offset, tokenizer, 100, 80)
    assert plain.suffix_text.endswith("    a,\n")  # a line boundary, but inside the call
    ctx = build_context(text, offset, tokenizer, 100, 80, view=_view(text, offset))
    assert ctx.suffix_text.endswith("y_9 = 9\n") and len(ctx.suffix_ids) <= 80


def test_a_side_at_the_document_edge_leaves_its_budget_to_the_other(tokenizer):
    lines = [f"value_{i} = compute({i}, {i + 1})\n" for i in range(200)]
    text = "".join(lines)
    middle = build_context(text, len("".join(lines[:100])), tokenizer, 100, 60)
    assert len(middle.prefix_ids) <= 100 and len(middle.suffix_ids) <= 60  # both windows full: no sharing
    assert len(middle.prefix_ids) > 80 and len(middle.suffix_ids) > 40
    near_end = build_context(text, len("".join(lines[:198])), tokenizer, 100, 60)
    assert near_end.suffix_text == "".join(lines[198:])  # the short suffix whole...
    assert 100 < len(near_end.prefix_ids) <= 160 - len(near_end.suffix_ids)  # ...and its spare to the prefix
    near_start = build_context(text, len(lines[0]), tokenizer, 100, 60)
    assert near_start.prefix_text == lines[0]
    assert 60 < len(near_start.suffix_ids) <= 160 - len(near_start.prefix_ids)


def test_syntax_cut_never_costs_more_than_half_the_window(tokenizer):
    body = "def f():\n" + "".join(f"    v{i} = {i}\n" for i in range(200))
    offset = len(body)
    ctx = build_context(body, offset, tokenizer, 100, 40, view=_view(body, offset))
    plain = build_context(body, offset, tokenizer, 100, 40)
    assert len(ctx.prefix_text) >= len(plain.prefix_text) // 2
    assert ctx.offset == offset and ctx.line_prefix == ""
