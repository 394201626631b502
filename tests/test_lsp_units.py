"""Pure helpers of the language server: positions, languages, options, results, errors."""

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError, JsonRpcInvalidParams

from completion.api import Completion, CompletionError, CompletionSettings, InvalidPosition
from lsp_server.config import ServerConfig, apply_initialization_options
from lsp_server.documents import (
    code_point_column,
    language_enabled,
    language_for_document,
    language_for_path,
    resolve_position,
    split_lines,
)
from lsp_server.errors import UnknownDocument, to_rpc_error
from lsp_server.server import completion_label, completion_list, inline_result
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


def test_resolve_position_matches_the_engines_lines():
    text = "a = 1\r\nbb\n"
    assert split_lines(text) == ["a = 1", "bb", ""]
    assert resolve_position(text, pos(0, 5), UTF16) == (0, 5)  # before the \r
    assert resolve_position(text, pos(2, 0), UTF16) == (2, 0)  # the empty line after the final newline
    with pytest.raises(InvalidPosition, match="line 3 is past the end of the document"):
        resolve_position(text, pos(3, 0), UTF16)
    with pytest.raises(InvalidPosition, match="past the end of line 0"):
        resolve_position(text, pos(0, 6), UTF16)


def test_languages():
    assert language_for_path("src/a.PY") == "python"
    assert language_for_path("file:///x/y.hpp") == "cpp"
    assert language_for_path("notes.md") == "text"
    assert language_for_document("typescriptreact", "file:///a.tsx") == "tsx"
    assert language_for_document(None, "file:///a.rs") == "rust"
    assert language_enabled("go", ["*"]) and language_enabled("go", ["go"]) and not language_enabled("go", ["rust"])


def test_initialization_options_apply_and_warn():
    config, warnings = apply_initialization_options(ServerConfig(), {
        "latencyBudgetMs": 80, "maxLines": 3, "enabledLanguages": ["python"], "backend": "torch",
        "modelPath": "/m", "logLevel": "DEBUG", "maxLInes": 2, "steps": 4,
    })
    assert config.settings.latency_budget_ms == 80 and config.settings.max_lines == 3
    assert config.settings.enabled_languages == ["python"]
    assert (config.backend, config.model_dir, config.log_level) == ("torch", "/m", "debug")
    assert len(warnings) == 2 and all("unknown" in w for w in warnings)


def test_bad_initialization_options_keep_the_defaults():
    base = ServerConfig(settings=CompletionSettings(latency_budget_ms=150))
    config, warnings = apply_initialization_options(base, {"latencyBudgetMs": "fast", "maxLines": 0,
                                                           "enabledLanguages": "python", "logLevel": "loud",
                                                           "backend": "gpu-please"})
    assert config == base and len(warnings) == 5
    assert apply_initialization_options(base, None) == (base, [])
    assert apply_initialization_options(base, [1])[1]


def test_inline_result_inserts_at_the_cursor():
    at = pos(1, 11)
    result = inline_result(Completion(text="a + b"), at)
    assert result.items == [types.InlineCompletionItem(insert_text="a + b", range=types.Range(start=at, end=at))]
    assert inline_result(Completion(text=""), at).items == []
    assert inline_result(None, at).items == []


def test_completion_list_has_one_text_edit_item():
    at = pos(1, 11)
    result = completion_list(Completion(text="a + b\n    return c"), at)
    (item,) = result.items
    assert item.label == "a + b"
    assert item.text_edit == types.TextEdit(range=types.Range(start=at, end=at), new_text="a + b\n    return c")
    assert result.is_incomplete
    assert completion_list(Completion(text=""), at).items == []


def test_completion_label_skips_a_leading_newline():
    assert completion_label("\n    return x") == "return x"
    assert completion_label("foo()") == "foo()"


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
