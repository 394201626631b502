"""ONNX Runtime backend: what serving uses, so a completion server needs no torch.

Runs the two exported graphs (`encoder.onnx`, `denoiser.onnx`, see export/onnx.py),
in fp32 or as their int8 dynamically quantized variants (`encoder.int8.onnx`, ...,
written by `python -m export quantize`; the CPU default when present, see
runtime/loader.py). The context's keys/values stay a numpy
array between calls: on CPU that is the session's own memory format, so nothing
is copied per denoising step.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from runtime.base import ContextState, ModelFileError, ModelInfo, rows_input, take_rows

ENCODER_FILE = "encoder.onnx"
DENOISER_FILE = "denoiser.onnx"
DECODER_STEP_FILE = "decoder_step.onnx"
DECODER_SHARED_FILE = "decoder_shared.onnx"  # optional: the step over a cache buffer written in place
EXTENDER_FILE = "extender.onnx"  # optional: models exported before it re-encode every context in full
PRECISIONS = ("fp32", "int8")
_PROVIDER_NAMES = {
    "CPUExecutionProvider": "onnxruntime-cpu",
    "CUDAExecutionProvider": "onnxruntime-cuda",
    "TensorrtExecutionProvider": "onnxruntime-tensorrt",
}


def cache_names(n_layer: int, prefix: str = "past") -> list[str]:
    """The per-layer cache inputs of denoiser.onnx / decoder_step.onnx: past_k_0, past_v_0, past_k_1, ..."""
    return [f"{prefix}_{kind}_{i}" for i in range(n_layer) for kind in ("k", "v")]


def cache_feeds(kv: np.ndarray, n_layer: int) -> dict[str, np.ndarray]:
    """Views of the encoder's (L, 2, 1, nh, T, hs) cache as the per-layer inputs: no copy
    (each kv[i, j] is contiguous, and ONNX Runtime reads contiguous numpy inputs in place)."""
    return {f"past_{kind}_{i}": kv[i, j] for i in range(n_layer) for j, kind in enumerate("kv")}


def graph_file(name: str, precision: str = "fp32") -> str:
    """encoder.onnx -> encoder.int8.onnx for the quantized variant."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return name if precision == "fp32" else name.replace(".onnx", f".{precision}.onnx")


def session_options(threads: int | None = None) -> Any:
    """Sequential execution with all graph optimisations; one request at a time is
    the serving pattern, so parallelism goes inside ops (intra-op threads).

    Intra-op threads spin between the ops of a run (a step is ~150 small ops, and
    waking a parked thread for each costs more than the op) but stop spinning when
    the run ends (`force_spinning_stop`), so an idle server burns no CPU and a
    training job or a build beside it gets the cores back. Measured here (AMD EPYC,
    2 threads), a 32-token denoising step over a 512-token context, four back to
    back as in a completion: idle 2.47 ms never spinning, 1.85 ms spinning within
    runs; with a training job on both cores 6.1 ms and 4.8 ms (5.0-6.0 ms when the
    threads also spin after runs, ORT's default).

    Denormals are flushed to zero: the causal mask's tail makes softmax produce
    subnormal floats, which x86 handles in microcode. Measured here, 512-token
    context encode: softmax 19.6 ms -> 3.3 ms of a 55 ms run. The change to logits is
    below float32 rounding of anything a sampler looks at."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")
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


def providers_for(providers: list | None, graph: str, info: ModelInfo) -> list | None:
    """Give the TensorRT provider, if listed, this graph's optimization profiles
    (runtime/trt_profiles.py): without them it builds an engine per new shape."""
    if not providers:
        return providers
    from runtime.trt_profiles import ort_profile_options

    out: list = []
    for p in providers:
        name, opts = (p, {}) if isinstance(p, str) else p
        if name == "TensorrtExecutionProvider":
            out.append((name, {**opts, **ort_profile_options(graph, info)}))
        else:
            out.append(p)
    return out


def check_signature(sess: Any, path: Path, inputs: list[str], outputs: list[str]) -> None:
    """Fail at load, naming the file, if a graph is not the one this code was written for."""
    got_in = [i.name for i in sess.get_inputs()]
    got_out = [o.name for o in sess.get_outputs()]
    if got_in != inputs or got_out != outputs:
        raise ModelFileError(f"unexpected graph signature in {path}: "
                             f"inputs {got_in}, outputs {got_out} (want {inputs} -> {outputs})")


class BoundDenoiser:
    """One thread's IO binding of denoiser.onnx: the cache is bound once per context, not per
    step, and the logits land in one of two reused buffers instead of a fresh array per step.
    A sampler's steps read each output once before the next, so two alternating buffers let a
    caller keep one output while asking for another (a parity check) without copying either.
    Measured here (Xeon with AMX, 2 threads, int8, context 512, side by side), a 32-token
    four-step decode: 14.5-15.1 -> 13.8-14.0 ms p50, the same four graph runs replayed bare
    11.6-11.8 ms: a fresh 1 MB output per step cost more than the sampler's own numpy work.
    The autoregressive decoder gains nothing from the same binding (its output is the whole
    cache, new every step)."""

    def __init__(self, session: Any, n_layer: int, vocab_size: int):
        self.session, self.n_layer, self.vocab_size = session, n_layer, vocab_size
        self.binding = session.io_binding()
        self.kv: np.ndarray | None = None  # the cache bound now
        self.views: list[np.ndarray] = []  # what the binding points into (no copy): kept alive here
        self.buffers = [np.empty(0, np.float32), np.empty(0, np.float32)]
        self.turn = 0

    def run(self, span_ids: np.ndarray, kv: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(B, R, V) logits, valid until this thread's second next call."""
        binding = self.binding
        if self.kv is not kv:
            self.views = []
            for name, view in cache_feeds(kv, self.n_layer).items():
                self.views.append(np.ascontiguousarray(view))  # a view as it is: every cache here is contiguous
                binding.bind_cpu_input(name, self.views[-1])
            self.kv = kv
        binding.bind_cpu_input("span_ids", span_ids)
        binding.bind_cpu_input("rows", rows)
        shape = (span_ids.shape[0], rows.shape[1], self.vocab_size)
        n = shape[0] * shape[1] * shape[2]
        self.turn ^= 1
        if self.buffers[self.turn].size < n:
            self.buffers[self.turn] = np.empty(n, np.float32)
        out = self.buffers[self.turn][:n].reshape(shape)
        binding.bind_output("logits", "cpu", 0, np.float32, list(shape), out.ctypes.data)
        self.session.run_with_iobinding(binding)
        return out


