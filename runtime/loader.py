"""Find a model directory, pick a backend, and load tokenizer + network from it.

A model directory holds `tokenizer.json`, `config.json`, `encoder.onnx`,
`denoiser.onnx`, `weights.onnx.data`, optionally the int8 variants
(`encoder.int8.onnx`, ...) and TensorRT engines (`tensorrt/*.plan`), and (for the
torch backend) `model.safetensors`. Backend "auto" tries the TensorRT engines, then
ONNX Runtime's TensorRT provider, then CUDA, then CPU, and says in one log line
which one it chose and why. Importing this module never imports torch.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from runtime.base import BackendUnavailable, DenoiserBackend, ModelFileError, ModelInfo
from runtime.tokenizer import Tokenizer

log = logging.getLogger("quicksilver.runtime")

# "tensorrt" is ONNX Runtime's TensorRT provider, "tensorrt-engine" the engines built by
# `python -m export tensorrt`; "cpu" runs the int8 graphs of `python -m export quantize` when the
# model has them (else fp32), "cpu-int8" and "cpu-fp32" ask for one precision.
BACKENDS = ("auto", "onnxruntime", "cpu", "cpu-int8", "cpu-fp32", "cuda", "tensorrt", "tensorrt-engine", "torch")
PRECISIONS = ("fp32", "int8")
CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
__all__ = ["BACKENDS", "BackendUnavailable", "LoadedModel", "choose_providers", "default_model_dir", "load_model"]


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


def engine_backend_possible(model_dir: Path, gpu: tuple[bool, str]) -> tuple[bool, str]:
    """Whether the TensorRT engine backend can be tried: GPU, packages and built engines
    (checked without importing TensorRT, which takes seconds)."""
    from runtime.tensorrt_backend import engines_present

    if not gpu[0]:
        return False, gpu[1]
    missing = [m for m in ("tensorrt", "cuda") if importlib.util.find_spec(m) is None]
    if missing:
        return False, f"{' and '.join(missing)} not installed"
    return engines_present(model_dir)


def _provider_options(providers: list, model_dir: Path) -> list:
    """TensorRT: fp16 and an engine cache next to the model, so the slow engine build happens
    once (the per-graph optimization profiles are added by OnnxBackend)."""
    from runtime.trt_profiles import ort_cache_options

    out: list = []
    for p in providers:
        if p == TRT:
            cache = Path(os.environ.get("QUICKSILVER_TRT_CACHE", model_dir / "trt_cache"))
            out.append((TRT, ort_cache_options(cache)))
        else:
            out.append(p)
    return out


def split_backend(backend: str, precision: str | None) -> tuple[str, str | None]:
    """("cpu-int8", None) -> ("cpu", "int8"); int8 graphs are CPU graphs (dynamic
    quantization's integer kernels), so int8 with a GPU backend is refused. A precision
    left open (None) is chosen when the provider is known (`_cpu_precision`)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if backend in ("cpu-int8", "cpu-fp32"):
        implied = backend.removeprefix("cpu-")
        if precision not in (None, implied):
            raise ValueError(f"backend {backend!r} with precision {precision!r} contradict each other")
        return "cpu", implied
    if precision == "int8" and backend in ("cuda", "tensorrt", "tensorrt-engine", "torch"):
        raise ValueError(f"int8 graphs run on the CPU only (dynamic quantization); not with backend {backend!r}")
    if precision == "int8" and backend == "auto":
        return "cpu", precision
    if precision is None and backend not in ("auto", "cpu", "onnxruntime"):
        return backend, "fp32"
    return backend, precision


def _cpu_precision(model_dir: Path) -> tuple[str, str]:
    """(precision, why) when none was asked for and the graphs run on the CPU: int8 if the model
    has the graphs: on the bundled model faster than fp32 at every call with HumanEval pass@1 within
    noise (benchmarks/results/speed.json, `int8`; infill.json against infill_fp32.json)."""
    from runtime.onnx_backend import DENOISER_FILE, ENCODER_FILE, graph_file

    if all((model_dir / graph_file(g, "int8")).is_file() for g in (ENCODER_FILE, DENOISER_FILE)):
        return "int8", "int8 graphs (the CPU default when the model has them)"
    return "fp32", "fp32 (no int8 graphs in the model directory)"


def _load_engine_backend(model_dir: Path) -> DenoiserBackend:
    from runtime.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(model_dir)


def _load_tokenizer(path: Path) -> Tokenizer:
    try:
        return Tokenizer.from_file(path)
    except (FileNotFoundError, ValueError) as exc:  # both messages already name the file
        raise ModelFileError(str(exc)) from exc


def _load_onnx(model_dir: Path, backend: str, threads: int | None, precision: str | None,
               engine_why: str) -> DenoiserBackend:
    """ONNX Runtime with the best provider available (see choose_providers); logs the one line."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime") from exc
    from runtime.onnx_backend import OnnxBackend

    providers, why = choose_providers(backend, ort.get_available_providers(), gpu_visible())
    if precision is None:
        precision, precision_why = ("fp32", "") if providers[0] != CPU else _cpu_precision(model_dir)
        why = f"{why}; {precision_why}" if precision_why else why
    elif precision != "fp32":
        why = f"{precision} graphs requested (CPU only)"
    elif engine_why and backend == "auto":
        why = f"{why}; TensorRT engine backend not used: {engine_why}"
    net = OnnxBackend(model_dir, threads=threads, providers=_provider_options(providers, model_dir),
                      precision=precision)
    if net.providers[0] != providers[0]:  # ORT falls back silently when a GPU provider fails to start
        why = f"{providers[0]} failed to initialise, fell back to {net.providers[0]}"
        if backend != "auto":
            raise BackendUnavailable(f"backend {backend!r}: {why}")
    threads_note = f", intra-op threads={threads}" if threads else ""
    log.info("backend %s: %s%s", net.name, why, threads_note)
    return net


def load_model(model_dir: Path | str | None = None, backend: str = "auto", threads: int | None = None,
               precision: str | None = None) -> LoadedModel:
    """Load tokenizer and network; raises ModelFileError naming any missing/corrupt file.
    precision "int8" (or backend "cpu-int8") runs the int8 graphs on ONNX Runtime's CPU; left open,
    the CPU gets them when the model has them, fp32 otherwise."""
    backend, precision = split_backend(backend, precision)
    model_dir = Path(model_dir).expanduser() if model_dir is not None else default_model_dir()
    if not model_dir.is_dir():
        raise ModelFileError(f"model directory not found: {model_dir}")
    from runtime.hf.config import is_hf_dir  # no torch import: config parsing only

    if is_hf_dir(model_dir):  # a public diffusion coder's checkpoint (Dream, DiffuCoder, Open-dCoder, LLaDA)
        from runtime.hf.backend import load_hf

        return load_hf(model_dir, backend, threads, precision or "fp32")
    tokenizer = _load_tokenizer(model_dir / "tokenizer.json")

    net: DenoiserBackend | None = None
    engine_why = ""
    if backend in ("auto", "tensorrt-engine"):
        ok, engine_why = engine_backend_possible(model_dir, gpu_visible())
        if backend == "tensorrt-engine" and not ok:
            raise BackendUnavailable(f"backend 'tensorrt-engine': {engine_why}")
        if ok:
            try:
                net = _load_engine_backend(model_dir)
                log.info("backend %s: %s, GPU visible", net.name, engine_why)
            except (BackendUnavailable, ModelFileError, RuntimeError) as exc:
                if backend != "auto":
                    raise
                engine_why = f"TensorRT engines failed to load ({exc})"
    if net is None and backend == "torch":
        from runtime.torch_backend import TorchBackend  # lazy: serving must not import torch

        net = TorchBackend(model_dir / "model.safetensors", threads=threads)
        log.info("backend torch: requested (PyTorch on %s)", model_dir / "model.safetensors")
    elif net is None:
        net = _load_onnx(model_dir, backend, threads, precision, engine_why)

    info = net.info
    if tokenizer.vocab_size > info.vocab_size:
        raise ModelFileError(f"tokenizer {model_dir / 'tokenizer.json'} has {tokenizer.vocab_size} tokens but the "
                             f"model in {model_dir} only {info.vocab_size}: they are from different models")
    return LoadedModel(tokenizer=tokenizer, backend=net, info=info, model_dir=model_dir)
