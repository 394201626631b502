"""Find a model directory, pick a backend, and load tokenizer + network from it.

A model directory holds `tokenizer.json`, `config.json`, `encoder.onnx`,
`denoiser.onnx`, `weights.onnx.data` and (for the torch backend) `model.safetensors`.
Backend "auto" tries TensorRT, then CUDA, then CPU, and says in one log line which
one it chose and why. Importing this module never imports torch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from runtime.base import DenoiserBackend, ModelFileError, ModelInfo
from runtime.tokenizer import Tokenizer

log = logging.getLogger("quicksilver.runtime")

BACKENDS = ("auto", "onnxruntime", "cpu", "cuda", "tensorrt", "torch")
CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


class BackendUnavailable(RuntimeError):
    """An explicitly requested backend cannot run here; the message says what is missing."""


def default_model_dir() -> Path:
    """$QUICKSILVER_MODEL, else the bundled model next to the code (<repo>/models/default)."""
    env = os.environ.get("QUICKSILVER_MODEL")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "models" / "default"


@dataclass
class LoadedModel:
    tokenizer: Tokenizer
    backend: DenoiserBackend
    info: ModelInfo
    model_dir: Path


def gpu_visible() -> tuple[bool, str]:
    """Whether an NVIDIA GPU looks usable, without importing a framework. A provider
    being compiled into onnxruntime says nothing about a device being present."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None and cvd.strip() in ("", "-1"):
        return False, f"CUDA_VISIBLE_DEVICES={cvd!r} hides all GPUs"
    if os.name == "nt":
        return True, "Windows: assuming the driver is present"
    if Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*")):
        return True, "NVIDIA driver found"
    return False, "no NVIDIA driver (/proc/driver/nvidia/version missing)"


def choose_providers(requested: str, available: list[str], gpu: tuple[bool, str]) -> tuple[list, str]:
    """(ORT providers in priority order, reason). Pure so the choice is testable anywhere."""
    has_gpu, gpu_why = gpu
    if requested in ("cpu", "onnxruntime"):
        return [CPU], "requested"
    if requested == "cuda":
        if CUDA not in available:
            raise BackendUnavailable("backend 'cuda' needs onnxruntime-gpu (CUDAExecutionProvider not available; "
                                     f"have {available})")
        return [CUDA, CPU], "requested"
    if requested == "tensorrt":
        if TRT not in available:
            raise BackendUnavailable("backend 'tensorrt' needs onnxruntime-gpu built with TensorRT "
                                     f"(TensorrtExecutionProvider not available; have {available})")
        return [TRT, CUDA, CPU], "requested"
    gpu_providers = [p for p in (TRT, CUDA) if p in available]
    if not gpu_providers:
        return [CPU], f"onnxruntime has no GPU provider (available: {', '.join(available)})"
    if not has_gpu:
        return [CPU], f"{', '.join(gpu_providers)} installed but {gpu_why}"
    if TRT in gpu_providers:
        return [TRT, CUDA, CPU] if CUDA in available else [TRT, CPU], f"TensorRT provider available, {gpu_why}"
    return [CUDA, CPU], f"CUDA provider available (no TensorRT), {gpu_why}"


def _provider_options(providers: list, model_dir: Path) -> list:
    """TensorRT: fp16 and an engine cache next to the model, so the slow engine build happens once."""
    out: list = []
    for p in providers:
        if p == TRT:
            cache = Path(os.environ.get("QUICKSILVER_TRT_CACHE", model_dir / "trt_cache"))
            out.append((TRT, {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                              "trt_engine_cache_path": str(cache), "trt_timing_cache_enable": True}))
        else:
            out.append(p)
    return out


def _load_tokenizer(path: Path) -> Tokenizer:
    try:
        return Tokenizer.from_file(path)
    except (FileNotFoundError, ValueError) as exc:  # both messages already name the file
        raise ModelFileError(str(exc)) from exc


def load_model(model_dir: Path | str | None = None, backend: str = "auto", threads: int | None = None) -> LoadedModel:
    """Load tokenizer and network; raises ModelFileError naming any missing/corrupt file."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    model_dir = Path(model_dir).expanduser() if model_dir is not None else default_model_dir()
    if not model_dir.is_dir():
        raise ModelFileError(f"model directory not found: {model_dir}")
    tokenizer = _load_tokenizer(model_dir / "tokenizer.json")

    net: DenoiserBackend
    if backend == "torch":
        from runtime.torch_backend import TorchBackend  # lazy: serving must not import torch

        net = TorchBackend(model_dir / "model.safetensors", threads=threads)
        log.info("backend torch: requested (PyTorch on %s)", model_dir / "model.safetensors")
    else:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime") from exc
        from runtime.onnx_backend import OnnxBackend

        providers, why = choose_providers(backend, ort.get_available_providers(), gpu_visible())
        onnx_net = OnnxBackend(model_dir, threads=threads, providers=_provider_options(providers, model_dir))
        if onnx_net.providers[0] != providers[0]:  # ORT falls back silently when a GPU provider fails to start
            why = f"{providers[0]} failed to initialise, fell back to {onnx_net.providers[0]}"
            if backend != "auto":
                raise BackendUnavailable(f"backend {backend!r}: {why}")
        net = onnx_net
        threads_note = f", intra-op threads={threads}" if threads else ""
        log.info("backend %s: %s%s", onnx_net.name, why, threads_note)

    info = net.info
    if tokenizer.vocab_size > info.vocab_size:
        raise ModelFileError(f"tokenizer {model_dir / 'tokenizer.json'} has {tokenizer.vocab_size} tokens but the "
                             f"model in {model_dir} only {info.vocab_size}: they are from different models")
    return LoadedModel(tokenizer=tokenizer, backend=net, info=info, model_dir=model_dir)
