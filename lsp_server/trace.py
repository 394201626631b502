"""Editing-session traces: the format, a reader, and the recorder behind `--record-trace DIR`.

A trace is JSON Lines. The first line is a header::

    {"type": "header", "format": "quicksilver-trace", "version": 1, "source": "recorder", "created": "...",
     "position_encoding": "utf-16"}

and every other line is one event, `t` milliseconds after the trace started:

| type | fields | what happened |
|---|---|---|
| `initialize` | `client`, `options` | the editor connected (its name and initializationOptions) |
| `open` | `uri`, `languageId`, `version`, `text` | a document was opened |
| `change` | `uri`, `version`, `changes` | an edit: the LSP content changes as the editor sent them |
| `close` | `uri` | a document was closed |
| `cursor` | `uri`, `line`, `character` | the cursor moved without an edit (generated traces) |
| `request` | `id`, `method`, `uri`, `line`, `character`, `trigger` | a completion was asked (`automatic`/`invoked`) |
| `answer` | `id`, `items` or `error` | what the server answered: the suggested texts |
| `cancel` | `id` | the editor cancelled a request |
| `accept` / `dismiss` | `suggestion` | the user took or rejected a suggestion (its id) |

A change may carry `"auto": true` when the editor made it rather than the user (indentation
after Enter): it is replayed but not counted as typing. Positions are 0-based, in the header's
`position_encoding`. Recording is off unless the user asks for it: a trace holds the code that
was typed, so files are created mode 0600.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("quicksilver.trace")

FORMAT = "quicksilver-trace"
VERSION = 1
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "initialize": (),
    "open": ("uri", "languageId", "version", "text"),
    "change": ("uri", "version", "changes"),
    "close": ("uri",),
    "cursor": ("uri", "line", "character"),
    "request": ("id", "method", "uri", "line", "character"),
    "answer": ("id",),
    "cancel": ("id",),
    "accept": ("suggestion",),
    "dismiss": ("suggestion",),
}
COMPLETION_METHODS = ("textDocument/inlineCompletion", "textDocument/completion")


class TraceError(ValueError):
    """A trace file that cannot be read; the message names the file and line."""


@dataclass
class Trace:
    path: Path
    header: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def position_encoding(self) -> str:
        return self.header.get("position_encoding", "utf-16")


def header(source: str, position_encoding: str = "utf-16", **extra: Any) -> dict[str, Any]:
    return {"type": "header", "format": FORMAT, "version": VERSION, "source": source,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "position_encoding": position_encoding, **extra}


def check_event(event: Any) -> str | None:
    """Why an event is malformed, or None."""
    if not isinstance(event, dict):
        return "an event must be a JSON object"
    kind = event.get("type")
    if kind not in EVENT_FIELDS:
        return f"unknown event type {kind!r}"
    if not isinstance(event.get("t"), (int, float)):
        return f"{kind} event without a time `t`"
    missing = [f for f in EVENT_FIELDS[kind] if f not in event]
    return f"{kind} event missing {', '.join(missing)}" if missing else None


def read_trace(path: str | Path) -> Trace:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from exc
    if not lines:
        raise TraceError(f"{path}: empty file")
    trace = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise TraceError(f"{path}:{number}: not JSON: {exc}") from exc
        if trace is None:
            if not isinstance(item, dict) or item.get("format") != FORMAT:
                raise TraceError(f"{path}:{number}: not a {FORMAT} header")
            if item.get("version") != VERSION:
                raise TraceError(f"{path}:{number}: trace version {item.get('version')!r}, this reader knows {VERSION}")
            trace = Trace(path, item)
            continue
        if (problem := check_event(item)) is not None:
            raise TraceError(f"{path}:{number}: {problem}")
        trace.events.append(item)
    return trace


class TraceWriter:
    """Appends events to a JSON Lines file, flushed line by line (a killed editor loses nothing)."""

    def __init__(self, path: str | Path, head: dict[str, Any]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        with self._lock:
            self._write(head)

    def _write(self, item: dict[str, Any]) -> None:  # with the lock held
        if not self._file.closed:
            self._file.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")
            self._file.flush()

    def event(self, kind: str, t: float | None = None, **fields: Any) -> None:
        with self._lock:  # the time is taken under the lock too, so lines stay in time order across threads
            now = (time.monotonic() - self._t0) * 1000 if t is None else t
            self._write({"t": round(now, 1), "type": kind, **fields})

    def close(self) -> None:
        with self._lock:
            self._file.close()


def answer_items(result: Any) -> list[dict[str, Any]]:
    """The items of an InlineCompletionList, a CompletionList or a bare list of items."""
    if isinstance(result, dict):
        result = result.get("items", [])
    return [item for item in result if isinstance(item, dict)] if isinstance(result, list) else []


def item_text(item: dict[str, Any], label_fallback: bool = False) -> str | None:
    """The text an item inserts: its textEdit's, else its insertText (a StringValue's value), else (for
    completion items, where the label is what gets inserted) its label."""
    if "textEdit" in item:
        text = (item["textEdit"] or {}).get("newText")
    else:
        text = item.get("insertText")
        if text is None and label_fallback:
            text = item.get("label")
    if isinstance(text, dict):  # a StringValue snippet
        text = text.get("value")
    return text if isinstance(text, str) else None


def _answer_texts(method: str, result: Any) -> list[str]:
    """The suggested texts of an inline-completion or completion result."""
    texts = [item_text(item, label_fallback=method == "textDocument/completion") for item in answer_items(result)]
    return [text for text in texts if text is not None]


class TraceRecorder:
    """Turns the JSON-RPC traffic of one server session into trace events."""

    def __init__(self, directory: str | Path, position_encoding: str = "utf-16"):
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        self.writer = TraceWriter(Path(directory) / f"quicksilver-{stamp}-{os.getpid()}.jsonl",
                                  header("recorder", position_encoding))
        self._pending: dict[Any, str] = {}  # request id -> method, until answered
        self._initialize: tuple[Any, Any, Any] | None = None  # (id, clientInfo, initializationOptions)
        log.info("recording this session's edits and completions to %s", self.writer.path)

    @property
    def path(self) -> Path:
        return self.writer.path

    def incoming(self, message: dict[str, Any]) -> None:
        try:
            self._incoming(message)
        except Exception as exc:  # a recording problem must never cost the user a completion
            log.warning("trace recorder: %s", exc)

    def _incoming(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params") or {}
        if not isinstance(params, dict):
            return
        doc = params.get("textDocument") or {}
        if method == "initialize" and "id" in message:  # written with the answer, which names the encoding
            self._initialize = (message["id"], params.get("clientInfo"), params.get("initializationOptions"))
        elif method == "textDocument/didOpen":
            self.writer.event("open", uri=doc.get("uri"), languageId=doc.get("languageId"),
                              version=doc.get("version"), text=doc.get("text"))
        elif method == "textDocument/didChange":
            self.writer.event("change", uri=doc.get("uri"), version=doc.get("version"),
                              changes=params.get("contentChanges"))
        elif method == "textDocument/didClose":
            self.writer.event("close", uri=doc.get("uri"))
        elif method in COMPLETION_METHODS and "id" in message:
            position = params.get("position") or {}
            trigger = (params.get("context") or {}).get("triggerKind")
            automatic = trigger == 2 if method == "textDocument/inlineCompletion" else trigger not in (None, 1)
            self._pending[message["id"]] = method
            self.writer.event("request", id=message["id"], method=method, uri=doc.get("uri"),
                              line=position.get("line"), character=position.get("character"),
                              trigger="automatic" if automatic else "invoked")
        elif method == "$/cancelRequest":
            self.writer.event("cancel", id=params.get("id"))
        elif method == "workspace/executeCommand" and params.get("command") == "quicksilver.accept":
            self.writer.event("accept", suggestion=(params.get("arguments") or [None])[0])
        elif method == "quicksilver/didDismiss":
            self.writer.event("dismiss", suggestion=params.get("id"))

    def outgoing(self, message: dict[str, Any]) -> None:
        try:
            if self._initialize is not None and message.get("id") == self._initialize[0] and "method" not in message:
                _, client, options = self._initialize
                self._initialize = None
                capabilities = (message.get("result") or {}).get("capabilities") or {}
                self.writer.event("initialize", client=client, options=options,
                                  position_encoding=capabilities.get("positionEncoding", "utf-16"))
                return
            method = self._pending.pop(message.get("id"), None) if "method" not in message else None
            if method is None:
                return
            if "error" in message and message["error"] is not None:
                self.writer.event("answer", id=message["id"], error=(message["error"] or {}).get("message"))
            else:
                self.writer.event("answer", id=message["id"], items=_answer_texts(method, message.get("result")))
        except Exception as exc:
            log.warning("trace recorder: %s", exc)

    def close(self) -> None:
        self.writer.close()
