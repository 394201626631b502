"""ONNX Runtime ops for the public diffusion coders: the two graphs `python -m export onnx --hf` writes.

`context.onnx`: ids (1, L) -> present_k_0, present_v_0, ... each (1, n_kv, L, hd), a full
bidirectional pass (keys/values only: the vocabulary projection is skipped).
`block.onnx`: block_ids (B, n), start (1,), past_k_0, past_v_0, ... (1, n_kv, T, hd) ->
logits (B, n, V) float32. Variants: `*.fp16.onnx` (GPU: chosen automatically when a GPU
provider runs) and `*.int8.onnx` (CPU, dynamic quantization). Importing this never imports torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from runtime.base import BackendUnavailable
from runtime.hf.backend import HFBackend
from runtime.hf.config import HFConfig
from runtime.hf.prompt import HFTokenizer
from runtime.onnx_backend import check_signature, open_session, session_options

log = logging.getLogger("quicksilver.runtime")
CONTEXT_FILE, BLOCK_FILE = "context.onnx", "block.onnx"
HF_PRECISIONS = ("fp32", "fp16", "int8")
SPAN_BUCKETS = (8, 16, 32, 64)
CONTEXT_RANGES = ((1, 512, 2048), (2049, 4096, 8192))  # (min, opt, max) tokens; Dream was trained on 2,048
MAX_BATCH = 4


def graph_name(base: str, precision: str) -> str:
    if precision not in HF_PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(HF_PRECISIONS)}")
    return base if precision == "fp32" else base.replace(".onnx", f".{precision}.onnx")


def cache_names(n_layer: int, prefix: str) -> list[str]:
    return [f"{prefix}_{kind}_{i}" for i in range(n_layer) for kind in ("k", "v")]


def graphs_present(model_dir: Path, precision: str = "fp32") -> tuple[bool, str]:
    missing = [g for g in (graph_name(CONTEXT_FILE, precision), graph_name(BLOCK_FILE, precision))
               if not (Path(model_dir) / g).is_file()]
    if missing:
        return False, f"no ONNX graphs in {model_dir} (missing {', '.join(missing)})"
    return True, f"ONNX graphs in {model_dir}"


Shapes = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def trt_profiles(graph: str, cfg: HFConfig) -> list[dict[str, Shapes]]:
    """TensorRT optimization profiles of one graph ("context" or "block"): input -> (min, opt, max).
    The block runs a span bucket (plus the one position before it for shifted families) against
    the cache of every other position; the context pass sees prefix + span + suffix."""
    hd, nkv = cfg.head_dim, cfg.n_kv_head
    if graph == "context":
        return [{"ids": ((1, lo), (1, opt), (1, hi + SPAN_BUCKETS[-1] + 1))} for lo, opt, hi in CONTEXT_RANGES]
    if graph != "block":
        raise ValueError(f"unknown graph {graph!r}; choose context or block")
    out: list[dict[str, Shapes]] = []
    prev = 0
    for span in SPAN_BUCKETS:
        for lo, opt, hi in CONTEXT_RANGES:
            shapes = ((1, nkv, lo, hd), (1, nkv, opt, hd), (1, nkv, hi, hd))
            cache = dict.fromkeys(cache_names(cfg.n_layer, "past"), shapes)
            out.append({"block_ids": ((1, prev + 1), (1, span + 1), (MAX_BATCH, span + 1)),
                        "start": ((1,), (1,), (1,)), **cache})
        prev = span + 1
    return out


def trt_profile_options(graph: str, cfg: HFConfig) -> dict[str, str]:
    """The same profiles as ONNX Runtime TensorRT provider options (an input repeated once per profile)."""
    parts: dict[str, list[str]] = {"min": [], "opt": [], "max": []}
    for prof in trt_profiles(graph, cfg):
        for name, shapes in prof.items():
            for key, shape in zip(("min", "opt", "max"), shapes, strict=True):
                parts[key].append(f"{name}:{'x'.join(str(d) for d in shape)}")
    return {f"trt_profile_{k}_shapes": ",".join(v) for k, v in parts.items()}


def _providers(providers: list, graph: str, cfg: HFConfig) -> list:
    out: list = []
    for p in providers:
        name, opts = (p, {}) if isinstance(p, str) else p
        out.append((name, {**opts, **trt_profile_options(graph, cfg)}) if name == "TensorrtExecutionProvider" else p)
    return out


class OrtOps:
    """The ops on two ONNX Runtime sessions; the cache stays numpy between steps."""

    def __init__(self, model_dir: Path, cfg: HFConfig, threads: int | None = None, providers: list | None = None,
                 precision: str = "fp32"):
        model_dir = Path(model_dir)
        providers = providers or ["CPUExecutionProvider"]
        opts = session_options(threads)
        ctx_path = model_dir / graph_name(CONTEXT_FILE, precision)
        blk_path = model_dir / graph_name(BLOCK_FILE, precision)
        self.context_sess = open_session(ctx_path, opts, _providers(providers, "context", cfg))
        self.block_sess = open_session(blk_path, opts, _providers(providers, "block", cfg))
        self.providers: list[str] = self.block_sess.get_providers()
        self.past = cache_names(cfg.n_layer, "past")
        check_signature(self.context_sess, ctx_path, ["ids"], cache_names(cfg.n_layer, "present"))
        check_signature(self.block_sess, blk_path, ["block_ids", "start", *self.past], ["logits"])

    def context(self, seq: np.ndarray) -> list[Any]:
        return self.context_sess.run(None, {"ids": np.ascontiguousarray(seq, dtype=np.int64)})

    def cut(self, kv: list[Any], b0: int, b1: int) -> list[Any]:
        return [np.ascontiguousarray(np.concatenate((t[:, :, :b0], t[:, :, b1:]), axis=2)) for t in kv]

    def block(self, ids: np.ndarray, start: int, cache: list[Any]) -> np.ndarray:
        feeds = {"block_ids": np.ascontiguousarray(ids, dtype=np.int64), "start": np.array([start], dtype=np.int64),
                 **dict(zip(self.past, cache, strict=True))}
        (logits,) = self.block_sess.run(None, feeds)
        return logits.astype(np.float32, copy=False)


_NAMES = {"CPUExecutionProvider": "onnxruntime-cpu", "CUDAExecutionProvider": "onnxruntime-cuda",
          "TensorrtExecutionProvider": "onnxruntime-tensorrt"}


def ort_backend(model_dir: Path, cfg: HFConfig, tokenizer: HFTokenizer, backend: str, threads: int | None,
                precision: str, refresh_every: int | None) -> HFBackend:
    """ONNX Runtime with the provider runtime/loader.py would choose; fp16 graphs on a GPU when present."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime") from exc
    from runtime.loader import _provider_options, choose_providers, gpu_visible

    providers, why = choose_providers(backend, ort.get_available_providers(), gpu_visible())
    if precision == "int8":
        providers, why = ["CPUExecutionProvider"], "int8 graphs requested (CPU only)"
    elif providers[0] == "CUDAExecutionProvider" and graphs_present(model_dir, "fp16")[0]:
        precision = "fp16"  # the TensorRT provider takes the fp32 graphs and builds fp16 engines itself
    ops = OrtOps(model_dir, cfg, threads, _provider_options(providers, model_dir), precision)
    if ops.providers[0] != providers[0]:
        why = f"{providers[0]} failed to initialise, fell back to {ops.providers[0]}"
        if backend != "auto":
            raise BackendUnavailable(f"backend {backend!r}: {why}")
    name = _NAMES.get(ops.providers[0], f"onnxruntime-{ops.providers[0]}") + ("" if precision == "fp32"
                                                                            else f"-{precision}")
    log.info("backend %s: %s (%s, %s graphs)", name, why, cfg.family, precision)
    return HFBackend(ops, cfg, tokenizer, name, refresh_every)
