"""`python -m benchmarks.infill`: completion quality through the server's own engine.

HumanEval single-line infilling pass@1 (1033 holes, see benchmarks/humaneval.py)
for the engine at its latency budget, with the true span length, at fixed step
counts and one token per step; beside it trivial baselines and the stage-1
autoregressive model decoding with a KV cache; exact match of completed lines on
the corpus validation split; optionally a learning-curve point.

Completions are all generated first and executed afterwards, so the executor's
processes never compete with the latency-budgeted engine for the 2 cores.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks import exact_match as em
from benchmarks.checkpoints import DEFAULT_CURVE, append_curve, checkpoint_info, summarize
from benchmarks.humaneval import BASELINES, EXPECTED_TASKS, TIMEOUT_S, Executor, Task, derive_tasks, load_problems
from benchmarks.significance import encode_mask, wilson
from completion.api import Completion, CompletionError, CompletionRequest, CompletionSettings
from completion.engine import WINDOW_SCALES

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
STEP_SWEEP = (1, 2, 4, 8)
_DEFAULTS = CompletionSettings()
ENGINE_METHODS: dict[str, dict] = {"engine": {}, "true_length": {}, **{f"steps_{k}": {"steps": k} for k in STEP_SWEEP},
                                   "one_per_step": {"latency_budget_ms": 0.0, "steps": None, "tokens_per_step": 1},
                                   "model_indent": {"indent_from_context": False},
                                   # the smallest windows a slow machine's budget falls back to (engine.fit_context)
                                   "half_windows": {f"{side}_tokens": round(getattr(_DEFAULTS, f"{side}_tokens")
                                                                            * WINDOW_SCALES[-1])
                                                    for side in ("prefix", "suffix")}}
ALL_METHODS = (*BASELINES, "ar", *ENGINE_METHODS)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.infill", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", type=Path, help="model directory (default: the bundled models/default)")
    src.add_argument("--weights", type=Path, help="a .safetensors checkpoint, run on the torch backend")
    p.add_argument("--backend", default="auto", help="backend for --model (auto, cpu, torch, ...)")
    p.add_argument("--tokenizer", type=Path, default=REPO / "models" / "default" / "tokenizer.json",
                   help="tokenizer for --weights")
    p.add_argument("--ar-weights", type=Path, help="stage-1 checkpoint for the autoregressive row "
                   "(default: --weights when it is a stage-1 checkpoint)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the backend's)")
    p.add_argument("--latency-budget-ms", type=float, default=None,
                   help=f"engine latency budget (default: {CompletionSettings().latency_budget_ms})")
    p.add_argument("--methods", default=",".join(ALL_METHODS), help=f"comma list of {', '.join(ALL_METHODS)}")
    p.add_argument("--limit", type=int, default=None, help="first N HumanEval tasks and at most N exact-match lines")
    p.add_argument("--em-lines", type=int, default=300, help="validation lines for exact match")
    p.add_argument("--val", type=Path, default=em.DEFAULT_VAL, help="validation split (JSON lines)")
    p.add_argument("--skip-exact-match", action="store_true")
    p.add_argument("--workers", type=int, default=2, help="parallel test processes")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per test program")
    p.add_argument("--out", type=Path, default=RESULTS / "infill.json", help="results JSON (PNG beside it)")
    p.add_argument("--dump", type=Path, default=None, help="write every completion to this JSON-lines file")
    p.add_argument("--record-curve", action="store_true", help="append a point to the learning curve")
    p.add_argument("--curve", type=Path, default=DEFAULT_CURVE, help="learning-curve JSON (PNG beside it)")
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(args.methods) - set(ALL_METHODS)
    if unknown:
        p.error(f"unknown methods {sorted(unknown)}; choose from {', '.join(ALL_METHODS)}")
    return args


def _torch_model_dir(weights: Path, tokenizer: Path) -> Path:
    """A temp model directory the loader's torch backend reads: config.json, tokenizer.json
    and model.safetensors, a copy of the checkpoint, so a training job replacing the file
    mid-run cannot mix two versions into one result."""
    from benchmarks.checkpoints import read_metadata

    if not weights.is_file():
        raise FileNotFoundError(f"model weights not found: {weights}")
    d = Path(tempfile.mkdtemp(prefix="qs_bench_model_"))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    (d / "config.json").write_text(json.dumps(read_metadata(weights)["config"], indent=2))
    (d / "tokenizer.json").symlink_to(tokenizer.resolve())
    shutil.copyfile(weights, d / "model.safetensors")
    return d


def build_engine(args: argparse.Namespace, settings: CompletionSettings):
    """(engine, model description) for --model or --weights."""
    from completion.engine import CompletionEngine
    from runtime.costs import StepCostModel
    from runtime.loader import default_model_dir, load_model

    if args.weights is not None:
        model = load_model(_torch_model_dir(args.weights, args.tokenizer), backend="torch", threads=args.threads)
        ckpt = model.model_dir / "model.safetensors"
    else:
        model = load_model(args.model or default_model_dir(), backend=args.backend, threads=args.threads)
        ckpt = model.model_dir / "model.safetensors"
    costs = StepCostModel()
    costs.warm_up(model.backend)
    engine = CompletionEngine(model, settings, costs)
    desc = {"dir": str(model.model_dir if args.weights is None else args.weights), "backend": model.backend.name,
            "info": asdict(model.info), "threads": args.threads, **checkpoint_info(ckpt)}
    if args.weights is not None:
        desc["checkpoint"] = str(args.weights.resolve())
        desc["snapshot"] = str(ckpt)
    return engine, desc


def generate(name: str, items: list, fn: Callable[[object], Completion]) -> list[Completion]:
    from tqdm import tqdm

    out = []
    for item in tqdm(items, desc=f"{name:>14}", file=sys.stderr, mininterval=1.0, dynamic_ncols=True):
        try:
            out.append(fn(item))
        except CompletionError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            out.append(Completion(text=""))
    return out


def stats(comps: list[Completion]) -> dict:
    lat = np.array([c.latency_ms for c in comps]) if comps else np.zeros(1)
    return {"forward_passes_mean": round(float(np.mean([c.forward_passes for c in comps])), 3),
            "steps_mean": round(float(np.mean([c.steps for c in comps])), 3),
            "span_len_mean": round(float(np.mean([c.span_len for c in comps])), 3),
            "latency_ms_mean": round(float(lat.mean()), 2), "latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
            "latency_ms_p90": round(float(np.percentile(lat, 90)), 2),
            "empty_rate": round(sum(not c.text.strip() for c in comps) / max(1, len(comps)), 4)}


def request_for(task: Task) -> CompletionRequest:
    return CompletionRequest(text=task.prefix + task.suffix, line=task.line, column=0, language="python")


def true_length_completion(engine, task: Task) -> Completion:
    """The engine told the answer's length: the true line's tokens plus one EOS."""
    span_len = len(engine.model.tokenizer.encode(task.middle)) + 1
    return engine.with_settings(span_len=span_len).complete(request_for(task))


def make_ar(args: argparse.Namespace, engine, model_desc: dict):
    """(decoder or None, note, weights path). When the AR checkpoint is the engine's
    own --weights, the decoder loads the engine's snapshot of it."""
    weights = args.ar_weights
    if weights is None and args.weights is not None and model_desc.get("stage") == "ar":
        weights = args.weights
    if weights is None:
        return None, "skipped: no stage-1 checkpoint (pass --ar-weights)", None
    try:
        import torch  # noqa: F401
    except ImportError:
        return None, "skipped: torch is not installed", None
    from benchmarks.ar import ArDecoder, check_kv_decoding

    same = args.weights is not None and weights.resolve() == args.weights.resolve()
    dec = ArDecoder.load(Path(model_desc["snapshot"]) if same else weights, engine.model.tokenizer, engine.settings,
                         threads=args.threads)
    err = check_kv_decoding(dec.model)
    if err > 1e-3:
        raise RuntimeError(f"KV-cached decoding differs from a full causal pass by {err:.2e}")
    ckpt = summarize(dec.meta)
    note = (f"greedy, KV cache (max |cached - full| logits {err:.1e}), stop at EOS or end of line; "
            f"{weights}: stage {ckpt['stage']}, step {ckpt['step']}, {ckpt['train_hours']} h")
    return dec, note, weights


