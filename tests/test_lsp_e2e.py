"""The real server and the bundled model, driven by pytest-lsp over stdio.

One server for the module (loading the model takes a while); tests run in file order
and share the open document. Protocol behaviour that needs no model is in test_lsp_stdio.py.
"""

import asyncio
import os
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcRequestCancelled
from pytest_lsp import ClientServerConfig, LanguageClient

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(os.environ.get("QUICKSILVER_MODEL") or ROOT / "models" / "default")  # as the runtime finds it
MODEL_READY = all((MODEL_DIR / f).is_file() for f in ("config.json", "tokenizer.json", "encoder.onnx", "denoiser.onnx"))
needs_model = pytest.mark.skipif(not MODEL_READY, reason=f"bundled model not complete in {MODEL_DIR}")
SERVER = [sys.executable, "-m", "lsp_server"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

URI = "file:///quicksilver-e2e/add.py"
SOURCE = 'import math\n\n\ndef add(a, b):\n    return \n\n\ndef area(r):\n    s = "😋"\n    return math.pi * r * r\n'
END_OF_RETURN = types.Position(line=4, character=11)  # after "    return "

pytestmark = pytest.mark.asyncio(loop_scope="module")
INIT: dict[str, types.InitializeResult] = {}


def vscode_with_inline_completion() -> types.ClientCapabilities:
    caps = pytest_lsp.client_capabilities("visual-studio-code")
    caps.text_document.inline_completion = types.InlineCompletionClientCapabilities()
    return caps


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER, server_env=ENV))
async def client(lsp_client: LanguageClient):
    INIT["result"] = await lsp_client.initialize_session(types.InitializeParams(
        capabilities=vscode_with_inline_completion(), initialization_options={"logLevel": "info"}))
    lsp_client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=URI, language_id="python", version=1, text=SOURCE)))
    yield
    await lsp_client.shutdown_session()
    assert lsp_client._server.returncode == 0  # shutdown + exit: a clean exit


async def inline(client: LanguageClient, position: types.Position, uri: str = URI) -> types.InlineCompletionList:
    return await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=position,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))


async def assert_serves_completions(client: LanguageClient, position: types.Position = END_OF_RETURN) -> None:
    result = await inline(client, position)
    assert len(result.items) == 1 and result.items[0].insert_text.strip()
    assert result.items[0].range == types.Range(start=position, end=position)


async def test_capabilities(client: LanguageClient):
    caps = INIT["result"].capabilities
    assert caps.inline_completion_provider is not None and caps.completion_provider is not None
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert caps.position_encoding == types.PositionEncodingKind.Utf16
    assert INIT["result"].server_info.name == "quicksilver"


@needs_model
async def test_inline_completion_after_return(client: LanguageClient):
    await assert_serves_completions(client)


@needs_model
async def test_completion_item_inserts_at_the_cursor(client: LanguageClient):
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI), position=END_OF_RETURN))
    (item,) = result.items
    assert item.text_edit.range == types.Range(start=END_OF_RETURN, end=END_OF_RETURN)
    assert item.text_edit.new_text.strip() and item.label == item.text_edit.new_text.split("\n")[0]


@needs_model
async def test_utf16_columns_after_an_emoji(client: LanguageClient):
    # line 8 is '    s = "😋"': 10 code points, 11 UTF-16 units; its end only exists in UTF-16 counting
    result = await inline(client, types.Position(line=8, character=11))
    assert isinstance(result, types.InlineCompletionList)


@needs_model
async def test_incremental_change_is_applied(client: LanguageClient):
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=END_OF_RETURN, end=END_OF_RETURN), text="a + b\n\n\ndef sub(a, b):\n    return ")]))
    # line 4 is now "    return a + b": character 16 was past its end before the edit
    await assert_serves_completions(client, types.Position(line=4, character=16))


@needs_model
async def test_unknown_document_is_invalid_params_and_the_server_keeps_serving(client: LanguageClient):
    with pytest.raises(JsonRpcInvalidParams, match="not open"):
        await inline(client, END_OF_RETURN, uri="file:///quicksilver-e2e/never-opened.py")
    await assert_serves_completions(client)


@needs_model
async def test_out_of_range_position_is_invalid_params_and_the_server_keeps_serving(client: LanguageClient):
    with pytest.raises(JsonRpcInvalidParams, match="past the end"):
        await inline(client, types.Position(line=500, character=0))
    with pytest.raises(JsonRpcInvalidParams, match="past the end"):
        await inline(client, types.Position(line=4, character=40))
    await assert_serves_completions(client)


@needs_model
async def test_cancelled_and_superseded_requests_are_answered(client: LanguageClient):
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI), position=END_OF_RETURN,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic))
    cancelled = client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="cancel-me")
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
    try:
        assert isinstance(await asyncio.wrap_future(cancelled), types.InlineCompletionList)  # it won the race
    except JsonRpcRequestCancelled:
        pass
    older, newer = await asyncio.gather(inline(client, END_OF_RETURN), inline(client, END_OF_RETURN))
    assert len(older.items) <= 1 and len(newer.items) == 1  # the older one is usually superseded: empty
    await assert_serves_completions(client)
