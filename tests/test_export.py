"""Export a tiny random model to ONNX once, then check it against torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export needs PyTorch (pip install 'quicksilver-lsp[train]')")
pytest.importorskip("onnxscript", reason="the dynamo ONNX exporter needs onnxscript")

from export.onnx import (  # noqa: E402
    DATA_FILE,
    DECODER_STEP_FILE,
    DENOISER_FILE,
    ENCODER_FILE,
    check_parity,
    export_onnx,
)
from runtime.ar_decoder import OnnxStepDecoder  # noqa: E402
from runtime.model import Denoiser, ModelConfig, save_checkpoint  # noqa: E402
from runtime.onnx_backend import DECODER_SHARED_FILE, EXTENDER_FILE, OnnxBackend  # noqa: E402

CFG = ModelConfig(vocab_size=512, n_layer=2, n_head=2, d_model=32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """(weights, onnx_dir): one export pass per graph for the whole module."""
    torch.manual_seed(0)
    model = Denoiser(CFG)
    with torch.no_grad():  # fresh LayerNorms are all ones (and alike); a trained model's are not
        for p in model.parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    root = tmp_path_factory.mktemp("export")
    weights = root / "ckpt" / "w.safetensors"
    save_checkpoint(model, weights)
    out = export_onnx(weights, root / "onnx")
    return weights, out


def test_files_and_config(exported):
    weights, out = exported
    for name in (ENCODER_FILE, DENOISER_FILE, DECODER_STEP_FILE, DECODER_SHARED_FILE, EXTENDER_FILE, DATA_FILE,
                 "config.json", "model.safetensors"):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert {k: cfg[k] for k in ("vocab_size", "n_layer", "n_head", "d_model", "mlp_ratio", "rope_theta")} == {
        "vocab_size": 512, "n_layer": 2, "n_head": 2, "d_model": 32, "mlp_ratio": 4, "rope_theta": 10000.0}
    assert cfg["span_buckets"] == [8, 16, 32, 64]
    assert (out / "model.safetensors").read_bytes() == weights.read_bytes()


def test_graphs_share_one_weights_file(exported):
    """Each weight is stored once: the data file is about the size of the parameters,
    both graphs reference only it, and the graph files themselves are small."""
    import onnx

    _, out = exported
    param_bytes = sum(p.numel() * 4 for p in Denoiser(CFG).parameters())
    data_size = (out / DATA_FILE).stat().st_size
    assert data_size < 1.2 * param_bytes
    for name in (ENCODER_FILE, DENOISER_FILE, DECODER_STEP_FILE, DECODER_SHARED_FILE, EXTENDER_FILE):
        proto = onnx.load(str(out / name), load_external_data=False)
        locations = {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}
        assert locations == {DATA_FILE}
        assert (out / name).stat().st_size < 0.5 * param_bytes


def test_parity_over_dynamic_shapes(exported):
    """Lengths and batch sizes other than the export's example inputs (T=11, B=3, S=7)."""
    weights, out = exported
    result = check_parity(weights, out, ctx_lens=(3, 9, 40, 130),
                          span_shapes=((1, 1), (1, 8), (2, 16), (4, 33), (1, 64)))
    assert result["encoder"] < 1e-3
    assert result["kv"] < 1e-3
    assert result["denoiser"] < 1e-3
    assert result["decoder_step"] < 1e-3
    assert result["extender"] < 1e-3  # a context continued from a cache equals the full encode


