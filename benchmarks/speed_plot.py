"""The PNG of `python -m benchmarks.speed` (matplotlib, Agg): six panels from speed.json."""

from __future__ import annotations

from pathlib import Path

DIFF, AR, TORCH, INT8 = "#4a78b0", "#c05050", "#888888", "#60a060"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _key(d: dict, k):
    """JSON turns int keys into strings; accept both."""
    return d[k] if k in d else d[str(k)]


def _context_ticks(ax, contexts: list[int]) -> None:
    ax.set_xticks(contexts, [str(c) for c in contexts])
    ax.minorticks_off()


def plot_speed(results: dict, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    costs = {int(k): v for k, v in results["layer_costs"].items()}
    contexts = sorted(costs)
    spans = sorted(int(s) for s in next(iter(costs.values()))["step_ms"])

    ax = axes[0, 0]
    for S in spans:
        ax.plot(contexts, [_key(costs[T]["step_ms"], S)["p50"] for T in contexts], "o-",
                label=f"denoise step, {S} tokens")
    ax.plot(contexts, [costs[T]["ar_step_ms"]["p50"] for T in contexts], "s--", color=AR, label="AR step, 1 token")
    ax.plot(contexts, [costs[T]["encode_ms"]["p50"] for T in contexts], "^:", color="black", label="context encode")
    ax.set(xscale="log", yscale="log", xlabel="context tokens", ylabel="ms (p50)", title="Latency per call")
    _context_ticks(ax, contexts)
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    dva = results["diffusion_vs_ar"]
    T = results["diffusion_vs_ar_context"]
    rows = [dva[f"{T}/{S}"] for S in spans if f"{T}/{S}" in dva]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["diffusion_tokens_per_s"] for r in rows], 0.4, color=DIFF,
           label="diffusion sampler")
    ax.bar([i + 0.2 for i in x], [r["ar_tokens_per_s"] for r in rows], 0.4, color=AR, label="autoregressive, KV cache")
    for i, r in enumerate(rows):
        ax.text(i, max(r["diffusion_tokens_per_s"], r["ar_tokens_per_s"]),
                f"{r['speedup']:.1f}x\n{r['steps_planned']} steps", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), [str(r["span"]) for r in rows])
    ax.set_ylim(0, 1.25 * max(max(r["diffusion_tokens_per_s"], r["ar_tokens_per_s"]) for r in rows))
    ax.set(xlabel="span tokens", ylabel="tokens/s (decode, p50)",
           title=f"Diffusion (engine's default steps) vs AR, context {T}")
    ax.legend(fontsize=8)

    ax = axes[0, 2]
    for S in spans:
        pts = [(int(k.split("/")[0]), v["speedup"]) for k, v in dva.items() if v["span"] == S]
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"span {S}")
    ax.axhline(3.0, color="black", lw=0.8, ls=":", label="goal 3x")
    ax.axhline(1.0, color=TORCH, lw=0.8)
    ax.set(xscale="log", xlabel="context tokens", ylabel="AR time / diffusion time",
           title="Speedup at the engine's default steps")
    _context_ticks(ax, contexts)
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    sweep = results.get("steps_sweep_span32") or {}
    sweep = sweep.get("speedup", sweep)  # measured decodes; results before them kept {K: ratio}
    if sweep:
        ks = sorted(int(k) for k in sweep)
        ax.plot(ks, [_key(sweep, k) for k in ks], "o-", color=DIFF)
        head = dva.get(f"{T}/32")
        if head:
            ax.axvline(head["steps_planned"], color=DIFF, ls=":",
                       label=f"engine default: {head['steps_planned']} steps")
        ax.axhline(3.0, color="black", lw=0.8, ls=":", label="goal 3x")
        ax.axhline(1.0, color=TORCH, lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="denoising steps for 32 tokens", ylabel="speedup over AR",
               title=f"Speed vs steps, span 32, context {T} (measured decodes)")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.legend(fontsize=8)

    ax = axes[1, 1]
    groups = []
    if "ort_vs_torch" in results:
        o = results["ort_vs_torch"]
        tb = _key(o["torch"], o["torch_threads_compared"])
        # served: ONNX Runtime as the server runs it; fp32: the same runtime at PyTorch's precision
        served_int8 = o.get("onnxruntime_precision") == "int8"
        fp32 = o.get("onnxruntime_fp32", {} if served_int8 else o["onnxruntime"])
        int8 = o["onnxruntime"] if served_int8 else {
            op[5:]: v for op, v in results.get("int8", {}).get("timings", {}).items() if op.startswith("int8_")}
        groups = [(op, o["onnxruntime"][op]["p50"], tb[op]["p50"])
                  for op in ("encode", "extend", "step", "ar_step") if op in o["onnxruntime"]]
        for i, (op, _, torch_ms) in enumerate(groups):
            ax.bar(i - 0.27, torch_ms, 0.27, color=TORCH, label="PyTorch eager" if i == 0 else None)
            if op in fp32:
                ax.bar(i, fp32[op]["p50"], 0.27, color=DIFF, label="ONNX Runtime fp32" if i == 0 else None)
            if op in int8:
                ax.bar(i + 0.27, int8[op]["p50"], 0.27, color=INT8,
                       label="ONNX Runtime int8" + (" (served)" if served_int8 else "") if i == 0 else None)
        ax.set_xticks(range(len(groups)), [f"{g[0]}\n{g[2] / g[1]:.1f}x torch" for g in groups], fontsize=8)
        ax.set_xlabel("served graphs' speedup over PyTorch eager under each group", fontsize=8)
        ax.set(yscale="log", ylabel="ms (p50)", title=f"Runtimes, context {o['context']}, span {o['span']}")
        ax.legend(fontsize=8)

    ax = axes[1, 2]
    comp = results["completion"]["latency_ms"]
    ref = results["matmul_reference"]
    g = costs[T]["gflops"]
    names = ["encode", "step_32" if "step_32" in g else f"step_{spans[-1]}", "ar_step"]
    vals = [g[n] for n in names] + [ref["onnxruntime"]["gflops_best"], ref["numpy"]["gflops_best"]]
    labels = names + [f"ORT matmul {ref['size']}", f"numpy matmul {ref['size']}"]
    ax.barh(range(len(vals)), vals, color=[DIFF, DIFF, AR, TORCH, TORCH])
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.1f}", va="center", fontsize=8)
    ax.set_yticks(range(len(vals)), labels, fontsize=8)
    typing = results.get("typing", {})
    typed = (f"\ntyping: p50 {typing['reuse']['latency_ms']['p50']:.0f} ms with context reuse, "
             f"{typing['no_reuse']['latency_ms']['p50']:.0f} ms without") if typing else ""
    ax.set(xlabel=f"GFLOP/s (p50); engine completions: p50 {comp['p50']:.0f} ms, p95 {comp['p95']:.0f} ms" + typed,
           title=f"Achieved compute, context {T}")

    mach = results["machine"]
    busy = mach.get("cores_busy_before_start")
    state = (f"{busy:.0%} of the cores busy before the start" if busy is not None
             else f"load average {mach['load_average_start'][0]:.1f} at start")
    shared = mach.get("shared", mach["load_average_start"][0] > 1.0)
    fig.suptitle(f"Quicksilver speed on {results['backend']} ({mach['cpus']} cores, {state}"
                 f"{': shared with other work' if shared else ''})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
