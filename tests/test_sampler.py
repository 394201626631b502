"""The sampler and the step budget, on deliberately simple fake backends."""

from __future__ import annotations

import time

import numpy as np

from completion.api import CompletionRequest, CompletionSettings
from completion.engine import CompletionEngine
from completion.sampler import SpecialIds, choose_commits, denoise, denoise_rows, logit_rows, masked_logits
from runtime.base import ContextState, ModelInfo, take_rows
from runtime.costs import StepCostModel
from runtime.loader import LoadedModel

V = 64
IDS = SpecialIds(mask=1, eos=0, forbidden=(1, 2, 3, 4))


class TargetBackend:
    """Predicts a fixed target sequence; confidence rises from left to right so the
    commit order is observable. Optionally sleeps to act slow."""

    name = "fake"
    info = ModelInfo(vocab_size=V, n_layer=1, n_head=1, d_model=8)

    def __init__(self, target: list[int], delay_s: float = 0.0):
        self.target = target
        self.delay_s = delay_s
        self.calls = 0

    def _logits_for(self, j: int) -> np.ndarray:
        row = np.zeros(V, dtype=np.float32)
        tok = self.target[j] if j < len(self.target) else IDS.eos
        row[tok] = 2.0 + j * 0.1
        return row

    def encode_context(self, ids):
        time.sleep(self.delay_s)
        return ContextState(kv=None, first_logits=self._logits_for(0), length=ids.shape[1])

    def denoise_span(self, span_ids, state, rows=None):
        self.calls += 1
        time.sleep(self.delay_s)
        B, S = span_ids.shape
        out = np.stack([self._logits_for(j + 1) for j in range(S)])
        return take_rows(np.broadcast_to(out, (B, S, V)).copy(), rows)


def test_choose_commits_finishes_in_planned_steps():
    masked = np.ones(10, dtype=bool)
    conf = np.linspace(0.1, 0.5, 10)
    chosen = choose_commits(masked, conf, steps_left=3, threshold=None)
    assert len(chosen) == 4 and set(chosen) == {6, 7, 8, 9}
    assert len(choose_commits(masked, conf, steps_left=1, threshold=None)) == 10
    assert len(choose_commits(masked, conf, steps_left=10, threshold=0.45)) == 2


def test_one_token_per_step_without_budget():
    target = [10, 11, 12, 13, 14, 15, 16, 17]
    backend = TargetBackend(target)
    state = backend.encode_context(np.zeros((1, 5), dtype=np.int64))
    seen = []
    result = denoise(backend, state, span_len=8, steps=8, ids=IDS,
                     on_step=lambda t: seen.append(sum(x != 1 for x in t)))
    assert result.tokens == target
    assert result.steps == 8 and seen == list(range(1, 9))


def test_logit_rows_asks_only_for_masked_positions_shifted_by_one():
    """Golden cases: token j is predicted by output j - 1 (token 0 by the context), so masked
    positions [0, 3, 4] need outputs [0, 2, 3]; shorter rows repeat their last index; aligned
    backends (runtime/hf) need the positions themselves."""
    masked = np.array([[True, False, False, True, True], [False, True, False, False, False]])
    positions, rows = logit_rows(ContextState(None, np.zeros(V), 5), masked)
    assert [p.tolist() for p in positions] == [[0, 3, 4], [1]]
    assert rows.tolist() == [[0, 2, 3], [0, 0, 0]]
    _, aligned = logit_rows(ContextState(None, np.zeros(V), 5, aligned=True), masked)
    assert aligned.tolist() == [[0, 3, 4], [1, 1, 1]]
    first = np.full(V, -1.0, dtype=np.float32)
    got = masked_logits(ContextState(None, first, 5), np.arange(4 * V, dtype=np.float32).reshape(4, V), positions[0])
    assert got.shape == (3, V) and (got[0] == first).all() and got[1, 0] == V  # row 0 replaced by the context's


def test_take_rows_matches_computing_only_those_rows():
    logits = np.random.default_rng(0).standard_normal((2, 6, V)).astype(np.float32)
    rows = np.array([[5, 0, 0], [2, 3, 4]])
    assert take_rows(logits, None) is logits
    np.testing.assert_array_equal(take_rows(logits, rows)[1, 2], logits[1, 4])
    np.testing.assert_array_equal(take_rows(logits, rows)[0, 0], logits[0, 5])


def test_few_steps_and_early_stop_at_eos():
    backend = TargetBackend([20, 21, 22])  # then EOS
    state = backend.encode_context(np.zeros((1, 5), dtype=np.int64))
    result = denoise(backend, state, span_len=16, steps=2, ids=IDS)
    assert result.steps <= 2 and result.tokens[:4] == [20, 21, 22, 0]
    assert all(t == 0 for t in result.tokens[3:])


