"""Names a completion reads that nothing defines: the mark of a broken parallel commit.

Committing several tokens in one denoising step joins pieces that were each likely
alone: `return` and `_int` become `return_int`, `count_nums` loses its `s`. Such a
line parses, so the parse check keeps it. But it reads a name that is nowhere in the
document, not a builtin, and not bound by the line itself: in a single line of
Python, that is almost always a mistake. HumanEval single-line holes (bundled model,
budget off): 86 of 1033 answers read such a name, and where another candidate did not,
ranking it first turned 3 failures into passes and no pass into a failure.

Python only, where the builtins and the ways a line binds names are known; other
languages return no names (unchecked). A check, not a proof: names imported with
`*` or defined in other files are unknown here, so the engine ranks and retries on
it but never drops a completion for it.
"""

from __future__ import annotations

import builtins
import io
import keyword
import re
import tokenize

from completion import languages

IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
PYTHON_KNOWN = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | {
    "self", "cls", "__name__", "__file__", "__doc__"}
# How a line of Python binds a name: the group holds the names bound.
_BINDS = (
    re.compile(r"\bfor\s+(.+?)\s+in\b"),
    re.compile(r"\bas\s+(\w+)"),
    re.compile(r"\b(?:def|class)\s+(\w+)"),
    re.compile(r"\bdef\s+\w+\s*\((.*)"),  # parameters (annotations and defaults too: a rough cut)
    re.compile(r"\blambda\b([^:]*):"),
    re.compile(r"\b(?:import|global|nonlocal)\s+(.+)"),
    re.compile(r"\bfrom\s+([\w.]+)"),
    re.compile(r"(\w+)\s*:?=(?!=)"),  # assignment, keyword argument, walrus
    re.compile(r"^\s*([\w\s,.*\[\]()]+?)\s*(?:[-+*/%&|^@]|//|\*\*|>>|<<)?=(?!=)"),  # a, b = ... / x += ...
)


def python_names(code: str) -> list[tuple[int, int, str, bool]]:
    """(start, end, name, is_attribute) of each name token outside strings and comments, as
    offsets into `code`; from a regex where the tokenizer gives up (an unclosed bracket)."""
    starts = [0]
    for line in code.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    out = []
    try:
        prev = ""
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.NAME:
                start = starts[tok.start[0] - 1] + tok.start[1]
                out.append((start, start + len(tok.string), tok.string, prev == "."))
            if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
                prev = tok.string
        return out
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return [(m.start(), m.end(), m.group(), code[:m.start()].rstrip().endswith("."))
                for m in IDENT.finditer(code)]


def bound_names(code: str) -> set[str]:
    """Names the lines of `code` bind (assign, loop over, define, import, take as parameters)."""
    bound: set[str] = set()
    for line in code.split("\n"):
        for pattern in _BINDS:
            for m in pattern.finditer(line):
                bound.update(IDENT.findall(m.group(1)))
    return bound


def unknown_names(insert: str, line_prefix: str, document: str, language: str) -> list[str]:
    """Names the inserted text reads (in full or in part: `line_prefix` is the cursor's line before
    it) that the document never mentions, the language does not provide and the line does not
    bind. [] where unchecked (languages other than Python)."""
    if languages.canonical(language) != "python" or not insert.strip():
        return []
    code = line_prefix + insert
    known = PYTHON_KNOWN | set(IDENT.findall(document)) | bound_names(code)
    return [name for start, end, name, attribute in python_names(code)
            if end > len(line_prefix) and not attribute and name not in known]
