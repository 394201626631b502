"""Golden cases from tests/golden/**/*.txt, found and run by one test (the Tabby agent's style).

A file holds cases; each starts with `=== description`, then `key: value` headers
(`rule` is required, `language`, `max_lines` ... as the rule needs), then sections
`--- document` (the text, █ marks the cursor), `--- completion` and `--- expected`.
In sections ␣ stands for a space and ⇥ for a tab where they would be invisible;
blank lines at a section's end are layout (a document gets one final newline back).
`--- expected` left empty means "no suggestion".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from completion import languages, postprocess
from completion.context import build_context
from completion.hole import classify
from completion.syntax import SyntaxCache, keeps_parse

GOLDEN = Path(__file__).parent / "golden"
CURSOR = "█"


@dataclass
class Case:
    file: str
    description: str
    headers: dict[str, str] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)

    @property
    def rule(self) -> str:
        return self.headers["rule"]

    @property
    def language(self) -> str:
        return self.headers.get("language", "python")

    def document(self) -> tuple[str, int]:
        text = self.sections["document"] + "\n"
        offset = text.index(CURSOR)
        return text.replace(CURSOR, "", 1), offset


def _unescape(text: str) -> str:
    return text.replace("␣", " ").replace("⇥", "\t")


def parse_cases(path: Path) -> list[Case]:
    cases: list[Case] = []
    section: str | None = None
    lines: list[str] = []

    def close_section() -> None:
        if section is not None:
            # blank lines before the next marker are layout, not text
            cases[-1].sections[section] = _unescape("\n".join(lines).rstrip("\n"))

    for raw in path.read_text(encoding="utf-8").split("\n"):
        if raw.startswith("=== "):
            close_section()
            section, lines = None, []
            cases.append(Case(path.relative_to(GOLDEN).as_posix(), raw[4:].strip()))
        elif raw.startswith("--- ") and cases:
            close_section()
            section, lines = raw[4:].strip(), []
        elif section is not None:
            lines.append(raw)
        elif raw.strip() and cases:
            key, _, value = raw.partition(":")
            cases[-1].headers[key.strip()] = value.strip()
    close_section()
    return cases


ALL_CASES = [c for p in sorted(GOLDEN.rglob("*.txt")) for c in parse_cases(p)]


def _ctx(case: Case, tokenizer):
    text, offset = case.document()
    view = SyntaxCache().view(text, offset, case.language)
    return build_context(text, offset, tokenizer, 192, 128, view), view


def run_case(case: Case, tokenizer) -> str:
    """What the rule makes of the case's input."""
    s = case.sections
    rule = case.rule
    if rule == "cut_at_eos":
        ids = [int(t) for t in s["completion"].split()]
        out = postprocess.cut_at_eos(ids, int(case.headers["eos"]), int(case.headers["mask"]))
        return " ".join(map(str, out))
    if rule == "limit_lines":
        return postprocess.limit_lines(s["completion"], int(case.headers["max_lines"]))
    if rule == "strip_trailing_whitespace":
        return postprocess.strip_trailing_whitespace(s["completion"])
    if rule == "hole_kind":
        ctx, view = _ctx(case, tokenizer)
        return classify(ctx, view).value
    text, offset = case.document()
    if rule == "reject_parse_worse":
        return postprocess.reject_parse_worse(s["completion"], lambda t: keeps_parse(text, offset, t, case.language))
    ctx, view = _ctx(case, tokenizer)
    if rule == "drop_suffix_overlap":
        return postprocess.drop_suffix_overlap(s["completion"], ctx.line_suffix, ctx.line_prefix)
    if rule == "drop_repeated_next_lines":
        return postprocess.drop_repeated_next_lines(s["completion"], ctx.suffix_text, ctx.line_suffix)
    if rule == "balance_brackets":
        return postprocess.balance_brackets(s["completion"], ctx.prefix_text, ctx.line_suffix)
    if rule == "match_indentation":
        base = ctx.line_prefix[: len(ctx.line_prefix) - len(ctx.line_prefix.lstrip(" \t"))]
        return postprocess.match_indentation(s["completion"], postprocess.detect_indent(text), base)
    if rule == "postprocess":
        check = None
        if view is not None:
            check = lambda t: keeps_parse(text, offset, t, case.language)  # noqa: E731
        return postprocess.postprocess(s["completion"], ctx, int(case.headers.get("max_lines", 1)), check)
    raise AssertionError(f"{case.file}: unknown rule {rule!r}")


@pytest.mark.parametrize("case", ALL_CASES, ids=[f"{c.file}:{c.description}" for c in ALL_CASES])
def test_golden(case: Case, tokenizer):
    assert run_case(case, tokenizer) == case.sections["expected"], case.description


RULES = ("cut_at_eos", "limit_lines", "drop_suffix_overlap", "drop_repeated_next_lines", "balance_brackets",
         "match_indentation", "strip_trailing_whitespace", "reject_parse_worse", "postprocess")


def test_every_rule_and_language_has_golden_cases():
    rules = {c.rule for c in ALL_CASES}
    assert set(RULES) <= rules, f"rules without golden cases: {set(RULES) - rules}"
    for lang in languages.GRAMMARS:
        kinds = {c.sections["expected"] for c in ALL_CASES if c.rule == "hole_kind" and
                 languages.canonical(c.language) == lang}
        validity = [c for c in ALL_CASES if c.rule == "reject_parse_worse" and languages.canonical(c.language) == lang]
        assert len(kinds) >= 4, f"{lang}: hole kinds covered {kinds}"
        assert any(c.sections["expected"] for c in validity) and any(not c.sections["expected"] for c in validity), \
            f"{lang}: needs a kept and a rejected parse-validity case"


def test_golden_format_is_parsed_as_documented():
    case = parse_cases(GOLDEN / "postprocess" / "strip_trailing_whitespace.txt")[0]
    assert case.rule == "strip_trailing_whitespace" and "completion" in case.sections and "expected" in case.sections
    assert all(c.headers.get("rule") for c in ALL_CASES), "every case names its rule"
    assert all(CURSOR in c.sections["document"] for c in ALL_CASES if "document" in c.sections)
