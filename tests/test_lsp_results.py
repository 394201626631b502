"""LSP result shapes: ghost text, completion items, streamed partial results."""

from lsprotocol import types

from completion.api import Completion
from lsp_server.feedback import ACCEPT_COMMAND
from lsp_server.results import PartialResults, completion_label, completion_list, inline_result

AT = types.Position(line=1, character=11)
AT_RANGE = types.Range(start=AT, end=AT)


def test_inline_result_inserts_at_the_cursor_with_the_accept_command():
    result = inline_result(Completion(text="a + b"), AT, "qs-1")
    (item,) = result.items
    assert item.insert_text == "a + b" and item.range == AT_RANGE
    assert item.command.command == ACCEPT_COMMAND and item.command.arguments == ["qs-1", {"version": None}]
    assert inline_result(Completion(text=""), AT).items == []
    assert inline_result(None, AT).items == []


def test_completion_list_has_one_text_edit_item():
    result = completion_list(Completion(text="a + b\n    return c"), AT, "qs-2")
    (item,) = result.items
    assert item.label == "a + b" and item.command.arguments == ["qs-2", {"version": None}]
    assert item.text_edit == types.TextEdit(range=AT_RANGE, new_text="a + b\n    return c")
    assert result.is_incomplete
    assert completion_list(Completion(text=""), AT).items == []


def test_completion_label_skips_a_leading_newline():
    assert completion_label("\n    return x") == "return x"
    assert completion_label("foo()") == "foo()"


def test_partial_results_stream_each_new_draft_then_answer_empty():
    sent = []
    stream = PartialResults(sent.append, AT, "qs-3")
    for text in ["", "a", "a", "a +", "a + b"]:
        stream.draft(Completion(text=text, final=False))
    response = stream.finish(Completion(text="a + b"))  # same as the last draft: not sent again
    assert response.items == [] and response.is_incomplete
    first, *rest = sent
    assert first["isIncomplete"] is True and [i["newText"] for i in [first["items"][0]["textEdit"]]] == ["a"]
    assert [batch[0]["textEdit"]["newText"] for batch in rest] == ["a +", "a + b"]
    sort_texts = [first["items"][0]["sortText"], *(batch[0]["sortText"] for batch in rest)]
    assert sort_texts == sorted(sort_texts, reverse=True)  # the newest draft sorts first
    assert all(batch[0]["command"]["arguments"] == ["qs-3", {"version": None}] for batch in rest)


def test_partial_results_send_a_different_final_and_fall_back_to_a_plain_answer():
    sent = []
    stream = PartialResults(sent.append, AT)
    stream.draft(Completion(text="a", final=False))
    stream.finish(Completion(text="b"))
    assert [batch[0]["textEdit"]["newText"] for batch in sent[1:]] == ["b"]
    quiet = PartialResults(sent.append, AT)  # no draft was ever non-empty: the response carries the result
    assert quiet.finish(Completion(text="c")).items[0].text_edit.new_text == "c"
