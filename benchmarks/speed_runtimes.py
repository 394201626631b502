"""ONNX Runtime against PyTorch eager, and the int8 graphs against fp32, for `python -m benchmarks.speed`.

Each comparison times every call of both sides round-robin in one loop
(`speed_measure.interleaved`), so load from a neighbour lands on both alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks import speed_measure as m
from benchmarks.speed_measure import keystroke_keep, progress


def ort_vs_torch(model_dir: Path, backend, decoder, ids: np.ndarray, K: int, S: int = 32, reps: int = 15,
                 fp32: tuple | None = None) -> dict:
    """Same shapes in PyTorch eager (inference mode) at 1 and 2 threads, the faster compared.
    Every call of both runtimes goes round-robin in one loop, so a noisy neighbour or a
    frequency change lands on both alike instead of on whichever ran second. `backend` is
    what the server runs; `fp32` (backend, decoder), if another, the same runtime at PyTorch's precision."""
    import torch

    from runtime.base import extends
    from runtime.torch_backend import TorchBackend

    tb = TorchBackend(model_dir / "model.safetensors")
    T = ids.shape[1]
    so, st = backend.encode_context(ids), tb.encode_context(ids)
    span = np.zeros((1, S), np.int64)
    tok = torch.tensor([[17]])

    def on_torch(threads: int, fn):
        def run():
            torch.set_num_threads(threads)
            with torch.inference_mode():
                return fn()
        return run

    keep = keystroke_keep(T)
    fns = {"onnxruntime/encode": lambda: backend.encode_context(ids),
           "onnxruntime/step": lambda: backend.denoise_span(span, so),
           "onnxruntime/ar_step": lambda: decoder.step(17, so.kv)}
    if extends(backend):
        fns["onnxruntime/extend"] = lambda: backend.extend_context(ids[:, keep:], so, keep)
    if fp32 is not None and fp32[0] is not backend:
        b32, d32 = fp32
        s32 = b32.encode_context(ids)
        fns.update({"onnxruntime_fp32/encode": lambda: b32.encode_context(ids),
                    "onnxruntime_fp32/step": lambda: b32.denoise_span(span, s32),
                    "onnxruntime_fp32/ar_step": lambda: d32.step(17, s32.kv)})
        if extends(b32):
            fns["onnxruntime_fp32/extend"] = lambda: b32.extend_context(ids[:, keep:], s32, keep)
    if getattr(backend, "precision", "fp32") == "int8":  # PyTorch at the served precision too
        fns.update(_torch_int8_calls(model_dir, ids, span, tok, keep, extends(backend), on_torch))
    for threads in (1, 2):
        fns[f"{threads}/encode"] = on_torch(threads, lambda: tb.encode_context(ids))
        fns[f"{threads}/step"] = on_torch(threads, lambda: tb.denoise_span(span, st))
        fns[f"{threads}/ar_step"] = on_torch(threads, lambda: tb.model.decode_step(tok, st.kv))
        if extends(backend):
            fns[f"{threads}/extend"] = on_torch(threads, lambda: tb.extend_context(ids[:, keep:], st, keep))
    progress(f"ONNX Runtime and PyTorch eager (1 and 2 threads) round-robin, context {T}, {reps} reps")
    t = m.interleaved(fns, reps)
    ops = [op for op in ("encode", "step", "ar_step", "extend") if f"onnxruntime/{op}" in t]
    ort_t = {op: t[f"onnxruntime/{op}"] for op in ops}
    out: dict = {"context": T, "span": S, "steps": K, "reps": reps, "extend_recomputes": T - keep,
                 "onnxruntime": ort_t, "torch": {n: {op: t[f"{n}/{op}"] for op in ops} for n in (1, 2)}}

    def completion_ms(r, first: str = "encode"):
        return r[first]["p50"] + K * r["step"]["p50"]

    best = min(out["torch"], key=lambda n: completion_ms(out["torch"][n]))
    out["torch_threads_compared"] = best
    out["speedup"] = {op: round(out["torch"][best][op]["p50"] / ort_t[op]["p50"], 3) for op in ort_t}
    out["speedup"]["completion"] = round(completion_ms(out["torch"][best]) / completion_ms(ort_t), 3)
    if "extend" in ort_t:  # a completion while typing: the context continued, then the same steps
        out["speedup"]["completion_typing"] = round(
            completion_ms(out["torch"][best], "extend") / completion_ms(ort_t, "extend"), 3)
    torch8 = {op: t[f"torch_int8/{op}"] for op in ops if f"torch_int8/{op}" in t}
    if torch8:  # the same threads as the PyTorch fp32 row compared
        out["torch_int8"] = torch8
        out["speedup_vs_torch_int8"] = {op: round(torch8[op]["p50"] / ort_t[op]["p50"], 3) for op in torch8}
        out["speedup_vs_torch_int8"]["completion"] = round(completion_ms(torch8) / completion_ms(ort_t), 3)
    fp32_t = {op: t[f"onnxruntime_fp32/{op}"] for op in ops if f"onnxruntime_fp32/{op}" in t}
    if fp32_t:
        out["onnxruntime_precision"] = getattr(backend, "precision", "fp32")
        out["onnxruntime_fp32"] = fp32_t
        tb_best = out["torch"][best]
        out["speedup_fp32"] = {op: round(tb_best[op]["p50"] / fp32_t[op]["p50"], 3) for op in fp32_t}
        out["speedup_fp32"]["completion"] = round(completion_ms(tb_best) / completion_ms(fp32_t), 3)
        if "extend" in fp32_t:
            out["speedup_fp32"]["completion_typing"] = round(
                completion_ms(tb_best, "extend") / completion_ms(fp32_t, "extend"), 3)
    return out


