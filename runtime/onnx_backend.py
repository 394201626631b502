"""ONNX Runtime backend: what serving uses, so a completion server needs no torch.

Runs the two exported graphs (`encoder.onnx`, `denoiser.onnx`, see export/onnx.py).
The context's keys/values stay a numpy array between calls: on CPU that is the
session's own memory format, so nothing is copied per denoising step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runtime.base import ContextState, ModelFileError, ModelInfo

ENCODER_FILE = "encoder.onnx"
DENOISER_FILE = "denoiser.onnx"
_PROVIDER_NAMES = {
    "CPUExecutionProvider": "onnxruntime-cpu",
    "CUDAExecutionProvider": "onnxruntime-cuda",
    "TensorrtExecutionProvider": "onnxruntime-tensorrt",
}


def session_options(threads: int | None = None) -> Any:
    """Sequential execution with all graph optimisations; one request at a time is
    the serving pattern, so parallelism goes inside ops (intra-op threads)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3  # errors only: ORT warns about unused initializers and provider fallbacks
    return opts


def open_session(path: Path, opts: Any, providers: list | None = None) -> Any:
    """An InferenceSession, or ModelFileError naming the file that is missing or unreadable."""
    import onnxruntime as ort

    if not path.is_file():
        raise ModelFileError(f"ONNX model not found: {path}")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own pybind exception types (InvalidProtobuf, Fail, ...)
        raise ModelFileError(f"corrupt or unreadable ONNX model {path}: {exc}") from exc


class OnnxBackend:
    """`DenoiserBackend` over ONNX Runtime; CPU unless other providers are given."""

    name = "onnxruntime-cpu"

    def __init__(self, model_dir: Path, threads: int | None = None, providers: list | None = None):
        model_dir = Path(model_dir)
        self.model_dir = model_dir
        self.info = ModelInfo.from_file(model_dir / "config.json")
        opts = session_options(threads)
        self.encoder = open_session(model_dir / ENCODER_FILE, opts, providers)
        self.denoiser = open_session(model_dir / DENOISER_FILE, opts, providers)
        self.providers: list[str] = self.denoiser.get_providers()
        self.name = _PROVIDER_NAMES.get(self.providers[0], f"onnxruntime-{self.providers[0]}")
        self._check_signature()

    def _check_signature(self) -> None:
        """Fail at load, naming the file, if a graph is not the one this code was written for."""
        expect = {ENCODER_FILE: (self.encoder, ["ids"], ["first_logits", "kv"]),
                  DENOISER_FILE: (self.denoiser, ["span_ids", "kv"], ["logits"])}
        for fname, (sess, inputs, outputs) in expect.items():
            got_in = [i.name for i in sess.get_inputs()]
            got_out = [o.name for o in sess.get_outputs()]
            if got_in != inputs or got_out != outputs:
                raise ModelFileError(f"unexpected graph signature in {self.model_dir / fname}: "
                                     f"inputs {got_in}, outputs {got_out} (want {inputs} -> {outputs})")

    def encode_context(self, ids: np.ndarray) -> ContextState:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        first_logits, kv = self.encoder.run(None, {"ids": ids})
        return ContextState(kv=kv, first_logits=first_logits[0], length=ids.shape[1])

    def denoise_span(self, span_ids: np.ndarray, state: ContextState) -> np.ndarray:
        span_ids = np.ascontiguousarray(span_ids, dtype=np.int64)
        (logits,) = self.denoiser.run(None, {"span_ids": span_ids, "kv": state.kv})
        return logits
