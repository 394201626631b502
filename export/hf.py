"""Export a public diffusion coder's checkpoint (runtime/hf) to ONNX, int8 and TensorRT.

    python -m export onnx --hf CHECKPOINT_DIR --out DIR [--fp16] [--int8] [--check]
    python -m export tensorrt --model DIR --route ort      (ONNX Runtime's TensorRT provider, fp16)

Two graphs traced from runtime/hf/model.py with the dynamo exporter (see runtime/hf/ort.py for
their signatures): `context.onnx` (the full bidirectional pass, keys/values only) and
`block.onnx` (a few positions against the cached keys/values). They share every weight, so
the tensors are written once to `weights.onnx.data` (export/onnx.py `save_shared`). `--fp16`
also writes `*.fp16.onnx` (weights and activations in half precision, RMSNorm and softmax in
float32, logits float32) for GPUs; `--int8` writes `*.int8.onnx`, ONNX Runtime's dynamic
quantization for CPUs. The checkpoint's config and tokenizer files are copied beside the
graphs, so DIR is itself a model directory `load_model` serves without torch.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from export.onnx import _strip_debug, log, save_shared
from runtime.hf.config import HFConfig, load_config
from runtime.hf.model import HFDenoiser, load_hf_model
from runtime.hf.ort import BLOCK_FILE, CONTEXT_FILE, cache_names, graph_name, trt_profiles

COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
          "generation_config.json")
DATA = {"fp32": "weights.onnx.data", "fp16": "weights.fp16.onnx.data", "int8": "weights.int8.onnx.data"}
MAX_LEN, MAX_BLOCK, MAX_BATCH = 32768, 512, 64


class _Context(nn.Module):
    def __init__(self, model: HFDenoiser):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> list[torch.Tensor]:
        return self.model(ids, torch.zeros(1, dtype=torch.int64), logits=False)[1]


class _Block(_Context):
    def forward(self, block_ids: torch.Tensor, start: torch.Tensor, past: list[torch.Tensor]) -> torch.Tensor:
        return self.model(block_ids, start, past)[0]


def export_graphs(model: HFDenoiser, opset: int | None = None) -> dict[str, onnx.ModelProto]:
    """Both graphs in memory, dynamic in sequence, block, batch and cache lengths (distinct example
    sizes L=11, B=3, n=7, T=13 so no dim is specialised to another)."""
    cfg = model.cfg
    dtype = next(model.parameters()).dtype
    gen = torch.Generator().manual_seed(0)
    L, T = torch.export.Dim("L", min=2, max=MAX_LEN), torch.export.Dim("T", min=2, max=MAX_LEN)
    B, N = torch.export.Dim("B", min=1, max=MAX_BATCH), torch.export.Dim("N", min=2, max=MAX_BLOCK)
    common = dict(dynamo=True, opset_version=opset, verbose=False, external_data=False)
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
    warnings.filterwarnings("ignore", message=".*axis name: T will not be used")
    ids = torch.randint(0, cfg.vocab, (1, 11), generator=gen)
    t0 = time.perf_counter()
    ctx = torch.onnx.export(_Context(model).eval(), (ids,), input_names=["ids"],
                            output_names=cache_names(cfg.n_layer, "present"), dynamic_shapes={"ids": {1: L}}, **common)
    log(f"exported {CONTEXT_FILE} in {time.perf_counter() - t0:.1f}s")
    block = torch.randint(0, cfg.vocab, (3, 7), generator=gen)
    past = [torch.randn(1, cfg.n_kv_head, 13, cfg.head_dim, generator=gen).to(dtype) for _ in range(2 * cfg.n_layer)]
    t0 = time.perf_counter()
    blk = torch.onnx.export(_Block(model).eval(), (block, torch.tensor([13]), past),
                            input_names=["block_ids", "start", *cache_names(cfg.n_layer, "past")],
                            output_names=["logits"],
                            dynamic_shapes={"block_ids": {0: B, 1: N}, "start": None,
                                            "past": [{2: T}] * len(past)}, **common)
    log(f"exported {BLOCK_FILE} in {time.perf_counter() - t0:.1f}s")
    return {CONTEXT_FILE: _strip_debug(ctx.model_proto, "hf_context"),
            BLOCK_FILE: _strip_debug(blk.model_proto, "hf_block")}


def _save(graphs: dict[str, onnx.ModelProto], out: Path, precision: str) -> None:
    named = {graph_name(k, precision): v for k, v in graphs.items()}
    stats = save_shared(named, out, data_name=DATA[precision])
    log(f"wrote {', '.join(named)} and {DATA[precision]} ({stats['tensors']} shared tensors, "
        f"{stats['bytes'] / 1e6:.1f} MB)")


def quantize_int8(out: Path) -> None:
    """int8 dynamic quantization of the fp32 graphs (weights int8 per channel, activations at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from export.quantize import _NoPreprocessHint

    hint = _NoPreprocessHint()
    logging.getLogger().addFilter(hint)
    try:
        quantized = {}
        with tempfile.TemporaryDirectory(prefix="qs_hf_int8_") as tmp:
            for name in (CONTEXT_FILE, BLOCK_FILE):
                dst = Path(tmp) / name
                quantize_dynamic(out / name, dst, weight_type=QuantType.QInt8, per_channel=True)
                quantized[name] = onnx.load(str(dst))
        _save(quantized, out, "int8")
    finally:
        logging.getLogger().removeFilter(hint)


def export_hf(model_dir: Path, out_dir: Path, fp16: bool = False, int8: bool = False,
              opset: int | None = None) -> Path:
    """Export a checkpoint directory into a model directory servable by ONNX Runtime."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    cfg: HFConfig = load_config(model_dir)
    model = load_hf_model(model_dir)
    log(f"{cfg.family}: {cfg.n_layer} layers, width {cfg.hidden}, {cfg.n_head} heads ({cfg.n_kv_head} kv), "
        f"vocab {cfg.vocab}, {model.num_params() / 1e6:.1f}M params")
    out_dir.mkdir(parents=True, exist_ok=True)
    _save(export_graphs(model, opset), out_dir, "fp32")
    if fp16:
        _save(export_graphs(load_hf_model(model_dir, torch.float16), opset), out_dir, "fp16")
    if int8:
        quantize_int8(out_dir)
    if out_dir.resolve() != model_dir.resolve():
        for name in COPIED:
            if (model_dir / name).is_file():
                shutil.copyfile(model_dir / name, out_dir / name)
    return out_dir


def check_hf_parity(model_dir: Path, onnx_dir: Path, precision: str = "fp32", seed: int = 0,
                    lengths: tuple[int, ...] = (5, 40, 130), blocks: tuple[tuple[int, int], ...] = ((1, 9), (2, 17))
                    ) -> dict:
    """Largest |torch - ORT| over random sequences: context keys/values and block logits, through
    the serving ops (runtime/hf/ort.py) against runtime/hf/model.py."""
    from runtime.hf.backend import TorchOps
    from runtime.hf.ort import OrtOps

    cfg = load_config(model_dir)
    ref, ort_ops = TorchOps(load_hf_model(model_dir)), OrtOps(onnx_dir, cfg, precision=precision)
    rng = np.random.default_rng(seed)
    kv_diff = logit_diff = 0.0
    agree = total = 0
    for length in lengths:
        seq = rng.integers(0, cfg.vocab, (1, length), dtype=np.int64)
        kv_t, kv_o = ref.context(seq), ort_ops.context(seq)
        kv_diff = max(kv_diff, max(float(np.abs(a.numpy() - b.astype(np.float32)).max()) for a, b in zip(kv_t, kv_o,
                                                                                                        strict=True)))
        for B, n in blocks:
            b0 = length // 3
            cache_t, cache_o = ref.cut(kv_t, b0, b0 + n), ort_ops.cut(kv_o, b0, b0 + n)
            ids = rng.integers(0, cfg.vocab, (B, n), dtype=np.int64)
            lt, lo = ref.block(ids, b0, cache_t), ort_ops.block(ids, b0, cache_o)
            logit_diff = max(logit_diff, float(np.abs(lt - lo).max()))
            agree += int((lt.argmax(-1) == lo.argmax(-1)).sum())
            total += lt.shape[0] * lt.shape[1]
    result = {"precision": precision, "kv": kv_diff, "logits": logit_diff, "greedy_agreement": agree / total}
    log(f"parity ({precision}) torch vs ONNX Runtime: kv max|diff| {kv_diff:.2e}, logits {logit_diff:.2e}, "
        f"greedy agreement {agree / total:.1%}")
    return result


def build_hf_ort_trt_cache(model_dir: Path, cache_dir: Path | None = None, fp16: bool = True) -> dict:
    """Fill ONNX Runtime's TensorRT engine cache for both graphs and every profile (needs an NVIDIA
    GPU and onnxruntime-gpu with TensorRT); serving with --backend tensorrt then finds the engines."""
    import onnxruntime as ort

    from runtime.base import BackendUnavailable
    from runtime.onnx_backend import open_session, session_options
    from runtime.trt_profiles import ort_cache_options

    trt_ep = "TensorrtExecutionProvider"
    if trt_ep not in ort.get_available_providers():
        raise BackendUnavailable(f"ONNX Runtime here has no {trt_ep} (have {ort.get_available_providers()}): "
                                 "install onnxruntime-gpu with TensorRT on a machine with an NVIDIA GPU")
    from runtime.hf.ort import trt_profile_options

    model_dir = Path(model_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else model_dir / "trt_cache"
    cfg = load_config(model_dir)
    rng = np.random.default_rng(0)
    built: dict = {}
    for graph, file in (("context", CONTEXT_FILE), ("block", BLOCK_FILE)):
        t0 = time.perf_counter()
        options = {**ort_cache_options(cache_dir, fp16), **trt_profile_options(graph, cfg)}
        sess = open_session(model_dir / file, session_options(), [(trt_ep, options), "CUDAExecutionProvider"])
        if sess.get_providers()[0] != trt_ep:
            raise BackendUnavailable(f"{trt_ep} failed to initialise for {file} (got {sess.get_providers()})")
        profiles = trt_profiles(graph, cfg)
        for prof in profiles:  # one run at each profile's optimum builds and caches its engine
            feeds = {name: (rng.integers(0, cfg.vocab, opt, dtype=np.int64) if name.endswith("ids")
                            else np.array([1], np.int64) if name == "start" else np.zeros(opt, np.float32))
                     for name, (_, opt, _) in prof.items()}
            sess.run(None, feeds)
        built[graph] = len(profiles)
        log(f"cached TensorRT engines for {file} ({len(profiles)} profiles) in {time.perf_counter() - t0:.0f}s")
    return {"cache_dir": str(cache_dir), "profiles": built}
