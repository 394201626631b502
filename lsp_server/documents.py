"""Pure helpers between LSP documents and engine requests: positions, languages, line endings.

The engine counts columns in code points; LSP clients count UTF-16 code units unless
another encoding was negotiated, so an emoji is one column here and two there.
"""

from __future__ import annotations

from pathlib import PurePath

from lsprotocol import types

from completion.api import InvalidPosition

LANGUAGE_BY_SUFFIX = {
    ".py": "python", ".js": "javascript", ".ts": "typescript", ".tsx": "tsx", ".rs": "rust", ".go": "go",
    ".c": "c", ".h": "c", ".cpp": "cpp", ".cc": "cpp", ".hpp": "cpp", ".java": "java",
}
# LSP language ids that differ from the engine's names.
LANGUAGE_BY_LSP_ID = {"typescriptreact": "tsx", "javascriptreact": "javascript"}


def language_for_path(path: str) -> str:
    """The engine's language name for a file name or URI, "text" when unknown."""
    return LANGUAGE_BY_SUFFIX.get(PurePath(path).suffix.lower(), "text")


def language_for_document(language_id: str | None, uri: str) -> str:
    """Trust the client's languageId; fall back to the extension when it sent none."""
    if language_id:
        return LANGUAGE_BY_LSP_ID.get(language_id, language_id)
    return language_for_path(uri)


def language_enabled(language: str, enabled: list[str]) -> bool:
    return "*" in enabled or language in enabled


def split_lines(text: str) -> list[str]:
    """Lines as the engine sees them: split on "\\n", a trailing "\\r" dropped."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def code_point_column(line_text: str, character: int, encoding: str, line: int = 0) -> int:
    """Client code units -> code points; InvalidPosition past the line's end or inside a character.

    Encodes the line once (C speed) instead of walking it, so a 10 MB one-line file costs milliseconds.
    """
    if character < 0:
        raise InvalidPosition(f"negative character {character} on line {line}")
    if line_text.isascii() or encoding == types.PositionEncodingKind.Utf32:
        if character > len(line_text):
            raise InvalidPosition(f"character {character} is past the end of line {line} ({len(line_text)} characters)")
        return character
    codec, width = ("utf-8", 1) if encoding == types.PositionEncodingKind.Utf8 else ("utf-16-le", 2)
    encoded = line_text.encode(codec, "surrogatepass")
    if character * width > len(encoded):
        raise InvalidPosition(f"character {character} is past the end of line {line} "
                              f"({len(encoded) // width} {encoding} code units)")
    try:
        before = encoded[: character * width].decode(codec, "surrogatepass")
    except UnicodeDecodeError:
        before = None  # cut inside a UTF-8 sequence
    if before is None or line_text[: len(before)] != before:  # or between the halves of a surrogate pair
        raise InvalidPosition(f"character {character} on line {line} falls inside a character ({encoding})")
    return len(before)


def match_line_endings(suggestion: str, text: str) -> str:
    """Write the suggestion's line breaks the way the document does (CRLF files get CRLF)."""
    first_break = text.find("\n")
    if first_break > 0 and text[first_break - 1] == "\r" and "\n" in suggestion:
        return suggestion.replace("\r\n", "\n").replace("\n", "\r\n")
    return suggestion
