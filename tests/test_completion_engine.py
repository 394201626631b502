"""The engine end to end on scripted backends (exact behaviour) and on the bundled model (the path works)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from completion import checks as checks_module
from completion.api import Completion, CompletionRequest, CompletionSettings, InvalidPosition
from completion.engine import CompletionEngine
from runtime.base import ContextState, ModelInfo, take_rows
from runtime.costs import StepCostModel
from runtime.loader import LoadedModel

VOCAB = ["<eos>", "<mask>", "<pre>", "<suf>", "<mid>", "x", " ", "+", "1", "2", "(", ")", "\n", "return", "def",
         ":", "=", "y", "f", "?", "try", "if"]
V = len(VOCAB)
EOS = 0
T = {s: i for i, s in enumerate(VOCAB)}


class WordTokenizer:
    """Longest match over a tiny vocabulary; unknown characters become "?"."""

    eos_id, mask_id, prefix_id, suffix_id, middle_id = 0, 1, 2, 3, 4
    special_ids = frozenset(range(5))
    vocab_size = V

    @property
    def token_texts(self) -> list[str]:
        return [self.decode([i]) for i in range(V)]

    def encode(self, text: str) -> list[int]:
        out, i = [], 0
        words = sorted(VOCAB[5:], key=len, reverse=True)
        while i < len(text):
            w = next((w for w in words if text.startswith(w, i)), None)
            out.append(T[w] if w else T["?"])
            i += len(w) if w else 1
        return out

    def decode(self, ids: list[int]) -> str:
        return "".join(VOCAB[i] for i in ids if i not in self.special_ids)


def ids_of(text: str) -> list[int]:
    return WordTokenizer().encode(text)


class ScriptBackend:
    """Denoises a "long" row (last position not EOS) towards one script and a "short" row (a shorter
    candidate: EOS forced at its end) towards another, each with its own confidence; commits run left
    to right. Both scripts share their first token (it comes from the shared context)."""

    name = "script"
    info = ModelInfo(vocab_size=V, n_layer=1, n_head=1, d_model=8)

    def __init__(self, long: tuple[str, float], short: tuple[str, float] | None = None):
        self.scripts = {"long": (ids_of(long[0]), long[1]), "short": (ids_of((short or long)[0]), (short or long)[1])}
        assert self.scripts["long"][0][0] == self.scripts["short"][0][0]
        self.calls: list[np.ndarray] = []

    def _row(self, which: str, S: int) -> np.ndarray:
        tokens, level = self.scripts[which]
        out = np.zeros((S, V), dtype=np.float32)
        for j in range(S):  # row j predicts token j + 1
            out[j, tokens[j + 1] if j + 1 < len(tokens) else EOS] = level - 0.01 * j
        return out

    def encode_context(self, ids):
        first = np.zeros(V, dtype=np.float32)
        first[self.scripts["long"][0][0]] = self.scripts["long"][1]
        return ContextState(kv=None, first_logits=first, length=ids.shape[1])

    def denoise_span(self, span_ids, state, rows=None):
        self.calls.append(span_ids.copy())
        B, S = span_ids.shape
        return take_rows(np.stack([self._row("short" if row[-1] == EOS else "long", S) for row in span_ids]), rows)


def make_engine(backend, **settings) -> CompletionEngine:
    """An engine over a scripted backend; without the alternative pass unless asked, so the
    tests of one pass and its retries see only those."""
    settings.setdefault("alternatives", 0)
    model = LoadedModel(tokenizer=WordTokenizer(), backend=backend, info=backend.info, model_dir=None)
    return CompletionEngine(model, CompletionSettings(**settings), StepCostModel())


DOC = "def f(x):\n    return \n"
AT_RETURN = CompletionRequest(DOC, 1, 11, "python")


def test_parse_validity_beats_confidence_between_span_lengths():
    backend = ScriptBackend(long=("x(((", 8.0), short=("x + 1", 2.0))
    result = make_engine(backend, latency_budget_ms=0).complete(AT_RETURN)
    first = backend.calls[0]
    assert first.shape == (3, 16)  # three candidates (16, 8, 4), one batch, one shared context
    assert (first[1, 8:] == EOS).all() and (first[1, :8] == 1).all() and (first[0] == 1).all()
    assert (first[2, 4:] == EOS).all() and (first[2, :4] == 1).all()  # "x + " cut short: it breaks the line
    assert result.candidates == 3 and result.hole == "end_of_line"
    assert result.text == "x + 1" and result.span_len == 8 and result.parse_ok is True


def test_a_statement_before_an_indented_body_is_rejected(monkeypatch):
    """tree-sitter accepts `x = 1` on the emptied header line of an indented body; CPython does not
    (unexpected indent), and neither does the engine. Before a line that is not deeper it stays."""
    backend = ScriptBackend(long=("x = 1", 8.0))
    header = CompletionRequest("def f(x):\n    \n        return x\n", 1, 4, "python")
    result = make_engine(backend, latency_budget_ms=0, span_len=8, parse_retries=0).complete(header)
    assert result.text == "" and result.candidate_text == "x = 1" and result.parse_ok is False
    flat = CompletionRequest("def f(x):\n    \n    return x\n", 1, 4, "python")
    assert make_engine(backend, latency_budget_ms=0, span_len=8).complete(flat).text == "x = 1"
    # after a backslash the line continues the one above: the block rule stays out of it
    continued = CompletionRequest("def f(x):\n    y = 1 + \\\n    \n        return x\n", 2, 4, "python")
    with_rule = make_engine(backend, latency_budget_ms=0, span_len=8).complete(continued)
    monkeypatch.setattr(checks_module, "BLOCK_CHECKED_HOLES", ())
    without = make_engine(backend, latency_budget_ms=0, span_len=8).complete(continued)
    assert (with_rule.text, with_rule.parse_ok) == (without.text, without.parse_ok)
    # CPython's compiler refuses it too (completion/compile_check.py): without both it would stay
    assert make_engine(backend, latency_budget_ms=0, span_len=8).complete(header).parse_ok is False
    assert make_engine(backend, latency_budget_ms=0, span_len=8,
                       compile_python=False).complete(header).parse_ok is not False


def test_more_confident_candidate_wins_when_both_parse():
    backend = ScriptBackend(long=("x + 2", 8.0), short=("x + 1", 2.0))
    result = make_engine(backend, latency_budget_ms=0).complete(AT_RETURN)
    assert result.text == "x + 2" and result.span_len == 16


def test_a_completion_that_breaks_the_parse_is_rejected():
    backend = ScriptBackend(long=("x(((", 8.0))
    result = make_engine(backend, latency_budget_ms=0, span_len=8, parse_retries=0).complete(AT_RETURN)
    assert result.text == "" and result.candidate_text == "x(((" and result.parse_ok is False
    kept = make_engine(backend, latency_budget_ms=0, span_len=8, reject_parse_errors=False).complete(AT_RETURN)
    assert kept.text == "x(((" and kept.parse_ok is None


def test_typed_ahead_is_served_from_the_cache_without_a_model_call():
    backend = ScriptBackend(long=("x + 1", 8.0))
    engine = make_engine(backend, latency_budget_ms=0, span_len=8)
    first = engine.complete(AT_RETURN)
    assert first.text == "x + 1" and not first.from_cache
    calls = len(backend.calls)
    typed = "def f(x):\n    return x +\n"
    again = engine.complete(CompletionRequest(typed, 1, 14, "python"))
    assert again.from_cache and again.text == " 1" and again.forward_passes == 0
    assert len(backend.calls) == calls
    other = engine.with_settings(steps=1).complete(AT_RETURN)  # other settings: not served the cached one
    assert not other.from_cache and len(backend.calls) > calls


def test_drafts_improve_then_the_final_arrives():
    backend = ScriptBackend(long=("return x + 1", 8.0))
    engine = make_engine(backend, latency_budget_ms=0, span_len=16, tokens_per_step=1)
    request = CompletionRequest("def f(x):\n    \n", 1, 4, "python")
    drafts: list[Completion] = []
    final = engine.complete(request, on_draft=drafts.append)
    # the cursor ends the editor's indentation: the first token (code, not more whitespace) is chosen from the
    # context's logits before step 1; then 6 tokens and the EOS, one per step; the EOS pads the rest
    assert len(drafts) == final.steps == 7
    assert all(not d.final for d in drafts) and final.final
    lengths = [len(d.text) for d in drafts]
    assert lengths == sorted(lengths) and drafts[-1].text == final.text == "return x + 1"
    streamed = list(engine.with_settings(min_confidence=0.5).stream(CompletionRequest(DOC, 1, 11, "python")))
    assert [c.final for c in streamed] == [False] * (len(streamed) - 1) + [True]


def test_cancelled_work_is_not_cached():
    backend = ScriptBackend(long=("x + 1", 8.0))
    engine = make_engine(backend, latency_budget_ms=0, span_len=8, tokens_per_step=1)
    flags = iter([False, False, True])
    partial = engine.complete(AT_RETURN, is_cancelled=lambda: next(flags, True))
    assert partial.steps == 2 and len(backend.calls) == 2
    full = engine.complete(AT_RETURN)
    assert not full.from_cache and full.text == "x + 1"


def test_document_id_reparses_incrementally():
    backend = ScriptBackend(long=("x + 1", 8.0))
    engine = make_engine(backend, latency_budget_ms=0, span_len=8)
    engine.complete(CompletionRequest(DOC, 1, 11, "python", document_id="file:///a.py"))
    edited = "def f(x):\n    return y\n"
    engine.complete(CompletionRequest(edited, 1, 12, "python", document_id="file:///a.py"))
    assert engine.syntax.stats["full"] == 1 and engine.syntax.stats["incremental"] == 1


def test_ten_megabyte_document_uses_a_window():
    backend = ScriptBackend(long=("x + 1", 8.0))
    engine = make_engine(backend, latency_budget_ms=0, span_len=8)
    huge = "def g(y):\n    return y\n\n" * 420_000 + DOC
    assert len(huge) > 10_000_000
    line = huge.count("\n") - 1
    result = engine.complete(CompletionRequest(huge, line, 11, "python", document_id="big"))
    assert result.text == "x + 1"
    assert engine.syntax.stats["window"] == 1 and engine.syntax.stats["full"] == 0


def test_unknown_language_and_a_failing_parser_fall_back_to_lines(monkeypatch):
    backend = ScriptBackend(long=("x + 1", 8.0))
    engine = make_engine(backend, latency_budget_ms=0, span_len=8)
    assert engine.complete(CompletionRequest("total = \n", 0, 8, "plaintext")).text == "x + 1"

    def broken(*args, **kwargs):
        raise RuntimeError("parser exploded")

    monkeypatch.setattr(engine.syntax, "view", broken)
    result = engine.complete(CompletionRequest("y = \n", 0, 4, "python"))
    assert result.text == "x + 1" and result.parse_ok is None


def test_bad_position_is_a_clear_error():
    engine = make_engine(ScriptBackend(long=("x", 8.0)))
    with pytest.raises(InvalidPosition, match="past the end"):
        engine.complete(CompletionRequest("abc", 3, 0, "python"))


def test_tight_budget_takes_one_candidate():
    backend = ScriptBackend(long=("x + 1", 8.0))
    engine = make_engine(backend, latency_budget_ms=1e-3)
    result = engine.complete(AT_RETURN)
    assert result.candidates == 1 and result.steps == 1 and backend.calls[0].shape == (1, 16)


@pytest.fixture(scope="module")
def bundled_engine():
    from completion.engine import load_engine

    return load_engine(settings=CompletionSettings(latency_budget_ms=0, span_candidates=1, span_len=8))


REAL_SNIPPETS = {
    "python": "import os\n\ndef read(path):\n    with open(path) as f:\n        return f.█\n",
    "javascript": "function sum(xs) {\n  return xs.reduce(█, 0);\n}\n",
    "typescriptreact": "export const A = (p: { n: number }) => {\n  return <div>{█}</div>;\n};\n",
    "rust": "fn main() {\n    let v = vec![1, 2, 3];\n    █\n}\n",
    "go": "package main\n\nfunc main() {\n\tx := 1\n\t█\n}\n",
    "c": "#include <stdio.h>\n\nint main(void) {\n    int i = 0;\n    █\n    return 0;\n}\n",
    "cpp": "#include <vector>\nint main() {\n    std::vector<int> v;\n    v.█\n}\n",
    "java": "class A {\n    int f(int x) {\n        █\n    }\n}\n",
}


@pytest.mark.parametrize("language", sorted(REAL_SNIPPETS))
def test_bundled_model_completes_every_language(bundled_engine, language):
    """The real path: tree, context, model, post-processing. Never the text itself (early checkpoint)."""
    doc = REAL_SNIPPETS[language]
    at = doc.index("█")
    text = doc.replace("█", "")
    line, col = text[:at].count("\n"), at - (text.rfind("\n", 0, at) + 1)
    result = bundled_engine.complete(CompletionRequest(text, line, col, language, document_id=language))
    # one encode, the steps, and one likelihood pass per distinct text scored (each pass's pick)
    most = result.steps + 1 + bundled_engine.settings.alternatives + 1
    assert result.final and result.steps >= 1 and result.steps + 1 <= result.forward_passes <= most
    assert result.hole and result.span_len == 8
    assert result.candidate_text.strip() or result.text == ""
    assert result.text in ("", result.candidate_text) and "\n" not in result.text.strip("\n")
    assert result.parse_ok is not None or not result.candidate_text


def measured_costs(encode_ms_per_token: float, step_ms: float) -> StepCostModel:
    """A cost model after measuring a machine: encodes linear in tokens, steps at step_ms. (The
    AVX2-only CPU of stop 17 measured ~0.37 ms a context token for the int8 encoder.)"""
    costs = StepCostModel()
    for tokens in (128, 512):
        costs.observe_encode(tokens, encode_ms_per_token * tokens)
    for span in (8, 16, 32, 64):
        costs.observe_step(span, 1, step_ms, ctx_tokens=300)
    return costs


def test_windows_shrink_so_a_slow_machine_still_gets_its_steps(bundled_engine):
    """Where the encode of the full windows would leave the budget fewer than min_steps steps, the
    windows shrink (steps matter more than context to this model); a context the cache already
    holds costs no encode, so the next request on the same spot keeps its windows."""
    import inspect
    import json.decoder

    from completion.cache import CompletionCache

    text = inspect.getsource(json.decoder)  # real code, far longer than the windows
    line = text.count("\n") // 2
    request = CompletionRequest(text, line, len(text.splitlines()[line]), "python", document_id="decoder.py")
    settings = CompletionSettings(latency_budget_ms=300.0, span_candidates=1)

    def complete(engine: CompletionEngine, costs: StepCostModel) -> Completion:
        engine.costs, engine.cache = costs, CompletionCache()  # costs as measured; no typed-ahead answer
        return engine.complete(request)

    full = complete(CompletionEngine(bundled_engine.model, replace(settings, latency_budget_ms=0.0)),
                    measured_costs(2.0, 10.0))  # budget off: the configured windows, however slow
    T = full.context_tokens
    assert T > 100
    engine = CompletionEngine(bundled_engine.model, settings)
    fast = complete(engine, measured_costs(0.05, 3.0))
    assert fast.context_tokens == T
    again = complete(engine, measured_costs(4.0, 2.5))  # a slow machine now, but this context is cached
    assert again.context_tokens == again.reused_tokens == T
    slow = complete(CompletionEngine(bundled_engine.model, settings), measured_costs(4.0, 2.5))
    assert slow.context_tokens < T


class SecondPassBackend(ScriptBackend):
    """The first pass denoises towards `broken`, every later one towards `fixed`: what more steps
    (fewer tokens committed in parallel) do to a line the model broke."""

    def __init__(self, broken: str, fixed: str):
        super().__init__(long=(broken, 8.0))
        self.fixed, self.passes = ids_of(fixed), 0

    def denoise_span(self, span_ids, state, rows=None):
        if not self.calls or (span_ids == 1).sum() == (self.calls[0] == 1).sum():  # a pass starts: all masked
            self.passes += 1
        if self.passes > 1:
            self.scripts["long"] = self.scripts["short"] = (self.fixed, 8.0)
        return super().denoise_span(span_ids, state, rows)


def test_a_second_pass_with_more_steps_replaces_a_line_that_broke_the_parse():
    backend = SecondPassBackend("x(((", "x + 1")
    engine = make_engine(backend, latency_budget_ms=0, span_len=8, min_steps=4, min_confidence=2.0)
    result = engine.complete(AT_RETURN)
    assert result.retried and result.text == "x + 1" and result.parse_ok is True and backend.passes == 2
    assert 4 < result.steps <= 4 + 8 and result.forward_passes == 1 + result.steps == 1 + len(backend.calls)


class FirstWordBackend(ScriptBackend):
    """Opens with "x" (most likely) or "y"; what follows depends on the first word alone, at any
    step count: "x(((" breaks the line, "y + 1" does not. Until the first word is committed the
    rest is unsure, so it is committed first."""

    def __init__(self):
        super().__init__(long=("x(((", 8.0))
        self.followups = {T["x"]: ids_of("x((("), T["y"]: ids_of("y + 1")}

    def encode_context(self, ids):
        state = super().encode_context(ids)
        state.first_logits[T["y"]] = 7.0
        return state

    def denoise_span(self, span_ids, state, rows=None):
        self.calls.append(span_ids.copy())
        B, S = span_ids.shape
        out = np.zeros((B, S, V), dtype=np.float32)
        for b, row in enumerate(span_ids):
            tokens = self.followups.get(int(row[0]), self.followups[T["x"]])
            level = 8.0 if row[0] != T["<mask>"] else 0.5
            for j in range(S):
                out[b, j, tokens[j + 1] if j + 1 < len(tokens) else EOS] = level - 0.01 * j
        return take_rows(out, rows)


def test_later_retries_ban_the_first_word_of_rejected_candidates():
    """More steps cannot mend a line whose first word is wrong: the first retry still writes
    "x(((", the second may not open with "x" and writes "y + 1"; one retry alone leaves nothing."""
    settings = dict(latency_budget_ms=0, span_len=8, min_steps=8, min_confidence=2.0)
    backend = FirstWordBackend()
    result = make_engine(backend, **settings).complete(AT_RETURN)
    assert result.retried and result.text == "y + 1" and result.parse_ok is True
    assert result.steps == 5 + 5 + 6 and result.forward_passes == 1 + result.steps == 1 + len(backend.calls)
    once = make_engine(FirstWordBackend(), parse_retries=1, **settings).complete(AT_RETURN)
    assert once.retried and once.text == "" and once.candidate_text == "x((("
    none = make_engine(FirstWordBackend(), parse_retries=0, **settings).complete(AT_RETURN)
    assert not none.retried and none.steps == 5


class OpenerBackend(FirstWordBackend):
    """Opens with one of a few words (first-token logits `openers`, "x" the likeliest); each opening
    word has its own line and confidence."""

    def __init__(self, x_line: tuple[str, float], f_line: tuple[str, float], openers: tuple[str, str] = ("x", "f")):
        super().__init__()
        first, second = openers
        self.openers = {first: 8.0, second: 7.0}
        self.followups = {T[first]: ids_of(x_line[0]), T[second]: ids_of(f_line[0])}
        self.levels = {T[first]: x_line[1], T[second]: f_line[1]}

    def encode_context(self, ids):
        state = ScriptBackend.encode_context(self, ids)
        state.first_logits[:] = 0.0
        for word, logit in self.openers.items():
            state.first_logits[T[word]] = logit
        return state

    def denoise_span(self, span_ids, state, rows=None):
        self.calls.append(span_ids.copy())
        B, S = span_ids.shape
        out = np.zeros((B, S, V), dtype=np.float32)
        fallback = self.followups[T[next(iter(self.openers))]]
        for b, row in enumerate(span_ids):
            tokens = self.followups.get(int(row[0]), fallback)
            level = self.levels.get(int(row[0]), 0.5)
            for j in range(S):
                out[b, j, tokens[j + 1] if j + 1 < len(tokens) else EOS] = level - 0.01 * j
        return take_rows(out, rows)


ALTERNATIVE = dict(latency_budget_ms=0, span_len=8, span_candidates=1, min_steps=8, min_confidence=2.0, alternatives=1)


def test_an_alternative_opening_word_is_ranked_beside_the_first_and_the_better_kept():
    """The first pass opens with the likelier "x" and is unsure of the rest; a second pass may not
    open with "x", writes "f (x)" surely, and is kept. Where the first line is the surer, it stays."""
    backend = OpenerBackend(x_line=("x + 1", 1.0), f_line=("f (x)", 8.0))
    result = make_engine(backend, **ALTERNATIVE).complete(AT_RETURN)
    assert result.text == "f (x)" and result.alternative and not result.retried and result.parse_ok is True
    steps, scoring = backend.calls[:10], backend.calls[10:]  # the two lines scored (completion/scoring.py)
    assert [VOCAB[c[0, 0]] for c in steps] == ["<mask>"] + ["x"] * 5 + ["<mask>"] + ["f"] * 3
    assert [VOCAB[t] for t in scoring[0][-1]] == ["f", " ", "(", "x", ")", "<mask>", "<mask>", "<mask>"]
    assert [VOCAB[t] for t in scoring[1][-1]] == ["x", " ", "+", " ", "1", "<mask>", "<mask>", "<mask>"]
    assert result.steps == 6 + 4 and result.forward_passes == 1 + result.steps + 2 == 1 + len(backend.calls)
    alone = make_engine(OpenerBackend(x_line=("x + 1", 1.0), f_line=("f (x)", 8.0)),
                        **{**ALTERNATIVE, "alternatives": 0}).complete(AT_RETURN)
    assert alone.text == "x + 1" and not alone.alternative and alone.steps == 6
    surer = make_engine(OpenerBackend(x_line=("x + 1", 8.0), f_line=("f (x)", 1.0)), **ALTERNATIVE).complete(AT_RETURN)
    assert surer.text == "x + 1" and not surer.alternative and surer.steps == 6 + 4


def test_a_try_over_a_body_no_handler_follows_ranks_below_another_header():
    """Above a body that no `except` follows, "try:" (surer) loses to the alternative "if x:";
    with a handler after the body it keeps its place."""
    body = "def f(x):\n    \n        return x\n"
    request = CompletionRequest(body, 1, 4, "python")
    backend = OpenerBackend(("try:", 8.0), ("if x:", 1.0), openers=("try", "if"))
    result = make_engine(backend, **ALTERNATIVE, compile_python=False).complete(request)
    assert result.text == "if x:" and result.alternative and result.parse_ok is True
    # CPython refuses the file with that `try:` in it: dropped, and the retry finds the header
    compiled = make_engine(OpenerBackend(("try:", 8.0), ("if x:", 1.0), openers=("try", "if")),
                           **ALTERNATIVE).complete(request)
    assert compiled.text == "if x:" and compiled.retried and compiled.parse_ok is True
    handled = CompletionRequest(body + "    except ValueError:\n        pass\n", 1, 4, "python")
    kept = make_engine(OpenerBackend(("try:", 8.0), ("if x:", 1.0), openers=("try", "if")),
                       **ALTERNATIVE).complete(handled)
    assert kept.text == "try:" and not kept.alternative


def test_no_alternative_when_the_steps_are_fixed_or_the_budget_is_spent():
    fixed = make_engine(OpenerBackend(("x + 1", 1.0), ("f (x)", 8.0)),
                        **{**ALTERNATIVE, "steps": 4}).complete(AT_RETURN)
    assert fixed.text == "x + 1" and not fixed.alternative and fixed.steps == 3  # 4 steps planned, done in 3
    spent = make_engine(OpenerBackend(("x + 1", 1.0), ("f (x)", 8.0)),
                        **{**ALTERNATIVE, "latency_budget_ms": 1e-3}).complete(AT_RETURN)
    assert not spent.alternative and spent.steps == 1  # the budget bought one step, and no more


def test_no_second_pass_when_the_line_parses_the_steps_are_fixed_or_the_budget_is_spent():
    kept = make_engine(ScriptBackend(long=("x + 1", 8.0)), latency_budget_ms=0, span_len=8).complete(AT_RETURN)
    assert not kept.retried and kept.text == "x + 1"
    fixed = make_engine(SecondPassBackend("x(((", "x + 1"), latency_budget_ms=0, span_len=8, steps=2,
                        min_confidence=2.0).complete(AT_RETURN)
    assert not fixed.retried and fixed.text == "" and fixed.steps == 2
    off = make_engine(SecondPassBackend("x(((", "x + 1"), latency_budget_ms=0, span_len=8,
                      retry_steps_factor=1.0, min_confidence=2.0).complete(AT_RETURN)
    assert not off.retried and off.text == ""
    spent = make_engine(SecondPassBackend("x(((", "x + 1"), latency_budget_ms=1e-3, span_len=8,
                        span_candidates=1, min_confidence=2.0).complete(AT_RETURN)
    assert not spent.retried and spent.steps == 1 and spent.text == ""  # the budget bought one step, and no more


def test_a_candidate_reading_only_known_names_beats_a_more_confident_one():
    """`y` is nowhere in the document (DOC mentions f and x): "x + y" is more confident and longer,
    "x + 1" wins; with the ranking off, the confident one does."""
    backend = ScriptBackend(long=("x + y", 9.0), short=("x + 1", 6.0))
    settings = dict(latency_budget_ms=0, min_steps=8, min_confidence=2.0, span_candidates=2)
    ranked = make_engine(backend, **settings).complete(AT_RETURN)
    assert ranked.text == "x + 1" and ranked.unknown_names == () and not ranked.retried
    unranked = make_engine(ScriptBackend(long=("x + y", 9.0), short=("x + 1", 6.0)), rank_known_names=False,
                           **settings).complete(AT_RETURN)
    assert unranked.text == "x + y" and unranked.unknown_names == ()


def test_an_answer_reading_an_unknown_name_gets_another_pass_and_the_better_answer_is_kept():
    """Every candidate reads `y`: a second pass with more steps runs over the same context, and its
    answer replaces the first only where it ranks higher (here it reads known names only)."""
    backend = SecondPassBackend("x + y", "x + 1")
    result = make_engine(backend, latency_budget_ms=0, span_len=8, min_steps=4, min_confidence=2.0).complete(AT_RETURN)
    assert result.retried and result.text == "x + 1" and result.unknown_names == () and backend.passes == 2
    assert result.forward_passes == 1 + result.steps == 1 + len(backend.calls)
    worse = SecondPassBackend("x + y", "x(((")  # the retry breaks the parse: the first answer stays
    kept = make_engine(worse, latency_budget_ms=0, span_len=8, min_steps=4, min_confidence=2.0,
                       parse_retries=1).complete(AT_RETURN)
    assert kept.retried and kept.text == "x + y" and kept.unknown_names == ("y",) and kept.parse_ok is True


# One step for a whole 8-token line: many parallel commits, so many lines break the parse.
ONE_STEP_LINES = CompletionSettings(latency_budget_ms=0, span_candidates=1, span_len=8, min_steps=1,
                                    tokens_per_step=8, min_confidence=2.0, alternatives=0)


def emptied_json_decoder_lines() -> list[CompletionRequest]:
    """Requests at 20 code lines of json.decoder's source, each line emptied after its indentation."""
    import inspect
    import json.decoder

    lines = inspect.getsource(json.decoder).splitlines()
    places = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")][10:70:3]
    requests = []
    for i in places:
        col = len(lines[i]) - len(lines[i].lstrip())
        doc = "\n".join(lines[:i] + [lines[i][:col]] + lines[i + 1:]) + "\n"
        requests.append(CompletionRequest(doc, i, col, "python"))
    return requests


