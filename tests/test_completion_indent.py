"""A blank line's indentation from the lines around it (completion/indent.py), and the engine using it."""

from __future__ import annotations

import pytest

from completion.context import build_context
from completion.indent import first_token_mask, indent_choices
from completion.postprocess import IndentStyle, detect_indent

FOUR = IndentStyle(" ", 4)


def _choices(text: str, language: str = "python", style: IndentStyle | None = FOUR, tokenizer=None):
    offset = text.index("|")
    text = text.replace("|", "")
    ctx = build_context(text, offset, tokenizer, 192, 128)
    return indent_choices(ctx, language, style)


CASES = [
    # (text with | at the cursor, language, choices)
    ("def f(xs):\n    for x in xs:\n|\n    return 1\n", "python", ["        "]),
    ("def f(xs):\n    if xs:  # any?\n|\n", "python", ["        "]),  # a trailing comment after the colon
    # the same level both sides, or one shallower (an `else:`, a `def` whose body is the next line)
    ("def f(xs):\n    total = 0\n|\n    return total\n", "python", ["    ", ""]),
    ("def f(xs):\n    for x in xs:\n        a = 1\n|\n    return a\n", "python", ["        ", "    ", ""]),
    ("def f(xs):\n    for x in xs:\n        if x:\n            a = 1\n|\n", "python",
     ["            ", "        ", "    ", ""]),  # end of file: any enclosing level
    ("def f(x):\n    if x:\n        return 1\n|\n        return 2\n", "python", ["        ", "    "]),  # an else:
    ("int f(void) {\n|\n}\n", "c", ["    "]),  # after an opening brace
    ("x = 1\n|\ny = 2\n", "python", [""]),
]


@pytest.mark.parametrize("text,language,want", CASES)
def test_indent_choices(tokenizer, text, language, want):
    assert _choices(text, language, tokenizer=tokenizer) == want


def test_tabs_and_two_space_files(tokenizer):
    tabbed = "func f() {\n\tfor {\n|\n\t}\n}\n"
    assert _choices(tabbed, "go", IndentStyle("\t", 1), tokenizer) == ["\t\t"]
    two = "def f(xs):\n  for x in xs:\n    a = 1\n|\n"
    assert _choices(two, "python", detect_indent(two.replace("|", "")), tokenizer) == ["    ", "  ", ""]


def test_only_on_a_blank_line_with_a_line_above(tokenizer):
    assert _choices("def f():\n    |\n", tokenizer=tokenizer) == [""]  # the editor indented: code next
    assert _choices("def f():\n|pass\n", tokenizer=tokenizer) is None  # text after the cursor
    assert _choices("|\nx = 1\n", tokenizer=tokenizer) is None  # nothing above


def test_first_token_mask_matches_how_bpe_writes_indentation(tokenizer):
    texts = tokenizer.token_texts
    mask = first_token_mask(["        "], tokenizer)
    allowed = {texts[i] for i in mask.nonzero()[0]}
    assert "       " in allowed  # 7 spaces, then ' return'
    assert "        " not in allowed and "   " not in allowed and "return" not in allowed
    for code in ("        return x", "        for i in range(3):", "        # note"):
        assert mask[tokenizer.encode(code)[0]]  # what the tokenizer really writes first is allowed
    top = first_token_mask([""], tokenizer)
    assert top[tokenizer.encode("return x")[0]] and not top[tokenizer.encode("    return x")[0]]
    tabs = first_token_mask(["\t\t"], tokenizer)
    assert tabs[tokenizer.encode("\t\treturn")[0]] and not tabs[tokenizer.encode("return")[0]]
    assert not tabs[tokenizer.encode("    return")[0]]


def test_engine_indents_a_blank_line_inside_a_loop():
    """The bundled model at column 0 under an `if` inside a loop inside a method writes 12 spaces when
    left alone; the engine's first token is the `if` body's indent (15 spaces, the 16th rides on the
    code token), committed before the first step."""
    from completion.api import CompletionRequest
    from completion.engine import load_engine
    from completion.hole import classify
    from completion.indent import first_token_limit
    from completion.mask import context_ids
    from completion.sampler import denoise_rows
    from tests.conftest import MODEL_DIR

    engine = load_engine(str(MODEL_DIR), threads=1)
    tok = engine.model.tokenizer
    text = "class A:\n    def f(self, xs):\n        for x in xs:\n            if x:\n\n        return xs\n"
    offset = text.index("\n\n") + 1
    ctx = build_context(text, offset, tok, 192, 128)
    limit = first_token_limit(ctx, classify(ctx), "python", tok)
    state = engine.model.backend.encode_context(context_ids(tok, ctx.prefix_ids, ctx.suffix_ids))
    rows = denoise_rows(engine.model.backend, state, [16], 2, engine.ids, first_allowed=limit).rows
    assert tok.token_texts[rows[0][0]] == " " * 15
    c = engine.complete(CompletionRequest(text=text, line=4, column=0))
    assert c.hole == "empty_block"
    assert not c.candidate_text or (c.candidate_text.startswith(" " * 16) and not c.candidate_text[16].isspace())
