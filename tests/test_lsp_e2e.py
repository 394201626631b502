"""The real server and the bundled model, driven by pytest-lsp over stdio.

One server for the module (loading the model takes a while); tests run in file order and
share its state. Positions that must yield a suggestion end a comment line: whatever single
line the early checkpoint writes there keeps the parse valid, so the engine does not drop it.
"""

import asyncio
import os
import sys
import tempfile
import time
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
LOG = Path(tempfile.gettempdir()) / f"quicksilver-e2e-{os.getpid()}.log"
SERVER = [sys.executable, "-m", "lsp_server", "--log-file", str(LOG)]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

URI = "file:///quicksilver-e2e/add.py"
SOURCE = ('import math\n\n\ndef add(a, b):\n    # add the two numbers and return the\n    return \n\n\n'
          'def area(r):\n    s = "😋"  # a face, then the area of a circle\n    return math.pi * r * r\n')
COMMENT_END = types.Position(line=4, character=len("    # add the two numbers and return the"))
AFTER_EMOJI = types.Position(line=9, character=len('    s = "😋"  # a face, then the area of a circle') + 1)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), needs_model]
STATE: dict = {"progress": {}, "version": 1, "end": SOURCE.count("\n")}  # "end": the empty last line


def vscode_with_inline_completion() -> types.ClientCapabilities:
    caps = pytest_lsp.client_capabilities("visual-studio-code")
    caps.text_document.inline_completion = types.InlineCompletionClientCapabilities()
    return caps


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER, server_env=ENV))
async def client(lsp_client: LanguageClient):
    # pytest-lsp's own $/progress handler expects work-done progress and breaks on partial results
    lsp_client.protocol.fm.features.pop(types.PROGRESS, None)
    lsp_client.feature(types.PROGRESS)(
        lambda params: STATE["progress"].setdefault(params.token, []).append(params.value))
    STATE["init"] = await lsp_client.initialize_session(types.InitializeParams(
        capabilities=vscode_with_inline_completion(), initialization_options={"logLevel": "info"}))
    lsp_client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=URI, language_id="python", version=1, text=SOURCE)))
    yield
    await lsp_client.shutdown_session()
    assert lsp_client._server.returncode == 0  # shutdown + exit: a clean exit
    LOG.unlink(missing_ok=True)


async def inline(client: LanguageClient, position: types.Position, uri: str = URI,
                 trigger=types.InlineCompletionTriggerKind.Invoked) -> types.InlineCompletionList:
    return await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=position,
        context=types.InlineCompletionContext(trigger_kind=trigger)))


async def suggestion(client: LanguageClient, position: types.Position) -> types.InlineCompletionItem:
    result = await inline(client, position)
    (item,) = result.items
    assert item.insert_text.strip() and "\n" not in item.insert_text
    assert item.range == types.Range(start=position, end=position)
    return item


def change(client: LanguageClient, start: types.Position, end: types.Position, text: str) -> None:
    STATE["version"] += 1
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=STATE["version"]),
        content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=start, end=end), text=text)]))


def add_comment_line(client: LanguageClient, comment: str) -> types.Position:
    """Append `# comment` as a new last line (earlier positions stay valid); the position at its end."""
    line = STATE["end"]
    at = types.Position(line=line, character=0)
    change(client, at, at, f"# {comment}\n")
    STATE["end"] += 1
    return types.Position(line=line, character=len(comment) + 2)


async def configure(client: LanguageClient, **settings) -> None:
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"quicksilver": settings}))
    await stats(client)  # a round trip: the notification was handled


async def stats(client: LanguageClient) -> dict:
    result = await client.protocol.send_request_async("quicksilver/stats", {})
    return result._asdict()  # pygls turns an untyped result into a named tuple


async def log_has(text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while text not in (log := LOG.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never appeared in the server log"
        await asyncio.sleep(0.1)
    return log


async def test_capabilities(client: LanguageClient):
    caps = STATE["init"].capabilities
    assert caps.inline_completion_provider is not None and caps.completion_provider is not None
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert caps.position_encoding == types.PositionEncodingKind.Utf16
    assert list(caps.execute_command_provider.commands) == ["quicksilver.accept"]
    assert STATE["init"].server_info.name == "quicksilver"


async def test_inline_completion(client: LanguageClient):
    item = await suggestion(client, COMMENT_END)
    assert item.command.command == "quicksilver.accept" and item.command.arguments[0].startswith("qs-")


async def test_completion_item_inserts_at_the_cursor(client: LanguageClient):
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI), position=COMMENT_END))
    (item,) = result.items
    assert item.text_edit.range == types.Range(start=COMMENT_END, end=COMMENT_END)
    assert item.text_edit.new_text.strip() and item.label == item.text_edit.new_text.split("\n")[0]


