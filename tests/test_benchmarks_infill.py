"""The infilling benchmark's parts that need no trained model: task derivation, the
sandboxed executor and baselines, exact-match sampling, checkpoint metadata, the
KV-cached autoregressive decoder (on a tiny random model) and the plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import exact_match as em
from benchmarks.checkpoints import append_curve, summarize
from benchmarks.humaneval import (
    EXPECTED_TASKS,
    Executor,
    derive_tasks,
    empty_baseline,
    load_problems,
    pass_baseline,
    run_program,
)


@pytest.fixture(scope="module")
def problems():
    return load_problems()


@pytest.fixture(scope="module")
def tasks(problems):
    return {t.task_id: t for t in derive_tasks(problems)}


def test_task_count_and_reconstruction(problems, tasks):
    assert len(tasks) == EXPECTED_TASKS == 1033
    for t in tasks.values():
        p = problems[t.problem_id]
        assert t.prefix + t.middle + t.suffix == p["prompt"] + p["canonical_solution"]
        assert t.middle.strip() and "\n" not in t.middle
        assert t.prefix.endswith("\n") and (t.suffix.startswith("\n") or t.suffix == "")
        assert (t.prefix + t.suffix).split("\n")[t.line] == ""  # the cursor's line is the emptied hole


def test_executor_canonical_passes_and_wrong_lines_fail(tasks):
    picked = [tasks["HumanEval/0/L7"], tasks["HumanEval/2/L0"]]
    assert picked[0].middle == "    return False"
    with Executor(load_problems()) as ex:
        assert ex.score(picked, [t.middle for t in picked]) == [True, True]
        assert ex.score(picked, [empty_baseline(t) for t in picked]) == [False, False]
        assert ex.score(picked, ["    return True", "    return 0"]) == [False, False]


def test_pass_baseline_uses_the_same_executor(tasks):
    t_pass, t_fail = tasks["HumanEval/10/L1"], tasks["HumanEval/0/L7"]
    assert pass_baseline(t_pass) == t_pass.indent + "pass" == "        pass"
    with Executor(load_problems()) as ex:
        assert ex.score([t_pass, t_fail], [pass_baseline(t_pass), pass_baseline(t_fail)]) == [True, False]


def test_sandbox_blocks_network_and_times_out():
    ok, why = run_program("import socket\nsocket.create_connection(('127.0.0.1', 9))\n")
    assert not ok and "blocked" in why
    ok, why = run_program("while True:\n    pass\n", timeout=0.5)
    assert (ok, why) == (False, "timeout")


def test_exact_match_sampling_is_deterministic_and_removes_the_line():
    files = [("a.py", "def f():\n    return 1\n\nx = f()\n"), ("b.py", "import os\n  \nprint(os.sep)\n")]
    lines = em.sample_lines(files, 4)
    assert lines == em.sample_lines(files, 4) and len(lines) == 4
    by_target = {t.target: t for t in lines}
    t = by_target["return 1"]
    assert (t.line, t.column) == (1, 4) and t.text == "def f():\n    \n\nx = f()\n"
    assert em.is_exact(t, "return 1  \nmore") and not em.is_exact(t, "\nreturn 1")
    assert all(t.target.strip() for t in lines)


def test_checkpoint_summary_counts_stage_one_hours():
    s = summarize({"stage": "diffusion", "tokens": 100, "train_seconds": 1800.0, "best_val": math.inf,
                   "init": {"path": "runs/ar/best.safetensors", "tokens": 50, "train_seconds": 5400.0}})
    assert s["train_hours"] == 2.0 and s["total_tokens"] == 150 and s["val_loss"] is None
    assert summarize({"stage": "ar", "train_seconds": 36.0, "val_loss": 4.5})["val_loss"] == 4.5


def test_learning_curve_appends_and_plots(tmp_path):
    from benchmarks.plots import plot_curve

    path = tmp_path / "curve.json"
    append_curve({"stage": "ar", "train_hours": 0.5, "pass_at_1": 0.01, "val_loss": 5.0}, path)
    append_curve({"stage": "diffusion", "train_hours": 1.0, "pass_at_1": 0.02, "val_loss": None}, path)
    entries = append_curve({"stage": "diffusion", "train_hours": 1.5, "pass_at_1": 0.015, "val_loss": 3.0,
                            "bundled": False}, path)  # measured, not bundled: a hollow point of its own
    assert len(json.loads(path.read_text())) == 3
    plot_curve(entries, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 0


def test_kv_cached_decoding_matches_full_pass(tokenizer):
    torch = pytest.importorskip("torch")
    from benchmarks.ar import ArDecoder, check_kv_decoding
    from completion.api import CompletionRequest, CompletionSettings
    from runtime.model import Denoiser, ModelConfig

    torch.manual_seed(0)
    model = Denoiser(ModelConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, d_model=32)).eval()
    assert check_kv_decoding(model) < 1e-4
    dec = ArDecoder(model, {}, tokenizer, CompletionSettings(), max_new_tokens=6)
    c = dec.complete(CompletionRequest(text="def f(x):\n\n", line=1, column=0))
    assert 1 <= c.forward_passes <= 7 and "\n" not in c.text.strip("\n")


def test_wilson_interval_mask_round_trip_and_paired_test():
    from benchmarks.significance import decode_mask, encode_mask, mcnemar, wilson

    lo, hi = wilson(100, 1033)  # the bundled model's engine row: 0.0968
    assert 0.079 < lo < 0.081 and 0.116 < hi < 0.118
    assert wilson(0, 50)[0] == 0.0 and 0.0 < wilson(0, 50)[1] < 0.08  # sound at zero, unlike p +- z*sd
    bits = [i % 7 == 0 or i == 1032 for i in range(1033)]
    assert decode_mask(encode_mask(bits), 1033) == bits
    with pytest.raises(ValueError, match="past task"):
        decode_mask(encode_mask(bits), 100)
    a = [True] * 10 + [False] * 20
    assert mcnemar(a, [False] * 30) == {"only_a": 10, "only_b": 0, "both": 0, "p_value": 0.00195}
    assert mcnemar(a, a)["p_value"] == 1.0
    assert 0 < mcnemar([True] * 60, [False] * 60)["p_value"] < 1e-15  # tiny, and not rounded to 0
    even = mcnemar([True, False] * 10, [False, True] * 10)  # 10 each way: no evidence either way
    assert even["only_a"] == even["only_b"] == 10 and even["p_value"] == 1.0
    with pytest.raises(ValueError, match="different task sets"):
        mcnemar(a, a[:-1])


def test_line_kinds_split_humaneval_holes(tasks):
    from benchmarks.significance import by_kind, humaneval_kinds, line_kind

    cases = {"return False": "return True/False", "  return True\n": "return True/False",
             "return x > 0": "return", "elif n == 1:": "if/elif/else", "else:": "if/elif/else",
             "for i in range(n):": "for/while", "l = list(l)": "assign", "result += [x]": "assign",
             "s.items[0], t = 1, 2": "assign", "x == 1": "other", "print(x)": "other", "# note": "other"}
    assert {line: line_kind(line) for line in cases} == cases
    kinds = humaneval_kinds()
    assert len(kinds) == len(tasks) == EXPECTED_TASKS
    counts = by_kind(kinds, [True] * len(kinds), [k == "return True/False" for k in kinds])
    assert sum(row["n"] for row in counts.values()) == EXPECTED_TASKS
    assert counts["return True/False"]["a"] == counts["return True/False"]["b"] == 64
    assert all(row["b"] == 0 for kind, row in counts.items() if kind != "return True/False")


MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "default"


@pytest.mark.skipif(not (MODEL_DIR / "denoiser.onnx").is_file(), reason=f"bundled model not complete in {MODEL_DIR}")
def test_infill_run_stores_intervals_and_per_task_results_that_compare(tmp_path, capsys):
    import shlex
    import textwrap

    from benchmarks.infill import main as infill_main
    from benchmarks.significance import decode_mask
    from benchmarks.significance import main as compare_main

    out = tmp_path / "infill.json"
    val = tmp_path / "val.jsonl"  # held-out lines from real stdlib files: a fresh clone has no corpus
    val.write_text("".join(json.dumps({"path": m.__file__, "lang": "python", "text": Path(m.__file__).read_text()})
                           + "\n" for m in (textwrap, shlex)))
    assert infill_main(["--limit", "12", "--methods", "engine,baseline_pass", "--em-lines", "12", "--val", str(val),
                        "--latency-budget-ms", "0", "--workers", "1", "--out", str(out)]) == 0
    methods = json.loads(out.read_text())["humaneval"]["methods"]
    for m in methods.values():
        assert m["n"] == 12 and sum(decode_mask(m["passed_tasks"], 12)) == m["passed"]
        assert m["ci95"][0] <= m["pass_at_1"] <= m["ci95"][1]
    assert out.with_suffix(".png").is_file()
    capsys.readouterr()
    assert compare_main([str(out), str(out)]) == 0
    assert "right in a only 0, in b only 0" in capsys.readouterr().out
    assert compare_main([str(out), str(out), "--method-b", "baseline_pass"]) == 0
    assert "McNemar exact p" in capsys.readouterr().out
    assert compare_main([str(out), str(out), "--method", "ar"]) == 2  # did not run: a clear error, no traceback
    em_run = json.loads(out.read_text())["exact_match"]  # the held-out lines, paired the same way
    hits = em_run["methods"]["engine"]
    assert sum(decode_mask(hits["hit_lines"], em_run["n_lines"])) == hits["hits"] and em_run["n_lines"] == 12
    assert compare_main([str(out), str(out), "--exact-match"]) == 0
    assert f"{hits['hits']} exact lines" in capsys.readouterr().out