def _torch_int8_calls(model_dir: Path, ids: np.ndarray, span: np.ndarray, tok, keep: int, extend: bool,
                      on_torch) -> dict:
    """PyTorch eager with its own dynamic int8 quantization of every nn.Linear (qkv, projection,
    MLP; the tied output projection stays fp32), at 2 threads: the int8 comparison at equal precision.
    torch.ao.quantization is deprecated for torchao (not a dependency here) but still ships: its
    warnings are silenced."""
    import warnings

    import torch

    from runtime.torch_backend import TorchBackend

    t8 = TorchBackend(model_dir / "model.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        t8.model = quantize_dynamic(t8.model, {torch.nn.Linear}, dtype=torch.qint8)
    s8 = on_torch(2, lambda: t8.encode_context(ids))()
    fns = {"torch_int8/encode": on_torch(2, lambda: t8.encode_context(ids)),
           "torch_int8/step": on_torch(2, lambda: t8.denoise_span(span, s8)),
           "torch_int8/ar_step": on_torch(2, lambda: t8.model.decode_step(tok, s8.kv))}
    if extend:
        fns["torch_int8/extend"] = on_torch(2, lambda: t8.extend_context(ids[:, keep:], s8, keep))
    return fns


def int8_vs_fp32(model_dir: Path, backend, decoder, ids: np.ndarray, threads, S: int = 32) -> tuple[dict, object]:
    """The int8 graphs against fp32 on the same calls; returns (results, the int8 backend)."""
    from runtime.ar_decoder import OnnxStepDecoder
    from runtime.onnx_backend import OnnxBackend

    b8 = OnnxBackend(model_dir, threads=threads, precision="int8")
    d8 = OnnxStepDecoder(model_dir, threads, precision="int8")
    s32, s8 = backend.encode_context(ids), b8.encode_context(ids)
    span = np.zeros((1, S), np.int64)
    progress(f"int8 vs fp32 at context {ids.shape[1]}")
    t = m.interleaved({"fp32_encode": lambda: backend.encode_context(ids),
                       "int8_encode": lambda: b8.encode_context(ids),
                       "fp32_step": lambda: backend.denoise_span(span, s32),
                       "int8_step": lambda: b8.denoise_span(span, s8),
                       "fp32_ar_step": lambda: decoder.step(17, s32.kv),
                       "int8_ar_step": lambda: d8.step(17, s8.kv)}, 7)
    gain = {op: round(t[f"fp32_{op}"]["p50"] / t[f"int8_{op}"]["p50"], 3) for op in ("encode", "step", "ar_step")}
    diff = float(np.abs(backend.denoise_span(span, s32) - b8.denoise_span(span, s8)).max())
    return {"context": ids.shape[1], "span": S, "timings": t, "speedup": gain, "max_abs_logit_diff": round(diff, 4)}, b8


def int8_quality(fp32_json: Path, int8_json: Path) -> dict:
    """pass@1 per method of two benchmarks.infill runs (fp32, int8) and the int8 - fp32 change."""
    runs = {name: json.loads(Path(path).read_text()) for name, path in (("fp32", fp32_json), ("int8", int8_json))}
    methods = {name: {m: v.get("pass_at_1") for m, v in r["humaneval"]["methods"].items()} for name, r in runs.items()}
    change = {m: round(methods["int8"][m] - p, 4) for m, p in methods["fp32"].items()
              if p is not None and methods["int8"].get(m) is not None}
    return {"tasks": runs["fp32"]["humaneval"].get("n_tasks"), "backends": {k: r["model"]["backend"] for k, r in
                                                                           runs.items()},
            "commands": {k: " ".join(r.get("command", [])) for k, r in runs.items()}, "pass_at_1": methods,
            "change": change, "files": [str(fp32_json), str(int8_json)]}