async def test_utf16_columns_after_an_emoji(client: LanguageClient):
    await suggestion(client, AFTER_EMOJI)  # this column only exists counting the emoji as two units
    with pytest.raises(JsonRpcInvalidParams, match="inside a character"):
        await inline(client, types.Position(line=9, character=10))


async def test_accept_and_dismiss_are_counted_and_logged(client: LanguageClient):
    accepted = (await inline(client, COMMENT_END)).items[0].command.arguments[0]
    dismissed = (await inline(client, AFTER_EMOJI)).items[0].command.arguments[0]
    before = await stats(client)
    await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="quicksilver.accept", arguments=[accepted]))
    client.protocol.notify("quicksilver/didDismiss", {"id": dismissed})
    after = await stats(client)
    assert (after["accepted"], after["dismissed"]) == (before["accepted"] + 1, before["dismissed"] + 1)
    assert after["accepted_chars"] > before["accepted_chars"]
    # what the editor's status bar shows: the CPU default, the bundled model's int8 graphs
    assert after["backend"] == "onnxruntime-cpu-int8"
    await log_has(f"suggestion {accepted} accepted")


async def test_partial_results_stream_the_drafts(client: LanguageClient):
    position = add_comment_line(client, "print the area of a square and a circle with")
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI), position=position, partial_result_token="drafts-1"))
    partials = STATE["progress"]["drafts-1"]
    assert not result.items and partials  # LSP: after partial results the response is empty
    assert partials[0]["isIncomplete"] is True
    items = partials[0]["items"] + [item for batch in partials[1:] for item in batch]
    texts = [item["textEdit"]["newText"] for item in items]
    assert all(texts) and len(set(texts)) == len(texts)  # each an improved (different) draft
    cursor = {"line": position.line, "character": position.character}
    assert all(item["textEdit"]["range"] == {"start": cursor, "end": cursor} for item in items)


async def test_incremental_change_is_applied(client: LanguageClient):
    position = add_comment_line(client, "the helpers below add numbers and compute")
    await suggestion(client, position)


async def test_newer_request_supersedes_the_older_and_the_same_one_joins(client: LanguageClient):
    first = add_comment_line(client, "first, a comment to finish about the")
    second = add_comment_line(client, "second, another one to finish with the")
    older, newer = await asyncio.gather(inline(client, first), inline(client, second))
    assert not older.items and len(newer.items) == 1  # the older cursor is stale: nothing for it
    third = add_comment_line(client, "third, and both of these should agree on the")
    a, b = await asyncio.gather(inline(client, third), inline(client, third))
    assert a.items[0].insert_text == b.items[0].insert_text  # one model run served both


async def test_cancelled_requests_are_answered(client: LanguageClient):
    position = add_comment_line(client, "a comment nobody waits for, about")
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI), position=position,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked))
    cancelled = client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="cancel-me")
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
    try:
        assert isinstance(await asyncio.wrap_future(cancelled), types.InlineCompletionList)  # it won the race
    except JsonRpcRequestCancelled:
        pass
    await suggestion(client, COMMENT_END)


async def test_typed_ahead_is_served_from_the_cache(client: LanguageClient):
    await configure(client, backgroundRefinement=False)  # a refined result could replace the entry meanwhile
    try:
        tried = []
        for words in ("typing ahead: the first letters of the suggestion are", "the value returned by this",
                      "read the file and return the", "a list of the names of all"):
            position = add_comment_line(client, words)
            text = (await suggestion(client, position)).insert_text
            tried.append(text)
            if len(text.rstrip()) >= 2:
                break
        else:
            pytest.skip(f"the checkpoint suggested only {tried!r}: too short to type ahead")
        typed = min(2, len(text.rstrip()) - 1)
        hits = (await stats(client))["cache_hits"]
        change(client, position, position, text[:typed])
        moved = types.Position(line=position.line, character=position.character + typed)
        rest = (await suggestion(client, moved)).insert_text
        assert rest == text[typed:] and (await stats(client))["cache_hits"] == hits + 1
    finally:
        await configure(client, backgroundRefinement=True)


