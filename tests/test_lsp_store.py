"""The document store: LSP line semantics, incremental edits, clamping, surrogates, big files."""

import random
import time

import pytest
from lsprotocol import types

from completion.api import InvalidPosition
from lsp_server.store import Document, DocumentStore, all_line_starts, patch_line_starts

UTF8, UTF16, UTF32 = (types.PositionEncodingKind.Utf8, types.PositionEncodingKind.Utf16,
                      types.PositionEncodingKind.Utf32)


def pos(line: int, character: int) -> types.Position:
    return types.Position(line=line, character=character)


def edit(start: tuple[int, int], end: tuple[int, int], text: str) -> types.TextDocumentContentChangePartial:
    return types.TextDocumentContentChangePartial(range=types.Range(start=pos(*start), end=pos(*end)), text=text)


def test_line_breaks_are_lsps_only():
    # form feed, U+2028 and \x1c split lines for str.splitlines (and pygls), not for LSP
    doc = Document("u", "a\fb\r\nc\u2028d\re\x1cf\ng")
    assert doc.line_count == 4
    assert [doc.text[slice(*doc.line_span(i))] for i in range(4)] == ["a\fb", "c\u2028d", "e\x1cf", "g"]


def test_incremental_edit_after_a_form_feed_lands_on_the_right_line():
    doc = Document("u", "def a():\n\f\ndef b():\n    pass\n")
    doc.apply(edit((3, 8), (3, 8), "  # here"), UTF16)
    assert doc.text == "def a():\n\f\ndef b():\n    pass  # here\n"


def test_patched_line_starts_equal_a_full_rescan():
    rng = random.Random(0)
    pieces = ["a", "b", "\r", "\n", "\r\n", "é", "😋"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        start = rng.randint(0, len(text))
        end = rng.randint(start, len(text))
        inserted = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
        new_text = text[:start] + inserted + text[end:]
        patched = patch_line_starts(all_line_starts(text), new_text, start, end, len(inserted))
        assert patched.tolist() == all_line_starts(new_text).tolist(), (text, start, end, inserted)


@pytest.mark.parametrize(("encoding", "character"), [(UTF16, 7), (UTF8, 9), (UTF32, 6)])
def test_edits_in_each_encoding(encoding, character):
    doc = Document("u", 'x = "😋" + y\n')  # the closing quote is at 7 (UTF-16), 9 (UTF-8), 6 (UTF-32)
    doc.apply(edit((0, character), (0, character), "!"), encoding)
    assert doc.text == 'x = "😋!" + y\n'


def test_crlf_edits_and_positions():
    doc = Document("u", "a = 1\r\nb = 2\r\n")
    assert doc.line_count == 3
    assert doc.offset_at(pos(0, 99), UTF16) == 5  # past the end of the line: its end, before the \r
    doc.apply(edit((0, 5), (1, 0), ""), UTF16)  # join the lines
    assert doc.text == "a = 1b = 2\r\n" and doc.line_count == 2
    doc.apply(edit((0, 5), (0, 5), "\r\n"), UTF16)
    assert doc.text == "a = 1\r\nb = 2\r\n" and doc.line_count == 3
    assert doc.engine_position(doc.offset_at(pos(1, 3), UTF16)) == (1, 3)


def test_lone_cr_lines_map_to_engine_positions():
    doc = Document("u", "a\rbc\rd")
    offset = doc.offset_at(pos(1, 2), UTF16)
    assert offset == 4
    assert doc.engine_position(offset) == (0, 4)  # the engine splits at \n only


def test_clamping_and_invalid_positions():
    doc = Document("u", "ab\n😋\n")
    assert doc.clamped(pos(0, 10), UTF16) == pos(0, 2)
    assert doc.clamped(pos(1, 10), UTF16) == pos(1, 2) and doc.clamped(pos(1, 10), UTF8) == pos(1, 4)
    with pytest.raises(InvalidPosition, match="line 3 is past the end"):
        doc.clamped(pos(3, 0), UTF16)
    with pytest.raises(InvalidPosition, match="inside a character"):
        doc.offset_at(pos(1, 1), UTF16)  # between the halves of the surrogate pair
    assert doc.offset_at(pos(9, 9), UTF16, past_end_ok=True) == len(doc.text)  # edit ranges may point past the end


def test_lone_surrogates_reach_the_engine_as_replacement_characters():
    doc = Document("u", "x = '\ud800'\ny")
    assert doc.engine_text == "x = '\ufffd'\ny" and len(doc.engine_text) == len(doc.text)
    doc.apply(types.TextDocumentContentChangeWholeDocument(text="clean"), UTF16)
    assert doc.engine_text == "clean"


def test_store_tracks_deletions_versions_and_unknown_documents():
    store = DocumentStore()
    store.open(types.TextDocumentItem(uri="u", language_id="python", version=1, text="abc\n"))
    doc = store.change("u", 2, [edit((0, 2), (0, 3), "")], UTF16)
    assert doc.text == "ab\n" and doc.version == 2 and doc.revision == 1 and doc.last_edit_was_deletion
    doc = store.change("u", 3, [edit((0, 2), (0, 2), "c")], UTF16)
    assert not doc.last_edit_was_deletion and doc.revision == 2
    assert store.change("nope", 1, [edit((0, 0), (0, 0), "x")], UTF16) is None
    assert store.close("u") and not store.close("u") and len(store) == 0


def test_keystrokes_in_a_10_mb_document_keep_the_line_table_exact():
    line = "    value = compute(alpha, beta)  # note\n"
    doc = Document("u", line * (10_000_000 // len(line)))
    assert doc.line_count > 200_000
    t0 = time.perf_counter()
    for i in range(20):
        doc.apply(edit((100_000 + i, 4), (100_000 + i, 4), "x"), UTF16)
    per_edit_ms = (time.perf_counter() - t0) * 1000 / 20
    assert doc.text.count("\n    xvalue") == 20
    assert doc.starts.tolist() == all_line_starts(doc.text).tolist()
    print(f"{per_edit_ms:.1f} ms per edit")  # measured, not asserted: speed belongs to benchmarks
