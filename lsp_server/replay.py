"""`python -m lsp_server replay TRACE...`: drive the server as the editor did, and score it.

The server runs as a subprocess over stdio, one process for every trace (so a long run is a
soak test). Each trace's edits and completion requests are sent at their recorded times
(`--speed 1`) or as fast as possible (`--speed max`: each answer is awaited before the next
event, so nothing is missed for lack of time). The replayer behaves as VS Code does: a new
keystroke cancels the requests in flight for that document, and an answer that arrives after
the document moved on is never shown.

The simulated user accepts a shown suggestion of two characters or more when it is exactly
what they were about to type: inserting it gives a document the trace itself reaches a little later (typos and their
fixes in between included). The replay then jumps past those events, which the user no longer
types, so characters saved are measured against the real continuation, never guessed.

Every answer is checked: it must be for the document version the request was made at (the
server echoes the version in the accept command), its range must be the cursor, and it must
arrive (time-outs are errors). The report: latency percentiles, suggestions shown and
accepted, characters saved, outdated answers, errors, cancellations, and the server's memory
over the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types

from completion.api import InvalidPosition
from lsp_server.stdio_client import REQUEST_CANCELLED, StdioClient
from lsp_server.store import Document
from lsp_server.trace import Trace, answer_items, item_text


@dataclass
class ReplayOptions:
    speed: float | None = None  # None: as fast as possible; 1.0: the recorded timing
    accept: bool = True  # the simulated user takes suggestions that are exactly what they would type
    cancel_on_change: bool = True  # VS Code cancels requests in flight at the next keystroke; some clients do not
    answer_timeout_s: float = 60.0
    lookahead_events: int = 800  # how far ahead a suggestion may match what the user types
    accept_cost_ms: float = 150.0  # pressing Tab
    memory_every_s: float = 1.0
    init_options: dict[str, Any] = field(default_factory=dict)  # more initializationOptions for the server

    @property
    def server_options(self) -> dict[str, Any]:
        """initializationOptions: at full speed there are no pauses to wait for, so no debounce."""
        return {**({} if self.speed else {"debounceMs": 0}), **self.init_options}


@dataclass
class Pending:
    uri: str
    version: int
    text: str  # the document when the request was sent
    line: int
    character: int
    method: str
    sent: float
    cancelled: bool = False


@dataclass
class Shown:
    uri: str
    version: int
    text: str
    line: int
    character: int
    offset: int
    suggestion_id: str | None


@dataclass
class Tally:
    keystrokes: int = 0  # edit events sent (accepts included)
    requests: int = 0
    answered: int = 0
    empty: int = 0
    shown: int = 0
    late: int = 0  # arrived after the document changed (not shown, as an editor would not)
    accepted: int = 0
    chars_accepted: int = 0
    chars_saved: int = 0  # accepted characters less one keystroke (Tab) per accept
    chars_typed: int = 0  # characters the user types in the trace without help (editor-made edits excluded)
    outdated: int = 0  # answers made for another document version than the request's
    invalid: int = 0  # answers whose range is not the cursor, or not in the document
    errors: int = 0  # error responses other than cancellation, and time-outs
    cancellations_sent: int = 0
    cancelled_answers: int = 0  # RequestCancelled responses
    latencies_ms: list[float] = field(default_factory=list)
    error_messages: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name, value in vars(other).items():
            if isinstance(value, list):
                getattr(self, name).extend(value)
            else:
                setattr(self, name, getattr(self, name) + value)


def _change_event(change: dict[str, Any]) -> types.TextDocumentContentChangeEvent:
    if "range" in change:
        r = change["range"]
        return types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(**r["start"]), end=types.Position(**r["end"])), text=change["text"])
    return types.TextDocumentContentChangeWholeDocument(text=change["text"])


def document_states(events: list[dict[str, Any]], encoding: str) -> list[tuple[int, int] | None]:
    """(length, hash) of the edited document's text after each change event: what a suggestion must match."""
    docs: dict[str, Document] = {}
    states: list[tuple[int, int] | None] = []
    for ev in events:
        state = None
        if ev["type"] == "open":
            docs[ev["uri"]] = Document(uri=ev["uri"], text=ev["text"])
        elif ev["type"] == "change" and ev["uri"] in docs:
            doc = docs[ev["uri"]]
            for change in ev["changes"]:
                doc.apply(_change_event(change), encoding)
            state = (len(doc.text), hash(doc.text))
        elif ev["type"] == "close":
            docs.pop(ev["uri"], None)
        states.append(state)
    return states


def typed_chars(events: list[dict[str, Any]]) -> int:
    return sum(len(c.get("text", "")) for ev in events if ev["type"] == "change" and not ev.get("auto")
               for c in ev["changes"])


