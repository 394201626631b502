"""The left-to-right likelihood that ranks two passes' answers (completion/scoring.py): the rows it
asks for, the choice it makes, and on the bundled model that it tells real code from scrambled."""

from __future__ import annotations

import inspect
import json.decoder

import numpy as np
import pytest

from completion.context import build_context
from completion.mask import context_ids
from completion.sampler import SpecialIds
from completion.scoring import (
    MAX_SCORED_TOKENS,
    Scorer,
    left_to_right_rows,
    log_likelihood,
    prefer_second,
    scored_tokens,
)

IDS = SpecialIds(mask=1, eos=0, forbidden=(1, 2, 3, 4))


def test_rows_show_the_tokens_before_each_one_and_mask_the_rest():
    spans, rows = left_to_right_rows([7, 8, 0], IDS)
    assert spans.tolist() == [[1] * 8, [7] + [1] * 7, [7, 8] + [1] * 6]
    assert rows.tolist() == [[0], [0], [1]]  # token j from output j - 1; token 0 from the context
    assert left_to_right_rows([7, 8, 0], IDS, aligned=True)[1].tolist() == [[0], [1], [2]]
    assert left_to_right_rows(list(range(5, 25)), IDS)[0].shape == (20, 32)  # the span bucket holding them


def test_scored_tokens_end_with_eos_and_are_cut_to_the_largest_bucket():
    assert scored_tokens([7, 8], IDS) == [7, 8, 0]
    long = scored_tokens(list(range(5, 200)), IDS)
    assert len(long) == MAX_SCORED_TOKENS + 1 and long[-1] == 0


SOUND, UNSOUND = (True, True, True, True), (True, True, False, True)  # the last: a name nothing defines


@pytest.mark.parametrize("first,second,scores,expected", [
    (("a", (*SOUND, True, 0.9)), ("b", (*SOUND, True, 0.5)), {"a": -9.0, "b": -3.0}, True),  # likelier wins
    (("a", (*SOUND, True, 0.5)), ("b", (*SOUND, True, 0.9)), {"a": -3.0, "b": -9.0}, False),
    (("a", (*UNSOUND, True, 0.9)), ("b", (*SOUND, False, 0.1)), {"a": 0.0, "b": -99.0}, True),  # soundness first
    (("a", (*SOUND, True, 0.9)), ("b", (*SOUND, True, 0.5)), None, False),  # no scorer: the rank
    (("", (True, False, True, True, False, 0.0)), ("b", (*SOUND, True, 0.5)), {"b": -9.0}, True),
])
def test_prefer_second(first, second, scores, expected):
    assert prefer_second(first, second, None if scores is None else scores.__getitem__) is expected


@pytest.fixture(scope="module")
def bundled():
    from runtime.loader import load_model

    return load_model(None)


def line_places(n: int = 12) -> list[tuple[str, int, str]]:
    """(document with one line's code removed, cursor offset, the removed code) at lines of json.decoder."""
    text = inspect.getsource(json.decoder)
    lines = text.split("\n")
    places, offset = [], 0
    for line in lines:
        code = line.strip()
        if code and not code.startswith(("#", '"', "'")) and len(code) > 12 and len(places) < n:
            start = offset + len(line) - len(line.lstrip())
            places.append((text[:start] + text[start + len(code):], start, code))
        offset += len(line) + 1
    return places


def test_real_lines_score_above_the_same_tokens_scrambled(bundled):
    """Real code, real model: the held-out line's own tokens are likelier in their order than
    reversed, and the scorer's memo answers a repeated text without another denoiser call."""
    tok, ids = bundled.tokenizer, SpecialIds.from_tokenizer(bundled.tokenizer)
    wins = 0
    for text, offset, code in line_places():
        ctx = build_context(text, offset, tok, 192, 128)
        state = bundled.backend.encode_context(context_ids(tok, ctx.prefix_ids, ctx.suffix_ids))
        tokens = tok.encode(code)
        real = log_likelihood(bundled.backend, state, tokens, ids)
        wins += real > log_likelihood(bundled.backend, state, tokens[::-1], ids)
        assert np.isfinite(real) and real < 0
        scorer = Scorer(bundled.backend, state, tok, ids)
        assert scorer(code) == pytest.approx(real) and scorer(code) == scorer(code) and scorer.calls == 1
    assert wins == len(line_places())
