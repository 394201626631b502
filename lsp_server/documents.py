"""Pure helpers between LSP documents and engine requests: positions and languages.

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


def _units(char: str, encoding: str) -> int:
    cp = ord(char)
    if encoding == types.PositionEncodingKind.Utf8:
        return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
    if encoding == types.PositionEncodingKind.Utf32:
        return 1
    return 2 if cp > 0xFFFF else 1  # UTF-16: astral characters are surrogate pairs


def code_point_column(line_text: str, character: int, encoding: str, line: int = 0) -> int:
    """Client code units -> code points; InvalidPosition past the line's end or inside a character."""
    if character < 0:
        raise InvalidPosition(f"negative character {character} on line {line}")
    if line_text.isascii() or encoding == types.PositionEncodingKind.Utf32:
        if character > len(line_text):
            raise InvalidPosition(f"character {character} is past the end of line {line} ({len(line_text)} characters)")
        return character
    units = 0
    for index, char in enumerate(line_text):
        if units == character:
            return index
        units += _units(char, encoding)
        if units > character:
            raise InvalidPosition(f"character {character} on line {line} falls inside a character ({encoding})")
    if units == character:
        return len(line_text)
    raise InvalidPosition(f"character {character} is past the end of line {line} ({units} {encoding} code units)")


def resolve_position(text: str, position: types.Position, encoding: str) -> tuple[int, int]:
    """An LSP position -> (line, code-point column) for the engine; InvalidPosition when outside the text."""
    if position.line < 0:
        raise InvalidPosition(f"negative line {position.line}")
    lines = split_lines(text)
    if position.line >= len(lines):
        raise InvalidPosition(f"line {position.line} is past the end of the document ({len(lines)} lines)")
    column = code_point_column(lines[position.line], position.character, encoding, position.line)
    return position.line, column
