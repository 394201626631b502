"""`python -m benchmarks.parse_validity`: do completions leave the tree-sitter parse no worse?

Held-out files (the corpus validation split, data/corpus/val.jsonl) in every language
with a grammar; a fixed-seed sample of cursor positions, the same number per language,
each one of three edits a user makes:

- rest_of_line: the cursor somewhere after a line's indentation, the rest of the line removed;
- mid_line: the cursor somewhere in a line, nothing removed (inserting into existing code);
- new_line: a new line with the next line's indentation opened above a line.

Each request goes through the engine as the server sends it (document id = the file's
path, default settings, the bundled model). The completion is then inserted into the
whole document and both are parsed from scratch (independently of the engine's own
check): "no worse" means no more ERROR/MISSING nodes and the text inside ERROR nodes
grown by at most the completion's own length; "no new errors" counts nodes only.
Reported for the final completions (after the engine's rejection rule: an empty
suggestion changes nothing) and for the candidates before that rule (how often the
model's own text keeps the parse), with the share of non-empty suggestions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections import defaultdict
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from completion import languages
from completion.api import CompletionRequest, CompletionSettings
from completion.syntax import error_stats, parse

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VAL = REPO / "data" / "corpus" / "val.jsonl"
RESULTS = Path(__file__).resolve().parent / "results"
SEED = 20250705
MODES = ("rest_of_line", "mid_line", "new_line")
GOAL = 0.95


def load_files(path: Path) -> dict[str, list[tuple[str, str]]]:
    """language -> sorted (path, text) for every file whose language has a grammar."""
    by_lang: dict[str, list[tuple[str, str]]] = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for raw in f:
            d = json.loads(raw)
            lang = languages.canonical(d.get("lang", ""))
            if languages.supported(lang) and d.get("text"):
                by_lang[lang].append((d["path"], d["text"]))
    return {lang: sorted(files) for lang, files in sorted(by_lang.items())}


def make_task(path: str, text: str, line_no: int, mode: str, rng: random.Random) -> dict:
    """One cursor: the (edited) document, the 0-based line/column, the cursor offset."""
    lines = text.split("\n")
    line = lines[line_no].removesuffix("\r")
    start = sum(len(x) + 1 for x in lines[:line_no])
    indent = len(line) - len(line.lstrip(" \t"))
    if mode == "new_line":
        opened = line[:indent]
        doc = text[:start] + opened + "\n" + text[start:]
        column = indent
    else:
        column = rng.randint(indent, len(line))
        doc = text[:start + column] + text[start + len(line):] if mode == "rest_of_line" else text
    return {"path": path, "line": line_no, "column": column, "mode": mode, "text": doc, "offset": start + column}


def sample_tasks(files: dict[str, list[tuple[str, str]]], n: int, seed: int = SEED) -> list[dict]:
    """n cursors split evenly across languages, each language's over all its non-blank lines."""
    tasks = []
    per_lang = max(1, n // max(1, len(files)))
    for lang, lang_files in files.items():
        rng = random.Random(f"{seed}-{lang}")
        candidates = [(fi, li) for fi, (_, text) in enumerate(lang_files)
                      for li, line in enumerate(text.split("\n")) if line.strip()]
        for fi, li in sorted(rng.sample(candidates, min(per_lang, len(candidates)))):
            path, text = lang_files[fi]
            tasks.append({"lang": lang, **make_task(path, text, li, rng.choice(MODES), rng)})
    return tasks


def judge(doc: str, offset: int, insert: str, lang: str, before) -> tuple[bool, bool]:
    """(no worse, no new error nodes) for inserting `insert` at offset, by fresh whole-file parses."""
    if not insert:
        return True, True
    after = error_stats(parse(doc[:offset] + insert + doc[offset:], lang))
    return after.no_worse_than(before, len(insert.encode("utf-8"))), after.count <= before.count


def share(rows: list[dict], key: str) -> float | None:
    return round(sum(r[key] for r in rows) / len(rows), 4) if rows else None


def summarize(rows: list[dict]) -> dict:
    lat = np.array([r["latency_ms"] for r in rows]) if rows else np.zeros(1)
    nonempty = [r for r in rows if r["nonempty"]]
    cands = [r for r in rows if r["candidate_nonempty"]]
    return {"n": len(rows), "no_worse": share(rows, "no_worse"), "no_new_errors": share(rows, "no_new_errors"),
            "nonempty": share(rows, "nonempty"), "no_worse_among_nonempty": share(nonempty, "no_worse"),
            "candidate_no_worse": share(cands, "candidate_no_worse"),
            "candidate_no_new_errors": share(cands, "candidate_no_new_errors"),
            "candidate_nonempty": share(rows, "candidate_nonempty"),
            "rejected": share(cands, "rejected"),
            "steps_mean": round(float(np.mean([r["steps"] for r in rows])), 2) if rows else None,
            "latency_ms_mean": round(float(lat.mean()), 1), "latency_ms_p50": round(float(np.percentile(lat, 50)), 1),
            "latency_ms_p90": round(float(np.percentile(lat, 90)), 1)}


def run(engine, tasks: list[dict], progress: bool = True) -> list[dict]:
    rows = []
    before_cache: dict[tuple[str, str], object] = {}
    for i, t in enumerate(tasks):
        req = CompletionRequest(t["text"], t["line"], t["column"], t["lang"], document_id=t["path"])
        c = engine.complete(req)
        key = (t["path"], t["text"])
        if key not in before_cache:
            before_cache = {key: error_stats(parse(t["text"], t["lang"]))}  # tasks are sorted by file
        before = before_cache[key]
        no_worse, no_new = judge(t["text"], t["offset"], c.text, t["lang"], before)
        cand_no_worse, cand_no_new = judge(t["text"], t["offset"], c.candidate_text, t["lang"], before)
        rows.append({"lang": t["lang"], "mode": t["mode"], "path": t["path"], "line": t["line"],
                     "column": t["column"], "hole": c.hole, "text": c.text, "candidate": c.candidate_text,
                     "nonempty": bool(c.text.strip()), "candidate_nonempty": bool(c.candidate_text.strip()),
                     "no_worse": no_worse, "no_new_errors": no_new, "candidate_no_worse": cand_no_worse,
                     "candidate_no_new_errors": cand_no_new, "rejected": bool(c.candidate_text) and not c.text,
                     "errors_before": before.count, "steps": c.steps, "candidates": c.candidates,
                     "latency_ms": round(c.latency_ms, 2)})
        if progress and (i + 1) % 25 == 0:
            print(f"{i + 1}/{len(tasks)} no_worse={share(rows, 'no_worse')} "
                  f"candidate_no_worse={summarize(rows)['candidate_no_worse']}", file=sys.stderr)
    return rows


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {"all": results["overall"], **results["by_language"]}
    names = list(groups)
    series = [("final: no worse", "no_worse", "#4a78b0"),
              ("candidate before the parse check: no worse", "candidate_no_worse", "#c08040"),
              ("non-empty suggestions", "nonempty", "#888888")]
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(names) + 3), 4.8))
    width = 0.8 / len(series)
    for k, (label, key, color) in enumerate(series):
        vals = [groups[n].get(key) or 0.0 for n in names]
        xs = [i + (k - 1) * width for i in range(len(names))]
        ax.bar(xs, vals, width, label=label, color=color)
        for x, v in zip(xs, vals, strict=True):
            ax.text(x, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    ax.axhline(GOAL, color="#c05050", linestyle="--", linewidth=1, label=f"goal {GOAL:.0%}")
    ax.set_xticks(range(len(names)), [f"{n}\n(n={groups[n]['n']})" for n in names])
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share of completions")
    ax.set_title(f"Parse validity on held-out files ({results['model']['backend']}, "
                 f"budget {results['settings']['latency_budget_ms']:.0f} ms)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.parse_validity", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=300, help="cursor positions, split evenly across languages")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--val", type=Path, default=DEFAULT_VAL, help="validation split (JSON lines: path, lang, text)")
    p.add_argument("--model", type=Path, default=None, help="model directory (default: the bundled models/default)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--latency-budget-ms", type=float, default=None,
                   help=f"engine latency budget (default {CompletionSettings().latency_budget_ms})")
    p.add_argument("--out", type=Path, default=RESULTS / "parse_validity.json", help="results JSON (PNG beside it)")
    args = p.parse_args(argv)

    from completion.engine import load_engine
    from runtime.base import ModelFileError

    if not args.val.is_file():
        print(f"error: validation split not found: {args.val} (python -m training.corpus makes it)", file=sys.stderr)
        return 1
    settings = CompletionSettings()
    if args.latency_budget_ms is not None:
        settings.latency_budget_ms = args.latency_budget_ms
    try:
        engine = load_engine(str(args.model) if args.model else None, backend=args.backend, threads=args.threads,
                             settings=settings)
    except (ModelFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    files = load_files(args.val)
    tasks = sample_tasks(files, args.n, args.seed)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    rows = run(engine, tasks)
    by = lambda key: {k: summarize([r for r in rows if r[key] == k])  # noqa: E731
                      for k in sorted({r[key] for r in rows})}
    results = {"benchmark": "quicksilver parse validity", "date": started, "command": sys.argv,
               "seconds": round(time.perf_counter() - t0, 1),
               "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                           "loadavg": [round(x, 2) for x in os.getloadavg()]},
               "model": {"dir": str(engine.model.model_dir), "backend": engine.backend_name},
               "settings": asdict(settings), "split": str(args.val), "seed": args.seed, "goal": GOAL,
               "files_by_language": {k: len(v) for k, v in files.items()},
               "overall": summarize(rows), "by_language": by("lang"), "by_mode": by("mode"), "by_hole": by("hole"),
               "syntax_stats": dict(engine.syntax.stats), "costs": engine.costs.summary(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    plot(results, args.out.with_suffix(".png"))
    o = results["overall"]
    print(f"no worse {o['no_worse']:.4f} (goal {GOAL}) over {o['n']} completions; non-empty {o['nonempty']:.4f}; "
          f"candidates before the parse check no worse {o['candidate_no_worse']}; rejected {o['rejected']}")
    for lang, s in results["by_language"].items():
        print(f"  {lang:<12} n={s['n']:<4} no_worse={s['no_worse']:.4f} nonempty={s['nonempty']:.4f} "
              f"candidate_no_worse={s['candidate_no_worse']} latency_p50={s['latency_ms_p50']}ms")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
