"""TensorRT engine backend: the serialized engines `python -m export tensorrt` builds.

Runs `DIR/encoder.plan` and `DIR/denoiser.plan` (DIR defaults to `<model>/tensorrt`)
through the TensorRT 10 runtime API: one execution context per optimization
profile (switching a context's profile invalidates its shapes, so each profile
keeps its own), input shapes set per call, tensors bound by address, and
`execute_async_v3` on one CUDA stream. The context's keys/values stay on the GPU
between the encode and every denoising step (`ContextState.kv` is a device
buffer); only token ids go up and logits come down.

Needs an NVIDIA GPU, the `tensorrt` package and `cuda-python`; none exists on the
machine this was written on, so the code follows the documented APIs and its tests
skip with that reason there.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from runtime.base import BackendUnavailable, ContextState, ModelFileError, ModelInfo, rows_input, take_rows
from runtime.onnx_backend import cache_names
from runtime.trt_profiles import Profile, pick_profile

log = logging.getLogger("quicksilver.runtime")
ENGINE_DIR = "tensorrt"
MANIFEST = "tensorrt.json"


def import_cudart() -> Any:
    """cuda-python's runtime module (new and old import paths), or BackendUnavailable."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as exc:
            raise BackendUnavailable("the TensorRT engine backend needs cuda-python: pip install cuda-python") from exc
    return cudart


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable("TensorRT 10 is not installed (pip install tensorrt, from NVIDIA's package "
                                 "index; it needs an NVIDIA GPU)") from exc
    return trt


