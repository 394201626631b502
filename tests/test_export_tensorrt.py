"""TensorRT: optimization profiles (pure, run everywhere), engine builds and the engine backend
(need an NVIDIA GPU and TensorRT 10: skipped with that reason elsewhere), and ONNX Runtime's
TensorRT provider route (needs onnxruntime-gpu with TensorRT and a GPU)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from runtime.base import ModelInfo
from runtime.loader import gpu_visible
from runtime.trt_profiles import (
    CONTEXT_RANGES,
    MAX_TRT_BATCH,
    SPAN_BUCKETS,
    ort_profile_options,
    ort_trt_options,
    pick_profile,
    profiles,
)

INFO = ModelInfo(vocab_size=8192, n_layer=6, n_head=8, d_model=256)
GPU, GPU_WHY = gpu_visible()
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None and importlib.util.find_spec("cuda") is not None
needs_engine = pytest.mark.skipif(not (GPU and HAVE_TRT), reason=(
    f"TensorRT engines need an NVIDIA GPU ({GPU_WHY}) and the tensorrt + cuda-python packages "
    f"({'installed' if HAVE_TRT else 'not installed'})"))


def _cache(T: int) -> dict:
    return {f"past_{kv}_{i}": (1, INFO.n_head, T, INFO.head_dim) for i in range(INFO.n_layer) for kv in "kv"}


@pytest.mark.parametrize("S", [1, 7, 8, 9, 16, 17, 32, 33, 64])
@pytest.mark.parametrize("T", [1, 450, 1024, 1025, 2048, 8192])
def test_every_span_and_context_has_a_denoiser_profile(S, T):
    den = profiles("denoiser", INFO)
    i = pick_profile(den, {"span_ids": (1, S), **_cache(T)})
    lo, opt, hi = den[i].shapes["span_ids"]
    assert opt[1] == min(b for b in SPAN_BUCKETS if b >= S)  # tuned at the bucket the span pads to
    assert lo[1] <= S <= hi[1] and hi[0] == MAX_TRT_BATCH
    assert pick_profile(profiles("encoder", INFO), {"ids": (1, T)}) == (0 if T <= CONTEXT_RANGES[0][2] else 1)
    assert pick_profile(profiles("decoder_step", INFO), {"ids": (1, 1), **_cache(T)}) in (0, 1)


def test_shapes_outside_every_profile_are_refused_with_the_limits():
    den = profiles("denoiser", INFO)
    with pytest.raises(ValueError, match="spans up to 64"):
        pick_profile(den, {"span_ids": (1, 65), **_cache(100)})
    with pytest.raises(ValueError, match="contexts up to 8192"):
        pick_profile(den, {"span_ids": (1, 8), **_cache(9000)})
    with pytest.raises(ValueError):
        pick_profile(den, {"span_ids": (MAX_TRT_BATCH + 1, 8), **_cache(100)})


def test_profiles_are_ordered_min_opt_max():
    for graph in ("encoder", "denoiser", "decoder_step"):
        for p in profiles(graph, INFO):
            for lo, opt, hi in p.shapes.values():
                assert all(a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)), (graph, lo, opt, hi)


def test_ort_provider_options_repeat_each_input_once_per_profile():
    """ONNX Runtime reads an input named again as the next profile; min/opt/max must line up."""
    opts = ort_profile_options("denoiser", INFO)
    n = len(profiles("denoiser", INFO))
    for key in ("trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes"):
        entries = opts[key].split(",")
        assert sum(e.startswith("span_ids:") for e in entries) == n
        assert sum(e.startswith("past_v_5:") for e in entries) == n
        assert sum(e.startswith("rows:") for e in entries) == n
    assert opts["trt_profile_opt_shapes"].startswith("span_ids:1x8,past_k_0:1x8x512x32,")
    full = ort_trt_options("encoder", INFO, "/cache")
    assert full["trt_engine_cache_path"] == "/cache" and full["trt_profile_max_shapes"] == "ids:1x1024,ids:1x8192"


def test_ort_backend_gives_the_tensorrt_provider_its_graphs_profiles():
    from runtime.onnx_backend import providers_for

    got = providers_for([("TensorrtExecutionProvider", {"trt_fp16_enable": "True"}), "CPUExecutionProvider"],
                        "decoder_step", INFO)
    assert got[0][1]["trt_fp16_enable"] == "True"
    assert got[0][1]["trt_profile_min_shapes"].startswith("ids:1x1,past_k_0:1x8x1x32")
    assert got[1] == "CPUExecutionProvider"
    assert providers_for(["CPUExecutionProvider"], "encoder", INFO) == ["CPUExecutionProvider"]


# --- GPU-only: real engines from a tiny exported model ---------------------------------

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch", reason="exporting the test model needs PyTorch")
    from export.onnx import export_onnx
    from runtime.model import Denoiser, ModelConfig, save_checkpoint

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("trt")
    save_checkpoint(Denoiser(ModelConfig(vocab_size=512, n_layer=2, n_head=2, d_model=32)), root / "w.safetensors")
    return export_onnx(root / "w.safetensors", root / "model")


@needs_engine
def test_engines_build_and_match_onnxruntime(tiny_model, tmp_path):
    from export.tensorrt import build_engines
    from runtime.onnx_backend import OnnxBackend
    from runtime.tensorrt_backend import TensorRTBackend

    model_dir = Path(shutil.copytree(tiny_model, tmp_path / "m"))
    manifest = build_engines(model_dir, fp16=False)
    assert set(manifest["engines"]) == {"encoder", "denoiser", "decoder_step"}
    trt_backend, ort_backend = TensorRTBackend(model_dir), OnnxBackend(model_dir)
    rng = np.random.default_rng(0)
    for T, S in ((5, 8), (300, 32), (1100, 64)):
        ids = rng.integers(0, 512, (1, T), dtype=np.int64)
        a, b = trt_backend.encode_context(ids), ort_backend.encode_context(ids)
        assert np.abs(a.first_logits - b.first_logits).max() < 1e-3
        assert np.abs(a.kv.numpy() - b.kv).max() < 1e-3  # the cache stays on the GPU; copied back only here
        span = rng.integers(0, 512, (2, S), dtype=np.int64)
        assert np.abs(trt_backend.denoise_span(span, a) - ort_backend.denoise_span(span, b)).max() < 1e-3


@needs_engine
def test_corrupt_engine_names_the_file(tiny_model, tmp_path):
    from export.tensorrt import build_engines
    from runtime.base import ModelFileError
    from runtime.tensorrt_backend import TensorRTBackend

    model_dir = Path(shutil.copytree(tiny_model, tmp_path / "m"))
    build_engines(model_dir)
    (model_dir / "tensorrt" / "denoiser.plan").write_bytes(b"not an engine")
    with pytest.raises(ModelFileError, match="denoiser.plan"):
        TensorRTBackend(model_dir)


@pytest.mark.skipif(not GPU, reason=f"ONNX Runtime's TensorRT provider needs an NVIDIA GPU ({GPU_WHY})")
def test_ort_tensorrt_provider_cache(tiny_model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime here is not built with the TensorRT provider (pip install onnxruntime-gpu)")
    from export.tensorrt import build_ort_cache

    result = build_ort_cache(tiny_model, tmp_path / "cache")
    assert result["profiles"]["denoiser"] == len(profiles("denoiser", INFO))
    assert any((tmp_path / "cache").iterdir())
