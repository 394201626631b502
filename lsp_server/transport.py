"""Content-Length framing over stdio or one loopback TCP connection.

A daemon thread reads frames and hands complete bodies to the event loop, so a client
that stops talking never keeps the process alive, and a body is read in pieces (a bogus
Content-Length of a terabyte costs what actually arrives, not a terabyte of memory).
Broken headers are logged and skipped; the stream resynchronises at the next header.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import BinaryIO

from pygls.io_ import StdoutWriter

log = logging.getLogger("quicksilver.lsp")

MAX_HEADER_LINE = 64 * 1024
READ_CHUNK = 1 << 20
LOOPBACK = "127.0.0.1"


class EndOfInput:
    """The client closed its side."""


class ByteSource:
    """readline/read over a raw receive function (os.read on a descriptor, or socket.recv).

    Not a buffered file object on purpose: a daemon thread blocked inside one holds its lock, and
    the interpreter aborts at exit when it cannot take that lock (SIGABRT instead of exit code 0).
    """

    def __init__(self, receive: Callable[[int], bytes]):
        self.receive = receive
        self.buffer = bytearray()

    def _fill(self, size: int = 65536) -> bool:
        chunk = self.receive(size)
        self.buffer += chunk
        return bool(chunk)

    def readline(self, limit: int) -> bytes:
        searched = 0
        while True:
            newline = self.buffer.find(b"\n", searched, limit)
            if newline >= 0:
                return self._take(newline + 1)
            if len(self.buffer) >= limit:
                return self._take(limit)
            searched = len(self.buffer)
            if not self._fill():
                return self._take(len(self.buffer))

    def read(self, size: int) -> bytes:
        if not self.buffer:
            self._fill(min(size, READ_CHUNK))
        return self._take(min(size, len(self.buffer)))

    def _take(self, size: int) -> bytes:
        out = bytes(self.buffer[:size])
        del self.buffer[:size]
        return out


def read_frames(stream: ByteSource, deliver: Callable[[bytes | EndOfInput], None]) -> None:
    """Read framed message bodies until end of input, passing each to `deliver`."""
    while True:
        length = _read_headers(stream)
        if length is None:
            break
        body = _read_body(stream, length)
        if len(body) < length:
            log.warning("input ended inside a message (%d of %d bytes)", len(body), length)
            break
        deliver(body)
    deliver(EndOfInput())


def _read_headers(stream: ByteSource) -> int | None:
    """The Content-Length of the next message; None at end of input. Frames without one are skipped."""
    length: int | None = None
    seen_any = False
    while True:
        line = stream.readline(MAX_HEADER_LINE)
        if not line:
            return None
        if line.strip():
            seen_any = True
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    log.warning("bad Content-Length header %r", line[:80])
            continue
        if length is not None and length >= 0:
            return length
        if seen_any:
            log.warning("message headers without a valid Content-Length; skipped")
        seen_any = False


def _read_body(stream: ByteSource, length: int) -> bytes:
    chunks, remaining = [], length
    while remaining > 0:
        chunk = stream.read(min(remaining, READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


async def _serve(protocol, stream: ByteSource) -> None:
    """Feed bodies from a reader thread to `protocol.receive` until end of input."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | EndOfInput] = asyncio.Queue()

    def deliver(item: bytes | EndOfInput) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is gone: the server already exited
            pass

    threading.Thread(target=read_frames, args=(stream, deliver), name="quicksilver-reader", daemon=True).start()
    while not isinstance(item := await queue.get(), EndOfInput):
        protocol.receive(item)
        await asyncio.sleep(0)  # let handlers started by this message run before the next one


def serve_streams(protocol, reader: ByteSource, writer: BinaryIO) -> None:
    """Serve one client until end of input or `exit` (which raises SystemExit, caught here)."""
    protocol.set_writer(StdoutWriter(writer))
    try:
        asyncio.run(_serve(protocol, reader))
    except BrokenPipeError:
        log.warning("the client closed the connection")
    except (KeyboardInterrupt, SystemExit):
        pass


def serve_tcp(protocol, port: int, on_listening: Callable[[int], None] | None = None) -> None:
    """Listen on 127.0.0.1 only (nothing from the network), serve the first client that connects, then return."""
    with socket.create_server((LOOPBACK, port)) as listener:
        bound = listener.getsockname()[1]
        log.info("listening on %s:%d", LOOPBACK, bound)
        if on_listening is not None:
            on_listening(bound)
        connection, peer = listener.accept()
    log.info("client connected from %s:%d", *peer[:2])
    with connection, connection.makefile("wb") as writer:
        serve_streams(protocol, ByteSource(connection.recv), writer)


def serve_stdio(protocol, stdin: BinaryIO, stdout: BinaryIO) -> None:
    fd = stdin.fileno()
    serve_streams(protocol, ByteSource(lambda size: os.read(fd, size)), stdout)
