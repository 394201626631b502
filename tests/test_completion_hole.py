"""Span plans per hole kind (the classification itself has golden cases per language)."""

from __future__ import annotations

import pytest

from completion.api import CompletionSettings
from completion.hole import HoleKind, plan_hole, span_length
from completion.mask import SPAN_BUCKETS


@pytest.mark.parametrize("kind", list(HoleKind))
def test_every_kind_plans_spans_within_the_buckets(kind):
    single = plan_hole(kind, CompletionSettings(max_lines=1))
    assert single.max_lines == 1 and all(s <= SPAN_BUCKETS[-1] for s in single.spans) and 1 <= len(single.spans) <= 3
    assert single.spans[0] in SPAN_BUCKETS  # the batch is as wide as the preferred, longest, candidate
    assert span_length(kind, CompletionSettings()) == single.spans[0]


def test_multi_line_only_where_a_block_can_follow():
    s = CompletionSettings(max_lines=8)
    assert plan_hole(HoleKind.EMPTY_BLOCK, s).max_lines == 8 and max(plan_hole(HoleKind.EMPTY_BLOCK, s).spans) == 64
    assert plan_hole(HoleKind.MID_LINE, s).max_lines == 1
    assert plan_hole(HoleKind.IN_COMMENT, s).max_lines == 1
    assert plan_hole(HoleKind.MID_LINE, s).spans[0] == 8  # filling the middle of a line is short


def test_explicit_span_length_wins():
    plan = plan_hole(HoleKind.EMPTY_BLOCK, CompletionSettings(span_len=12, max_lines=4))
    assert plan.spans == (12,) and plan.max_lines == 4
