"""Where a suggestion on a blank line may start: its indentation, from the lines around it.

At column 0 of a blank line the model writes the indentation itself, and a small
model often writes the wrong one (a statement at function level inside a loop); in
Python that is a syntax error and the suggestion is thrown away. Editors indent a
new line before the user types; this answers the same question from the
neighbouring lines:

- where the editor has already indented the line, none: the suggestion starts with code;
- after a line that opens a block (`:` in Python, an open bracket anywhere) one
  level deeper than that line;
- otherwise the previous line's level or a shallower one, down to one level below
  the next line's (the next line may close a block the new line is in, and the new
  line may itself be an `else:`).

`first_token_mask` turns the choices into the first span tokens the sampler may
commit: byte-level BPE writes `    return` as `'   '` + `' return'`, so an indentation
of k spaces starts with the k-1-space token.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from completion import languages
from completion.context import Context
from completion.hole import HoleKind
from completion.postprocess import IndentStyle, detect_indent

_PY_COMMENT = re.compile(r"\s+#[^'\"]*$")  # a trailing comment with no quote in it


def leading(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def opens_block(line: str, language: str) -> bool:
    """Whether the line ends with what opens an indented block or a bracket continuation."""
    code = _PY_COMMENT.sub("", line).rstrip() if language == "python" else line.rstrip()
    return code.endswith(("(", "[", "{")) or (language == "python" and code.endswith(":"))


def _neighbours(ctx: Context) -> tuple[str | None, str | None]:
    """The last non-blank line before the cursor's line and the first non-blank one after it."""
    before = ctx.prefix_text[: len(ctx.prefix_text) - len(ctx.line_prefix)].split("\n")
    prev = next((ln for ln in reversed(before) if ln.strip()), None)
    after = ctx.suffix_text[len(ctx.line_suffix):].split("\n")[1:]
    nxt = next((ln for ln in after if ln.strip()), None)
    return prev, nxt


def indent_choices(ctx: Context, language: str, style: IndentStyle | None) -> list[str] | None:
    """Indentations the cursor's blank line may start with, the previous line's level first;
    None unless the cursor is on a blank line, at column 0 with a non-blank line above it or at
    the end of what the editor indented (then the suggestion starts with code: [""])."""
    if ctx.line_suffix.strip() or ctx.line_prefix.strip():
        return None
    if ctx.line_prefix:
        return [""]
    prev, nxt = _neighbours(ctx)
    if prev is None:
        return None
    unit = "\t" if style is not None and style.char == "\t" else " " * (style.width if style else 4)
    p = leading(prev)
    if opens_block(prev, language):
        return [p + unit]
    floor = len(leading(nxt)) - len(unit) if nxt is not None else 0
    choices = [p]
    while choices[-1].endswith(unit) and len(choices[-1]) - len(unit) >= max(0, floor):
        choices.append(choices[-1][: -len(unit)])
    return choices


def first_token_mask(choices: list[str], tokenizer) -> np.ndarray | None:
    """Vocabulary mask of the first tokens that start one of the choices; None if none does.

    A first token writes an indentation when it is what the tokenizer itself writes first for that
    indentation followed by code (k spaces: the k-1-space token, as `' return'` takes the last
    space; a tab run may split as '\t' + '\t'), or when it holds the whole indentation and then
    code. Column 0: any token that does not start with whitespace."""
    mask = np.zeros(len(tokenizer.token_texts), dtype=bool)
    for indent in choices:
        mask |= _indent_mask(tokenizer, indent)
    return mask if mask.any() else None


@functools.lru_cache(maxsize=64)
def _indent_mask(tokenizer, indent: str) -> np.ndarray:
    """One choice's mask; cached, since a file has a handful of indentations and a scan of the
    vocabulary costs milliseconds on the request path."""
    texts = tokenizer.token_texts
    if indent == "":
        return np.fromiter((bool(t) and not t[0].isspace() for t in texts), dtype=bool, count=len(texts))
    n = len(indent)
    mask = np.fromiter((len(t) > n and t.startswith(indent) and not t[n].isspace() for t in texts),
                       dtype=bool, count=len(texts))
    for code in _PROBES:
        mask[tokenizer.encode(indent + code)[0]] = True
    mask.flags.writeable = False
    return mask


_PROBES = ("x", "return", "(", "#", "'", "}")  # how lines start: a name, a keyword, punctuation


def first_token_limit(ctx: Context, kind: HoleKind, language: str, tokenizer) -> np.ndarray | None:
    """The first tokens a suggestion on a blank line (outside comments and strings) may start with."""
    if kind not in (HoleKind.EMPTY_LINE, HoleKind.EMPTY_BLOCK):
        return None
    choices = indent_choices(ctx, languages.canonical(language), detect_indent(ctx.prefix_text + ctx.suffix_text))
    return None if choices is None else first_token_mask(choices, tokenizer)
