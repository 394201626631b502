"""The completion pipeline: position -> context -> hole -> denoise -> post-process.

Knows nothing of LSP. `complete` is blocking CPU work: the server runs it in a
worker thread and passes `is_cancelled`, which is checked between denoising steps.
`stream` is the same pipeline as a generator: improving drafts, then the final one.

Per request: typed-ahead cache -> syntax tree (incremental per document) -> prefix
and suffix windows cut at statement boundaries (smaller where the machine is too slow
for their encode and min_steps steps within the budget) -> hole kind and candidate span
lengths -> one context encode (continuing the last request's cache where the
tokens agree) -> denoising steps chosen from the latency budget,
several span lengths in one batch when the budget allows -> each candidate
post-processed, checked against the parse and for names nothing defines, the better
kept (another pass with more steps when none passes both) -> cached.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace

import numpy as np

from completion import languages
from completion.api import Completion, CompletionRequest, CompletionSettings
from completion.cache import CompletionCache
from completion.checks import CandidateChecks, candidate_checks
from completion.compile_check import BREAKS, COMPILES, NEUTRAL
from completion.context import Context, build_context, cursor_offset
from completion.context_reuse import ContextReuse
from completion.hole import HolePlan, classify, plan_hole
from completion.indent import first_token_limit
from completion.mask import context_ids
from completion.postprocess import cut_at_eos, postprocess
from completion.sampler import BatchResult, SpecialIds, denoise_rows, denoise_steps
from completion.scoring import Scorer, prefer_second
from completion.syntax import SyntaxCache, SyntaxView
from runtime.costs import StepCostModel
from runtime.loader import LoadedModel, load_model

log = logging.getLogger("quicksilver.completion")

PAIR_MIN_STEPS = 2  # span lengths share a batch only when the budget buys at least this many steps
# Fractions of the configured windows tried, largest first, when a slow machine's encode would leave the
# budget fewer than min_steps steps (fit_context); the smallest is as far as its quality was measured.
WINDOW_SCALES = (1.0, 0.75, 0.5)


class CompletionEngine:
    def __init__(self, model: LoadedModel, settings: CompletionSettings | None = None,
                 costs: StepCostModel | None = None, syntax: SyntaxCache | None = None,
                 cache: CompletionCache | None = None, contexts: ContextReuse | None = None):
        self.model = model
        self.settings = settings if settings is not None else CompletionSettings()
        self.costs = costs if costs is not None else StepCostModel()
        self.syntax = syntax if syntax is not None else SyntaxCache()
        self.cache = cache if cache is not None else CompletionCache()
        self.contexts = contexts if contexts is not None else ContextReuse()
        self.ids = SpecialIds.from_tokenizer(model.tokenizer)

    @property
    def backend_name(self) -> str:
        return self.model.backend.name

    @property
    def budget_binds(self) -> bool:
        """Whether the latency budget decides the work: a positive budget and no fixed step count."""
        s = self.settings
        return bool(s.latency_budget_ms and s.latency_budget_ms > 0 and not s.steps)

    def plan_steps(self, span_len: int, ctx_tokens: int, elapsed_ms: float, batch: int = 1) -> tuple[int, float | None]:
        """(steps, confidence threshold). Fixed steps if set; otherwise
        max(min_steps, ceil(span_len / tokens_per_step)), no more than the remaining budget buys
        and no more than span_len.
        One token per step (the autoregressive order) needs no threshold."""
        s = self.settings
        if s.steps:
            return min(s.steps, span_len), s.min_confidence
        steps = max(1, s.min_steps, math.ceil(span_len / max(1.0, s.tokens_per_step)))
        if s.latency_budget_ms and s.latency_budget_ms > 0:
            remaining = s.latency_budget_ms - elapsed_ms
            steps = min(steps, self.costs.steps_within(remaining, ctx_tokens, span_len, batch=batch))
        steps = max(1, min(steps, span_len))
        return steps, (None if steps == span_len and s.tokens_per_step <= 1 else s.min_confidence)

    def plan_candidates(self, plan: HolePlan, ctx_tokens: int, elapsed_ms: float) -> tuple[tuple[int, ...], int,
                                                                                          float | None]:
        """(span lengths to denoise together, steps, threshold): the hole's candidates (up to
        span_candidates) when the budget still buys PAIR_MIN_STEPS steps for all their rows, else
        the preferred one."""
        s = self.settings
        spans = plan.spans[: max(1, s.span_candidates)]
        if len(spans) > 1:
            steps, threshold = self.plan_steps(max(spans), ctx_tokens, elapsed_ms, batch=len(spans))
            if not self.budget_binds or steps >= PAIR_MIN_STEPS:
                return spans, steps, threshold
        steps, threshold = self.plan_steps(spans[0], ctx_tokens, elapsed_ms)
        return spans[:1], steps, threshold

    def complete(self, request: CompletionRequest, on_draft: Callable[[Completion], None] | None = None,
                 is_cancelled: Callable[[], bool] | None = None) -> Completion:
        final = Completion(text="")
        for completion in self.stream(request, is_cancelled, drafts=on_draft is not None):
            if completion.final:
                final = completion
            elif on_draft is not None:
                on_draft(completion)
        return final

    def stream(self, request: CompletionRequest, is_cancelled: Callable[[], bool] | None = None,
               drafts: bool = True) -> Iterator[Completion]:
        """Drafts (final=False) after each denoising step (unless drafts=False), then the final completion."""
        t0 = time.perf_counter()
        s = self.settings
        offset = cursor_offset(request.text, request.line, request.column)
        salt = self.cache_salt(request.language)
        cached = self.cache.get(request.text, offset, salt)
        if cached is not None:
            yield Completion(text=cached, latency_ms=(time.perf_counter() - t0) * 1000, from_cache=True,
                             hole="typed_ahead", candidate_text=cached)
            return
        view = self.syntax_view(request, offset)
        ctx, plan, ids = self.fit_context(request, offset, view, t0)
        t_enc = time.perf_counter()
        state, reused = self.contexts.encode(self.model.backend, ids, request.document_id)
        if reused:  # the cost model predicts full encodes; the steps still see the whole context
            self.costs.observe_context(ids.shape[1])
        else:
            self.costs.observe_encode(ids.shape[1], (time.perf_counter() - t_enc) * 1000)
        lengths, steps, threshold = self.plan_candidates(plan, ids.shape[1], (time.perf_counter() - t0) * 1000)
        first_allowed = self.indentation(ctx, plan, request.language)

        result = None
        for result in denoise_steps(self.model.backend, state, lengths, steps, self.ids, threshold, is_cancelled,
                                    on_timing=self.costs.observe_step, first_allowed=first_allowed):
            if drafts and not result.cancelled:
                yield self._draft(result, ctx, plan, t0)
        checks = candidate_checks(self.syntax, view, request, offset, ctx, plan.kind, s)
        completion, rank = self._final(result, ctx, plan, checks, t0)
        cancelled = result.cancelled
        first, rejected_words, taken = result, [], result.steps
        opened = self.first_words(result)  # every pass's opening words, which an alternative may not reuse

        def another_pass(steps: int, banned) -> BatchResult:
            return denoise_rows(self.model.backend, state, lengths, steps, self.ids, threshold,
                                is_cancelled=is_cancelled, on_timing=self.costs.observe_step,
                                first_allowed=first_allowed, banned=banned)

        for attempt in range(s.parse_retries):
            retry = self.plan_retry(completion, first, ids.shape[1], (time.perf_counter() - t0) * 1000)
            if not retry or cancelled:
                break
            if completion.parse_ok is False:
                rejected_words += [w for w in self.first_words(result) if w not in rejected_words]
            result = another_pass(retry, rejected_words if attempt else ())
            cancelled = result.cancelled
            if not cancelled:
                taken += result.steps
                opened += [w for w in self.first_words(result) if w not in opened]
                again, again_rank = self._final(result, ctx, plan, checks, t0)
                if completion.parse_ok is False or again_rank > rank:  # a broken parse always gives way
                    completion, rank = again, again_rank
                completion = replace(completion, steps=taken, forward_passes=1 + taken, retried=True)
        scorer = Scorer(self.model.backend, state, self.model.tokenizer, self.ids)  # one memo for every pass
        for _ in range(s.alternatives):
            alternative = self.plan_alternative(first, ids.shape[1], (time.perf_counter() - t0) * 1000)
            if not alternative or cancelled or not opened:
                break
            result = another_pass(alternative, list(opened))
            cancelled = result.cancelled
            if not cancelled:
                taken += result.steps
                opened += [w for w in self.first_words(result) if w not in opened]
                again, again_rank = self._final(result, ctx, plan, checks, t0)
                score = scorer if self.budget_buys_scoring(max(lengths), ids.shape[1], t0) else None
                if completion.parse_ok is False or prefer_second((completion.candidate_text, rank),
                                                                 (again.candidate_text, again_rank), score):
                    completion, rank = replace(again, retried=completion.retried, alternative=True), again_rank
                completion = replace(completion, steps=taken, forward_passes=1 + taken + scorer.calls)
        completion = replace(completion, reused_tokens=reused, context_tokens=ids.shape[1])
        if not cancelled:
            self.cache.put(request.text, offset, completion.text, salt)
        log.debug("completion kind=%s spans=%s steps=%d/%d ctx=%d (reused %d) tree=%s latency=%.1fms chars=%d "
                  "parse_ok=%s retried=%s alternative=%s", plan.kind.value, lengths, result.steps, steps, ids.shape[1],
                  reused, "none" if view is None else "window" if view.windowed else "document", completion.latency_ms,
                  len(completion.text), completion.parse_ok, completion.retried, completion.alternative)
        yield completion

    def plan_retry(self, completion: Completion, result: BatchResult, ctx_tokens: int, elapsed_ms: float) -> int:
        """Steps of another pass over the same encoded context when every candidate broke the parse
        (0: none). Committing tokens in parallel is what breaks a line ("if x in None::"); more
        steps commit fewer at a time. A retry runs only where the budget buys more steps than the
        first pass (`result`) took, so a fast answer is never held back: on HumanEval single lines a
        parse rejection left 387 of 1033 holes empty at 4 steps. From the second retry on, the
        candidates may not open with a word a rejected one opened with (`first_words`): the model
        that wrote `>>> f(x)` after a docstring or `return` where a block must open writes the same
        at any step count. A fixed step count (settings.steps) is kept as asked."""
        s = self.settings
        needs_another = completion.parse_ok is False or bool(completion.unknown_names)
        if not needs_another or result.cancelled or s.steps or s.retry_steps_factor <= 1:
            return 0
        span = max(result.lengths)
        steps = min(span, math.ceil(result.steps * s.retry_steps_factor))
        if self.budget_binds:
            steps = min(steps, self.costs.steps_within(s.latency_budget_ms - elapsed_ms, ctx_tokens, span,
                                                       batch=len(result.lengths)))
        return steps if steps > result.steps else 0

    def plan_alternative(self, first: BatchResult, ctx_tokens: int, elapsed_ms: float) -> int:
        """Steps of a pass whose candidates may not open with a word an earlier pass's opened with
        (0: none): the first pass's step count, if the budget still buys it. The opening word
        decides most of a line and greedy parallel decoding commits to one; a second opening
        beside it, the likelier of the two kept (completion/scoring.py), took exact match on
        2000 held-out lines (benchmarks.infill --em-lines 2000) from 112 to 134. A fixed step
        count (settings.steps) is kept as asked."""
        s = self.settings
        if first.cancelled or s.steps or first.steps == 0:
            return 0
        step_ms = self.costs.predict_step_ms(max(first.lengths), len(first.lengths), ctx_tokens)
        if self.budget_binds and first.steps * step_ms > s.latency_budget_ms - elapsed_ms:
            return 0
        return first.steps

    def budget_buys_scoring(self, span: int, ctx_tokens: int, t0: float) -> bool:
        """Whether the budget buys scoring two candidates of up to `span` tokens by their left-to-right
        likelihood (completion/scoring.py: a batch of a row per token each)."""
        s = self.settings
        return not self.budget_binds or 2 * self.costs.predict_step_ms(span, span, ctx_tokens) <= (
            s.latency_budget_ms - (time.perf_counter() - t0) * 1000)

    def first_words(self, result: BatchResult) -> list[tuple[int, int]]:
        """(position, token) of each row's first token that is not whitespace: the word a
        candidate opened with, which decides most of what follows (`plan_retry`)."""
        out = []
        for row in result.rows:
            for j, token in enumerate(row):
                if token in (self.ids.mask, self.ids.eos):
                    break
                if self.model.tokenizer.decode([token]).strip():
                    out.append((j, token))
                    break
        return out

    def fit_context(self, request: CompletionRequest, offset: int, view: SyntaxView | None,
                    t0: float) -> tuple[Context, HolePlan, np.ndarray]:
        """(context, hole plan, context ids) from the configured windows, or, where this machine's
        costs say their encode (what the cache does not cover) and min_steps steps overrun the
        budget, from the largest of WINDOW_SCALES that fits (else the smallest). Steps matter more
        than context to this model: HumanEval pass@1, budget off (infill.json: engine, steps_1,
        half_windows), 192 + 128 tokens at 4 steps 0.059, at 1 step 0.024, 96 + 64 tokens at
        4 steps 0.055; and on an AVX2-only CPU a 512-token encode alone took 187 ms of the
        default 150 ms budget, leaving one step."""
        s = self.settings
        tok = self.model.tokenizer
        budgeted = self.budget_binds
        for scale in WINDOW_SCALES if budgeted else WINDOW_SCALES[:1]:
            ctx = build_context(request.text, offset, tok, max(1, round(s.prefix_tokens * scale)),
                                max(1, round(s.suffix_tokens * scale)), view)
            plan = plan_hole(classify(ctx, view), s)
            ids = context_ids(tok, ctx.prefix_ids, ctx.suffix_ids)
            if not budgeted:
                break
            T = ids.shape[1]
            fresh = T - self.contexts.reusable(self.model.backend, ids, request.document_id)
            predicted = ((self.costs.predict_encode_ms(fresh) if fresh else 0.0)
                         + max(1, s.min_steps) * self.costs.predict_step_ms(plan.spans[0], 1, T))
            if (time.perf_counter() - t0) * 1000 + predicted <= s.latency_budget_ms:
                break
        if scale < 1.0:
            log.debug("windows at %.2f of %d + %d tokens to leave the budget %d steps", scale, s.prefix_tokens,
                      s.suffix_tokens, s.min_steps)
        return ctx, plan, ids

    def cache_salt(self, language: str) -> str:
        """Everything besides the text that changes the answer: typed-ahead entries made under other
        settings (a benchmark's fixed-step variant, say) must not be served."""
        fields = asdict(self.settings)
        fields.pop("enabled_languages", None)
        return f"{languages.canonical(language)}|{sorted(fields.items())}"

    def syntax_view(self, request: CompletionRequest, offset: int) -> SyntaxView | None:
        """The tree around the cursor; None without a grammar, or if tree-sitter fails (then the
        completion goes on with line-based context rather than failing)."""
        try:
            return self.syntax.view(request.text, offset, request.language, request.document_id)
        except Exception as exc:  # a parser bug must not cost the user the completion
            log.warning("tree-sitter failed for %s: %s; using line-based context", request.language, exc)
            return None

    def indentation(self, ctx: Context, plan: HolePlan, language: str):
        """The first tokens a suggestion on a blank line may start with (completion/indent.py), or None."""
        if not self.settings.indent_from_context:
            return None
        return first_token_limit(ctx, plan.kind, language, self.model.tokenizer)

    def _decode(self, row: list[int]) -> str:
        return self.model.tokenizer.decode(cut_at_eos(row, self.ids.eos, self.ids.mask))

    def _draft(self, result: BatchResult, ctx: Context, plan: HolePlan, t0: float) -> Completion:
        r = max(range(len(result.rows)), key=lambda i: result.mean_confidence(i, self.ids.eos))
        return Completion(text=postprocess(self._decode(result.rows[r]), ctx, plan.max_lines),
                          latency_ms=(time.perf_counter() - t0) * 1000, steps=result.steps,
                          forward_passes=1 + result.steps, span_len=result.lengths[r], final=False,
                          hole=plan.kind.value, candidates=len(result.rows))

    def _final(self, result: BatchResult, ctx: Context, plan: HolePlan, checks: CandidateChecks,
               t0: float) -> tuple[Completion, tuple]:
        """(the pick, its rank) over every candidate, post-processed: first one that keeps the
        parse (in Python: compiles in its block, else at least compiles no worse), then non-empty,
        then reads no unknown name (completion/names.py), then leaves no `try:` without a handler
        (completion/blocks.py), then ended within its span rather than cut off by it, then the
        most confident."""
        best = None
        for r, row in enumerate(result.rows):
            text = postprocess(self._decode(row), ctx, plan.max_lines)
            ok = checks.keeps_parse(text) if checks.keeps_parse is not None and text else None
            verdict = checks.compiles(text) if ok is not False and text else NEUTRAL
            if verdict == BREAKS:
                ok = False
            unknown = checks.reads_unknown(text) if ok is not False else []
            conf = result.mean_confidence(r, self.ids.eos)
            rank = (0 if ok is False else verdict, bool(text), not unknown, not checks.leaves_try_open(text),
                    result.finished(r, self.ids.eos), conf)
            if best is None or rank > best[0]:
                best = (rank, r, text, ok, unknown, verdict)
        rank, r, text, ok, unknown, verdict = best
        return Completion(text="" if ok is False else text, latency_ms=(time.perf_counter() - t0) * 1000,
                          steps=result.steps, forward_passes=1 + result.steps, span_len=result.lengths[r],
                          hole=plan.kind.value, candidate_text=text, parse_ok=ok,
                          compiles={COMPILES: True, BREAKS: False}.get(verdict), candidates=len(result.rows),
                          confidence=round(rank[-1], 4), unknown_names=tuple(unknown)), rank

    def with_settings(self, **changes) -> CompletionEngine:
        """A view of this engine with other settings, sharing the model, costs, trees, caches and context reuse."""
        return CompletionEngine(self.model, replace(self.settings, **changes), self.costs, self.syntax, self.cache,
                                self.contexts)


def load_engine(model_dir: str | None = None, backend: str = "auto", threads: int | None = None,
                settings: CompletionSettings | None = None) -> CompletionEngine:
    """Load the model, measure its step costs with a short warm-up, and build the engine."""
    model = load_model(model_dir, backend=backend, threads=threads)
    costs = StepCostModel()
    costs.warm_up(model.backend, batches=(1, 3))  # batch 3: the three span lengths of a line at once
    return CompletionEngine(model, settings, costs)
