"""Open documents with LSP line semantics, edited incrementally.

pygls's own store splits lines with `str.splitlines`, which also breaks at form feeds,
U+2028 and other separators LSP does not count, so an edit after a `^L` (common in the
CPython sources) lands on the wrong line. Here a line ends at "\\n", "\\r\\n" or "\\r" only,
as LSP says, and the table of line starts is patched around each edit instead of being
rebuilt, so a keystroke in a 10 MB file costs a few milliseconds.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np
from lsprotocol import types

from completion.api import InvalidPosition
from lsp_server.documents import code_point_column

LINE_BREAK = re.compile(r"\r\n|\r|\n")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def line_starts(text: str, start: int, end: int) -> np.ndarray:
    """Offsets after each line break in text[start:end], a break ending exactly at `end` excluded."""
    return np.asarray([m.end() for m in LINE_BREAK.finditer(text, start, end) if m.end() < end], dtype=np.int64)


def all_line_starts(text: str) -> np.ndarray:
    return np.asarray([0, *(m.end() for m in LINE_BREAK.finditer(text))], dtype=np.int64)


def patch_line_starts(starts: np.ndarray, new_text: str, start: int, end: int, inserted: int) -> np.ndarray:
    """The line starts after text[start:end] was replaced by `inserted` characters (new_text is the result).

    Only the lines around the edit are rescanned: a start more than one character past the edit keeps its
    line break (both characters of a "\\r\\n" lie after the edit), so it just moves by the size change.
    """
    # From the line before the edit's: a "\r" ending it may merge with an inserted "\n".
    first = max(0, int(np.searchsorted(starts, start, side="right")) - 2)
    tail_from = int(np.searchsorted(starts, end + 1, side="right"))  # starts beyond end + 1 survive
    delta = inserted - (end - start)
    tail = starts[tail_from:] + delta
    if len(tail):
        middle = line_starts(new_text, int(starts[first]), int(tail[0]))
    else:
        middle = np.asarray([m.end() for m in LINE_BREAK.finditer(new_text, int(starts[first]))], dtype=np.int64)
    return np.concatenate([starts[: first + 1], middle, tail])


@dataclass
class Document:
    uri: str
    text: str
    version: int | None = None
    language_id: str = ""
    revision: int = 0  # counts every change, whatever versions the client sends
    last_edit_was_deletion: bool = False
    changed_at: float = field(default_factory=time.monotonic)
    _starts: np.ndarray | None = None
    _engine_text: str | None = None

    @property
    def starts(self) -> np.ndarray:
        if self._starts is None:
            self._starts = all_line_starts(self.text)
        return self._starts

    @property
    def line_count(self) -> int:
        return len(self.starts)

    def line_span(self, line: int) -> tuple[int, int]:
        """(start, end) offsets of a line's content, without its line break."""
        starts = self.starts
        start = int(starts[line])
        if line + 1 >= len(starts):
            return start, len(self.text)
        end = int(starts[line + 1])
        return start, end - (2 if self.text[end - 2:end] == "\r\n" else 1)

    def clamped(self, position: types.Position, encoding: str) -> types.Position:
        """The position with a character past its line's end moved to the end (the LSP rule).

        A line past the last one is an InvalidPosition: a cursor there means client and server disagree.
        """
        if position.line >= self.line_count:  # (negative values never get here: lsprotocol rejects them)
            raise InvalidPosition(f"line {position.line} is past the end of the document ({self.line_count} lines)")
        start, end = self.line_span(position.line)
        units = _line_units(self.text[start:end], encoding)
        if position.character <= units:
            return position
        return types.Position(line=position.line, character=units)

    def offset_at(self, position: types.Position, encoding: str, *, past_end_ok: bool = False) -> int:
        """Code-point offset of an LSP position (clamped as in `clamped`).

        With past_end_ok (edit ranges) a line past the last one means the end of the text.
        """
        if past_end_ok and position.line >= self.line_count:
            return len(self.text)
        position = self.clamped(position, encoding)
        start, end = self.line_span(position.line)
        return start + code_point_column(self.text[start:end], position.character, encoding, position.line)

    def engine_position(self, offset: int) -> tuple[int, int]:
        """(line, column) as the engine counts them: lines split at "\\n" only, columns in code points."""
        line = self.text.count("\n", 0, offset)
        return line, offset - (self.text.rfind("\n", 0, offset) + 1)

    @property
    def engine_text(self) -> str:
        """The text with lone surrogates (valid in JSON, not in UTF-8) as U+FFFD: same length, same offsets."""
        if self._engine_text is None:
            try:
                self.text.encode("utf-8")
                self._engine_text = self.text
            except UnicodeEncodeError:
                self._engine_text = LONE_SURROGATE.sub("\ufffd", self.text)
        return self._engine_text

    def apply(self, change: types.TextDocumentContentChangeEvent, encoding: str) -> bool:
        """Apply one change; True when it only removed text (a deletion)."""
        if isinstance(change, types.TextDocumentContentChangePartial):
            start = self.offset_at(change.range.start, encoding, past_end_ok=True)
            end = max(start, self.offset_at(change.range.end, encoding, past_end_ok=True))
            new_text = self.text[:start] + change.text + self.text[end:]
            starts = patch_line_starts(self.starts, new_text, start, end, len(change.text))
            deletion = not change.text and end > start
        else:
            new_text, starts = change.text, None
            deletion = len(change.text) < len(self.text)
        self.text, self._starts, self._engine_text = new_text, starts, None
        return deletion


def _line_units(line_text: str, encoding: str) -> int:
    """The length of a line in the client's code units."""
    if encoding == types.PositionEncodingKind.Utf32 or line_text.isascii():
        return len(line_text)
    if encoding == types.PositionEncodingKind.Utf8:
        return len(line_text.encode("utf-8", "surrogatepass"))
    return len(line_text.encode("utf-16-le", "surrogatepass")) // 2


class DocumentStore:
    """The open documents by URI; a change to an unknown document is reported, never fatal."""

    def __init__(self) -> None:
        self._docs: dict[str, Document] = {}

    def open(self, item: types.TextDocumentItem) -> Document:
        doc = Document(uri=item.uri, text=item.text, version=item.version, language_id=item.language_id or "")
        self._docs[item.uri] = doc
        return doc

    def get(self, uri: str) -> Document | None:
        return self._docs.get(uri)

    def change(self, uri: str, version: int | None, changes: list, encoding: str) -> Document | None:
        """Apply the changes in order; None when the document is not open."""
        doc = self._docs.get(uri)
        if doc is None:
            return None
        deletions = [doc.apply(change, encoding) for change in changes]
        doc.version = version
        doc.revision += 1
        doc.last_edit_was_deletion = bool(deletions) and all(deletions)
        doc.changed_at = time.monotonic()
        return doc

    def close(self, uri: str) -> bool:
        return self._docs.pop(uri, None) is not None

    def __len__(self) -> int:
        return len(self._docs)
