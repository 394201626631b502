"""Runtime without torch: ONNX backend errors, backend choice, step-cost estimates.

The model directories here hold hand-built stand-in graphs with the real input and
output signature (logits are one-hot of the ids), so nothing needs torch or an export.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from runtime.base import ModelFileError  # noqa: E402
from runtime.costs import StepCostModel  # noqa: E402
from runtime.loader import (  # noqa: E402
    CPU,
    CUDA,
    TRT,
    BackendUnavailable,
    choose_providers,
    default_model_dir,
    engine_backend_possible,
    load_model,
    split_backend,
)
from runtime.onnx_backend import OnnxBackend  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOKENIZER = REPO / "models" / "default" / "tokenizer.json"
L, H, D, V = 2, 2, 4, 8192


def _const(name: str, values: list[int]) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64,
                                                                              [len(values)], values))


def _write_fake_model(d: Path) -> Path:
    """encoder: first_logits = onehot(last id), kv = ids broadcast to the cache shape;
    denoiser: logits = onehot(span_ids) + mean(kv)."""
    d.mkdir(parents=True, exist_ok=True)
    onehot = [_const("depth", [V]), helper.make_node("Constant", [], ["onoff"], value=helper.make_tensor(
        "onoff", TensorProto.FLOAT, [2], [0.0, 1.0]))]
    enc = helper.make_graph(
        [*onehot, _const("last", [-1]), _const("kvshape", [1, 1, 1, 1, -1, 1]), _const("kvfull", [L, 2, 1, H, 1, D]),
         helper.make_node("Gather", ["ids", "last"], ["last_id"], axis=1),
         helper.make_node("OneHot", ["last_id", "depth", "onoff"], ["oh"], axis=-1),
         helper.make_node("Reshape", ["oh", "depth"], ["first_logits_flat"]),
         helper.make_node("Unsqueeze", ["first_logits_flat", "zero"], ["first_logits"]),
         helper.make_node("Cast", ["ids"], ["idsf"], to=TensorProto.FLOAT),
         helper.make_node("Reshape", ["idsf", "kvshape"], ["kv6"]),
         helper.make_node("Expand", ["kv6", "kvfull"], ["kv"]), _const("zero", [0])],
        "encoder", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, "T"])],
        [helper.make_tensor_value_info("first_logits", TensorProto.FLOAT, [1, V]),
         helper.make_tensor_value_info("kv", TensorProto.FLOAT, [L, 2, 1, H, "T", D])])
    enc.node.sort(key=lambda n: n.op_type != "Constant")  # constants first: nodes must be topologically sorted
    den = helper.make_graph(
        [*onehot, helper.make_node("OneHot", ["span_ids", "depth", "onoff"], ["oh"], axis=-1),
         helper.make_node("ReduceMean", ["kv"], ["m"], keepdims=0),
         helper.make_node("Add", ["oh", "m"], ["logits"])],
        "denoiser", [helper.make_tensor_value_info("span_ids", TensorProto.INT64, ["B", "S"]),
                     helper.make_tensor_value_info("kv", TensorProto.FLOAT, [L, 2, 1, H, "T", D])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", "S", V])])
    for name, graph in (("encoder.onnx", enc), ("denoiser.onnx", den)):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(d / name))
    (d / "config.json").write_text(json.dumps({"vocab_size": V, "n_layer": L, "n_head": H, "d_model": H * D,
                                               "mlp_ratio": 4, "rope_theta": 10000.0, "span_buckets": [8, 16]}))
    shutil.copyfile(TOKENIZER, d / "tokenizer.json")
    return d


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory) -> Path:
    if not TOKENIZER.is_file():
        pytest.skip(f"no tokenizer at {TOKENIZER}")
    return _write_fake_model(tmp_path_factory.mktemp("fake") / "model")


@pytest.fixture
def model_copy(fake_dir, tmp_path) -> Path:
    """A fresh copy to damage."""
    return Path(shutil.copytree(fake_dir, tmp_path / "model"))


# --- OnnxBackend ---------------------------------------------------------------

def test_backend_runs_fake_graphs(fake_dir):
    b = OnnxBackend(fake_dir, threads=1)
    assert b.name == "onnxruntime-cpu"
    assert (b.info.vocab_size, b.info.n_layer, b.info.head_dim) == (V, L, D)
    state = b.encode_context(np.array([[5, 6, 7]]))
    assert state.first_logits.shape == (V,) and state.first_logits.argmax() == 7
    assert isinstance(state.kv, np.ndarray) and state.kv.shape == (L, 2, 1, H, 3, D) and state.length == 3
    logits = b.denoise_span(np.array([[1, 2], [3, 4]]), state)
    assert logits.shape == (2, 2, V) and logits.dtype == np.float32
    assert logits.argmax(-1).tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize("name", ["encoder.onnx", "denoiser.onnx"])
def test_missing_onnx_file_names_it(model_copy, name):
    (model_copy / name).unlink()
    with pytest.raises(ModelFileError, match=name):
        OnnxBackend(model_copy)
    with pytest.raises(ModelFileError, match=name):
        load_model(model_copy)


@pytest.mark.parametrize("name", ["encoder.onnx", "denoiser.onnx"])
def test_corrupt_onnx_file_names_it(model_copy, name):
    (model_copy / name).write_bytes(b"\x00garbage, not a protobuf\xff" * 20)
    with pytest.raises(ModelFileError, match=name):
        load_model(model_copy)


def test_tokenizer_and_config_errors_name_the_file(model_copy):
    (model_copy / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="config.json"):
        load_model(model_copy)
    (model_copy / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="tokenizer.json"):
        load_model(model_copy)
    (model_copy / "tokenizer.json").unlink()
    with pytest.raises(ModelFileError, match="tokenizer.json"):
        load_model(model_copy)
    with pytest.raises(ModelFileError, match="nowhere"):
        load_model(model_copy / "nowhere")


# --- loader --------------------------------------------------------------------

def test_auto_picks_cpu_here_and_logs_why(fake_dir, caplog):
    from runtime.loader import gpu_visible

    if gpu_visible()[0] and {CUDA, TRT} & set(ort.get_available_providers()):
        pytest.skip("this machine has a usable GPU provider")
    with caplog.at_level(logging.INFO, logger="quicksilver.runtime"):
        m = load_model(fake_dir, backend="auto", threads=1)
    assert m.backend.name == "onnxruntime-cpu"
    assert m.info.vocab_size == V and m.model_dir == fake_dir
    assert m.tokenizer.vocab_size == V
    lines = [r.getMessage() for r in caplog.records if r.name == "quicksilver.runtime"]
    assert len(lines) == 1
    assert "onnxruntime-cpu" in lines[0] and ("no GPU provider" in lines[0] or "no NVIDIA driver" in lines[0])


def test_provider_choice_order():
    gpu, no_gpu = (True, "NVIDIA driver found"), (False, "no NVIDIA driver")
    assert choose_providers("auto", [TRT, CUDA, CPU], gpu)[0] == [TRT, CUDA, CPU]
    assert choose_providers("auto", [CUDA, CPU], gpu)[0] == [CUDA, CPU]
    providers, why = choose_providers("auto", [TRT, CUDA, CPU], no_gpu)
    assert providers == [CPU] and "no NVIDIA driver" in why
    providers, why = choose_providers("auto", ["AzureExecutionProvider", CPU], gpu)
    assert providers == [CPU] and "no GPU provider" in why
    assert choose_providers("cpu", [TRT, CUDA, CPU], gpu)[0] == [CPU]
    assert choose_providers("onnxruntime", [CPU], gpu)[0] == [CPU]
    with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
        choose_providers("cuda", [CPU], gpu)
    with pytest.raises(BackendUnavailable, match="TensorRT"):
        choose_providers("tensorrt", [CUDA, CPU], gpu)


def test_unknown_backend_and_default_dir(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="unknown backend"):
        load_model(tmp_path, backend="tpu")
    monkeypatch.setenv("QUICKSILVER_MODEL", str(tmp_path))
    assert default_model_dir() == tmp_path
    monkeypatch.delenv("QUICKSILVER_MODEL")
    assert default_model_dir() == REPO / "models" / "default"


def test_serving_path_never_imports_torch(fake_dir):
    code = ("import sys; from runtime.loader import load_model; from runtime.costs import StepCostModel; "
            f"m = load_model({str(fake_dir)!r}, threads=1); StepCostModel().warm_up(m.backend, max_seconds=0.5); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


# --- step costs ----------------------------------------------------------------

def test_encode_cost_fits_overhead_plus_per_token():
    c = StepCostModel()
    for _ in range(5):
        for T in (64, 256):
            c.observe_encode(T, 2.0 + 0.1 * T)
    assert c.predict_encode_ms(1024) == pytest.approx(2.0 + 102.4, rel=1e-6)
    assert c.predict_encode_ms(0) == pytest.approx(2.0, rel=1e-6)
    for _ in range(30):  # the same cost at one length only: the slope cannot be refitted, so it is kept
        c.observe_encode(128, 2.0 + 12.8)
    assert c.predict_encode_ms(1024) == pytest.approx(2.0 + 102.4, rel=1e-3)
    for _ in range(30):  # then twice as slow at that length: the prediction there follows
        c.observe_encode(128, 2 * (2.0 + 12.8))
    assert c.predict_encode_ms(128) == pytest.approx(29.6, rel=0.02)
    for _ in range(10):  # and a slowdown over varied lengths is refitted as a whole
        for T in (64, 256):
            c.observe_encode(T, 3 * (2.0 + 0.1 * T))
    assert c.predict_encode_ms(512) == pytest.approx(3 * (2.0 + 51.2), rel=0.05)


def test_step_cost_per_bucket_and_batch():
    c = StepCostModel()
    for _ in range(3):
        c.observe_step(16, 1, 5.0)
        c.observe_step(16, 2, 8.0)
    assert c.predict_step_ms(16) == pytest.approx(5.0)
    assert c.predict_step_ms(12, batch=3) == pytest.approx(11.0)  # 12 -> bucket 16
    assert c.predict_step_ms(64) == pytest.approx(20.0)  # unmeasured: nearest bucket scaled by length
    c.observe_step(8, 1, 3.0)
    assert c.predict_step_ms(8, batch=2) == pytest.approx(6.0)  # one batch size seen: proportional guess


def test_ema_tracks_a_slowdown():
    c = StepCostModel(decay=0.8)
    for _ in range(10):
        c.observe_step(32, 1, 10.0)
    for _ in range(20):
        c.observe_step(32, 1, 20.0)
    assert c.predict_step_ms(32) == pytest.approx(20.0, rel=0.02)


def test_steps_within_budget():
    c = StepCostModel()
    assert c.steps_within(100.0, 300, 16) >= 1  # priors before any measurement
    for _ in range(3):
        c.observe_step(16, 1, 5.0)
        c.observe_encode(100, 10.0)
        c.observe_encode(300, 30.0)
    assert c.steps_within(52.0, 300, 16) == 10
    assert c.steps_within(1.0, 300, 16) == 1  # always at least one step
    assert c.steps_within(-5.0, 300, 16) == 1
    assert c.steps_within(52.0, 300, 16, include_encode=True) == 4  # 30 ms of the budget pays for encoding


def test_warm_up_measures_every_bucket(fake_dir):
    c = StepCostModel()
    summary = c.warm_up(OnnxBackend(fake_dir, threads=1), ctx_lens=(16, 64), max_seconds=5.0)
    assert c.encode.seen and all(c.steps[s] for s in (8, 16, 32, 64))
    assert {c.context_bucket(T) for (_, T) in c.cells} == {128}  # both lengths fall in one context bucket
    assert set(summary["step_ms"]) == {8, 16, 32, 64} and set(summary["step_ms_by_context"][32]) == {128, 512, 2048}


def test_step_cost_follows_context_length():
    """Attention over the cache makes steps slower with longer contexts: measured at two
    lengths, a prediction interpolates between them and extends the line beyond."""
    c = StepCostModel()
    for _ in range(3):
        c.observe_step(32, 1, 5.0, ctx_tokens=100)
        c.observe_step(32, 1, 14.0, ctx_tokens=1000)
    assert c.predict_step_ms(32, ctx_tokens=550) == pytest.approx(9.5)
    assert c.predict_step_ms(32, ctx_tokens=2000) == pytest.approx(24.0)
    assert c.predict_step_ms(32, ctx_tokens=50) == pytest.approx(4.5)
    assert c.predict_step_ms(16, ctx_tokens=1000) == pytest.approx(7.0)  # unmeasured bucket: scaled by length
    assert c.steps_within(100.0, 100, 32) == 20
    assert c.steps_within(100.0, 1000, 32) == 7


def test_noisy_decrease_with_context_is_not_extrapolated():
    """Measured slower at the shorter context (load noise): between the points the line is
    followed, beyond the longer one the cost stays at its measurement rather than falling."""
    c = StepCostModel()
    for _ in range(3):
        c.observe_step(32, 1, 12.0, ctx_tokens=64)
        c.observe_step(32, 1, 9.0, ctx_tokens=448)
    assert c.predict_step_ms(32, ctx_tokens=256) == pytest.approx(10.5)
    assert c.predict_step_ms(32, ctx_tokens=2048) == pytest.approx(9.0)
    assert c.predict_step_ms(32, ctx_tokens=10) == pytest.approx(12.0)


def test_steps_are_attributed_to_the_last_encoded_context():
    """The engine reports a step without its context: it is the one encoded just before."""
    c = StepCostModel()
    c.observe_encode(1500, 40.0)
    for _ in range(3):
        c.observe_step(8, 1, 12.0)
    assert c.cells and all(c.context_bucket(T) == 2048 for (_, T) in c.cells)
    c.observe_encode(90, 3.0)
    for _ in range(3):
        c.observe_step(8, 1, 4.0)
    assert c.predict_step_ms(8) == pytest.approx(4.0)  # default context: the last encoded (90 tokens)
    assert c.predict_step_ms(8, ctx_tokens=1500) == pytest.approx(12.0)


def test_backend_names_and_precision():
    assert split_backend("cpu-int8", None) == ("cpu", "int8")
    assert split_backend("auto", "int8") == ("cpu", "int8")
    assert split_backend("auto", None) == ("auto", None)  # chosen once the provider is known
    assert split_backend("cpu-fp32", None) == ("cpu", "fp32")
    assert split_backend("cuda", None) == ("cuda", "fp32")
    assert split_backend("tensorrt-engine", "fp32") == ("tensorrt-engine", "fp32")
    with pytest.raises(ValueError, match="CPU only"):
        split_backend("cuda", "int8")
    with pytest.raises(ValueError, match="unknown precision"):
        split_backend("cpu", "fp8")
    with pytest.raises(ValueError, match="contradict"):
        split_backend("cpu-int8", "fp32")


def test_missing_int8_graphs_name_the_file(fake_dir):
    with pytest.raises(ModelFileError, match="encoder.int8.onnx"):
        load_model(fake_dir, backend="cpu-int8")


def test_tensorrt_engine_backend_needs_gpu_packages_and_engines(fake_dir, tmp_path):
    """The auto choice asks for the engine backend first; here it is ruled out with a reason,
    and asking for it explicitly fails with that reason rather than falling back."""
    assert engine_backend_possible(fake_dir, (False, "no NVIDIA driver")) == (False, "no NVIDIA driver")
    ok, why = engine_backend_possible(fake_dir, (True, "NVIDIA driver found"))
    assert not ok and ("not installed" in why or "no TensorRT engines" in why)
    from runtime.tensorrt_backend import engines_present

    assert engines_present(fake_dir) == (False, f"no TensorRT engines in {fake_dir / 'tensorrt'} "
                                                "(missing encoder.plan, denoiser.plan)")
    (tmp_path / "encoder.plan").write_bytes(b"x")
    (tmp_path / "denoiser.plan").write_bytes(b"x")
    assert engines_present(fake_dir, tmp_path)[0]
    from runtime.loader import gpu_visible

    if not gpu_visible()[0]:
        with pytest.raises(BackendUnavailable, match="tensorrt-engine"):
            load_model(fake_dir, backend="tensorrt-engine")


BUNDLED = REPO / "models" / "default"


@pytest.mark.skipif(not (BUNDLED / "encoder.int8.onnx").is_file(), reason="bundled model has no int8 graphs")
def test_bundled_int8_backend_serves_and_logs(caplog):
    with caplog.at_level(logging.INFO, logger="quicksilver.runtime"):
        m = load_model(BUNDLED, backend="cpu-int8", threads=1)
    assert m.backend.name == "onnxruntime-cpu-int8"
    assert [r.getMessage() for r in caplog.records if r.name == "quicksilver.runtime"] == [
        "backend onnxruntime-cpu-int8: int8 graphs requested (CPU only), intra-op threads=1"]
    state = m.backend.encode_context(np.arange(5, 40, dtype=np.int64)[None])
    logits = m.backend.denoise_span(np.full((1, 8), m.tokenizer.mask_id), state)
    assert logits.shape == (1, 8, m.info.vocab_size) and np.isfinite(logits).all()


def test_bound_steps_match_plain_runs_and_alternate_buffers():
    """The CPU backend's IO-bound steps (BoundDenoiser) give what a plain session run gives, see a
    new context's cache, keep the previous output intact, and bind per thread."""
    import copy
    import threading

    m = load_model(BUNDLED, backend="cpu-int8", threads=1)
    backend = m.backend
    assert backend.binds
    a = backend.encode_context(np.arange(5, 40, dtype=np.int64)[None])
    b = backend.encode_context(np.arange(7, 30, dtype=np.int64)[None])
    span = np.full((2, 8), m.tokenizer.mask_id, dtype=np.int64)
    rows = np.array([[0, 3, 5], [1, 2, 7]])

    unbound = copy.copy(backend)  # the same sessions through the backend's plain session.run path
    unbound.binds = False

    def plain(state, rows=None):
        return unbound.denoise_span(span, state, rows)

    first = backend.denoise_span(span, a, rows)
    second = backend.denoise_span(span, b, rows)  # another context: its cache is bound instead
    np.testing.assert_array_equal(first, plain(a, rows))  # still intact after the next call
    np.testing.assert_array_equal(second, plain(b, rows))
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(backend.denoise_span(span, a), plain(a))  # all rows: another shape
    from_thread = []
    worker = threading.Thread(target=lambda: from_thread.append(backend.denoise_span(span, b, rows).copy()))
    worker.start()
    worker.join()
    np.testing.assert_array_equal(from_thread[0], plain(b, rows))
