"""TensorRT optimization profiles for the four graphs, shared by the builder and the runtime.

TensorRT tunes kernels for a [min, opt, max] range of every dynamic dimension, so
one profile cannot be fast for a 1-token decode step and a 2,000-token context at
once. The profiles follow what the engine actually sends: span lengths up to each
bucket (8/16/32/64, tuned at the bucket, since the sampler pads to it), a small
batch, and two context ranges (typical completion contexts of a few hundred
tokens, and long ones). `python -m export tensorrt` builds with these, the
TensorRT backend picks among them per call, and the ONNX Runtime TensorRT
provider is given the same ranges as option strings so its engine cache matches.
Pure Python: importable without TensorRT.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.base import ModelInfo
from runtime.onnx_backend import cache_names

SPAN_BUCKETS = (8, 16, 32, 64)
CONTEXT_RANGES = ((1, 512, 1024), (1025, 2048, 8192))  # (min, opt, max) context tokens
MAX_TRT_BATCH = 4  # span rows per step: the sampler sends 1; a few for speculative variants
GRAPHS = ("encoder", "denoiser", "decoder_step", "extender")
EXTEND_OPT = 160  # tokens an extension typically computes: the edited tail of the prefix, then the suffix

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    """One optimization profile: input name -> (min, opt, max) shapes."""

    shapes: dict[str, tuple[Shape, Shape, Shape]]

    def accepts(self, shapes: dict[str, Shape]) -> bool:
        """Whether every given input shape lies inside this profile's ranges."""
        for name, shape in shapes.items():
            lo, _, hi = self.shapes[name]
            if len(shape) != len(lo) or any(not (a <= s <= b) for a, s, b in zip(lo, shape, hi, strict=True)):
                return False
        return True


def _cache(info: ModelInfo, lo: int, opt: int, hi: int) -> dict[str, tuple[Shape, Shape, Shape]]:
    """Ranges of the per-layer cache inputs (past_k_0, past_v_0, ...), each (1, nh, T, hs)."""
    shapes = tuple((1, info.n_head, t, info.head_dim) for t in (lo, opt, hi))
    return {name: shapes for name in cache_names(info.n_layer)}


def profiles(graph: str, info: ModelInfo) -> list[Profile]:
    """The optimization profiles of one graph, in the order they are added to the builder."""
    if graph == "encoder":
        return [Profile({"ids": ((1, lo), (1, opt), (1, hi))}) for lo, opt, hi in CONTEXT_RANGES]
    if graph == "denoiser":
        out = []
        prev = 0
        for span in SPAN_BUCKETS:
            for lo, opt, hi in CONTEXT_RANGES:
                out.append(Profile({"span_ids": ((1, prev + 1), (1, span), (MAX_TRT_BATCH, span)),
                                    **_cache(info, lo, opt, hi),
                                    # the positions whose logits a step needs: the masked ones
                                    "rows": ((1, 1), (1, span // 2), (MAX_TRT_BATCH, span))}))
            prev = span
        return out
    if graph == "decoder_step":
        return [Profile({"ids": ((1, 1), (1, 1), (1, 1)), **_cache(info, lo, opt, hi)})
                for lo, opt, hi in CONTEXT_RANGES]
    if graph == "extender":
        return [Profile({"ids": ((1, 1), (1, min(EXTEND_OPT, hi)), (1, hi)), **_cache(info, 1, opt, hi)})
                for _, opt, hi in CONTEXT_RANGES]
    raise ValueError(f"unknown graph {graph!r}; choose one of {', '.join(GRAPHS)}")


def pick_profile(candidates: list[Profile], shapes: dict[str, Shape]) -> int:
    """Index of the first profile accepting these shapes; ValueError naming the shapes if none does."""
    for i, profile in enumerate(candidates):
        if profile.accepts(shapes):
            return i
    raise ValueError(f"no TensorRT optimization profile accepts shapes {shapes} "
                     f"(spans up to {SPAN_BUCKETS[-1]} tokens, batch up to {MAX_TRT_BATCH}, "
                     f"contexts up to {CONTEXT_RANGES[-1][2]} tokens)")


def ort_profile_options(graph: str, info: ModelInfo) -> dict[str, str]:
    """ONNX Runtime TensorRT provider options giving the same profiles: "name:AxB,..."
    with an input repeated once per profile (ORT reads repeats as further profiles)."""
    parts: dict[str, list[str]] = {"min": [], "opt": [], "max": []}
    for profile in profiles(graph, info):
        for name, (lo, opt, hi) in profile.shapes.items():
            for key, shape in (("min", lo), ("opt", opt), ("max", hi)):
                parts[key].append(f"{name}:{'x'.join(str(d) for d in shape)}")
    return {f"trt_profile_{key}_shapes": ",".join(v) for key, v in parts.items()}


def ort_cache_options(cache_dir, fp16: bool = True) -> dict[str, str]:
    """TensorRT provider options besides the profiles: FP16, and engine + timing caches in
    cache_dir so the slow engine build happens once per machine. The builder
    (`python -m export tensorrt --route ort`) and the loader use the same, so the cache matches."""
    return {"trt_fp16_enable": str(fp16), "trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache_dir),
            "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(cache_dir)}


def ort_trt_options(graph: str, info: ModelInfo, cache_dir, fp16: bool = True) -> dict[str, str]:
    """Full TensorRT provider options for one graph's session."""
    return {**ort_cache_options(cache_dir, fp16), **ort_profile_options(graph, info)}
