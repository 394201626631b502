"""How sure a pass@1 is, and whether two runs differ: `python -m benchmarks.significance A.json B.json`.

On 1033 HumanEval holes a pass@1 near 0.09 carries a 95% interval about +-0.018 wide
(Wilson), so two checkpoints 10 passes apart may well be one model. Both runs solved
the same tasks, though, so the paired test (McNemar, exact: a binomial test on the
tasks exactly one of them passed) sees differences the two intervals hide, and is what
a choice between checkpoints should rest on. `benchmarks/infill.py` stores each
method's interval and its per-task results (`passed_tasks`, a hex bitmask in task
order) for this, and the same for exact match on the held-out validation lines
(`hit_lines`, `--exact-match`): the split to choose checkpoints on, so that HumanEval
stays a test set.

`--by-kind` splits HumanEval by the kind of line in the hole. At this model size one kind can
decide a comparison: on 2026-12-06 the bundle (100 passes) passed 35 of the 40 `return False`
holes and 1 of the 24 `return True` ones (a lean towards one constant, not a reading of the
function), the checkpoint trained 8,700 steps further (83) 19 and 2, and on the other 969 holes
they were level (64 and 62).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

KEYWORDS = {"return": "return", "if": "if/elif/else", "elif": "if/elif/else", "else": "if/elif/else",
            "for": "for/while", "while": "for/while"}


def wilson(passed: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sound near 0, unlike the normal one)."""
    if n <= 0:
        return 0.0, 1.0
    p = passed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def encode_mask(passed: list[bool]) -> str:
    """Per-task results as hex, task 0 the lowest bit: 1033 tasks in 259 characters."""
    return format(sum(1 << i for i, ok in enumerate(passed) if ok), "x")


def decode_mask(mask: str, n: int) -> list[bool]:
    value = int(mask, 16)
    if value >> n:
        raise ValueError(f"mask has bits past task {n}")
    return [bool(value >> i & 1) for i in range(n)]


def mcnemar(a: list[bool], b: list[bool]) -> dict:
    """Exact two-sided McNemar test of paired results: only tasks where exactly one passed
    count; under 'no difference' each is a fair coin."""
    if len(a) != len(b):
        raise ValueError(f"runs of different task sets ({len(a)} vs {len(b)} tasks)")
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    n = only_a + only_b
    k = min(only_a, only_b)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    return {"only_a": only_a, "only_b": only_b, "both": sum(x and y for x, y in zip(a, b, strict=True)),
            "p_value": float(f"{p:.3g}")}  # three significant digits: 2e-13 is not 0


def method_results(path: Path, method: str, exact_match: bool = False) -> tuple[list[bool], int, int]:
    """(per-item results, successes, items) of one method in an infill.json: HumanEval tasks, or
    with exact_match the held-out validation lines (the split to choose checkpoints on)."""
    data = json.loads(Path(path).read_text())
    section = (data.get("exact_match") or {}) if exact_match else data["humaneval"]
    m = section.get("methods", {}).get(method)
    if m is None or m.get("hits" if exact_match else "pass_at_1") is None:
        raise ValueError(f"{path}: method {method!r} did not run{' on exact match' if exact_match else ''}")
    if exact_match:
        key, wins, n = "hit_lines", m["hits"], section["n_lines"]
    else:
        key, wins, n = "passed_tasks", m["passed"], m["n"]
    if key not in m:
        raise ValueError(f"{path}: no per-item results (written before benchmarks/infill.py stored them)")
    return decode_mask(m[key], n), wins, n


def compare(a: Path, b: Path, method_a: str = "engine", method_b: str | None = None,
            exact_match: bool = False) -> dict:
    ra, wa, na = method_results(a, method_a, exact_match)
    rb, wb, nb = method_results(b, method_b or method_a, exact_match)
    out = {"a": {"file": str(a), "method": method_a, "passed": wa, "ci95": wilson(wa, na)},
           "b": {"file": str(b), "method": method_b or method_a, "passed": wb, "ci95": wilson(wb, nb)}}
    out.update(mcnemar(ra, rb))
    return out


def line_kind(line: str) -> str:
    """What a hole's true line does: `return True/False` (a constant an unreading model can guess),
    `return`, `if/elif/else`, `for/while`, `assign`, or `other`."""
    text = line.strip()
    if re.fullmatch(r"return\s+(True|False)", text):
        return "return True/False"
    word = re.match(r"[A-Za-z_]\w*", text)
    if word and word.group(0) in KEYWORDS:
        return KEYWORDS[word.group(0)]
    return "assign" if re.match(r"[\w.\[\], ]+\s*[-+*/%|&]?=[^=]", text) else "other"


def by_kind(kinds: list[str], a: list[bool], b: list[bool]) -> dict[str, dict[str, int]]:
    """Per line kind: holes, and how many each run passed."""
    out: dict[str, dict[str, int]] = {}
    for kind, n in Counter(kinds).most_common():
        idx = [i for i, k in enumerate(kinds) if k == kind]
        out[kind] = {"n": n, "a": sum(a[i] for i in idx), "b": sum(b[i] for i in idx)}
    return out


def humaneval_kinds() -> list[str]:
    """The kind of each HumanEval hole, in the order infill.json stores results."""
    from benchmarks.humaneval import derive_tasks, load_problems

    return [line_kind(t.middle) for t in derive_tasks(load_problems())]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--method", default="engine", help="method of run a (and of b unless --method-b)")
    p.add_argument("--method-b", default=None)
    p.add_argument("--exact-match", action="store_true",
                   help="compare exact match on the held-out validation lines instead of HumanEval")
    p.add_argument("--by-kind", action="store_true", help="HumanEval passes split by the kind of line in the hole")
    args = p.parse_args(argv)
    try:
        r = compare(args.a, args.b, args.method, args.method_b, args.exact_match)
    except (ValueError, KeyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    what = "exact lines" if args.exact_match else "passed"
    for side in ("a", "b"):
        s = r[side]
        print(f"{side}: {s['file']} {s['method']}: {s['passed']} {what}, 95% interval "
              f"{s['ci95'][0]:.4f}-{s['ci95'][1]:.4f}")
    print(f"right in a only {r['only_a']}, in b only {r['only_b']}, in both {r['both']}: "
          f"McNemar exact p = {r['p_value']:.3g}")
    if args.by_kind and not args.exact_match:
        ra = method_results(args.a, args.method)[0]
        rb = method_results(args.b, args.method_b or args.method)[0]
        kinds = humaneval_kinds()
        if len(kinds) != len(ra):
            print(f"error: {len(ra)} results but {len(kinds)} HumanEval holes (a --limit run?)", file=sys.stderr)
            return 2
        print(f"{'kind':<20}{'holes':>6}{'a':>6}{'b':>6}")
        for kind, row in by_kind(kinds, ra, rb).items():
            print(f"{kind:<20}{row['n']:>6}{row['a']:>6}{row['b']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
