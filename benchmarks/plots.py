"""PNG plots of the infilling benchmark and of the learning curve (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

HOURS_LABEL = "CPU-hours (2 cores) = wall-clock training hours on this 2-core machine"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_infill(results: dict, path: Path) -> None:
    """Left: pass@1 per method (bars). Right: pass@1 against denoising steps."""
    plt = _pyplot()
    methods = results["humaneval"]["methods"]
    names = [n for n, m in methods.items() if m.get("pass_at_1") is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    colors = ["#888888" if n.startswith("baseline") else "#c05050" if n == "ar" else "#4a78b0" for n in names]
    vals = [methods[n]["pass_at_1"] for n in names]
    ci = [methods[n].get("ci95") for n in names]
    err = None if None in ci else [[v - lo for v, (lo, _) in zip(vals, ci, strict=True)],
                                   [hi - v for v, (_, hi) in zip(vals, ci, strict=True)]]
    ax1.bar(range(len(names)), vals, color=colors, yerr=err, capsize=3, ecolor="#333333")
    for i, v in enumerate(vals):
        ax1.text(i - 0.06, v, f"{v:.3f}", ha="right", va="bottom", fontsize=8)
    ax1.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax1.set_ylabel("pass@1")
    ax1.set_ylim(0, max(0.05, max((hi for _, hi in ci), default=0) * 1.1 if err else max(vals, default=0) * 1.2))
    n = results["humaneval"]["n_tasks"]
    ax1.set_title(f"HumanEval single-line infilling ({n} tasks)" + ("" if err is None else ", 95% intervals"))

    sweep = [(m["steps_setting"], m["pass_at_1"], m["forward_passes_mean"]) for m in methods.values()
             if m.get("steps_setting") and m.get("pass_at_1") is not None]
    sweep.sort()
    if sweep:
        ax2.plot([s for s, _, _ in sweep], [p for _, p, _ in sweep], "o-", color="#4a78b0", label="fixed steps")
    one = methods.get("one_per_step", {})
    if one.get("pass_at_1") is not None:
        ax2.plot([one["steps_mean"]], [one["pass_at_1"]], "D", color="#2a4a80",
                 label=f"one token per step ({one['steps_mean']:.1f} steps)")
    ar = methods.get("ar", {})
    if ar.get("pass_at_1") is not None:
        ax2.axhline(ar["pass_at_1"], color="#c05050", ls=":",
                    label=f"autoregressive ({ar['forward_passes_mean']:.1f} passes)")
    base = methods.get("baseline_pass", {})
    if base.get("pass_at_1") is not None:
        ax2.axhline(base["pass_at_1"], color="#888888", ls=":", label="`pass` baseline")
    ax2.set_xscale("log", base=2)
    ticks = sorted({s for s, _, _ in sweep} | ({round(one["steps_mean"])} if one.get("steps_mean") else set()))
    if ticks:
        ax2.set_xticks(ticks, [str(t) for t in ticks])
    span = results["humaneval"].get("default_span_len")
    ax2.set_xlabel("denoising steps" + (f" (span of {span:g} tokens)" if span else ""))
    ax2.set_ylabel("pass@1")
    ax2.set_ylim(0, max(0.05, ax2.get_ylim()[1]))
    ax2.set_title("pass@1 vs steps")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


GOAL_PASS_AT_1 = 0.10  # the bundled model's acceptance floor (issue 3)


def plot_curve(entries: list[dict], path: Path) -> None:
    """pass@1 and validation loss against training hours, one marker style per stage."""
    plt = _pyplot()
    fig, ax1 = plt.subplots(figsize=(8, 4.8))
    ax2 = ax1.twinx()
    for stage, marker in (("ar", "o"), ("diffusion", "s")):
        mine = [e for e in entries if e.get("stage") == stage]
        pts = sorted(((e["train_hours"], e) for e in mine if e.get("bundled") is not False), key=lambda p: p[0])
        off = [(e["train_hours"], e) for e in mine if e.get("bundled") is False]
        if pts:
            xs = [h for h, _ in pts]
            ax1.plot(xs, [e["pass_at_1"] for _, e in pts], marker + "-", color="#4a78b0", label=f"pass@1 ({stage})")
            vl = [(h, e["val_loss"]) for h, e in pts if e.get("val_loss") is not None]
            if vl:
                ax2.plot([h for h, _ in vl], [v for _, v in vl], marker + "--", color="#c05050",
                         label=f"val loss ({stage})")
        if off:  # measured, then not bundled (their `checkpoint` field says why): hollow, unconnected
            ax1.plot([h for h, _ in off], [e["pass_at_1"] for _, e in off], marker, mfc="none", color="#4a78b0",
                     label=f"pass@1 ({stage}, not bundled)")
            vl = [(h, e["val_loss"]) for h, e in off if e.get("val_loss") is not None]
            if vl:
                ax2.plot([h for h, _ in vl], [v for _, v in vl], marker, mfc="none", color="#c05050",
                         label=f"val loss ({stage}, not bundled)")
    ax1.axhline(GOAL_PASS_AT_1, color="#4a78b0", lw=0.8, ls=":", label=f"issue goal pass@1 {GOAL_PASS_AT_1}")
    ax1.set_xlim(left=0)
    ax1.set_ylim(0, max(0.05, GOAL_PASS_AT_1 * 1.15, ax1.get_ylim()[1]))
    ax1.set_xlabel(HOURS_LABEL)
    ax1.set_ylabel("HumanEval single-line pass@1", color="#4a78b0")
    ax2.set_ylabel("validation loss", color="#c05050")
    lines = ax1.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax1.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="best")
    ax1.set_title("Learning curve")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