def test_cancellation_stops_between_steps():
    backend = TargetBackend(list(range(10, 26)))
    state = backend.encode_context(np.zeros((1, 5), dtype=np.int64))
    calls = iter([False, False, True])
    result = denoise(backend, state, span_len=16, steps=16, ids=IDS, is_cancelled=lambda: next(calls))
    assert result.cancelled and result.steps == 2 and backend.calls == 2


class FakeTokenizer:
    eos_id, mask_id, prefix_id, suffix_id, middle_id = 0, 1, 2, 3, 4
    special_ids = frozenset(range(5))

    def encode(self, text):
        return [5 + (ord(c) % 50) for c in text]

    def decode(self, ids):
        return "".join(chr(ord("a") + (i % 26)) for i in ids if i not in self.special_ids)

    @property
    def token_texts(self) -> list[str]:
        return [self.decode([i]) for i in range(V)]


def _engine(backend, **settings) -> CompletionEngine:
    """An engine over a scripted backend; its made-up tokens read made-up names, which would send
    every answer for a retry, so the name ranking (tests/test_completion_names.py) is off, and so is
    the alternative pass (tests/test_completion_engine.py): these tests count one pass's steps."""
    model = LoadedModel(tokenizer=FakeTokenizer(), backend=backend, info=backend.info, model_dir=None)
    return CompletionEngine(model, CompletionSettings(**{"rank_known_names": False, "alternatives": 0, **settings}),
                            StepCostModel())


def test_slow_backend_meets_deadline_by_taking_fewer_steps():
    target = list(range(10, 26))
    slow = TargetBackend(target, delay_s=0.02)
    engine = _engine(slow, latency_budget_ms=150, span_len=16, min_confidence=1.1, tokens_per_step=1)
    engine.costs.warm_up(slow)
    slow.calls = 0
    req = CompletionRequest(text="x = 1\ny = ", line=1, column=4)
    result = engine.complete(req)
    assert 1 <= result.steps < 16  # 150 ms at ~20 ms a step cannot buy 16 steps
    assert result.steps == slow.calls


def test_no_deadline_takes_one_token_per_step():
    target = list(range(10, 26))
    backend = TargetBackend(target)
    engine = _engine(backend, latency_budget_ms=0, span_len=16, tokens_per_step=1)
    result = engine.complete(CompletionRequest(text="x = 1\ny = ", line=1, column=4))
    assert result.steps == 16 and result.forward_passes == 17


def test_default_commits_several_tokens_per_step():
    """Parallel decoding by default: a 32-token span in ceil(32 / 8) = 4 steps and a 16-token one in the
    floor of min_steps = 4, even with a budget that buys more and a threshold nothing reaches; halving
    tokens_per_step doubles the steps of the long span, min_steps=1 leaves the short one ceil(16 / 8) = 2."""
    backend = TargetBackend(list(range(10, 42)))
    req = CompletionRequest(text="x = 1\ny = ", line=1, column=4)
    steps = [_engine(backend, latency_budget_ms=0, span_len=span, min_confidence=1.1, **extra).complete(req).steps
             for span, extra in ((32, {}), (16, {}), (32, {"tokens_per_step": 4}), (16, {"min_steps": 1}),
                                 (3, {}))]
    assert steps == [4, 4, 8, 2, 3]  # never more steps than tokens
    roomy = _engine(backend, latency_budget_ms=10_000, span_len=32, min_confidence=1.1)
    roomy.costs.warm_up(backend)
    result = roomy.complete(req)
    assert result.steps == 4 and result.text == FakeTokenizer().decode(list(range(10, 42)))


def test_two_span_lengths_share_one_batch_with_eos_forced_on_the_shorter():
    from completion.sampler import denoise_rows

    backend = TargetBackend(list(range(10, 26)))
    state = backend.encode_context(np.zeros((1, 5), dtype=np.int64))
    shapes = []
    orig = backend.denoise_span
    backend.denoise_span = lambda span, st, rows=None: (shapes.append(span.copy()), orig(span, st, rows))[1]
    result = denoise_rows(backend, state, [16, 8], steps=16, ids=IDS)
    assert (shapes[0][1, 8:] == IDS.eos).all() and (shapes[0][1, :8] == IDS.mask).all()
    assert result.rows[0] == list(range(10, 26))
    assert result.rows[1] == list(range(10, 18)) + [IDS.eos] * 8  # never more than its own length
    assert [s.shape[0] for s in shapes] == [2] * 8 + [1] * 8  # a finished row leaves the batch
    assert result.steps == 16
    assert 0 < result.mean_confidence(1, IDS.eos) and all(c == 0 for c in result.confidence[1][8:])


