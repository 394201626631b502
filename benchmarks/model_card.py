"""Write the bundled model's card from the benchmark results, so its numbers are the benchmark's.

    python -m benchmarks.model_card --model models/default

Reads the weights' safetensors metadata (tokens seen, training hours, stage), the
corpus manifest kept beside the model, and `benchmarks/results/*.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.checkpoints import read_metadata
from benchmarks.significance import wilson
from benchmarks.speed_measure import SHARED_BUSY

RESULTS = Path(__file__).resolve().parent / "results"


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def training_section(meta: dict, config: dict) -> list[str]:
    init = meta.get("init") or {}
    ar_hours = (init.get("train_seconds") or 0.0) / 3600
    own_hours = (meta.get("train_seconds") or 0.0) / 3600
    ar_tokens = init.get("tokens") or 0
    own_tokens = meta.get("tokens") or 0
    if meta.get("stage") == "ar":
        ar_hours, own_hours, ar_tokens, own_tokens = own_hours, 0.0, own_tokens, 0
    n_params = config.get("n_params")
    scored = "masked span tokens" if meta.get("stage") == "diffusion" else "all tokens"
    lines = [
        "## Network and training",
        "",
        f"- Transformer denoiser: {config['n_layer']} layers, width {config['d_model']}, {config['n_head']} heads, "
        f"vocabulary {config['vocab_size']} (byte-level BPE), rotary positions, tied embeddings"
        + (f"; {n_params / 1e6:.2f}M parameters." if n_params else "."),
        f"- Stage 1, autoregressive fill-in-the-middle: {ar_tokens / 1e6:.1f}M tokens, {ar_hours:.2f} h.",
        f"- Stage 2, masked-diffusion adaptation: {own_tokens / 1e6:.1f}M tokens, {own_hours:.2f} h.",
        f"- Total: {(ar_tokens + own_tokens) / 1e6:.1f}M tokens in {ar_hours + own_hours:.2f} CPU-hours "
        "(wall-clock hours on 2-core machines, shared with other work: until 8.87 h an Intel CPU with AMX, bf16 "
        "autocast, ~2,400 tokens/s in stage 2; to 9.85 h an AVX2-only AMD EPYC, fp32, ~600 tokens/s, so an hour "
        "there bought a quarter of the tokens; to 12.50 h an AMD EPYC with AVX-512 BF16, bf16 autocast, "
        "~2,900 tokens/s; after it an Intel Xeon with AMX, bf16 autocast and a compiled loss, ~5,500 tokens/s, "
        "its hours including ~2 minutes stopped while speed was measured).",
        f"- Validation loss of this checkpoint ({scored}, cross-entropy in nats): {_fmt(meta.get('val_loss'))}"
        + (f", on the corpus's validation split of {meta['val_set']} (a corpus built on a machine with other "
           "packages installed has another split, and losses on it differ)." if meta.get("val_set") else "."),
        "",
    ]
    return lines


def corpus_section(manifest: dict | None) -> list[str]:
    if not manifest:
        return ["## Corpus", "", "No corpus manifest beside the model.", ""]
    stats = manifest.get("stats", {})
    langs = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in manifest.get("bytes_by_language", {}).items())
    licenses = ", ".join(f"{k} {v}" for k, v in manifest.get("licenses_by_file", {}).items())
    return [
        "## Corpus",
        "",
        "Real source code already on the training machine (`python -m training.corpus`): the CPython standard "
        "library without its tests, installed packages' sources, C/C++ headers; generated code filtered out, "
        "deduplicated by content, nothing from HumanEval.",
        "",
        f"- Train: {stats.get('files_train', 0)} files, {stats.get('bytes_train', 0) / 1e6:.0f} MB; "
        f"validation: {stats.get('files_val', 0)} files, {stats.get('bytes_val', 0) / 1e6:.1f} MB (split by file).",
        f"- By language: {langs}.",
        f"- Licenses detected per file: {licenses}.",
        "",
    ]


def _budget(ms: float | None) -> str:
    """How the engine's steps were chosen: a budget ties the score to the machine's speed."""
    if ms is None:
        return "?"
    return f"{ms:.0f} ms" if ms > 0 else "off: the engine's planned steps, whatever the machine's speed"


def _shared(machine: dict) -> str:
    """Latencies of a run that shared the cores (a training job beside it) are not the machine's: told by
    the share of the cores busy just before the start where the run measured it, else by the load average
    (which trails by a minute: a job paused at the start still shows)."""
    busy, loadavg = machine.get("cores_busy_before_start"), machine.get("loadavg")
    if busy is not None:
        if busy <= SHARED_BUSY:
            return f"; {busy:.0%} of the cores busy before its start: the machine's own latencies"
        return (f"; {busy:.0%} of the cores busy before its start: other work shared the cores, so its latencies "
                "are slower than the machine's (speed.json has those)")
    if not loadavg or loadavg[0] <= 1.0:
        return ""
    return (f"; load average {loadavg[0]:.1f} at its start: other work shared the cores, so its latencies are "
            "slower than the machine's (speed.json has those)")


def scores_section(infill: dict | None, speed: dict | None) -> list[str]:
    lines = ["## Scores", ""]
    if infill:
        he = infill["humaneval"]
        lines += [f"HumanEval single-line infilling ({he['n_tasks']} of {he['n_tasks_total']} tasks, pass@1), "
                  f"from `benchmarks/results/infill.json` ({infill['date']}, backend "
                  f"{infill.get('model', {}).get('backend', '?')}, latency budget "
                  f"{_budget(infill.get('settings', {}).get('latency_budget_ms'))}"
                  f"{_shared(infill.get('machine', {}))}):", "",
                  "| method | pass@1 | 95% interval | forward passes | latency p50 (ms) |", "|---|---|---|---|---|"]
        for name, m in he["methods"].items():
            ci = m.get("ci95") or (wilson(m["passed"], m["n"]) if m.get("passed") is not None else None)
            lines.append(f"| {name} | {_fmt(m['pass_at_1'])} | {'-' if ci is None else f'{ci[0]:.3f}-{ci[1]:.3f}'} | "
                         f"{m['forward_passes_mean']:.1f} | {m['latency_ms_p50']:.0f} |")
        em = (infill.get("exact_match") or {}).get("methods", {})
        if em:
            lines += ["", "Exact match of completed lines on held-out validation files: "
                      + ", ".join(f"{k} {_fmt(v['exact_match'])}" for k, v in em.items()) + "."]
        lines.append("")
    else:
        lines += ["No infill benchmark results yet (`python -m benchmarks.infill`).", ""]
    if speed:
        keys = ("diffusion_vs_ar_speedup_span32", "ort_vs_torch_speedup", "ort_vs_torch_speedup_typing",
                "ort_vs_torch_speedup_fp32", "ort_vs_torch_int8_speedup",
                "single_line_latency_p50_ms", "typing_latency_p50_ms", "typing_latency_p50_ms_without_reuse")
        lines += ["Speed (`benchmarks/results/speed.json`): "
                  + ", ".join(f"{k} = {speed[k]:.2f}" for k in keys if isinstance(speed.get(k), (int, float)))
                  + ".", ""]
        lines += precision_line(speed)
    return lines


def precision_line(speed: dict) -> list[str]:
    """The engine's HumanEval pass@1 through the fp32 graphs and the int8 ones served on a CPU, as
    the speed benchmark's `--int8-quality` recorded them: the quantization's cost in quality."""
    he = (speed.get("int8") or {}).get("humaneval") or {}
    by_precision = he.get("pass_at_1") or {}
    fp32, int8 = (by_precision.get(p, {}).get("engine") for p in ("fp32", "int8"))
    if fp32 is None or int8 is None:
        return []
    return [f"Precision: the engine's HumanEval pass@1 is {fp32:.4f} through the fp32 graphs and {int8:.4f} "
            f"through the int8 graphs a CPU serves by default ({int8 - fp32:+.4f}; files: "
            f"{', '.join(he.get('files', []))}).", ""]


def render(model_dir: Path, results: Path = RESULTS) -> str:
    config = json.loads((model_dir / "config.json").read_text())
    meta = read_metadata(model_dir / "model.safetensors")
    manifest = _load(model_dir / "corpus_manifest.json")
    lines = [
        "# Quicksilver default model",
        "",
        "A small masked-diffusion code infiller, trained from scratch on one 2-core CPU: autoregressive "
        "fill-in-the-middle pre-training, then adaptation to masked-diffusion infilling (causal context, "
        "bidirectional span, logits shifted by one). Served by ONNX Runtime: on a CPU from the int8 graphs "
        "(`*.int8.onnx`, `weights.int8.onnx.data`), on a GPU (or with `--backend cpu-fp32`) from the fp32 "
        "`encoder.onnx` + `denoiser.onnx` (shared `weights.onnx.data`); `model.safetensors` holds the same "
        "weights for training and the PyTorch backend. This card is generated by `python -m benchmarks.model_card`.",
        "",
        "Files: `config.json`, `tokenizer.json`, `model.safetensors`, `encoder.onnx`, `denoiser.onnx`, "
        "`weights.onnx.data`, int8 variants (`*.int8.onnx`, `weights.int8.onnx.data`), `decoder_step.onnx` "
        "and `decoder_shared.onnx` (the autoregressive step, for the speed baseline; the second writes "
        "the cache in place), `extender.onnx` (the encoder continued from a cache, "
        "for reuse between keystrokes), `stage1_ar.safetensors` (the stage-1 checkpoint in "
        "bfloat16: the autoregressive baseline, and where stage 1 resumes), `corpus_manifest.json`.",
        "",
    ]
    lines += training_section(meta, config)
    lines += corpus_section(manifest)
    lines += scores_section(_load(results / "infill.json"), _load(results / "speed.json"))
    lines += ["## Limits", "",
              "Trained for a few CPU-hours: far below useful quality for most code. Training goes on across "
              "sessions; the learning curve is in `benchmarks/results/learning_curve.json`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("models/default"))
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    (args.model / "README.md").write_text(render(args.model, args.results))


if __name__ == "__main__":
    main()