def run_humaneval(args, engine, ar, ar_note: str) -> tuple[dict, dict]:
    """(summary per method, completions per method)."""
    problems = load_problems()
    all_tasks = derive_tasks(problems)
    if len(all_tasks) != EXPECTED_TASKS:
        print(f"warning: derived {len(all_tasks)} tasks, expected {EXPECTED_TASKS}", file=sys.stderr)
    tasks = all_tasks[: args.limit] if args.limit else all_tasks
    comps: dict[str, list[Completion]] = {}
    notes: dict[str, str] = {}
    for name in args.methods:
        if name in BASELINES:
            comps[name] = [Completion(text=BASELINES[name](t)) for t in tasks]
        elif name == "ar":
            if ar is None:
                notes[name] = ar_note
                continue
            comps[name] = generate(name, tasks, lambda t: ar.complete(request_for(t)))
            notes[name] = ar_note
        elif name == "true_length":
            comps[name] = generate(name, tasks, lambda t: true_length_completion(engine, t))
            notes[name] = "span_len = tokens of the true line + 1 (EOS)"
        else:
            eng = engine.with_settings(**ENGINE_METHODS[name])
            comps[name] = generate(name, tasks, lambda t, eng=eng: eng.complete(request_for(t)))
    methods: dict[str, dict] = {}
    with Executor(problems, workers=args.workers, timeout=args.timeout) as ex:
        futures = {name: [ex.submit(t, c.text) for t, c in zip(tasks, cs, strict=True)] for name, cs in comps.items()}
        from tqdm import tqdm

        bar = tqdm(total=sum(map(len, futures.values())), desc=f"{'tests':>14}", file=sys.stderr, mininterval=1.0,
                   dynamic_ncols=True)
        results = {}
        for name, fs in futures.items():
            results[name] = []
            for f in fs:
                results[name].append(f.result())
                bar.update()
        bar.close()
    for name in args.methods:
        if name not in comps:
            methods[name] = {"pass_at_1": None, "note": notes.get(name, "skipped")}
            continue
        passed = [ok for ok, _ in results[name]]
        methods[name] = {"pass_at_1": round(sum(passed) / len(passed), 4), "passed": sum(passed), "n": len(passed),
                         "ci95": [round(x, 4) for x in wilson(sum(passed), len(passed))],
                         "passed_tasks": encode_mask(passed), **stats(comps[name])}
        if name in notes:
            methods[name]["note"] = notes[name]
        if name.startswith("steps_"):
            methods[name]["steps_setting"] = int(name.split("_")[1])
        if name == "model_indent":
            methods[name]["note"] = "the engine without its indentation rule: the model writes the blank line's indent"
        if name == "half_windows":
            methods[name]["note"] = (f"the engine with {ENGINE_METHODS[name]['prefix_tokens']} + "
                                     f"{ENGINE_METHODS[name]['suffix_tokens']} context tokens: the windows of a "
                                     "machine too slow for more")
    if args.dump:
        args.dump.parent.mkdir(parents=True, exist_ok=True)
        with open(args.dump, "w") as f:
            for name, cs in comps.items():
                for t, c, (ok, why) in zip(tasks, cs, results[name], strict=True):
                    f.write(json.dumps({"method": name, "task": t.task_id, "middle": t.middle, "completion": c.text,
                                        "passed": ok, "reason": why, "steps": c.steps,
                                        "confidence": c.confidence, "candidate": c.candidate_text,
                                        "parse_ok": c.parse_ok, "retried": c.retried}) + "\n")
    summary = {"task_definition": "program = prompt + canonical_solution; one hole per solution line that is "
               "non-empty after strip; cursor at column 0 of the emptied line (the engine picks the indentation "
               "the lines around allow, the model the rest); pass@1 = the problem's check(entry_point) passes in an "
               "isolated interpreter", "n_tasks": len(tasks),
               "n_tasks_total": len(all_tasks), "timeout_s": args.timeout,
               "default_span_len": methods.get("engine", {}).get("span_len_mean"), "methods": methods}
    return summary, comps


