"""`python -m benchmarks.lsp`: request-to-response latency of the language server over stdio.

The server runs as editors start it (`python -m lsp_server`, stdio, the bundled model). For
real files from the CPython standard library, single-line inline completions are requested
at line starts (after the indentation) and line ends, one request at a time, each answered
before the next is sent (triggerKind Invoked: no debounce). Measured on the client side,
from writing the request to parsing its response:
- "fresh": each cursor asked for once, so the model runs (no cache hit);
- "repeat": the same cursor asked again, answered from the typed-ahead cache;
- cold start: process start -> initialize -> didOpen -> first completion (model load included).
Configurations: the default latency budget, and a 30 ms budget. Background refinement is
off while measuring (it would run between requests and be interrupted by the next one).
Results: benchmarks/results/lsp.json and lsp.png. The machine may be shared with a training
job: the load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from lsp_server.stdio_client import StdioClient

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STDLIB = Path(os.__file__).parent


class StdioServer:
    """The server as editors start it, through lsp_server's stdio client; timings on the client side."""

    def __init__(self, args: list[str]):
        self.started = time.perf_counter()
        self.client = StdioClient([sys.executable, "-m", "lsp_server", "--log-level", "warning", *args], cwd=ROOT,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})

    def send(self, method: str, params) -> None:
        self.client.notify(method, params)

    def call(self, method: str, params, timeout: float = 300) -> tuple[float, dict]:
        """(milliseconds from sending to the parsed response, the response)."""
        t0 = time.perf_counter()
        received, reply = self.client.wait_response(self.client.request(method, params), timeout)
        return (received - t0) * 1000, reply

    def close(self) -> None:
        self.client.close()


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def pick_cursors(text: str, rng: random.Random, count: int) -> list[tuple[int, int, str]]:
    """(line, UTF-16 character, "start"|"end") on non-blank code lines: after the indentation, or at the end."""
    lines = text.split("\n")
    candidates = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    cursors = []
    for i in rng.sample(candidates, min(count, len(candidates))):
        line = lines[i].rstrip("\r")
        if rng.random() < 0.5:
            cursors.append((i, utf16_len(line[: len(line) - len(line.lstrip())]), "start"))
        else:
            cursors.append((i, utf16_len(line), "end"))
    return cursors


def pick_files(count: int, rng: random.Random) -> list[Path]:
    """Standard-library modules of ordinary size (not generated tables, not tiny stubs)."""
    files = sorted(p for p in STDLIB.glob("*.py") if 5_000 <= p.stat().st_size <= 120_000)
    return rng.sample(files, min(count, len(files)))


def initialize(server: StdioServer, options: dict) -> None:
    server.call("initialize", {"processId": os.getpid(), "rootUri": None, "capabilities": {},
                               "initializationOptions": options})
    server.send("initialized", {})


def open_file(server: StdioServer, path: Path) -> str:
    uri = path.as_uri()
    server.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                          "text": path.read_text(encoding="utf-8")}})
    return uri


def inline(server: StdioServer, uri: str, line: int, character: int) -> tuple[float, dict]:
    return server.call("textDocument/inlineCompletion", {"textDocument": {"uri": uri},
                                                         "position": {"line": line, "character": character},
                                                         "context": {"triggerKind": 1}})


def summary(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"n": len(ms), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p95_ms": round(float(np.percentile(a, 95)), 2), "mean_ms": round(float(a.mean()), 2),
            "max_ms": round(float(a.max()), 2)}


def measure_config(name: str, server_args: list[str], options: dict, files: list[Path], per_file: int,
                   seed: int) -> dict:
    rng = random.Random(seed)
    server = StdioServer(server_args)
    try:
        initialize(server, options)
        first = open_file(server, files[0])
        inline(server, first, 0, 0)  # waits for the model: latency from here on is the warm server's
        fresh, repeat, by_kind, nonempty = [], [], {"start": [], "end": []}, 0
        for path in files:
            uri = open_file(server, path)
            for line, character, kind in pick_cursors(path.read_text(encoding="utf-8"), rng, per_file):
                ms, reply = inline(server, uri, line, character)
                if "error" in reply:
                    raise RuntimeError(f"{path}:{line}:{character}: {reply['error']}")
                fresh.append(ms)
                by_kind[kind].append(ms)
                nonempty += bool(reply["result"]["items"])
                repeat.append(inline(server, uri, line, character)[0])
            print(f"[{name}] {path.name}: {len(fresh)} requests, p50 {np.median(fresh):.1f} ms", file=sys.stderr)
    finally:
        server.close()
    return {"server_args": server_args, "options": options, "fresh": summary(fresh), "repeat": summary(repeat),
            "line_start": summary(by_kind["start"]) if by_kind["start"] else None,
            "line_end": summary(by_kind["end"]) if by_kind["end"] else None,
            "nonempty_share": round(nonempty / len(fresh), 3), "fresh_ms": [round(x, 2) for x in fresh],
            "repeat_ms": [round(x, 2) for x in repeat]}


