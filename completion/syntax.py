"""Syntax trees for the engine: an incremental parse per document, and parse validity.

Per document (keyed by `document_id`) the last text and tree are kept in a small
LRU. On the next request the edit between old and new text is found (common
prefix and suffix of the UTF-8 bytes), the old tree is told about it
(`tree.edit`) and the parser reuses everything outside the edit, so a keystroke
costs a re-parse of a few nodes, not of the file.

Huge documents: above `full_parse_max_chars` (1 MB by default) the document is
never parsed whole. Instead a window of `window_chars` around the cursor, starting
at an unindented line where possible, is parsed on each request (bounded cost, no
incremental state). Requests without a document id get the same window parse.

Validity: a completion "keeps the parse" when inserting it neither adds ERROR or
MISSING nodes nor grows the text inside ERROR nodes by more than its own length
(junk typed into an already broken statement is not worse; junk that drags the
following lines into an error is). The check re-parses incrementally from the
request's tree, so it costs about as much as a keystroke.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from completion import languages

FULL_PARSE_MAX_CHARS = 1_000_000
WINDOW_CHARS = 8_000  # each side of the cursor when parsing a window


@dataclass
class SyntaxView:
    """A tree over `text`, which is the whole document (base 0) or a window starting at `base`."""

    language: str
    tree: object  # tree_sitter.Tree
    text: str
    data: bytes  # text as UTF-8
    base: int = 0  # document offset (code points) of text[0]
    windowed: bool = False

    @property
    def root(self):
        return self.tree.root_node

    def byte_of(self, doc_offset: int) -> int:
        """UTF-8 byte offset inside `data` of a document code-point offset (clamped to the view)."""
        i = min(max(doc_offset - self.base, 0), len(self.text))
        return i if len(self.data) == len(self.text) else len(self.text[:i].encode("utf-8"))

    def offset_of(self, byte: int) -> int:
        """Document code-point offset of a byte offset inside `data`."""
        byte = min(max(byte, 0), len(self.data))
        if len(self.data) == len(self.text):
            return self.base + byte
        return self.base + len(self.data[:byte].decode("utf-8", errors="ignore"))

    def contains(self, doc_offset: int) -> bool:
        return self.base <= doc_offset <= self.base + len(self.text)

    def errors(self) -> ErrorStats:
        return error_stats(self.tree)

    def errors_with_insertion(self, doc_offset: int, insert: str, parser) -> ErrorStats:
        """Errors after inserting `insert` at doc_offset, by an incremental re-parse of a copy."""
        if not insert:
            return self.errors()
        at = self.byte_of(doc_offset)
        added = insert.encode("utf-8")
        new_data = self.data[:at] + added + self.data[at:]
        tree = self.tree.copy()
        start = point_at(self.data, at)
        tree.edit(start_byte=at, old_end_byte=at, new_end_byte=at + len(added), start_point=start,
                  old_end_point=start, new_end_point=point_at(new_data, at + len(added)))
        return error_stats(parser.parse(new_data, tree))


@dataclass(frozen=True)
class ErrorStats:
    count: int  # ERROR and MISSING nodes (an ERROR's insides are not counted again)
    error_bytes: int  # bytes covered by ERROR nodes

    def no_worse_than(self, before: ErrorStats, inserted_bytes: int) -> bool:
        return self.count <= before.count and self.error_bytes <= before.error_bytes + inserted_bytes


def error_stats(tree) -> ErrorStats:
    """Only subtrees flagged `has_error` are visited, so an error-free tree costs nothing."""
    root = tree.root_node
    if not root.has_error:
        return ErrorStats(0, 0)
    count = size = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error:
            count += 1
            size += node.end_byte - node.start_byte
            continue
        if node.is_missing:
            count += 1
        stack.extend(c for c in node.children if c.has_error or c.is_missing)
    return ErrorStats(count, size)


def error_count(tree) -> int:
    return error_stats(tree).count


def point_at(data: bytes, byte: int) -> tuple[int, int]:
    """(row, byte column) of a byte offset, as tree-sitter's edit wants it."""
    row = data.count(b"\n", 0, byte)
    return row, byte - (data.rfind(b"\n", 0, byte) + 1)


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common prefix, by binary search over slice comparisons (memcmp, not a Python loop)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: bytes, b: bytes, limit: int) -> int:
    lo, hi = 0, min(limit, len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid:] == b[len(b) - mid:]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _char_start(data: bytes, i: int) -> int:
    """Move back to the first byte of a UTF-8 character."""
    while 0 < i < len(data) and (data[i] & 0xC0) == 0x80:
        i -= 1
    return i