def run_exact_match(args, engine, ar) -> dict:
    n = min(args.em_lines, args.limit) if args.limit else args.em_lines
    lines = em.sample_lines(em.load_files(args.val), n)
    out: dict = {"n_lines": len(lines), "split": str(args.val), "seed": em.SEED, "methods": {}}
    runners = {"engine": engine.complete}
    if ar is not None:
        runners["ar"] = ar.complete
    for name, fn in runners.items():
        comps = generate(f"em {name}", lines, lambda t, fn=fn: fn(t.request()))
        hits = [em.is_exact(t, c.text) for t, c in zip(lines, comps, strict=True)]
        out["methods"][name] = {"exact_match": round(sum(hits) / max(1, len(hits)), 4), "hits": sum(hits),
                                "ci95": [round(x, 4) for x in wilson(sum(hits), len(hits))],
                                "hit_lines": encode_mask(hits), **stats(comps)}
    return out


def machine() -> dict:
    """Where the run happened; `cores_busy_before_start` (a second of /proc/stat) tells whether other
    work shared the cores, which the load average, trailing by a minute, cannot."""
    from benchmarks.speed_measure import cpu_busy

    info = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "loadavg": [round(x, 2) for x in os.getloadavg()], "cores_busy_before_start": cpu_busy()}
    for mod in ("onnxruntime", "torch"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return info


def print_table(results: dict) -> None:
    print(f"{'method':<16}{'pass@1':>8}{'95% interval':>16}{'passes':>8}{'ms':>8}  (HumanEval single-line, "
          f"{results['humaneval']['n_tasks']} tasks)")
    for name, m in results["humaneval"]["methods"].items():
        if m.get("pass_at_1") is None:
            print(f"{name:<16}{'-':>8}  {m.get('note', '')}")
        else:
            lo, hi = m["ci95"]
            print(f"{name:<16}{m['pass_at_1']:>8.4f}{f'{lo:.4f}-{hi:.4f}':>16}{m['forward_passes_mean']:>8.2f}"
                  f"{m['latency_ms_mean']:>8.1f}")
    for name, m in results.get("exact_match", {}).get("methods", {}).items():
        print(f"exact match {name:<8}{m['exact_match']:>8.4f}  ({m['hits']}/{results['exact_match']['n_lines']})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from runtime.base import ModelFileError

    base = CompletionSettings(max_lines=1)
    if args.latency_budget_ms is not None:
        base.latency_budget_ms = args.latency_budget_ms
    started = datetime.now(UTC).isoformat(timespec="seconds")
    machine_start = machine()
    try:
        engine, model_desc = build_engine(args, base)
    except (ModelFileError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ar, ar_note, ar_weights = make_ar(args, engine, model_desc) if "ar" in args.methods else (None, "", None)
    humaneval, _ = run_humaneval(args, engine, ar, ar_note)
    results = {"benchmark": "quicksilver infill", "date": started, "command": sys.argv, "machine": machine_start,
               "model": model_desc, "ar_weights": str(ar_weights) if ar_weights else None,
               "settings": asdict(base), "limit": args.limit, "humaneval": humaneval}
    if not args.skip_exact_match:
        results["exact_match"] = run_exact_match(args, engine, ar)
    results["costs"] = engine.costs.summary()
    results["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    from benchmarks.plots import plot_curve, plot_infill

    plot_infill(results, args.out.with_suffix(".png"))
    print_table(results)
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}", file=sys.stderr)
    if args.record_curve:
        record_curve(args, results, model_desc, ar_weights, plot_curve)
    return 0


def record_curve(args, results: dict, model_desc: dict, ar_weights: Path | None, plot_curve) -> None:
    """One learning-curve point: a stage-1 checkpoint is scored by its own autoregressive
    decoding when that ran, anything else by the engine at its latency budget."""
    if not model_desc.get("checkpoint"):
        print("warning: no checkpoint metadata (model.safetensors) for --record-curve; skipped", file=sys.stderr)
        return
    methods = results["humaneval"]["methods"]
    same = ar_weights is not None and Path(ar_weights).resolve() == Path(model_desc["checkpoint"]).resolve()
    method = "ar" if model_desc.get("stage") == "ar" and same and methods.get("ar", {}).get("pass_at_1") is not None \
        else "engine"
    if methods.get(method, {}).get("pass_at_1") is None:
        print(f"warning: method {method!r} did not run; no learning-curve point", file=sys.stderr)
        return
    keys = ("checkpoint", "stage", "step", "tokens", "total_tokens", "train_hours", "val_loss")
    entry = {**{k: model_desc.get(k) for k in keys}, "pass_at_1": methods[method]["pass_at_1"], "method": method,
             "n_tasks": results["humaneval"]["n_tasks"],
             "pass_at_1_by_method": {k: m["pass_at_1"] for k, m in methods.items() if m.get("pass_at_1") is not None}}
    entries = append_curve(entry, args.curve)
    plot_curve(entries, args.curve.with_suffix(".png"))
    print(f"appended to {args.curve}; plotted {args.curve.with_suffix('.png')}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
