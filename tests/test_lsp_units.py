"""Pure helpers of the language server: positions, languages, options, results, errors."""

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError, JsonRpcInvalidParams

from completion.api import CompletionError, InvalidPosition
from lsp_server.documents import (
    code_point_column,
    language_enabled,
    language_for_document,
    language_for_path,
    match_line_endings,
    split_lines,
)
from lsp_server.errors import UnknownDocument, to_rpc_error
from runtime.base import ModelFileError
from runtime.loader import BackendUnavailable

UTF8, UTF16, UTF32 = (types.PositionEncodingKind.Utf8, types.PositionEncodingKind.Utf16,
                      types.PositionEncodingKind.Utf32)
EMOJI_LINE = 'x = "😋" + y'  # the emoji is 1 code point, 2 UTF-16 units, 4 UTF-8 bytes


def pos(line: int, character: int) -> types.Position:
    return types.Position(line=line, character=character)


@pytest.mark.parametrize(("encoding", "character", "column"), [
    (UTF16, 5, 5), (UTF16, 7, 6), (UTF16, 12, 11),  # after the emoji UTF-16 is one ahead
    (UTF8, 9, 6), (UTF8, 14, 11),
    (UTF32, 6, 6), (UTF32, 11, 11),
])
def test_code_point_column_per_encoding(encoding, character, column):
    assert code_point_column(EMOJI_LINE, character, encoding) == column


@pytest.mark.parametrize(("encoding", "character"), [(UTF16, 6), (UTF8, 7)])
def test_code_point_column_rejects_the_middle_of_a_character(encoding, character):
    with pytest.raises(InvalidPosition, match="inside a character"):
        code_point_column(EMOJI_LINE, character, encoding)


@pytest.mark.parametrize(("line_text", "encoding", "character"), [
    ("abc", UTF16, 4), (EMOJI_LINE, UTF16, 13), (EMOJI_LINE, UTF8, 15), (EMOJI_LINE, UTF32, 12), ("abc", UTF16, -1),
])
def test_code_point_column_rejects_out_of_range(line_text, encoding, character):
    with pytest.raises(InvalidPosition):
        code_point_column(line_text, character, encoding)


def test_split_lines_matches_the_engine():
    assert split_lines("a = 1\r\nbb\n") == ["a = 1", "bb", ""]


def test_code_point_column_on_a_long_line_is_fast_enough_to_not_walk_it():
    line = "é" * 1_000_000 + "x"
    assert code_point_column(line, 2_000_000, UTF8) == 1_000_000
    assert code_point_column(line, 1_000_001, UTF16) == 1_000_001


def test_match_line_endings():
    assert match_line_endings("a\nb", "x = 1\r\ny\r\n") == "a\r\nb"
    assert match_line_endings("a\nb", "x = 1\ny\n") == "a\nb"
    assert match_line_endings("ab", "x\r\n") == "ab"


def test_languages():
    assert language_for_path("src/a.PY") == "python"
    assert language_for_path("file:///x/y.hpp") == "cpp"
    assert language_for_path("notes.md") == "text"
    assert language_for_document("typescriptreact", "file:///a.tsx") == "tsx"
    assert language_for_document(None, "file:///a.rs") == "rust"
    assert language_enabled("go", ["*"]) and language_enabled("go", ["go"]) and not language_enabled("go", ["rust"])


@pytest.mark.parametrize(("exc", "code"), [
    (InvalidPosition("line 9 is past the end"), JsonRpcInvalidParams.CODE),
    (UnknownDocument("document is not open: file:///x"), JsonRpcInvalidParams.CODE),
    (ModelFileError("model config not found: /m/config.json"), int(types.LSPErrorCodes.RequestFailed)),
    (BackendUnavailable("backend 'cuda' needs onnxruntime-gpu"), int(types.LSPErrorCodes.RequestFailed)),
    (CompletionError("no tokenizer"), int(types.LSPErrorCodes.RequestFailed)),
    (RuntimeError("boom"), JsonRpcInternalError.CODE),
])
def test_errors_map_to_json_rpc_codes(exc, code):
    error = to_rpc_error(exc)
    assert error.code == code
    assert str(exc) in error.message