def _full_forward_logits(model: Denoiser, ctx: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Logits over context + span from the training-time full pass with the stage-2 mask."""
    B, S = span.shape
    T = ctx.shape[1]
    ids = torch.from_numpy(np.concatenate([np.repeat(ctx, B, axis=0), span], axis=1))
    with torch.no_grad():
        h = model.forward_infill(ids, torch.full((B,), T), torch.full((B,), S))
        return model.logits(h).numpy()


@pytest.mark.parametrize("T,B,S", [(5, 1, 8), (23, 2, 16)])
def test_kv_cache_path_equals_full_forward(exported, T, B, S):
    """encode_context + denoise_span (torch and ORT) == forward_infill: the cache is exact."""
    from runtime.model import load_checkpoint

    weights, out = exported
    model, _ = load_checkpoint(weights)
    model.eval()
    rng = np.random.default_rng(T)
    ctx = rng.integers(0, CFG.vocab_size, (1, T), dtype=np.int64)
    span = rng.integers(0, CFG.vocab_size, (B, S), dtype=np.int64)
    full = _full_forward_logits(model, ctx, span)  # (B, T+S, V)

    with torch.no_grad():
        first, kv = model.encode_context(torch.from_numpy(ctx))
        steps = model.denoise_span(torch.from_numpy(span), kv).numpy()
    np.testing.assert_allclose(first.numpy()[0], full[0, T - 1], atol=1e-4)
    np.testing.assert_allclose(steps, full[:, T:], atol=1e-4)

    backend = OnnxBackend(out)
    state = backend.encode_context(ctx)
    np.testing.assert_allclose(state.first_logits, full[0, T - 1], atol=1e-3)
    np.testing.assert_allclose(backend.denoise_span(span, state), full[:, T:], atol=1e-3)
    # only the masked positions' logits, as the sampler asks: rows of any order, repeats allowed
    rows = np.stack([rng.permutation(S)[: max(1, S // 2)] for _ in range(B)])
    rows[:, -1] = rows[:, 0]
    picked = backend.denoise_span(span, state, rows)
    np.testing.assert_allclose(picked, np.take_along_axis(full[:, T:], rows[..., None], axis=1), atol=1e-3)
    with torch.no_grad():
        np.testing.assert_allclose(model.denoise_span(torch.from_numpy(span), kv, torch.from_numpy(rows)).numpy(),
                                   picked, atol=1e-3)


def test_missing_weights_data_names_it(exported, tmp_path):
    import shutil

    from runtime.base import ModelFileError

    _, out = exported
    broken = Path(shutil.copytree(out, tmp_path / "broken"))
    (broken / DATA_FILE).unlink()
    with pytest.raises(ModelFileError, match=DATA_FILE):
        OnnxBackend(broken)


def test_graphs_stay_lean(exported):
    """The traced graphs are export/graph_model.py's layout (rotary as one multiply-add, the
    cache per layer, no per-step copies of it): a regression to the ~65 nodes per layer of
    tracing runtime/model.py directly would cost every step its dispatch overhead."""
    import onnx

    _, out = exported
    for name in (ENCODER_FILE, DENOISER_FILE, DECODER_STEP_FILE, DECODER_SHARED_FILE, EXTENDER_FILE):
        proto = onnx.load(str(out / name), load_external_data=False)
        assert len(proto.graph.node) <= 40 * CFG.n_layer + 20, (name, len(proto.graph.node))
    den = onnx.load(str(out / DENOISER_FILE), load_external_data=False)
    assert [i.name for i in den.graph.input] == ["span_ids", "past_k_0", "past_v_0", "past_k_1", "past_v_1", "rows"]


def test_autoregressive_decoding_equals_full_causal_forward(exported):
    """Greedy decoding through encoder.onnx + decoder_step.onnx picks, at every step, the argmax
    of a fresh causal pass over everything so far: the AR baseline's cache is exact too."""
    from runtime.model import load_checkpoint

    weights, out = exported
    model, _ = load_checkpoint(weights)
    model.eval()
    ctx = np.random.default_rng(3).integers(0, CFG.vocab_size, (1, 19), dtype=np.int64)
    decoder = OnnxStepDecoder(out)
    assert decoder.shared is not None  # decoder_shared.onnx: the cache written in place, as served by speed.py
    state = OnnxBackend(out).encode_context(ctx)
    decoded = decoder.generate(state, max_tokens=6)
    assert decoded.steps == 5 and len(decoded.tokens) == 6
    decoder.shared = None  # the same decode through decoder_step.onnx, which returns the cache extended
    assert decoder.generate(state, max_tokens=6) == decoded
    seq = ctx[0].tolist()
    with torch.no_grad():
        for token in decoded.tokens:
            logits = model.logits(model.forward_causal(torch.tensor([seq])))[0, -1]
            assert int(logits.argmax()) == token
            seq.append(token)


def test_decoder_step_stops_and_forbids(exported):
    _, out = exported
    state = OnnxBackend(out).encode_context(np.arange(1, 12, dtype=np.int64)[None])
    decoder = OnnxStepDecoder(out)
    free = decoder.generate(state, max_tokens=4)
    banned = decoder.generate(state, max_tokens=4, forbidden=(free.tokens[0],))
    assert banned.tokens[0] != free.tokens[0]
    seen = []
    stopped = decoder.generate(state, max_tokens=4, stop=lambda t: seen.append(t) or len(seen) == 2)
    assert stopped.tokens == free.tokens[:1] and stopped.steps == 1


