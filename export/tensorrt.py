"""ONNX -> TensorRT, two routes, both with the optimization profiles of runtime/trt_profiles.py.

1. Engines (`--route engine`, the default): the TensorRT 10 Python API parses each
   exported graph (`OnnxParser.parse_from_file`, which also reads the shared
   external weights), adds one optimization profile per span bucket and context
   range, and writes `DIR/<graph>.plan` plus `DIR/tensorrt.json` describing them;
   `runtime/tensorrt_backend.py` runs them.
2. ONNX Runtime's TensorRT execution provider (`--route ort`): sessions are opened
   with the same profiles as provider options and an engine cache directory, and
   run once per profile so every engine is built now rather than on the first
   keystroke; `load_model(backend="tensorrt")` later finds them in the cache.

FP16 by default (LayerNorms stay FP32: their variance overflows in FP16). Neither
route can run without an NVIDIA GPU; without one they stop with a clear error.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from export.onnx import log
from runtime.base import BackendUnavailable, ModelInfo
from runtime.trt_profiles import GRAPHS, ort_trt_options, profiles

TRT_EP = "TensorrtExecutionProvider"


def _graphs_in(model_dir: Path) -> list[str]:
    present = [g for g in GRAPHS if (model_dir / f"{g}.onnx").is_file()]
    if "encoder" not in present or "denoiser" not in present:
        raise FileNotFoundError(f"no exported graphs in {model_dir}: run `python -m export onnx` first")
    return present


def build_engines(model_dir: Path, out_dir: Path | None = None, fp16: bool = True, workspace_mb: int = 2048) -> dict:
    """Build and serialize one engine per exported graph; returns the manifest written beside them."""
    from runtime.tensorrt_backend import ENGINE_DIR, MANIFEST, import_tensorrt

    trt = import_tensorrt()
    model_dir = Path(model_dir)
    out_dir = Path(out_dir) if out_dir is not None else model_dir / ENGINE_DIR
    info = ModelInfo.from_file(model_dir / "config.json")
    graphs = _graphs_in(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    cache_path = out_dir / "timing.cache"
    manifest: dict = {"tensorrt_version": trt.__version__, "fp16": fp16, "engines": {}}
    for graph in graphs:
        onnx_path = model_dir / f"{graph}.onnx"
        t0 = time.perf_counter()
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ValueError(f"TensorRT could not parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
            config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
            for i in range(network.num_layers):
                layer = network.get_layer(i)
                if layer.type == trt.LayerType.NORMALIZATION:
                    layer.precision = trt.float32
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        graph_profiles = profiles(graph, info)
        inputs = {network.get_input(i).name for i in range(network.num_inputs)}
        for prof in graph_profiles:
            p = builder.create_optimization_profile()
            for name, (lo, opt, hi) in prof.shapes.items():
                if name in inputs:  # a denoiser exported before "rows" has no such input
                    p.set_shape(name, lo, opt, hi)
            config.add_optimization_profile(p)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
        plan_path = out_dir / f"{graph}.plan"
        plan_path.write_bytes(bytes(plan))
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
        manifest["engines"][graph] = {"file": plan_path.name, "onnx": onnx_path.name,
                                      "profiles": [{n: [list(s) for s in v] for n, v in p.shapes.items()}
                                                   for p in graph_profiles]}
        log(f"built {plan_path} ({len(graph_profiles)} profiles, {plan_path.stat().st_size / 1e6:.1f} MB) "
            f"in {time.perf_counter() - t0:.0f}s")
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def build_ort_cache(model_dir: Path, cache_dir: Path | None = None, fp16: bool = True) -> dict:
    """Fill ONNX Runtime's TensorRT engine cache for every graph and profile."""
    import onnxruntime as ort

    from runtime.onnx_backend import open_session, session_options

    if TRT_EP not in ort.get_available_providers():
        raise BackendUnavailable(f"ONNX Runtime here has no {TRT_EP} (have {ort.get_available_providers()}): "
                                 "install onnxruntime-gpu with TensorRT on a machine with an NVIDIA GPU")
    model_dir = Path(model_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else model_dir / "trt_cache"
    info = ModelInfo.from_file(model_dir / "config.json")
    rng = np.random.default_rng(0)
    built: dict = {}
    for graph in _graphs_in(model_dir):
        t0 = time.perf_counter()
        options = ort_trt_options(graph, info, cache_dir, fp16=fp16)
        sess = open_session(model_dir / f"{graph}.onnx", session_options(),
                            [(TRT_EP, options), "CUDAExecutionProvider", "CPUExecutionProvider"])
        if sess.get_providers()[0] != TRT_EP:
            raise BackendUnavailable(f"{TRT_EP} failed to initialise for {graph}.onnx (got {sess.get_providers()})")
        graph_profiles = profiles(graph, info)
        for prof in graph_profiles:  # one run at each profile's optimum shapes builds and caches its engine
            feeds = {}
            for name, (_, opt, _) in prof.shapes.items():
                feeds[name] = (rng.integers(0, info.vocab_size, opt, dtype=np.int64) if name.endswith("ids")
                               else np.zeros(opt, dtype=np.int64) if name == "rows"
                               else np.zeros(opt, dtype=np.float32))
            sess.run(None, feeds)
        built[graph] = len(graph_profiles)
        log(f"cached TensorRT engines for {graph}.onnx in {cache_dir} ({len(graph_profiles)} profiles) "
            f"in {time.perf_counter() - t0:.0f}s")
    return {"cache_dir": str(cache_dir), "profiles": built}