class OnnxBackend:
    """`DenoiserBackend` over ONNX Runtime; CPU unless other providers are given."""

    name = "onnxruntime-cpu"

    def __init__(self, model_dir: Path, threads: int | None = None, providers: list | None = None,
                 precision: str = "fp32"):
        model_dir = Path(model_dir)
        self.model_dir = model_dir
        self.precision = precision
        self.info = ModelInfo.from_file(model_dir / "config.json")
        opts = session_options(threads)
        enc_path, den_path, ext_path = (model_dir / graph_file(g, precision)
                                        for g in (ENCODER_FILE, DENOISER_FILE, EXTENDER_FILE))
        # The graph files served, by role: which precision each role runs is visible (and tested).
        self.files = {"encoder": enc_path.name, "denoiser": den_path.name,
                      **({"extender": ext_path.name} if ext_path.is_file() else {})}
        self.encoder = open_session(enc_path, opts, providers_for(providers, "encoder", self.info))
        self.denoiser = open_session(den_path, opts, providers_for(providers, "denoiser", self.info))
        self.extender = (open_session(ext_path, opts, providers_for(providers, "extender", self.info))
                         if ext_path.is_file() else None)
        self.extends = self.extender is not None
        self.providers: list[str] = self.denoiser.get_providers()
        self.name = _PROVIDER_NAMES.get(self.providers[0], f"onnxruntime-{self.providers[0]}")
        if precision != "fp32":
            self.name += f"-{precision}"
        check_signature(self.encoder, enc_path, ["ids"], ["first_logits", "kv"])
        # Older exports are still served: before the per-layer cache inputs the whole cache was one
        # input "kv"; before "rows" the graph computed every span position's logits.
        den_inputs = [i.name for i in self.denoiser.get_inputs()]
        self.per_layer = den_inputs[:2] != ["span_ids", "kv"]
        self.selects_rows = den_inputs[-1] == "rows"
        check_signature(self.denoiser, den_path,
                        [*(["span_ids", *cache_names(self.info.n_layer)] if self.per_layer else ["span_ids", "kv"]),
                         *(["rows"] if self.selects_rows else [])], ["logits"])
        # Current exports on the CPU run their steps through a per-thread IO binding (BoundDenoiser).
        self.binds = self.per_layer and self.selects_rows and self.providers[0] == "CPUExecutionProvider"
        self._bound = threading.local()
        if self.extender is not None:
            check_signature(self.extender, ext_path, ["ids", *cache_names(self.info.n_layer)], ["first_logits", "kv"])

    def encode_context(self, ids: np.ndarray) -> ContextState:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        first_logits, kv = self.encoder.run(None, {"ids": ids})
        return ContextState(kv=kv, first_logits=first_logits[0], length=ids.shape[1])

    def extend_context(self, ids: np.ndarray, state: ContextState, keep: int) -> ContextState:
        """The context of `state`'s first `keep` tokens followed by ids (1, N): what encode_context
        over the whole would give, computing only the N new tokens (see runtime/base.py)."""
        if self.extender is None:
            raise NotImplementedError(f"{self.model_dir} has no {EXTENDER_FILE}; re-export the model to get it")
        if not 0 < keep <= state.length:
            raise ValueError(f"keep={keep} outside the cached context (1..{state.length})")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        past = np.ascontiguousarray(state.kv[..., :keep, :])  # one copy; the per-layer inputs are views of it
        first_logits, tail = self.extender.run(None, {"ids": ids, **cache_feeds(past, self.info.n_layer)})
        return ContextState(kv=np.concatenate((past, tail), axis=4), first_logits=first_logits[0],
                            length=keep + ids.shape[1])

    def denoise_span(self, span_ids: np.ndarray, state: ContextState, rows: np.ndarray | None = None) -> np.ndarray:
        """Logits as the protocol says; on the CPU they live in a buffer that this thread's
        second next call overwrites (BoundDenoiser): copy them to keep them longer."""
        span_ids = np.ascontiguousarray(span_ids, dtype=np.int64)
        if self.binds:
            bound = getattr(self._bound, "denoiser", None)
            if bound is None:
                bound = self._bound.denoiser = BoundDenoiser(self.denoiser, self.info.n_layer, self.info.vocab_size)
            return bound.run(span_ids, state.kv, rows_input(span_ids, rows))
        feeds = {"span_ids": span_ids,
                 **(cache_feeds(state.kv, self.info.n_layer) if self.per_layer else {"kv": state.kv})}
        if not self.selects_rows:
            return take_rows(self.denoiser.run(None, feeds)[0], rows)
        feeds["rows"] = rows_input(span_ids, rows)
        return self.denoiser.run(None, feeds)[0]