async def test_a_keystroke_continues_the_context_instead_of_encoding_it_again(client: LanguageClient):
    position = add_comment_line(client, "each keystroke reuses what came before the cursor, so typing is")
    await inline(client, position)
    before = await stats(client)
    change(client, position, position, " q")  # not what the model suggested: the request goes to the model
    moved = types.Position(line=position.line, character=position.character + 2)
    await inline(client, moved)
    after = await stats(client)
    assert after["contexts_continued"] == before["contexts_continued"] + 1
    assert after["contexts_encoded"] == before["contexts_encoded"]
    assert after["context_tokens_reused"] > before["context_tokens_reused"] + 50


async def test_no_automatic_completion_right_after_a_deletion(client: LanguageClient):
    position = add_comment_line(client, "deleting the last letter of this comment, xy")
    cursor = types.Position(line=position.line, character=position.character - 1)
    change(client, cursor, position, "")
    assert not (await inline(client, cursor, trigger=types.InlineCompletionTriggerKind.Automatic)).items
    await suggestion(client, cursor)  # asked for: served
    await configure(client, completeAfterDeletion=True, debounceMs=0)
    shorter = types.Position(line=cursor.line, character=cursor.character - 1)
    change(client, shorter, cursor, "")
    cursor = shorter
    automatic = await inline(client, cursor, trigger=types.InlineCompletionTriggerKind.Automatic)
    assert len(automatic.items) == 1
    await configure(client, completeAfterDeletion=False, debounceMs="adaptive")


async def test_settings_change_at_run_time(client: LanguageClient):
    await configure(client, enabledLanguages=["rust"], logLevel="debug", maxLines=2, latencyBudgetMs=120)
    assert not (await inline(client, COMMENT_END)).items  # python is switched off
    await log_has("max lines 2")
    await configure(client, enabledLanguages=["*"], maxLines=1, latencyBudgetMs=150)
    await suggestion(client, COMMENT_END)
    assert "DEBUG" in LOG.read_text()


async def test_settings_are_pulled_when_the_notification_carries_none(client: LanguageClient):
    client.set_configuration({"enabledLanguages": ["go"]}, section="quicksilver")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await log_has("languages go")
    assert not (await inline(client, COMMENT_END)).items
    await configure(client, enabledLanguages=["*"])
    await suggestion(client, COMMENT_END)


async def test_refinement_goes_on_in_the_background_and_serves_the_next_request(client: LanguageClient):
    await configure(client, latencyBudgetMs=1)  # one step now; the background run takes one token per step
    position = add_comment_line(client, "refined in the background, this comment ends with")
    quick = (await inline(client, position)).items
    marker = f"refined {URI} {position.line}:{position.character} "
    log = await log_has(marker)
    refined_text = log.rsplit(marker, 1)[1].split(" -> ", 1)[1].split("\n", 1)[0]
    hits = (await stats(client))["cache_hits"]
    again = await suggestion(client, position)
    assert repr(again.insert_text) == refined_text and (await stats(client))["cache_hits"] == hits + 1
    assert len(quick) <= 1
    await configure(client, latencyBudgetMs=150)


async def test_backend_change_reloads_and_a_bad_model_path_keeps_the_engine(client: LanguageClient):
    await configure(client, backend="torch")
    await log_has("engine reloaded: torch", timeout=180)
    await suggestion(client, COMMENT_END)
    await configure(client, modelPath="/nonexistent/model")
    await log_has("kept its current model", timeout=60)
    deadline = time.monotonic() + 30  # the warning reaches the client just after the log line is written
    while not any("kept its current model" in m.message for m in client.messages):
        assert time.monotonic() < deadline, "the user was not told that the model was kept"
        await asyncio.sleep(0.05)
    await suggestion(client, COMMENT_END)
    await configure(client, backend="onnxruntime")
    await log_has("engine reloaded: onnxruntime", timeout=120)
    await suggestion(client, AFTER_EMOJI)