class _Cuda:
    """The few CUDA runtime calls this backend makes, with errors turned into exceptions."""

    def __init__(self, device: int = 0):
        self.rt = import_cudart()
        self.call(self.rt.cudaSetDevice(device), "cudaSetDevice")
        self.stream = self.call(self.rt.cudaStreamCreate(), "cudaStreamCreate")
        self.handle = int(self.stream)  # TensorRT takes the stream as an integer handle

    def call(self, result: tuple, what: str) -> Any:
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            _, msg = self.rt.cudaGetErrorString(err)
            raise RuntimeError(f"{what} failed: {msg.decode() if isinstance(msg, bytes) else msg}")
        return values[0] if len(values) == 1 else values

    def malloc(self, nbytes: int) -> int:
        return int(self.call(self.rt.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        self.rt.cudaFree(ptr)

    def upload(self, ptr: int, host: np.ndarray) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.call(self.rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, kind, self.stream), "copy to GPU")

    def download(self, host: np.ndarray, ptr: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.call(self.rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, kind, self.stream), "copy from GPU")

    def sync(self) -> None:
        self.call(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")


class DeviceArray:
    """A GPU buffer with a shape and dtype, freed when dropped (a request's cache); or,
    with `owner`, a view into another one's memory (freed with it)."""

    def __init__(self, cuda: _Cuda, shape: tuple[int, ...], dtype: np.dtype, owner: DeviceArray | None = None,
                 offset: int = 0):
        self.cuda, self.shape, self.dtype = cuda, tuple(int(d) for d in shape), np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self.owner = owner
        self.ptr = owner.ptr + offset if owner is not None else cuda.malloc(self.nbytes)

    def layer_views(self) -> list[DeviceArray]:
        """An (L, 2, 1, nh, T, hs) cache as [k0, v0, k1, ...] views of (1, nh, T, hs): the
        denoiser's per-layer inputs, bound by address, no copy."""
        L, two, *rest = self.shape
        size = int(np.prod(rest)) * self.dtype.itemsize
        return [DeviceArray(self.cuda, tuple(rest), self.dtype, owner=self, offset=j * size) for j in range(L * two)]

    def numpy(self) -> np.ndarray:
        host = np.empty(self.shape, self.dtype)
        self.cuda.download(host, self.ptr)
        self.cuda.sync()
        return host

    def __del__(self) -> None:
        if getattr(self, "ptr", None) and getattr(self, "owner", None) is None:
            self.cuda.free(self.ptr)
            self.ptr = 0


class _EngineRunner:
    """One deserialized engine, a context per profile, and reusable scratch buffers."""

    def __init__(self, trt: Any, runtime: Any, path: Path, cuda: _Cuda):
        if not path.is_file():
            raise ModelFileError(f"TensorRT engine not found: {path} (build it with `python -m export tensorrt`)")
        self.trt, self.cuda, self.path = trt, cuda, path
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ModelFileError(f"corrupt TensorRT engine {path}, or built by another TensorRT version or GPU: "
                                 "rebuild it with `python -m export tensorrt`")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self.profiles = [Profile({n: tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(n, p))
                                  for n in self.inputs}) for p in range(self.engine.num_optimization_profiles)]
        self.contexts = []
        for p in range(len(self.profiles)):
            ctx = self.engine.create_execution_context()
            ctx.set_optimization_profile_async(p, cuda.handle)
            self.contexts.append(ctx)
        cuda.sync()
        self.scratch: dict[tuple[int, str], DeviceArray] = {}

    def _buffer(self, profile: int, name: str, shape: tuple[int, ...]) -> DeviceArray:
        """A scratch buffer at least this big, kept per (profile, tensor) and grown when needed."""
        need = int(np.prod(shape)) * self.dtypes[name].itemsize
        buf = self.scratch.get((profile, name))
        if buf is None or buf.nbytes < need:
            buf = self.scratch[(profile, name)] = DeviceArray(self.cuda, shape, self.dtypes[name])
        return buf

    def run(self, feeds: dict[str, np.ndarray | DeviceArray], keep: tuple[str, ...] = ()) -> dict[str, Any]:
        """Run once. Host inputs are uploaded, device inputs bound as they are; outputs named
        in `keep` come back as new DeviceArrays (they outlive this call), the rest as numpy."""
        shapes = {n: tuple(v.shape) for n, v in feeds.items()}
        index = pick_profile(self.profiles, shapes)
        ctx = self.contexts[index]
        for name, value in feeds.items():
            ctx.set_input_shape(name, shapes[name])
            if isinstance(value, DeviceArray):
                ctx.set_tensor_address(name, value.ptr)
            else:
                host = np.ascontiguousarray(value, dtype=self.dtypes[name])
                buf = self._buffer(index, name, host.shape)
                self.cuda.upload(buf.ptr, host)
                ctx.set_tensor_address(name, buf.ptr)
        results: dict[str, Any] = {}
        for name in self.outputs:
            shape = tuple(ctx.get_tensor_shape(name))
            buf = DeviceArray(self.cuda, shape, self.dtypes[name]) if name in keep else self._buffer(index, name, shape)
            ctx.set_tensor_address(name, buf.ptr)
            results[name] = (buf, shape)
        if not ctx.execute_async_v3(self.cuda.handle):
            raise RuntimeError(f"TensorRT execution of {self.path.name} failed for shapes {shapes}")
        out: dict[str, Any] = {}
        for name, (buf, shape) in results.items():
            if name in keep:
                out[name] = buf
            else:
                host = np.empty(shape, self.dtypes[name])
                self.cuda.download(host, buf.ptr)
                out[name] = host
        self.cuda.sync()
        return out


def engines_present(model_dir: Path, engine_dir: Path | None = None) -> tuple[bool, str]:
    """Whether built engines exist for this model (no TensorRT import: for the auto choice)."""
    d = Path(engine_dir) if engine_dir is not None else Path(model_dir) / ENGINE_DIR
    missing = [f for f in ("encoder.plan", "denoiser.plan") if not (d / f).is_file()]
    if missing:
        return False, f"no TensorRT engines in {d} (missing {', '.join(missing)})"
    return True, f"TensorRT engines in {d}"


class TensorRTBackend:
    """`DenoiserBackend` over serialized TensorRT engines."""

    name = "tensorrt"

    def __init__(self, model_dir: Path, engine_dir: Path | None = None, device: int = 0):
        trt = import_tensorrt()
        model_dir = Path(model_dir)
        self.engine_dir = Path(engine_dir) if engine_dir is not None else model_dir / ENGINE_DIR
        self.info = ModelInfo.from_file(model_dir / "config.json")
        manifest = self.engine_dir / MANIFEST
        if manifest.is_file():
            built = json.loads(manifest.read_text()).get("tensorrt_version")
            if built and built != trt.__version__:
                log.warning("engines in %s were built with TensorRT %s, running %s: rebuild if loading fails",
                            self.engine_dir, built, trt.__version__)
        self.cuda = _Cuda(device)
        self.logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self.logger)
        self.encoder = _EngineRunner(trt, runtime, self.engine_dir / "encoder.plan", self.cuda)
        self.denoiser = _EngineRunner(trt, runtime, self.engine_dir / "denoiser.plan", self.cuda)

    def encode_context(self, ids: np.ndarray) -> ContextState:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        out = self.encoder.run({"ids": ids}, keep=("kv",))
        return ContextState(kv=out["kv"], first_logits=out["first_logits"][0].astype(np.float32),
                            length=ids.shape[1])

    def denoise_span(self, span_ids: np.ndarray, state: ContextState, rows: np.ndarray | None = None) -> np.ndarray:
        span_ids = np.ascontiguousarray(span_ids, dtype=np.int64)
        if "kv" in self.denoiser.inputs:  # engines built from graphs that take the whole cache
            feeds = {"span_ids": span_ids, "kv": state.kv}
        else:
            feeds = {"span_ids": span_ids,
                     **dict(zip(cache_names(self.info.n_layer), state.kv.layer_views(), strict=True))}
        if "rows" not in self.denoiser.inputs:  # engines built before the graph took rows
            return take_rows(self.denoiser.run(feeds)["logits"].astype(np.float32, copy=False), rows)
        feeds["rows"] = rows_input(span_ids, rows)
        return self.denoiser.run(feeds)["logits"].astype(np.float32, copy=False)
