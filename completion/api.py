"""The completion engine's public types: what goes in, what comes out.

This layer knows nothing of LSP: positions are 0-based lines and columns counted
in code points (Python string indices); the server converts from UTF-16/UTF-8.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class CompletionError(Exception):
    """A request the engine cannot serve; the message is meant for the user."""


class InvalidPosition(CompletionError):
    pass


@dataclass
class CompletionSettings:
    latency_budget_ms: float = 150.0  # time for context encode + all denoising steps
    max_lines: int = 1  # 1: single-line completions; more lets block bodies through
    # Context windows: 192 + 128 tokens is the bundled model's training window (320 tokens), and the
    # suffix is 40% of it (autoregressive tools keep ~15%): diffusion sees all of it at once.
    prefix_tokens: int = 192  # context window before the cursor
    suffix_tokens: int = 128  # after the cursor
    span_len: int | None = None  # tokens in the hole; None lets the engine choose
    steps: int | None = None  # denoising steps; None chooses them from the budget
    min_confidence: float = 0.9  # commit every masked token above this in a step
    # Parallel decoding, the point of diffusion: a span of N tokens takes max(min_steps, ceil(N / tokens_per_step))
    # steps, so a 32-token span takes 4 (tokens/s against autoregressive decoding: diffusion_vs_ar_speedup_span32
    # in benchmarks/results/speed.json) and a single line of 8-16 tokens takes 4 too. Short spans get the floor
    # because their steps are cheap and quality needs them: on HumanEval (infill.json) 2 steps leave 57% of
    # the holes empty (parallel commits that break the line, dropped by the parse check), 4 steps 34%, and
    # pass@1 goes 0.0445 -> 0.0513. Measured again with retries and the compiler check (bundle of step 21300,
    # budget off, against 4 steps' HumanEval 102 passes and exact match 136 of 2000 held-out lines): 3 steps
    # (tokens_per_step 11) 89 (McNemar p = 0.01) and 132 (p = 0.29); 2 (16) 93 (p = 0.11) and 123 (p = 0.002).
    # The retries a broken line sets off do not win it back. The budget may cut further; tokens_per_step 1 =
    # one per token.
    tokens_per_step: float = 8.0
    min_steps: int = 4
    # When every candidate breaks the parse, denoise again with this many times the steps (within the
    # budget), up to parse_retries times, later retries banning the first words already rejected
    # (CompletionEngine.plan_retry). HumanEval single-line pass@1, budget off, 1033 holes, two span
    # lengths: no retry 0.0707, one 0.0852 (280 left empty), two 0.0881 (189 empty), three 0.0881; with
    # three lengths two retries match three (0.0939) at single-line p50 12.5 ms against 21.3 ms.
    # 0 or a factor of 1 turns them off.
    retry_steps_factor: float = 2.0
    parse_retries: int = 2
    # Passes whose candidates may not open with a word an earlier pass's opened with, ranked beside them
    # (CompletionEngine.plan_alternative); skipped when the budget does not buy the first pass's steps again.
    # Exact match on 2000 held-out lines, budget off: 0 -> 1 took 112 -> 134 (HumanEval unchanged, 100 -> 101),
    # the two passes' picks compared by the denoiser's left-to-right likelihood (completion/scoring.py).
    # With the compiler check (2026-12-07, bundle of step 21300): 1 -> 2 took exact match 136 -> 147
    # (McNemar p = 0.007; HumanEval 102 -> 101) for 13.1 -> 17.6 forward passes per HumanEval hole; 3 gave
    # 149 and 103 (p = 0.69 against 2) for 22.1.
    alternatives: int = 2
    span_candidates: int = 3  # span lengths denoised together in one batch (1: only the preferred one)
    reject_parse_errors: bool = True  # drop a completion that adds tree-sitter errors
    # Rank candidates reading a name the document never mentions (`return_int`, a commit that glued two
    # tokens) below the others, and retry like a broken parse when all do (completion/names.py; Python).
    rank_known_names: bool = True
    # Python: compile the block around the cursor with each candidate in it (completion/compile_check.py); a
    # candidate that makes it fail earlier is dropped, one that compiles ranks above one that does not.
    compile_python: bool = True
    indent_from_context: bool = True  # at column 0 of a blank line, indent as the lines around it allow
    enabled_languages: list[str] = field(default_factory=lambda: ["*"])


@dataclass
class CompletionRequest:
    text: str
    line: int  # 0-based
    column: int  # 0-based, code points
    language: str = "python"  # an LSP languageId ("python", "typescriptreact", ...); unknown ones get line context
    document_id: str | None = None  # e.g. the URI: lets the engine re-parse this document incrementally


@dataclass
class Completion:
    text: str  # to insert at the cursor ("" means no suggestion)
    latency_ms: float = 0.0
    steps: int = 0  # denoising steps taken
    forward_passes: int = 0  # encoder + denoiser calls
    span_len: int = 0
    final: bool = True  # False for an intermediate draft
    from_cache: bool = False
    hole: str = ""  # the hole kind (completion.hole.HoleKind value), "typed_ahead" from the cache
    candidate_text: str = ""  # the chosen candidate before the parse check (== text unless rejected)
    parse_ok: bool | None = None  # whether the candidate kept the parse; None when not checked
    compiles: bool | None = None  # Python: its block compiles with it (False: worse than without; None: not told)
    candidates: int = 1  # span lengths denoised together
    reused_tokens: int = 0  # context tokens whose keys/values came from the previous request's cache
    context_tokens: int = 0  # tokens of the context the model saw (windows shrink when the budget is short)
    retried: bool = False  # another pass with more steps ran: every candidate broke the parse or read unknown names
    alternative: bool = False  # the pick came from a pass banned from the opening words of the earlier ones
    confidence: float = 0.0  # mean probability of the chosen candidate's tokens when committed (0: not sampled)
    unknown_names: tuple[str, ...] = ()  # names it reads that the document never mentions (completion/names.py)
