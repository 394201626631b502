"""Command line: `python -m lsp_server` serves LSP over stdio; `complete FILE:LINE:COL` completes once.

Argument and location parsing are plain functions so they can be tested without a process.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from completion.api import CompletionError, CompletionRequest, CompletionSettings
from lsp_server import __version__
from lsp_server.config import LOG_LEVELS, ServerConfig, apply_log_level
from lsp_server.documents import language_for_path, split_lines
from runtime.loader import BACKENDS

USAGE_ERROR = 2


class CliError(Exception):
    """A one-line message for stderr; the command exits with USAGE_ERROR."""


@dataclass(frozen=True)
class Location:
    path: Path
    line: int  # 1-based
    column: int  # 1-based, in characters (code points)


def _add_common_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # On the subcommand the defaults are suppressed so they do not overwrite values given before it.
    def default(value):
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--model", metavar="DIR", default=default(None),
                        help="model directory (default: the bundled models/default)")
    parser.add_argument("--backend", choices=BACKENDS, default=default("auto"),
                        help="runtime backend (default: auto, the fastest available)")
    parser.add_argument("--latency-budget-ms", type=float, default=default(None), metavar="MS",
                        help="time per completion for context encoding and all denoising steps")
    parser.add_argument("--threads", type=_positive_int, default=default(None), metavar="N",
                        help="CPU threads for the model (default: the runtime's choice)")
    parser.add_argument("--log-file", metavar="PATH", default=default(None), help="log here instead of stderr")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=default("info"))


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quicksilver", description="Quicksilver code-completion language server.",
        epilog="Without a COMMAND it serves LSP over stdio until the client exits or closes stdin.")
    parser.add_argument("--version", action="version", version=f"quicksilver {__version__}")
    parser.add_argument("--tcp", type=_port, metavar="PORT", default=None,
                        help="serve one client on 127.0.0.1:PORT instead of stdio (0 picks a free port; "
                             "never reachable from the network)")
    parser.add_argument("--record-trace", metavar="DIR", default=None,
                        help="record this session (edits, requests, answers) as a trace in DIR; off by default")
    _add_common_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    complete = commands.add_parser("complete", help="print one completion for FILE:LINE:COL and exit")
    complete.add_argument("location", metavar="FILE:LINE:COL", help="1-based line and column (in characters)")
    _add_common_options(complete, suppress=True)
    replay = commands.add_parser("replay", help="replay editing traces against a server and report latency, "
                                                "suggestions accepted and characters saved")
    replay.add_argument("traces", nargs="+", metavar="TRACE", help="trace files (.jsonl) or directories of them")
    replay.add_argument("--speed", type=_speed, default=None, metavar="1|max",
                        help="1: the recorded timing (or any factor); max: as fast as possible (default)")
    replay.add_argument("--no-accept", action="store_true", help="the simulated user never accepts a suggestion")
    replay.add_argument("--min-keystrokes", type=int, default=0, metavar="N",
                        help="soak: replay the traces again as new documents until N keystrokes went through")
    replay.add_argument("--timeout", type=float, default=60.0, metavar="S", help="a later answer is an error")
    replay.add_argument("--out", metavar="JSON", default=None, help="write the report here")
    replay.add_argument("--plot", metavar="PNG", default=None, help="latency and memory plot")
    replay.add_argument("--server-log", metavar="PATH", default=None, help="the replayed server's log file")
    _add_common_options(replay, suppress=True)
    return parser


def _speed(value: str) -> float | None:
    if value == "max":
        return None
    speed = float(value)
    if speed <= 0:
        raise argparse.ArgumentTypeError(f"speed must be positive or 'max', got {value}")
    return speed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    settings = CompletionSettings()
    if args.latency_budget_ms is not None:
        settings = replace(settings, latency_budget_ms=args.latency_budget_ms)
    return ServerConfig(model_dir=args.model, backend=args.backend, threads=args.threads, log_level=args.log_level,
                        settings=settings)


def parse_location(spec: str) -> Location:
    """FILE:LINE:COL, split from the right so file names may contain colons."""
    parts = spec.rsplit(":", 2)
    if len(parts) != 3 or not parts[0]:
        raise CliError(f"expected FILE:LINE:COL, got {spec!r}")
    path, line, column = parts
    try:
        line_no, column_no = int(line), int(column)
    except ValueError:
        raise CliError(f"line and column must be numbers in {spec!r}") from None
    if line_no < 1 or column_no < 1:
        raise CliError(f"line and column are 1-based, got {line_no}:{column_no}")
    return Location(Path(path), line_no, column_no)


def read_source(path: Path) -> str:
    """The file as text; CliError for missing, unreadable or binary files."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path} is a directory") from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    if b"\0" in data:
        raise CliError(f"{path} looks binary (it contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{path} is not UTF-8 text (bad byte at offset {exc.start})") from None