def test_int8_variant_beside_fp32(exported, tmp_path):
    """`python -m export quantize` writes *.int8.onnx sharing one smaller data file, served with
    precision int8; logits stay close to fp32 (quantization is lossy, so the bound is loose) and
    the greedy token mostly agrees."""
    import shutil

    from export.__main__ import main
    from export.quantize import INT8_DATA_FILE, int8_parity

    _, out = exported
    model_dir = Path(shutil.copytree(out, tmp_path / "m"))
    assert main(["quantize", "--model", str(model_dir)]) == 0
    for name in ("encoder.int8.onnx", "denoiser.int8.onnx", "decoder_step.int8.onnx", "decoder_shared.int8.onnx",
                 "extender.int8.onnx", INT8_DATA_FILE):
        assert (model_dir / name).is_file(), name
    # smaller, though the embedding table stays fp32 (a lookup: nothing to gain from int8)
    assert (model_dir / INT8_DATA_FILE).stat().st_size < 0.8 * (model_dir / DATA_FILE).stat().st_size
    # int8 takes every projection (4 per layer) and the output head; the rotary pair rotation, an
    # exact signed permutation, stays a float MatMul.
    import onnx

    from export.quantize import head_as_matmul, permutation_matmuls

    assert len(permutation_matmuls(head_as_matmul(onnx.load(str(model_dir / "denoiser.onnx"))))) == CFG.n_layer
    ops = [n.op_type for n in onnx.load(str(model_dir / "denoiser.int8.onnx"), load_external_data=False).graph.node]
    assert ops.count("MatMulInteger") == 4 * CFG.n_layer + 1
    parity = int8_parity(model_dir)
    assert parity["max_abs_logit_diff"] < 0.5 and parity["greedy_agreement"] >= 0.9
    backend = OnnxBackend(model_dir, threads=1, precision="int8")
    assert backend.name == "onnxruntime-cpu-int8"
    state = backend.encode_context(np.arange(1, 9, dtype=np.int64)[None])
    assert backend.denoise_span(np.zeros((1, 8), np.int64), state).shape == (1, 8, CFG.vocab_size)
    rows = np.array([[2, 5, 7]])
    assert backend.denoise_span(np.zeros((1, 8), np.int64), state, rows).shape == (1, 3, CFG.vocab_size)
    assert OnnxStepDecoder(model_dir, precision="int8").generate(state, 3).tokens

    # What the CPU gets when nothing is asked for: the int8 graphs if the model has them.
    from runtime.loader import _load_onnx

    chosen = _load_onnx(model_dir, "cpu", 1, None, "")
    assert chosen.name == "onnxruntime-cpu-int8"
    assert chosen.files == {"encoder": "encoder.int8.onnx", "denoiser": "denoiser.int8.onnx",
                            "extender": "extender.int8.onnx"}
    assert _load_onnx(model_dir, "cpu", 1, "fp32", "").name == "onnxruntime-cpu"
    assert _load_onnx(out, "cpu", 1, None, "").name == "onnxruntime-cpu"  # no int8 graphs: fp32


def test_head_as_matmul_keeps_every_graph_exact(exported):
    """The output projection rewritten as a MatMul on the transposed embedding (so int8 takes it)
    computes the same logits: every graph, fp32, through ONNX Runtime."""
    import onnx
    import onnxruntime as ort

    from export.quantize import GRAPHS, head_as_matmul

    _, out = exported
    rng = np.random.default_rng(0)
    ctx = rng.integers(0, CFG.vocab_size, (1, 9), dtype=np.int64)
    kv = OnnxBackend(out, threads=1).encode_context(ctx).kv
    past = {f"past_{kind}_{i}": kv[i, j] for i in range(CFG.n_layer) for j, kind in enumerate("kv")}
    feeds = {"encoder.onnx": {"ids": ctx}, "extender.onnx": {"ids": ctx[:, :3], **past},
             "denoiser.onnx": {"span_ids": rng.integers(0, CFG.vocab_size, (2, 5), dtype=np.int64), **past,
                               "rows": np.array([[0, 3, 4], [1, 1, 2]], dtype=np.int64)},
             "decoder_step.onnx": {"ids": ctx[:, :1], **past},
             "decoder_shared.onnx": {"ids": ctx[:, :1], "length": np.array([7], dtype=np.int64), **past}}
    for name in GRAPHS:
        model = onnx.load(str(out / name))
        rewritten = head_as_matmul(onnx.load(str(out / name)))
        inits = {t.name for t in rewritten.graph.initializer}
        assert not [n for n in rewritten.graph.node if n.op_type == "Gemm"
                    or (n.op_type == "Transpose" and n.input[0] in inits)], name
        before, after = (ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
                         .run(None, feeds[name])[0] for m in (model, rewritten))
        np.testing.assert_allclose(after, before, rtol=0, atol=1e-5, err_msg=name)


def test_tensorrt_command_without_tensorrt_says_so(exported, capsys):
    import importlib.util

    from export.__main__ import main

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here; tests/test_export_tensorrt.py builds real engines")
    _, out = exported
    assert main(["tensorrt", "--model", str(out)]) == 1
    assert "TensorRT 10 is not installed" in capsys.readouterr().err