def edit_between(old: bytes, new: bytes) -> dict | None:
    """tree.edit(...) keyword arguments turning old into new (one contiguous edit), or None if equal."""
    if old == new:
        return None
    p = _char_start(new, _char_start(old, _common_prefix(old, new)))
    s = _common_suffix(old, new, min(len(old), len(new)) - p)
    while s > 0 and len(new) - s < len(new) and (new[len(new) - s] & 0xC0) == 0x80:
        s -= 1  # keep the suffix starting on a character boundary
    old_end, new_end = len(old) - s, len(new) - s
    return {"start_byte": p, "old_end_byte": old_end, "new_end_byte": new_end, "start_point": point_at(old, p),
            "old_end_point": point_at(old, old_end), "new_end_point": point_at(new, new_end)}


def window_bounds(text: str, offset: int, chars: int = WINDOW_CHARS) -> tuple[int, int]:
    """[start, end) of a window around offset: starts at an unindented line if one is near (so the
    grammar sees a top-level statement), ends at a line end."""
    start = max(0, offset - chars)
    if start > 0:
        floor = max(0, start - chars)
        nl = text.rfind("\n", floor, start)
        fallback = nl + 1 if nl >= 0 else start
        while nl >= 0 and text[nl + 1:nl + 2] in (" ", "\t", "\r", "\n"):
            nl = text.rfind("\n", floor, nl)
        start = nl + 1 if nl >= 0 else (0 if floor == 0 else fallback)
    end = min(len(text), offset + chars)
    if end < len(text):
        nl = text.find("\n", end)
        end = len(text) if nl < 0 else nl + 1
    return start, end


@dataclass
class _Entry:
    language: str
    text: str
    data: bytes
    tree: object


class SyntaxCache:
    """Parsers per language and the last (text, tree) per document, for incremental parsing."""

    def __init__(self, max_documents: int = 16, full_parse_max_chars: int = FULL_PARSE_MAX_CHARS,
                 window_chars: int = WINDOW_CHARS):
        self.max_documents = max_documents
        self.full_parse_max_chars = full_parse_max_chars
        self.window_chars = window_chars
        self._docs: OrderedDict[str, _Entry] = OrderedDict()
        self._parsers: dict[str, object] = {}
        self._lock = threading.Lock()
        self.stats = {"full": 0, "incremental": 0, "unchanged": 0, "window": 0}

    def parser(self, language: str):
        """This cache's parser for the language (None if unsupported). Not for use from other threads."""
        key = languages.canonical(language)
        if key not in self._parsers:
            self._parsers[key] = languages.parser_for(key)
        return self._parsers[key]

    def view(self, text: str, offset: int, language: str, document_id: str | None = None) -> SyntaxView | None:
        """A tree covering the cursor, or None for languages without a grammar."""
        with self._lock:
            parser = self.parser(language)
            if parser is None:
                return None
            key = languages.canonical(language)
            if document_id is None or len(text) > self.full_parse_max_chars:
                if document_id is not None:
                    self._docs.pop(document_id, None)  # grew past the limit: drop the stale tree
                return self._window_view(parser, key, text, offset)
            return self._document_view(parser, key, text, document_id)

    def forget(self, document_id: str) -> None:
        with self._lock:
            self._docs.pop(document_id, None)

    def _window_view(self, parser, key: str, text: str, offset: int) -> SyntaxView:
        start, end = window_bounds(text, offset, self.window_chars)
        window = text[start:end]
        data = window.encode("utf-8")
        self.stats["window"] += 1
        return SyntaxView(key, parser.parse(data), window, data, base=start, windowed=(start, end) != (0, len(text)))

    def _document_view(self, parser, key: str, text: str, document_id: str) -> SyntaxView:
        entry = self._docs.get(document_id)
        data = text.encode("utf-8")
        if entry is not None and entry.language == key:
            edit = edit_between(entry.data, data)
            if edit is None:
                tree = entry.tree
                self.stats["unchanged"] += 1
            else:
                old_tree = entry.tree.copy()  # a view handed out earlier keeps its own tree intact
                old_tree.edit(**edit)
                tree = parser.parse(data, old_tree)
                self.stats["incremental"] += 1
        else:
            tree = parser.parse(data)
            self.stats["full"] += 1
        self._docs[document_id] = _Entry(key, text, data, tree)
        self._docs.move_to_end(document_id)
        while len(self._docs) > self.max_documents:
            self._docs.popitem(last=False)
        return SyntaxView(key, tree, text, data)


def parse(text: str, language: str):
    """A one-off parse (tests, benchmarks); None for languages without a grammar."""
    parser = languages.parser_for(language)
    return None if parser is None else parser.parse(text.encode("utf-8"))


def keeps_parse(document: str, offset: int, insert: str, language: str) -> bool | None:
    """Whether inserting `insert` at offset leaves the parse no worse; None without a grammar."""
    before = parse(document, language)
    if before is None:
        return None
    after = parse(document[:offset] + insert + document[offset:], language)
    return error_stats(after).no_worse_than(error_stats(before), len(insert.encode("utf-8")))