def needed_another(answer: Completion) -> bool:
    """Whether the engine's retry rule asks for another pass after this answer."""
    return answer.parse_ok is False or bool(answer.unknown_names)


def test_second_pass_on_the_bundled_model(bundled_engine):
    """Real code, real model, one step for a whole line (many parallel commits): wherever every
    candidate broke the parse or read a name the file never mentions, a second pass of up to
    twice the steps ran over the same context; elsewhere the answer is the one-pass answer."""
    from completion.cache import CompletionCache

    settings = replace(ONE_STEP_LINES, parse_retries=1)
    retried = 0
    for request in emptied_json_decoder_lines():
        one, two = (CompletionEngine(bundled_engine.model, replace(settings, retry_steps_factor=f),
                                     bundled_engine.costs, cache=CompletionCache()).complete(request)
                    for f in (1.0, 2.0))
        assert one.steps == 1 and not one.retried
        if needed_another(one):
            retried += 1
            assert two.retried and 1 < two.steps <= 1 + 2 and two.forward_passes == 1 + two.steps
        else:
            assert not two.retried and (two.text, two.steps) == (one.text, one.steps)
    assert retried > 0


def test_later_retries_on_the_bundled_model(bundled_engine):
    """Real code, real model, one step per line: where one retry still broke the parse, later ones
    (banning the first words rejected) turn some empty answers into lines that parse; where the
    first pass parsed (and read only names the file mentions), nothing changes."""
    from completion.cache import CompletionCache

    rescued = 0
    for request in emptied_json_decoder_lines():
        one, three = (CompletionEngine(bundled_engine.model, replace(ONE_STEP_LINES, parse_retries=n),
                                       bundled_engine.costs, cache=CompletionCache()).complete(request)
                      for n in (1, 3))
        if not needed_another(one):
            assert (three.text, three.steps) == (one.text, one.steps)
            continue
        assert three.steps >= one.steps and three.forward_passes == 1 + three.steps
        rescued += one.text == "" and three.text != "" and three.parse_ok is not False
    assert rescued > 0


def test_alternative_openings_on_the_bundled_model(bundled_engine):
    """Real code, real model, the default settings with the budget off: where the alternative pass's
    line is kept, it opens with another word than the one-pass answer and keeps the parse; elsewhere
    the answer is the one-pass answer. Each alternative costs the first pass's steps again."""
    from completion.cache import CompletionCache

    kept = 0
    for request in emptied_json_decoder_lines():
        one, two = (CompletionEngine(bundled_engine.model, CompletionSettings(latency_budget_ms=0, alternatives=n),
                                     bundled_engine.costs, cache=CompletionCache()).complete(request)
                    for n in (0, 1))
        assert not one.alternative and two.steps > one.steps and 0 <= two.forward_passes - 1 - two.steps <= 2
        if two.alternative:
            kept += 1
            assert two.text.split()[:1] != one.text.split()[:1] and two.parse_ok is not False
        else:
            assert (two.text, two.confidence) == (one.text, one.confidence)
    assert kept > 0