def cold_start(server_args: list[str], path: Path, runs: int) -> dict:
    """Process start to the first completion's response, `runs` times."""
    times, phases = [], []
    for _ in range(runs):
        server = StdioServer(server_args)
        try:
            server.call("initialize", {"processId": os.getpid(), "rootUri": None, "capabilities": {}})
            init_ms = (time.perf_counter() - server.started) * 1000
            server.send("initialized", {})
            uri = open_file(server, path)
            inline(server, uri, 10, 0)
            total = (time.perf_counter() - server.started) * 1000
        finally:
            server.close()
        times.append(total)
        phases.append({"to_initialize_ms": round(init_ms, 1), "to_first_completion_ms": round(total, 1)})
    return {"runs": phases, "median_ms": round(float(np.median(times)), 1)}


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    for name, config in results["configs"].items():
        for series, style in (("fresh_ms", "-"), ("repeat_ms", ":")):
            values = np.sort(config[series])
            label = f"{name}, {'model runs' if series == 'fresh_ms' else 'repeat (cache)'}: p50 " \
                    f"{config[series.removesuffix('_ms')]['p50_ms']:.1f} ms"
            left.plot(values, np.arange(1, len(values) + 1) / len(values), style, label=label)
    left.axvline(30, color="grey", linestyle="--", linewidth=1, label="goal: 30 ms")
    left.set_xscale("log")
    left.set_xlabel("request -> response over stdio (ms, log scale)")
    left.set_ylabel("share of requests")
    left.set_title(f"inline completions, single line ({results['requests_per_config']} cursors in "
                   f"{len(results['files'])} stdlib files)")
    left.legend(fontsize=8, loc="lower right")
    runs = results["cold_start"]["runs"]
    right.bar(range(len(runs)), [r["to_first_completion_ms"] / 1000 for r in runs], label="first completion")
    right.bar(range(len(runs)), [r["to_initialize_ms"] / 1000 for r in runs], label="initialize answered")
    right.set_xlabel("run")
    right.set_ylabel("seconds since process start")
    right.set_title("cold start")
    right.legend(fontsize=8)
    fig.suptitle(f"Quicksilver LSP latency, load average {results['load_average_before'][0]:.1f} "
                 f"on {os.cpu_count()} cores (a training job shares them)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lsp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=12, help="standard-library files")
    parser.add_argument("--per-file", type=int, default=10, help="cursors per file")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="passed to the server (--threads)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "lsp.json", help="results JSON (PNG beside it)")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    files = pick_files(args.files, rng)
    base = ["--threads", str(args.threads)] if args.threads else []
    no_refine = {"backgroundRefinement": False}
    configs = {
        "default budget": (base, no_refine),
        "30 ms budget": ([*base, "--latency-budget-ms", "30"], no_refine),
    }
    load_before = os.getloadavg()
    results = {
        "benchmark": "lsp", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "load_average_before": [round(x, 2) for x in load_before],
        "files": [str(p.relative_to(STDLIB.parent)) for p in files],
        "requests_per_config": args.files * args.per_file,
        "configs": {name: measure_config(name, server_args, options, files, args.per_file, args.seed)
                    for name, (server_args, options) in configs.items()},
        "cold_start": cold_start(base, files[0], args.cold_runs),
    }
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, args.out.with_suffix(".png"))
    for name, config in results["configs"].items():
        print(f"{name}: fresh p50 {config['fresh']['p50_ms']} ms p95 {config['fresh']['p95_ms']} ms; "
              f"repeat p50 {config['repeat']['p50_ms']} ms; non-empty {config['nonempty_share']:.0%}")
    print(f"cold start to first completion: median {results['cold_start']['median_ms']} ms; "
          f"load average {results['load_average_before']} -> {results['load_average_after']}")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
