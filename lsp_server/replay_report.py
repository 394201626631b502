"""The `replay` command: traces in, one server process, a JSON report and a PNG plot out.

`--min-keystrokes N` turns it into a soak test: the traces are replayed again, as new
documents, until N keystrokes went through the same server process; memory is sampled
all along and its growth reported.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lsp_server.replay import Replayer, ReplayOptions, Tally
from lsp_server.stdio_client import ServerGone, StdioClient
from lsp_server.trace import Trace, TraceError, read_trace

ROOT = Path(__file__).resolve().parents[1]


def trace_paths(specs: list[str]) -> list[Path]:
    """Files as given; a directory means every *.jsonl under it (sorted)."""
    paths: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            paths.extend(sorted(path.rglob("*.jsonl")))
        else:
            paths.append(path)
    return paths


def position_encoding(trace: Trace) -> str:
    init = next((ev for ev in trace.events if ev["type"] == "initialize" and ev.get("position_encoding")), None)
    return init["position_encoding"] if init else trace.position_encoding


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "n": 0}
    ordered = sorted(values)

    def pct(q: float) -> float:
        k = (len(ordered) - 1) * q
        lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
        return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 2)

    return {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "mean": round(sum(ordered) / len(ordered), 2),
            "n": len(ordered)}


def summarize(t: Tally) -> dict[str, Any]:
    out = {k: v for k, v in asdict(t).items() if k not in ("latencies_ms", "error_messages")}
    out["latency_ms"] = percentiles(t.latencies_ms)
    out["chars_saved_pct"] = round(100 * t.chars_saved / t.chars_typed, 2) if t.chars_typed else 0.0
    out["accept_rate"] = round(t.accepted / t.shown, 3) if t.shown else 0.0
    out["error_messages"] = t.error_messages[:20]
    return out


def memory_summary(samples: list[tuple[int, float]]) -> dict[str, Any]:
    """Growth is measured from the first sample after 5% of the keystrokes (the model is loaded and warm)
    to the last; the slope over the second half says whether it keeps growing."""
    if not samples:
        return {"samples": []}
    total = samples[-1][0]
    warm = next((s for s in samples if s[0] >= 0.05 * total), samples[0])
    half = [s for s in samples if s[0] >= total / 2]
    slope = None
    if len(half) >= 2 and half[-1][0] > half[0][0]:
        slope = round((half[-1][1] - half[0][1]) / (half[-1][0] - half[0][0]) * 1000, 3)
    return {"start_mb": samples[0][1], "warm_mb": warm[1], "end_mb": samples[-1][1],
            "peak_mb": max(s[1] for s in samples), "growth_mb": round(samples[-1][1] - warm[1], 1),
            "growth_mb_per_1000_keystrokes_second_half": slope, "samples": samples}


def log_problems(log_path: Path) -> list[str]:
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if " ERROR " in line or line.startswith("Traceback")]


def run_replay(paths: list[Path], options: ReplayOptions, server_args: list[str], min_keystrokes: int = 0,
               server_log: Path | None = None) -> tuple[dict[str, Any], Tally]:
    """The report, and the tally of every trace together (its latencies feed the plot)."""
    traces = [read_trace(p) for p in paths]
    if not traces:
        raise TraceError("no traces given")
    encodings = {position_encoding(t) for t in traces}
    if len(encodings) > 1:
        raise TraceError(f"traces use different position encodings: {sorted(encodings)}")
    encoding = encodings.pop()
    log_path = server_log or Path(tempfile.mkstemp(prefix="quicksilver-replay-", suffix=".log")[1])
    argv = [sys.executable, "-m", "lsp_server", "--log-file", str(log_path), "--log-level", "info", *server_args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    t0, load_start = time.perf_counter(), os.getloadavg()
    client = StdioClient(argv, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    per_trace: dict[str, Tally] = {}
    crashed, replayer = None, None
    try:
        client.initialize({"general": {"positionEncodings": [encoding]},
                           "textDocument": {"inlineCompletion": {}, "completion": {}}}, options.server_options)
        replayer = Replayer(client, options, encoding)
        for r, trace in itertools.chain.from_iterable(((r, t) for t in traces) for r in itertools.count()):
            if r > 0 and replayer.total_keystrokes >= min_keystrokes:
                break
            tally = replayer.run(trace, uri_suffix="" if r == 0 else f"#{r}")
            per_trace.setdefault(trace.path.name, Tally()).add(tally)
            print(f"replay: {trace.path.name} (round {r + 1}): {tally.keystrokes} keystrokes, "
                  f"{tally.requests} requests, shown {tally.shown}, accepted {tally.accepted}, errors {tally.errors}; "
                  f"{replayer.total_keystrokes} keystrokes in all", file=sys.stderr, flush=True)
        replayer.sample_memory(force=True)
    except ServerGone as exc:
        crashed = str(exc)
    exit_code = client.close()
    total = Tally()
    for tally in per_trace.values():
        total.add(tally)
    problems = log_problems(log_path)
    report = {
        "traces": [str(p) for p in paths],
        "speed": "max" if not options.speed else options.speed,
        "accept": options.accept,
        "server_args": server_args,
        "total": summarize(total),
        "per_trace": {name: summarize(t) for name, t in per_trace.items()},
        "memory": memory_summary(replayer.memory if replayer is not None else []),
        "server_exit_code": exit_code,
        "server_crashed": crashed,
        "server_log_errors": problems[:20],
        "seconds": round(time.perf_counter() - t0, 1),
        "loadavg_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],  # other work on the machine
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "notes": "latency: client-side, request sent to response parsed, answered requests only. shown: non-empty "
                 "answers for the document as it still is. chars_saved: accepted characters less one (Tab) per "
                 "accept, over chars_typed (characters the user types in the traces, editor-made edits excluded). "
                 "outdated: answers made for another document version than the request's (must be 0).",
    }
    report["total"]["errors"] += len(problems) + (crashed is not None) + (exit_code != 0)
    return report, total


def plot(report: dict[str, Any], latencies_ms: list[float], path: Path) -> bool:
    """Latency distribution and server memory over the run; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    total = report["total"]
    if latencies_ms:
        ax1.hist(latencies_ms, bins=60, color="#4a78b0")
        for q, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
            value = total["latency_ms"][q]
            ax1.axvline(value, color="#c05050", linestyle=style, label=f"{q} {value:.0f} ms")
        ax1.legend()
    ax1.set_xlabel("latency (ms, client side)")
    ax1.set_ylabel("answered requests")
    ax1.set_title(f"{total['requests']} requests, shown {total['shown']}, accepted {total['accepted']}, "
                  f"saved {total['chars_saved_pct']:.1f}% chars", fontsize=9)
    samples = report["memory"].get("samples", [])
    if samples:
        ax2.plot([s[0] for s in samples], [s[1] for s in samples], color="#4a78b0")
    ax2.set_xlabel("keystrokes replayed")
    ax2.set_ylabel("server RSS (MB)")
    growth = report["memory"].get("growth_mb")
    ax2.set_title(f"server memory (growth after warm-up {growth} MB)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
