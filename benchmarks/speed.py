"""`python -m benchmarks.speed`: how fast the bundled model serves, and against what.

On ONNX Runtime (CPU, the serving backend), for contexts of 128/512/2048 tokens cut
from real code and spans of 8/16/32/64 tokens:
- context-encode latency, one denoising step, one autoregressive decode step;
- tokens per second of the diffusion sampler at the engine's default number of
  steps (what its latency budget buys at that context) against greedy
  autoregressive decoding with a KV cache by the same network (`decoder_step.onnx`:
  same layers, width, vocabulary and weights, same runtime, threads and precision), both
  producing the same number of tokens after the same context encode;
- completion latency p50/p95 through `completion.engine` at its default budget on
  real cursor positions in this repository's code;
- ONNX Runtime against PyTorch eager on the same shapes; the int8 graphs against fp32;
- achieved GFLOP/s of each call against a dense matrix multiply (numpy and ORT)
  measured in the same run.
Results: benchmarks/results/speed.json and speed.png. Progress goes to stderr.
The machine may be shared (a training job): the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks import speed_measure as m
from benchmarks.speed_measure import SHARED_BUSY, keystroke_keep, progress
from benchmarks.speed_runtimes import int8_quality, int8_vs_fp32, ort_vs_torch
from benchmarks.speed_threads import thread_counts

RESULTS = Path(__file__).resolve().parent / "results"
HEADLINE_CONTEXT = 512  # the smallest measured context holding the engine's windows (192 + 128 tokens + 3 markers)
K_SWEEP = (1, 2, 4, 8, 16, 32)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=m.REPO / "models" / "default", help="model directory")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: ONNX Runtime's)")
    p.add_argument("--contexts", default="128,512,2048", help="context lengths (tokens)")
    p.add_argument("--spans", default="8,16,32,64", help="span lengths (tokens)")
    p.add_argument("--requests", type=int, default=40, help="completion requests through the engine")
    p.add_argument("--typing-places", type=int, default=6, help="places in real files where 12 characters are typed")
    p.add_argument("--headline-contexts", type=int, default=5,
                   help="contexts the headline ratio (span 32) is the median over")
    p.add_argument("--reps", type=int, default=15, help="repetitions per timing (fewer at long contexts)")
    p.add_argument("--skip-torch", action="store_true", help="no PyTorch eager comparison")
    p.add_argument("--skip-int8", action="store_true", help="no int8 comparison")
    p.add_argument("--int8-quality", type=Path, nargs=2, metavar=("FP32_JSON", "INT8_JSON"),
                   help="results of `python -m benchmarks.infill` on --backend cpu-fp32 and cpu-int8, to record "
                        "the HumanEval pass@1 change of the int8 graphs beside their speed")
    p.add_argument("--out", type=Path, default=RESULTS / "speed.json", help="results JSON (PNG beside it)")
    args = p.parse_args(argv)
    args.contexts = [int(x) for x in args.contexts.split(",")]
    args.spans = [int(x) for x in args.spans.split(",")]
    return args


def _reps(args: argparse.Namespace, T: int) -> int:
    return max(2, args.reps if T <= 512 else args.reps // 2)


def layer_costs(backend, decoder, contexts: dict[int, np.ndarray], spans: list[int], args) -> dict:
    """Per context: encode latency, one step per span length, one AR step; GFLOP/s of each."""
    from benchmarks.speed_measure import ar_step_flops, encode_flops, step_flops

    info, out = backend.info, {}
    for T, ids in contexts.items():
        progress(f"layer costs at context {T}")
        state = backend.encode_context(ids)
        enc = m.interleaved({"encode": lambda ids=ids: backend.encode_context(ids)}, max(2, _reps(args, T) // 2))
        fns = {f"step_{S}": (lambda S=S, st=state: backend.denoise_span(np.zeros((1, S), np.int64), st))
               for S in spans}
        fns["ar_step"] = lambda st=state: decoder.step(17, st.kv)
        t = m.interleaved(fns, _reps(args, T))
        row = {"encode_ms": enc["encode"], "ar_step_ms": t["ar_step"],
               "step_ms": {S: t[f"step_{S}"] for S in spans},
               "gflops": {"encode": round(encode_flops(info, T) / enc["encode"]["p50"] / 1e6, 2),
                          "ar_step": round(ar_step_flops(info, T) / t["ar_step"]["p50"] / 1e6, 2),
                          **{f"step_{S}": round(step_flops(info, S, T) / t[f"step_{S}"]["p50"] / 1e6, 2)
                             for S in spans}}}
        out[T] = row
    return out


def _decode_fns(engine, backend, decoder, state, S: int, steps) -> dict:
    """The decodes compared: the sampler making S tokens in each of `steps` step counts (`diffusion_K`,
    at the engine's threshold) and S greedy AR tokens (`ar`), all over the same encoded context."""
    from completion.sampler import denoise_rows

    threshold = engine.settings.min_confidence
    fns = {f"diffusion_{K}": (lambda K=K: denoise_rows(backend, state, [S], K, engine.ids, threshold)) for K in steps}
    fns["ar"] = lambda: decoder.generate(state, S, forbidden=engine.ids.forbidden)
    return fns


def _decode_vs_ar(engine, backend, decoder, state, S: int, K: int, reps: int) -> dict[str, dict]:
    """Side-by-side timings of the sampler's K-step decode of S tokens and S greedy AR tokens."""
    t = m.interleaved(_decode_fns(engine, backend, decoder, state, S, [K]), reps)
    return {"diffusion": t[f"diffusion_{K}"], "ar": t["ar"]}


def diffusion_vs_ar(engine, backend, decoder, contexts, costs_table, spans, args) -> dict:
    """Wall-clock decode of S tokens after the same encode: the sampler at the engine's
    planned steps (its threshold may finish earlier) against S greedy AR tokens (the first
    from the encoder's logits, then S-1 decode steps; no early stop, so both make S tokens)."""
    from completion.sampler import denoise_rows

    threshold = engine.settings.min_confidence
    # The default steps, not what the latency budget leaves of them: on a slow CPU a 512-token encode
    # can use the whole budget, and one step for 32 tokens would be a speedup bought with quality.
    unbudgeted = engine.with_settings(latency_budget_ms=0.0)
    out = {}
    for T, ids in contexts.items():
        state = backend.encode_context(ids)
        enc_ms = costs_table[T]["encode_ms"]["p50"]
        for S in spans:
            K = unbudgeted.plan_steps(S, T, enc_ms)[0]
            within_budget = engine.plan_steps(S, T, enc_ms)[0]
            taken = denoise_rows(backend, state, [S], K, engine.ids, threshold).steps
            progress(f"diffusion vs AR: context {T}, span {S}, engine's default steps {K} (took {taken}; "
                     f"the latency budget alone would allow {within_budget})")
            t = _decode_vs_ar(engine, backend, decoder, state, S, K,
                              _reps(args, T) if T <= HEADLINE_CONTEXT else max(2, _reps(args, T) // 2))
            d, a = t["diffusion"]["p50"], t["ar"]["p50"]
            out[f"{T}/{S}"] = {
                "context": T, "span": S, "steps_planned": K, "steps_taken": taken,
                "steps_within_latency_budget": within_budget, "diffusion_ms": t["diffusion"],
                "ar_ms": t["ar"], "diffusion_tokens_per_s": round(S / d * 1000, 1),
                "ar_tokens_per_s": round(S / a * 1000, 1), "speedup": round(a / d, 3),
                "speedup_with_encode": round((enc_ms + a) / (enc_ms + d), 3)}
    return out


def headline_contexts(engine, backend, decoder, tok, T: int, K: int, n: int, reps: int, S: int = 32) -> dict:
    """The headline ratio over n contexts cut at different places (seeds T, 1, 2, ...): how many
    tokens clear the threshold early depends on the code around the hole, so one cut is a thin sample."""
    from completion.sampler import denoise_rows

    rows = []
    for seed in [T, *range(1, n)]:
        state = backend.encode_context(m.real_context(tok, T, seed=seed))
        taken = denoise_rows(backend, state, [S], K, engine.ids, engine.settings.min_confidence).steps
        t = _decode_vs_ar(engine, backend, decoder, state, S, K, reps)
        rows.append({"seed": seed, "steps_taken": taken, "diffusion_ms_p50": t["diffusion"]["p50"],
                     "ar_ms_p50": t["ar"]["p50"], "speedup": round(t["ar"]["p50"] / t["diffusion"]["p50"], 3)})
    ratios = [r["speedup"] for r in rows]
    progress(f"diffusion vs AR over {n} contexts of {T} tokens, span {S}: {', '.join(map(str, ratios))}")
    return {"context": T, "span": S, "steps_planned": K, "contexts": rows,
            "speedup_median": round(float(np.median(ratios)), 3), "speedup_min": min(ratios),
            "speedup_max": max(ratios)}


def context_reuse(backend, contexts: dict[int, np.ndarray], reps: int) -> dict:
    """A keystroke at the end of the prefix: the context encoded again in full, against continuing
    the cache of everything before it (the suffix, a quarter of the context, is recomputed too)."""
    from runtime.base import extends

    if not extends(backend):
        return {}
    out = {}
    for T, ids in contexts.items():
        keep = keystroke_keep(T)
        state = backend.encode_context(ids)
        t = m.interleaved({"full": lambda ids=ids: backend.encode_context(ids),
                           "extend": lambda ids=ids, st=state, k=keep: backend.extend_context(ids[:, k:], st, k)},
                          max(2, reps if T <= HEADLINE_CONTEXT else reps // 3))
        out[T] = {"context": T, "recomputed_tokens": T - keep, "full_ms": t["full"], "extend_ms": t["extend"],
                  "speedup": round(t["full"]["p50"] / t["extend"]["p50"], 3)}
        progress(f"context reuse at {T}: full {t['full']['p50']:.1f} ms, extend {T - keep} tokens "
                 f"{t['extend']['p50']:.1f} ms")
    return out


def typing_latency(engine, places: list[list[tuple[str, int, int]]]) -> dict:
    """The engine answering every keystroke of typing real lines (typed-ahead cache off, so each
    goes to the model), with context reuse and with every context encoded from scratch."""
    from completion.api import CompletionRequest
    from completion.context_reuse import ContextReuse

    out = {}
    for label, reuse in (("reuse", ContextReuse()), ("no_reuse", ContextReuse(min_keep=10**9))):
        view = engine.with_settings()
        view.contexts = reuse
        lat, reused = [], []
        progress(f"typing {sum(map(len, places))} keystrokes, context {label.replace('_', ' ')}")
        for p, keystrokes in enumerate(places):
            for text, line, col in keystrokes:
                view.cache.clear()
                c = view.complete(CompletionRequest(text=text, line=line, column=col, language="python",
                                                    document_id=f"typing-{p}"))
                lat.append(c.latency_ms)
                reused.append(c.reused_tokens)
        out[label] = {"latency_ms": m.stats(lat), "reused_tokens_mean": round(float(np.mean(reused)), 1),
                      "contexts_extended": reuse.stats.extended, "n": len(lat)}
    out["p50_speedup"] = round(out["no_reuse"]["latency_ms"]["p50"] / out["reuse"]["latency_ms"]["p50"], 3)
    return out


def logit_rows_cost(backend, ids: np.ndarray, S: int, reps: int) -> dict:
    """One S-token step with logits at every position against only at some, as the sampler asks
    (the outputs that predict still-masked tokens: all of them at the first step, fewer after)."""
    state = backend.encode_context(ids)
    span = np.zeros((1, S), np.int64)
    counts = sorted({S, S // 2, S // 4, 1}, reverse=True)
    t = m.interleaved({f"rows_{R}": (lambda R=R: backend.denoise_span(span, state, np.arange(R)[None]))
                       for R in counts}, reps)
    full = t[f"rows_{S}"]["p50"]
    return {"context": ids.shape[1], "span": S, "step_ms": t,
            "speedup_vs_all_rows": {k: round(full / v["p50"], 3) for k, v in t.items()}}


def steps_sweep(engine, backend, decoder, ids: np.ndarray, reps: int, S: int = 32) -> dict:
    """Speedup at other step counts, measured: the sampler's decode of S tokens in K steps (the
    engine's threshold still commits early) against S greedy AR tokens, all side by side.
    Per-call step costs would overstate it: they leave out the sampler's own work per step."""
    state = backend.encode_context(ids)
    t = m.interleaved(_decode_fns(engine, backend, decoder, state, S, [K for K in K_SWEEP if K <= S]),
                      max(3, reps // 3))
    ar = t["ar"]["p50"]
    return {"context": int(ids.shape[1]), "span": S, "ar_ms_p50": ar,
            "diffusion_ms_p50": {K: t[f"diffusion_{K}"]["p50"] for K in K_SWEEP if K <= S},
            "speedup": {K: round(ar / t[f"diffusion_{K}"]["p50"], 3) for K in K_SWEEP if K <= S}}


def engine_latency(engine, requests: list, label: str) -> dict:
    """engine.complete on real cursor positions at the default settings (single-line completions)."""
    from completion.api import CompletionRequest

    progress(f"{label}: {len(requests)} completions through completion.engine")
    lat, steps, nonempty = [], [], 0
    for text, line, col in requests:
        c = engine.complete(CompletionRequest(text=text, line=line, column=col, language="python"))
        lat.append(c.latency_ms)
        steps.append(c.steps)
        nonempty += bool(c.text)
    return {"latency_ms": m.stats(lat), "steps_mean": round(float(np.mean(steps)), 2), "nonempty": nonempty,
            "n": len(requests), "budget_ms": engine.settings.latency_budget_ms, "max_lines": engine.settings.max_lines}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from completion.api import CompletionSettings
    from completion.engine import CompletionEngine, load_engine
    from runtime.ar_decoder import OnnxStepDecoder
    from runtime.costs import StepCostModel
    from runtime.loader import LoadedModel
    from runtime.onnx_backend import OnnxBackend

    t_start = time.perf_counter()
    load_start = os.getloadavg()
    busy_start = m.cpu_busy()
    progress(f"loading {args.model} (cores busy before the start: {busy_start}, load average {load_start[0]:.2f})")
    engine = load_engine(str(args.model), backend="cpu", threads=args.threads)
    backend, tok = engine.model.backend, engine.model.tokenizer
    # The autoregressive baseline runs on the same backend at the same precision as the sampler.
    precision = getattr(backend, "precision", "fp32")
    decoder = OnnxStepDecoder(args.model, threads=args.threads, precision=precision)
    fp32, decoder32 = ((backend, decoder) if precision == "fp32" else
                       (OnnxBackend(args.model, args.threads), OnnxStepDecoder(args.model, threads=args.threads)))
    contexts = {T: m.real_context(tok, T, seed=T) for T in args.contexts}
    requests = m.completion_requests(args.requests)

    results: dict = {"backend": backend.name, "model": str(args.model), "info": vars(backend.info),
                     "engine_settings": {"latency_budget_ms": engine.settings.latency_budget_ms,
                                         "min_confidence": engine.settings.min_confidence,
                                         "max_lines": engine.settings.max_lines},
                     "warm_up_costs": engine.costs.summary()}
    results["matmul_reference"] = m.matmul_reference(threads=args.threads)
    costs = layer_costs(backend, decoder, contexts, args.spans, args)
    results["layer_costs"] = costs
    # Completions first: the engine's step-cost estimates are then those of a server that has
    # been answering requests, not only of its start-up warm-up, when it plans the steps below.
    results["completion"] = engine_latency(engine, requests, precision)
    results["engine_costs_after_requests"] = engine.costs.summary()
    results["context_reuse"] = context_reuse(backend, contexts, args.reps)
    results["typing"] = typing_latency(engine, m.typing_requests(args.typing_places, 12))
    results["diffusion_vs_ar"] = diffusion_vs_ar(engine, backend, decoder, contexts, costs, args.spans, args)
    Tk = HEADLINE_CONTEXT if HEADLINE_CONTEXT in costs else args.contexts[0]
    results["steps_sweep_span32"] = steps_sweep(engine, backend, decoder, contexts[Tk], args.reps) \
        if 32 in args.spans else {}
    results["logit_rows_span32"] = logit_rows_cost(backend, contexts[Tk], 32, args.reps)

    K = engine.with_settings(latency_budget_ms=0.0).plan_steps(32, Tk, costs[Tk]["encode_ms"]["p50"])[0]
    if 32 in args.spans and args.headline_contexts > 1:
        results["diffusion_vs_ar_span32_contexts"] = headline_contexts(engine, backend, decoder, tok, Tk, K,
                                                                       args.headline_contexts, args.reps)
    if 32 in args.spans:
        results["thread_counts_span32"] = thread_counts(args.model, contexts[Tk], K, precision, engine.ids,
                                                        reps=args.reps, threshold=engine.settings.min_confidence)
    if not args.skip_torch:
        results["ort_vs_torch"] = ort_vs_torch(args.model, backend, decoder, contexts[Tk], K, reps=args.reps,
                                               fp32=(fp32, decoder32))
    if not args.skip_int8 and (args.model / "encoder.int8.onnx").is_file():
        int8, b8 = int8_vs_fp32(args.model, fp32, decoder32, contexts[Tk], args.threads)
        costs8 = StepCostModel()
        costs8.warm_up(b8, batches=(1, 3))
        engine8 = CompletionEngine(LoadedModel(tok, b8, b8.info, args.model), CompletionSettings(), costs8)
        int8["completion"] = engine_latency(engine8, requests, "int8")
        results["int8"] = int8
    if args.int8_quality:
        results.setdefault("int8", {})["humaneval"] = int8_quality(*args.int8_quality)

    head = results["diffusion_vs_ar"].get(f"{Tk}/32", {})
    several = results.get("diffusion_vs_ar_span32_contexts", {})
    results.update({
        "diffusion_vs_ar_speedup_span32": several.get("speedup_median", head.get("speedup")),
        "diffusion_vs_ar_speedup_span32_one_context": head.get("speedup"),
        "diffusion_vs_ar_speedup_span32_with_encode": head.get("speedup_with_encode"),
        "diffusion_vs_ar_context": Tk,
        "diffusion_vs_ar_speedup_span32_best_threads": results.get("thread_counts_span32", {}).get(
            "speedup_best_vs_best"),
        "ort_vs_torch_speedup": results.get("ort_vs_torch", {}).get("speedup", {}).get("completion"),
        "ort_vs_torch_speedup_typing": results.get("ort_vs_torch", {}).get("speedup", {}).get("completion_typing"),
        "ort_vs_torch_speedup_fp32": results.get("ort_vs_torch", {}).get("speedup_fp32", {}).get("completion"),
        "ort_vs_torch_int8_speedup": results.get("ort_vs_torch", {}).get("speedup_vs_torch_int8", {}).get(
            "completion"),
        "single_line_latency_p50_ms": results["completion"]["latency_ms"]["p50"],
        "single_line_latency_p95_ms": results["completion"]["latency_ms"]["p95"],
        "typing_latency_p50_ms": results["typing"]["reuse"]["latency_ms"]["p50"],
        "typing_latency_p50_ms_without_reuse": results["typing"]["no_reuse"]["latency_ms"]["p50"],
    })
    load_end = os.getloadavg()
    shared = busy_start > SHARED_BUSY if busy_start is not None else load_start[0] > 1.0
    results["machine"] = {
        "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
        "cores_busy_before_start": busy_start,
        "load_average_start": [round(x, 2) for x in load_start], "load_average_end": [round(x, 2) for x in load_end],
        "shared": shared,
        "note": ("other work was using the cores when this run started; " if shared else "")
        + "timings are medians of interleaved repetitions; comparisons were measured side by side, round-robin"}
    results["notes"] = (
        "Contexts are real code around a real hole (speed_measure.HOLE_TOKENS tokens taken out). "
        "diffusion_vs_ar_speedup_span32: wall-clock decode of 32 tokens after the same context encode, at the "
        "context where the engine's windows land (diffusion_vs_ar_context), the median over contexts cut at "
        "several places (diffusion_vs_ar_span32_contexts; _one_context: the diffusion_vs_ar table's cut), "
        "the sampler at the engine's default "
        "steps, max(min_steps, ceil(span / tokens_per_step)) (steps_planned), vs S-1 greedy KV-cached decode steps; "
        "_with_encode adds the shared encode to both. A server plans fewer steps when its latency budget does not "
        "buy them (steps_within_latency_budget: what the budget allows on this machine); the ratio is not taken "
        "there, since fewer steps buy speed with quality. steps_sweep_span32 gives the ratio at other step counts, "
        "measured the same way at the one-context cut (the sampler asks for logits only where tokens are still "
        "masked, logit_rows_span32). "
        "_best_threads: the same decode with each side at its own fastest intra-op thread count "
        "(thread_counts_span32; the server's threads sleep between ops, which costs the one-token AR step most). "
        "ort_vs_torch_speedup: encode + steps_planned denoising steps, PyTorch eager at its faster thread count, "
        "ONNX Runtime as the server runs it (backend: the int8 graphs on the CPU); "
        "_typing: the context continued after a keystroke instead of encoded (both runtimes); "
        "_fp32: ONNX Runtime with every graph in fp32, PyTorch's precision; ort_vs_torch.speedup_vs_torch_int8: "
        "the served int8 graphs against PyTorch eager with its own dynamic int8 quantization (2 threads). "
        "typing: every keystroke of typing 12 characters at real places goes to the model (typed-ahead cache "
        "cleared), with the last context's cache continued (context_reuse) or every context encoded in full.")
    results["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["seconds"] = round(time.perf_counter() - t_start, 1)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    from benchmarks.speed_plot import plot_speed

    plot_speed(results, args.out.with_suffix(".png"))
    progress(f"wrote {args.out} and {args.out.with_suffix('.png')} in {results['seconds']:.0f}s")
    print(json.dumps({k: results[k] for k in ("diffusion_vs_ar_speedup_span32", "ort_vs_torch_speedup",
                                              "single_line_latency_p50_ms")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
