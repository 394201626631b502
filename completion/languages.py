"""Which tree-sitter grammar parses which language, and what its nodes mean to us.

Language ids are the LSP `languageId` values (plus the server's short names such as
"tsx"). Grammars come from the individual wheels (tree-sitter-python, ...), loaded
lazily on first use so that a missing or broken wheel only turns that one language
into plain line-based context instead of failing the engine. Anything not listed
here gets no tree at all (`parser_for` returns None).
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass

log = logging.getLogger("quicksilver.completion")


@dataclass(frozen=True)
class Grammar:
    module: str  # the wheel's import name
    function: str  # the function returning the language pointer
    brace_blocks: bool  # blocks are {...} (C family) rather than indentation (Python)


GRAMMARS: dict[str, Grammar] = {
    "python": Grammar("tree_sitter_python", "language", brace_blocks=False),
    "javascript": Grammar("tree_sitter_javascript", "language", brace_blocks=True),  # includes JSX
    "typescript": Grammar("tree_sitter_typescript", "language_typescript", brace_blocks=True),
    "tsx": Grammar("tree_sitter_typescript", "language_tsx", brace_blocks=True),
    "rust": Grammar("tree_sitter_rust", "language", brace_blocks=True),
    "go": Grammar("tree_sitter_go", "language", brace_blocks=True),
    "c": Grammar("tree_sitter_c", "language", brace_blocks=True),
    "cpp": Grammar("tree_sitter_cpp", "language", brace_blocks=True),
    "java": Grammar("tree_sitter_java", "language", brace_blocks=True),
}

# LSP languageId values (and common short names) -> a key of GRAMMARS.
ALIASES = {
    "javascriptreact": "javascript", "jsx": "javascript", "js": "javascript",
    "typescriptreact": "tsx", "ts": "typescript",
    "c++": "cpp", "cuda-cpp": "cpp", "objective-c": "c", "py": "python", "rs": "rust", "golang": "go",
}

# Node types, across the grammars above, that mean "the cursor is in a comment / string / block body".
COMMENT_TYPES = frozenset({"comment", "line_comment", "block_comment", "doc_comment"})
STRING_TYPES = frozenset({
    "string", "template_string", "string_literal", "raw_string_literal", "char_literal", "character_literal",
    "interpreted_string_literal", "rune_literal", "text_block", "concatenated_string", "system_lib_string",
})
# Code inside a string: an f-string's {x}, a template's ${x}.
STRING_CODE_TYPES = frozenset({"interpolation", "template_substitution", "string_interpolation"})
BLOCK_TYPES = frozenset({
    "block", "statement_block", "compound_statement", "declaration_list", "field_declaration_list",
    "class_body", "interface_body", "enum_body", "constructor_body", "switch_block", "object_type",
    "enum_variant_list", "match_block", "literal_value", "initializer_list",
})

_lock = threading.Lock()
_languages: dict[str, object] = {}  # canonical id -> tree_sitter.Language, or None when it failed to load


def canonical(language: str) -> str:
    """The registry's key for a language id ("typescriptreact" -> "tsx"); unknown ids pass through lowercased."""
    lang = (language or "").strip().lower()
    return ALIASES.get(lang, lang)


def supported(language: str) -> bool:
    return canonical(language) in GRAMMARS


def grammar(language: str) -> Grammar | None:
    return GRAMMARS.get(canonical(language))


def ts_language(language: str):
    """The tree_sitter.Language for a language id, or None (unknown id, or its wheel is missing/broken)."""
    key = canonical(language)
    spec = GRAMMARS.get(key)
    if spec is None:
        return None
    with _lock:
        if key not in _languages:
            _languages[key] = _load(key, spec)
        return _languages[key]


def _load(key: str, spec: Grammar):
    try:
        import tree_sitter

        module = importlib.import_module(spec.module)
        return tree_sitter.Language(getattr(module, spec.function)())
    except Exception as exc:  # ImportError, ABI version mismatch (ValueError), ...
        log.warning("tree-sitter grammar for %s unavailable (%s): line-based context only", key, exc)
        return None


def parser_for(language: str):
    """A new tree_sitter.Parser for the language, or None. Parsers are not thread-safe: one per user."""
    lang = ts_language(language)
    if lang is None:
        return None
    import tree_sitter

    return tree_sitter.Parser(lang)


def is_comment(node_type: str) -> bool:
    return node_type in COMMENT_TYPES or node_type.endswith("_comment")


def is_string(node_type: str) -> bool:
    return node_type in STRING_TYPES