def build_request(location: Location, text: str) -> CompletionRequest:
    """The engine request for a 1-based location; CliError when it is outside the file."""
    lines = split_lines(text)
    name = location.path.name
    if location.line > len(lines):
        raise CliError(f"line {location.line} is past the end of {name} ({len(lines)} lines)")
    line_text = lines[location.line - 1]
    if location.column > len(line_text) + 1:
        raise CliError(f"column {location.column} is past the end of line {location.line} of {name} "
                       f"({len(line_text)} characters)")
    return CompletionRequest(text=text, line=location.line - 1, column=location.column - 1,
                             language=language_for_path(str(location.path)))


def configure_logging(level: str, log_file: str | None) -> None:
    """Logs go to stderr or a file, never stdout: stdout carries the protocol."""
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(handlers=[handler], level=logging.WARNING)
    apply_log_level(level)


def run_complete(args: argparse.Namespace) -> int:
    """Print one completion to stdout, its latency to stderr."""
    try:
        location = parse_location(args.location)
        request = build_request(location, read_source(location.path))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    from completion.engine import load_engine  # heavy: only once the request is known to be valid
    from runtime.base import ModelFileError
    from runtime.loader import BackendUnavailable

    config = config_from_args(args)
    try:
        engine = load_engine(model_dir=config.model_dir, backend=config.backend, threads=config.threads,
                             settings=config.settings)
    except (ModelFileError, BackendUnavailable) as exc:
        print(f"error: cannot load the model: {exc}", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    try:
        result = engine.complete(request)
    except CompletionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result.text)
    note = ""
    if not result.text:  # say what the model proposed, so an empty answer is not a mystery
        rejected = result.parse_ok is False and result.candidate_text
        note = f", no suggestion: the model's {result.candidate_text!r} made the parse worse" if rejected \
            else ", no suggestion"
    print(f"latency: {(time.perf_counter() - t0) * 1000:.1f} ms ({result.steps} steps, {engine.backend_name}{note})",
          file=sys.stderr)
    return 0


def server_args(args: argparse.Namespace) -> list[str]:
    """The options given to this command that the replayed server should get too."""
    out: list[str] = []
    for flag, value in (("--model", args.model), ("--backend", args.backend), ("--threads", args.threads),
                        ("--latency-budget-ms", args.latency_budget_ms)):
        if value is not None and not (flag == "--backend" and value == "auto"):
            out += [flag, str(value)]
    return out


def run_replay_command(args: argparse.Namespace) -> int:
    """Replay traces; exit 0 when there were no errors and no outdated or invalid answers."""
    import json

    from lsp_server.replay import ReplayOptions
    from lsp_server.replay_report import plot, run_replay, trace_paths
    from lsp_server.trace import TraceError

    options = ReplayOptions(speed=args.speed, accept=not args.no_accept, answer_timeout_s=args.timeout)
    try:
        report, total = run_replay(trace_paths(args.traces), options, server_args(args), args.min_keystrokes,
                                   Path(args.server_log) if args.server_log else None)
    except TraceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    if args.plot and not plot(report, total.latencies_ms, Path(args.plot)):
        print("note: no plot (matplotlib is not installed)", file=sys.stderr)
    summary = {k: report["total"][k] for k in ("keystrokes", "requests", "shown", "accepted", "chars_saved_pct",
                                               "outdated", "invalid", "errors", "latency_ms")}
    print(json.dumps({**summary, "memory_growth_mb": report["memory"].get("growth_mb")}))
    t = report["total"]
    return 0 if t["errors"] == 0 and t["outdated"] == 0 and t["invalid"] == 0 else 1


def serve(args: argparse.Namespace) -> int:
    """LSP over stdio (or one loopback TCP client) until exit or end of input; the exit code follows LSP."""
    from lsp_server.handlers import create_server
    from lsp_server.transport import serve_stdio, serve_tcp

    server = create_server(config_from_args(args))
    recorder = None
    if args.record_trace:
        from lsp_server.trace import TraceRecorder

        try:
            recorder = server.protocol.recorder = TraceRecorder(args.record_trace)
        except OSError as exc:
            print(f"error: cannot record a trace in {args.record_trace}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print() must not corrupt the protocol stream
    try:
        if args.tcp is not None:
            try:
                serve_tcp(server.protocol, args.tcp)
            except OSError as exc:
                print(f"error: cannot listen on 127.0.0.1:{args.tcp}: {exc.strerror or exc}", file=sys.stderr)
                return 1
        else:
            serve_stdio(server.protocol, stdin, stdout)
    finally:
        server.close()
        if recorder is not None:
            recorder.close()
    return server.exit_code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_file)
    if args.command == "complete":
        return run_complete(args)
    if args.command == "replay":
        return run_replay_command(args)
    return serve(args)
