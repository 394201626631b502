"""LSP results from engine completions: ghost-text items, completion items, streamed drafts.

Pure functions (and one small class) so each shape is tested without a server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lsprotocol import types
from lsprotocol.converters import get_converter

from completion.api import Completion
from lsp_server.feedback import ACCEPT_COMMAND

_converter = get_converter()


def accept_command(suggestion_id: str | None, version: int | None = None) -> types.Command | None:
    """Run by the editor when the suggestion is accepted; counted locally (lsp_server/feedback.py).
    The second argument names the document version the suggestion was made for, so a client (or a
    trace replay) can tell a suggestion for outdated text."""
    if suggestion_id is None:
        return None
    return types.Command(title="Quicksilver: accepted", command=ACCEPT_COMMAND,
                         arguments=[suggestion_id, {"version": version}])


def inline_result(completion: Completion | None, position: types.Position,
                  suggestion_id: str | None = None, version: int | None = None) -> types.InlineCompletionList:
    """Ghost text inserted at the cursor; an empty list means no suggestion."""
    if completion is None or not completion.text:
        return types.InlineCompletionList(items=[])
    at_cursor = types.Range(start=position, end=position)
    item = types.InlineCompletionItem(insert_text=completion.text, range=at_cursor,
                                      command=accept_command(suggestion_id, version))
    return types.InlineCompletionList(items=[item])


def completion_label(text: str) -> str:
    """The first line, or the first non-blank one when the suggestion starts with a newline."""
    lines = text.split("\n")
    return lines[0] if lines[0].strip() else next((line.strip() for line in lines if line.strip()), text)


def completion_item(text: str, position: types.Position, suggestion_id: str | None = None,
                    sort_text: str = "0", version: int | None = None) -> types.CompletionItem:
    return types.CompletionItem(
        label=completion_label(text),
        kind=types.CompletionItemKind.Text,
        detail="quicksilver",
        sort_text=sort_text,
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=types.Range(start=position, end=position), new_text=text),
        command=accept_command(suggestion_id, version),
    )


def completion_list(completion: Completion | None, position: types.Position,
                    suggestion_id: str | None = None, version: int | None = None) -> types.CompletionList:
    """One item for clients without inline completion; incomplete so typing asks again."""
    if completion is None or not completion.text:
        return types.CompletionList(is_incomplete=True, items=[])
    return types.CompletionList(is_incomplete=True, items=[completion_item(completion.text, position, suggestion_id,
                                                                              version=version)])


class PartialResults:
    """Streams improved drafts of one completion request as LSP partial results.

    LSP appends partial results: the first is a CompletionList (marked incomplete so the
    editor asks again as the user types), later ones are CompletionItem[] batches added to
    it, and the final response must then be empty. So each draft that differs from the last
    one sent becomes one more item, the newest sorting first, and the final completion is
    sent the same way before the empty response.
    """

    def __init__(self, send: Callable[[Any], None], position: types.Position, suggestion_id: str | None = None,
                 version: int | None = None):
        self.send = send  # takes the JSON value of one partial result
        self.position = position
        self.suggestion_id = suggestion_id
        self.version = version
        self.sent: list[str] = []

    def draft(self, completion: Completion) -> None:
        text = completion.text
        if not text or (self.sent and self.sent[-1] == text):
            return
        item = completion_item(text, self.position, self.suggestion_id, sort_text=f"{9999 - len(self.sent):04d}",
                               version=self.version)
        if self.sent:
            value: Any = _converter.unstructure([item], list[types.CompletionItem])
        else:
            value = _converter.unstructure(types.CompletionList(is_incomplete=True, items=[item]))
        self.sent.append(text)
        self.send(value)

    def finish(self, completion: Completion | None) -> types.CompletionList:
        """The response: empty once anything was streamed, else the usual list."""
        if completion is not None and self.sent:
            self.draft(completion)
        if self.sent:
            return types.CompletionList(is_incomplete=True, items=[])
        return completion_list(completion, self.position, self.suggestion_id, self.version)