def test_slow_backend_with_engine_chosen_lengths_still_fits_the_budget():
    """No span length given: the hole picks three candidates; the budget decides how many steps, and
    whether the candidates still fit together (this fake costs the same for any batch)."""
    slow = TargetBackend(list(range(10, 26)), delay_s=0.02)
    engine = _engine(slow, latency_budget_ms=150, min_confidence=1.1, tokens_per_step=1)
    engine.costs.warm_up(slow, batches=(1, 2))
    slow.calls = 0
    result = engine.complete(CompletionRequest(text="x = 1\ny = ", line=1, column=4))
    assert result.candidates == 3 and 2 <= result.steps < 16 and result.steps == slow.calls

    slower = TargetBackend(list(range(10, 26)), delay_s=0.06)  # one step is all 150 ms buy
    engine = _engine(slower, latency_budget_ms=150, min_confidence=1.1, tokens_per_step=1)
    engine.costs.warm_up(slower, batches=(1, 2))
    slower.calls = 0
    result = engine.complete(CompletionRequest(text="x = 1\ny = ", line=1, column=4))
    assert result.candidates == 1 and result.steps == 1 == slower.calls


def test_no_deadline_denoises_every_candidate_one_token_per_step():
    backend = TargetBackend(list(range(10, 26)))
    engine = _engine(backend, latency_budget_ms=0, tokens_per_step=1)
    result = engine.complete(CompletionRequest(text="x = 1\ny = ", line=1, column=4))
    assert result.candidates == 3 and result.steps == 16  # the longest candidate's 16 tokens


def test_first_token_limit_is_committed_before_the_first_step():
    """A limit on the first token (a blank line's indentation) picks the best allowed token from the
    context's logits and every other position sees it from the first step on."""
    backend = TargetBackend([10, 11, 12, 13])
    state = backend.encode_context(np.zeros((1, 5), dtype=np.int64))
    state.first_logits[30] = 1.0  # allowed, less likely than the target's 10
    allowed = np.zeros(V, dtype=bool)
    allowed[[30, 31]] = True
    seen = []

    class Watching(TargetBackend):
        def denoise_span(self, span_ids, st, rows=None):
            seen.append(span_ids[0, 0])
            return super().denoise_span(span_ids, st, rows)

    watching = Watching([10, 11, 12, 13])
    result = denoise_rows(watching, state, [8], 4, IDS, first_allowed=allowed)
    assert result.rows[0][0] == 30 and seen and all(t == 30 for t in seen)
    assert 0 < result.confidence[0][0] < 0.5  # the model's own probability of it, not 1
    free = denoise_rows(watching, state, [8], 4, IDS)
    assert free.rows[0][0] == 10


def test_banned_tokens_are_never_committed_at_their_position():
    """A (position, token) ban takes the next best token there, in every row; elsewhere the token
    stays allowed. At position 0 it also narrows a first-token limit, but never to nothing."""

    class RunnerUp(TargetBackend):  # token 20 is second everywhere
        def _logits_for(self, j):
            row = super()._logits_for(j)
            row[20] = 1.0
            return row

    backend = RunnerUp([10, 11, 12, 13, 11])
    state = backend.encode_context(np.zeros((1, 5), dtype=np.int64))
    result = denoise_rows(backend, state, [6, 8], 4, IDS, banned=[(0, 10), (1, 11)])
    for row in result.rows:
        assert row[:5] == [20, 20, 12, 13, 11]
    allowed = np.zeros(V, dtype=bool)
    allowed[[30, 31]] = True
    state.first_logits[[30, 31]] = [3.0, 2.5]
    narrowed = denoise_rows(backend, state, [8], 4, IDS, first_allowed=allowed, banned=[(0, 30)])
    assert narrowed.rows[0][0] == 31
    kept = denoise_rows(backend, state, [8], 4, IDS, first_allowed=allowed, banned=[(0, 30), (0, 31)])
    assert kept.rows[0][0] == 30  # banning every allowed start would leave no answer: the limit wins


def test_a_candidate_that_ended_beats_a_more_confident_one_cut_off_by_its_span():
    """12 tokens then EOS, confidence falling from left to right: the 8-token candidate is the more
    confident (it never reaches the doubtful end) but stops mid-line; the 16-token one ended."""

    class Fading(TargetBackend):
        def _logits_for(self, j):
            row = np.zeros(V, dtype=np.float32)
            row[self.target[j] if j < len(self.target) else IDS.eos] = 3.0 - j * 0.1
            return row

    backend = Fading(list(range(10, 22)))
    engine = _engine(backend, latency_budget_ms=0, tokens_per_step=1)
    result = engine.complete(CompletionRequest(text="x = 1\ny = ", line=1, column=4))
    assert result.candidates == 3 and result.span_len == 16
    assert result.text == FakeTokenizer().decode(list(range(10, 22)))
