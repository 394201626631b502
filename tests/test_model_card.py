"""The model card says how its scores were measured: the latency budget ties pass@1 to the machine."""

from __future__ import annotations

from benchmarks.model_card import scores_section


def _infill(budget_ms: float) -> dict:
    method = {"pass_at_1": 0.05, "forward_passes_mean": 3.0, "latency_ms_p50": 20.0}
    return {"date": "2026-12-04", "model": {"backend": "onnxruntime-cpu-int8"},
            "settings": {"latency_budget_ms": budget_ms},
            "humaneval": {"n_tasks": 10, "n_tasks_total": 10, "methods": {"engine": method}}}


def test_card_names_the_latency_budget_the_scores_ran_at():
    off = "\n".join(scores_section(_infill(0.0), None))
    assert "latency budget off: the engine's planned steps" in off and "| engine | 0.050 | - | 3.0 | 20 |" in off
    assert "latency budget 150 ms" in "\n".join(scores_section(_infill(150.0), None))


def test_card_gives_the_interval_of_each_score():
    infill = _infill(0.0)
    infill["humaneval"]["methods"]["engine"].update(passed=100, n=1033)  # a run from before intervals were stored
    assert "| engine | 0.050 | 0.080-0.116 | 3.0 | 20 |" in "\n".join(scores_section(infill, None))
    infill["humaneval"]["methods"]["engine"]["ci95"] = [0.0412, 0.0593]
    assert "| engine | 0.050 | 0.041-0.059 | 3.0 | 20 |" in "\n".join(scores_section(infill, None))


def test_card_says_when_the_latencies_shared_the_cores():
    infill = _infill(0.0)
    assert "shared the cores" not in "\n".join(scores_section(infill, None))
    infill["machine"] = {"loadavg": [2.6, 2.4, 2.2]}
    assert "load average 2.6 at its start: other work shared the cores" in "\n".join(scores_section(infill, None))
    infill["machine"]["cores_busy_before_start"] = 0.01  # measured: a job paused at the start is not sharing
    assert "1% of the cores busy before its start: the machine's own" in "\n".join(scores_section(infill, None))
    infill["machine"]["cores_busy_before_start"] = 0.97
    assert "97% of the cores busy before its start: other work shared" in "\n".join(scores_section(infill, None))


def test_card_gives_the_quality_of_both_precisions():
    """The int8 graphs a CPU serves cost some pass@1: the card says how much, from speed.json."""
    speed = {"diffusion_vs_ar_speedup_span32": 2.0}
    assert "Precision" not in "\n".join(scores_section(None, speed))  # no --int8-quality run: nothing claimed
    speed["int8"] = {"humaneval": {"pass_at_1": {"fp32": {"engine": 0.1026}, "int8": {"engine": 0.0987}},
                                   "files": ["a.json", "b.json"]}}
    line = "\n".join(scores_section(None, speed))
    assert "0.1026 through the fp32 graphs and 0.0987 through the int8 graphs" in line and "(-0.0039;" in line