class Replayer:
    """Replays traces into one running server and counts what happened."""

    def __init__(self, client: StdioClient, options: ReplayOptions, encoding: str = "utf-16"):
        self.client = client
        self.options = options
        self.encoding = encoding
        self.docs: dict[str, Document] = {}
        self.versions: dict[str, int] = {}
        self.pending: dict[int, Pending] = {}
        self.id_map: dict[Any, int] = {}
        self.shown: Shown | None = None
        self.tally = Tally()
        self.memory: list[tuple[int, float]] = []  # (keystrokes so far, server RSS in MB)
        self.total_keystrokes = 0
        self._last_sample = 0.0
        self.sample_memory(force=True)

    # -- responses ---------------------------------------------------------------------------------------------
    def pump(self, until: float | None = None, request_id: int | None = None) -> None:
        """Handle responses until the clock reaches `until` (None: only those already here), or sooner
        once request_id is answered."""
        while request_id is None or request_id in self.pending:
            left = 0.0 if until is None else until - time.perf_counter()
            if left < 0:
                return
            got = self.client.next_response(left)
            if got is None:
                if until is None:
                    return
                continue
            self.on_response(*got)

    def on_response(self, received: float, message: dict[str, Any]) -> None:
        p = self.pending.pop(message.get("id"), None)
        if p is None:
            return  # executeCommand and the like
        t = self.tally
        if "error" in message:
            if message["error"].get("code") == REQUEST_CANCELLED:
                t.cancelled_answers += 1
            else:
                t.errors += 1
                t.error_messages.append(f"{p.method}: {message['error'].get('message')}")
            return
        t.answered += 1
        t.latencies_ms.append((received - p.sent) * 1000)
        items = answer_items(message.get("result"))
        if not items:
            t.empty += 1
            return
        item = items[0]
        text, rng = item_text(item), (item.get("textEdit") or {}).get("range") if "textEdit" in item \
            else item.get("range")
        args = (item.get("command") or {}).get("arguments") or []
        version = args[1].get("version") if len(args) > 1 and isinstance(args[1], dict) else None
        if version != p.version:
            t.outdated += 1
        doc, cursor = Document(uri=p.uri, text=p.text), types.Position(p.line, p.character)
        if not self._applies(doc, cursor, text, rng):
            t.invalid += 1
            return
        if p.cancelled or self.versions.get(p.uri) != p.version:
            t.late += 1
            return
        t.shown += 1
        offset = doc.offset_at(cursor, self.encoding)
        self.shown = Shown(p.uri, p.version, text, p.line, p.character, offset, args[0] if args else None)

    def _applies(self, doc: Document, cursor: types.Position, text: str | None, rng: dict | None) -> bool:
        """A string, inserted at the cursor, which is a position inside the document it was asked for
        (with the server's own line rules: a position the LSP rules would clamp does not count)."""
        at = {"line": cursor.line, "character": cursor.character}
        if text is None or rng is None or rng.get("start") != at or rng.get("end") != at:
            return False
        try:
            return doc.clamped(cursor, self.encoding) == cursor
        except InvalidPosition:  # a line past the end
            return False

    # -- sending -----------------------------------------------------------------------------------------------
    def cancel_pending(self, uri: str) -> None:
        for msg_id, p in self.pending.items():
            if p.uri == uri and not p.cancelled:
                p.cancelled = True
                self.client.cancel(msg_id)
                self.tally.cancellations_sent += 1

    def send_change(self, uri: str, changes: list[dict[str, Any]]) -> None:
        doc = self.docs[uri]
        if self.options.cancel_on_change:
            self.cancel_pending(uri)  # as VS Code does: the next keystroke cancels what is in flight
        for change in changes:
            doc.apply(_change_event(change), self.encoding)
        self.versions[uri] += 1
        self.client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": self.versions[uri]},
                                                      "contentChanges": changes})
        if self.shown is not None and self.shown.uri == uri:
            self.shown = None
        self.tally.keystrokes += 1
        self.total_keystrokes += 1
        self.sample_memory()

    def send_request(self, ev: dict[str, Any], uri: str) -> int | None:
        if uri not in self.docs:
            return None
        if self.options.cancel_on_change:
            self.cancel_pending(uri)  # a new request replaces the one in flight
        position = {"line": ev["line"], "character": ev["character"]}
        automatic = ev.get("trigger", "automatic") == "automatic"
        if ev["method"] == "textDocument/completion":
            context = {"triggerKind": 3 if automatic else 1}
        else:
            context = {"triggerKind": 2 if automatic else 1}
        msg_id = self.client.request(ev["method"], {"textDocument": {"uri": uri}, "position": position,
                                                    "context": context})
        self.pending[msg_id] = Pending(uri, self.versions[uri], self.docs[uri].text, ev["line"], ev["character"],
                                       ev["method"], time.perf_counter())
        self.id_map[ev["id"]] = msg_id
        self.tally.requests += 1
        return msg_id

    def sample_memory(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._last_sample >= self.options.memory_every_s:
            self._last_sample = now
            if (rss := self.client.rss_mb()) is not None:
                self.memory.append((self.total_keystrokes, round(rss, 1)))

    # -- the simulated user ------------------------------------------------------------------------------------
    def acceptable_until(self, events: list[dict], states: list, i: int, rename) -> int | None:
        """The index of the change event whose document equals the shown suggestion inserted, if the user
        gets there within the look-ahead without opening or closing anything; None otherwise."""
        s = self.shown
        if s is None or s.uri not in self.docs or len(s.text) < 2 or not s.text.strip() \
                or self.versions.get(s.uri) != s.version:
            return None  # nobody presses Tab to save nothing (the accept is a keystroke too)
        text = self.docs[s.uri].text
        target = text[:s.offset] + s.text + text[s.offset:]
        want = (len(target), hash(target))
        for k in range(i, min(len(events), i + self.options.lookahead_events)):
            ev = events[k]
            if ev["type"] in ("open", "close"):
                return None
            if ev["type"] == "change" and rename(ev["uri"]) == s.uri and states[k] == want:
                return k
        return None

    def accept(self) -> None:
        s = self.shown
        at = {"line": s.line, "character": s.character}
        self.send_change(s.uri, [{"range": {"start": at, "end": at}, "text": s.text}])
        if s.suggestion_id is not None:
            self.client.request("workspace/executeCommand", {"command": "quicksilver.accept",
                                                             "arguments": [s.suggestion_id]})
        self.tally.accepted += 1
        self.tally.chars_accepted += len(s.text)
        self.tally.chars_saved += len(s.text) - 1

    # -- one trace ---------------------------------------------------------------------------------------------
    def run(self, trace: Trace, uri_suffix: str = "") -> Tally:
        """Replay one trace; documents get uri + uri_suffix so a trace can be replayed again as new files."""
        before = self.tally
        self.tally = Tally()
        self.id_map = {}
        events = trace.events
        states = document_states(events, self.encoding)
        self.tally.chars_typed = typed_chars(events)

        def rename(uri: str) -> str:
            return uri + uri_suffix

        opts = self.options
        t_start, shift = time.perf_counter(), 0.0
        i = 0
        while i < len(events):
            ev = events[i]
            if opts.speed:
                self.pump(until=t_start + (ev["t"] - shift) / opts.speed / 1000)
            else:
                self.pump()
            j = self.acceptable_until(events, states, i, rename) if opts.accept and ev["type"] == "change" else None
            if j is not None:
                self.accept()  # instead of typing events i..j
                if j + 1 < len(events):
                    shift += max(0.0, events[j + 1]["t"] - (ev["t"] + opts.accept_cost_ms))
                i = j + 1
                continue
            msg_id = self.handle(ev, rename(ev["uri"]) if "uri" in ev else None)
            if msg_id is not None and not opts.speed:
                self.wait_for(msg_id)
            i += 1
        for msg_id in list(self.pending):
            self.wait_for(msg_id)
        opened = {rename(e["uri"]) for e in events if e["type"] == "open"}
        for uri in [u for u in self.docs if u in opened]:  # what the trace left open
            self.client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
            self.docs.pop(uri)
        result = self.tally
        before.add(result)
        self.tally = before
        return result

    def wait_for(self, msg_id: int) -> None:
        deadline = time.perf_counter() + self.options.answer_timeout_s
        self.pump(until=deadline, request_id=msg_id)
        if msg_id in self.pending:
            p = self.pending.pop(msg_id)
            self.tally.errors += 1
            self.tally.error_messages.append(f"{p.method}: no answer within {self.options.answer_timeout_s:g} s")

    def handle(self, ev: dict[str, Any], uri: str | None) -> int | None:
        kind = ev["type"]
        if kind == "open":
            self.docs[uri] = Document(uri=uri, text=ev["text"])
            self.versions[uri] = int(ev.get("version") or 0)
            self.client.notify("textDocument/didOpen", {"textDocument": {
                "uri": uri, "languageId": ev["languageId"], "version": self.versions[uri], "text": ev["text"]}})
        elif kind == "change" and uri in self.docs:
            self.send_change(uri, ev["changes"])
        elif kind == "close" and uri in self.docs:
            self.cancel_pending(uri)
            self.docs.pop(uri)
            self.client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        elif kind == "cursor" and self.shown is not None and self.shown.uri == uri:
            self.shown = None  # moving the cursor hides ghost text
        elif kind == "request":
            return self.send_request(ev, uri)
        elif kind == "cancel" and (msg_id := self.id_map.get(ev["id"])) in self.pending:
            self.pending[msg_id].cancelled = True
            self.client.cancel(msg_id)
            self.tally.cancellations_sent += 1
        return None
