"""The public diffusion coders (runtime/hf) on tiny random checkpoints in each real layout.

Parity: our torch module and the ONNX Runtime graphs against a reference forward of the same
architecture with the causal mask removed: transformers' Qwen2 for the Qwen2 layout (Dream,
Dream-Coder, DiffuCoder, Open-dCoder); for LLaDA, which transformers does not implement, an
independent forward written here after modeling_llada.py's LLaDALlamaBlock. Tolerance: 1e-4 on
logits (float32; measured ~1e-5). Then the approximate context cache: exact when refreshed every
step, and how far it drifts without refreshing (printed; run with -s to see the numbers).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hf_checkpoints import FAMILIES, write_checkpoint  # noqa: E402

from completion.mask import context_ids  # noqa: E402
from completion.sampler import SpecialIds, denoise_rows  # noqa: E402
from runtime.base import ModelFileError  # noqa: E402
from runtime.hf.backend import HFBackend, TorchOps  # noqa: E402
from runtime.hf.config import load_config, load_tensors, shard_map  # noqa: E402
from runtime.hf.model import load_hf_model, rotate_half  # noqa: E402
from runtime.hf.prompt import HFTokenizer, split_context  # noqa: E402
from runtime.loader import load_model  # noqa: E402

TOL = 1e-4
torch.set_num_threads(1)  # tiny models: handing work to a second thread costs more than the work on a shared machine
PREFIX, SUFFIX = "def add(a, b):\n    ", "\n\nprint(add(1, 2))\n"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {f: write_checkpoint(root / f, f, seed=i) for i, f in enumerate(FAMILIES)}


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory) -> dict[str, Path]:
    """Each checkpoint exported to ONNX (fp32) into a separate directory (config + tokenizer copied)."""
    from export.hf import export_hf

    root = tmp_path_factory.mktemp("hf_onnx")
    return {f: export_hf(d, root / f) for f, d in checkpoints.items()}


def transformers_qwen2(model_dir: Path):
    """transformers' Qwen2ForCausalLM on the same tensors, eager attention, causal mask removed."""
    transformers = pytest.importorskip("transformers")
    d = json.loads((model_dir / "config.json").read_text())
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "rms_norm_eps", "rope_theta", "tie_word_embeddings", "max_position_embeddings")
    config = transformers.Qwen2Config(**{k: d[k] for k in keys}, attn_implementation="eager")
    model = transformers.Qwen2ForCausalLM(config).eval()
    shards = shard_map(model_dir)
    state = {k: v.float() for k, v in load_tensors(shards, list(shards)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k == "lm_head.weight" for k in missing)  # tied head: shares the embedding
    for layer in model.model.layers:
        layer.self_attn.is_causal = False

    def forward(ids: np.ndarray) -> np.ndarray:
        T = ids.shape[1]
        no_mask = {"full_attention": torch.zeros(1, 1, T, T)}  # a prepared 4D mask is used as is: all visible
        with torch.no_grad():
            return model(input_ids=torch.from_numpy(ids), attention_mask=no_mask).logits.float().numpy()

    return forward


def llada_reference(model_dir: Path):
    """A plain forward of LLaDA's Llama block (modeling_llada.py), written independently of runtime/hf/model.py:
    per-head loops, keys/values repeated per group, ff_out(silu(ff_proj(x)) * up_proj(x))."""
    d = json.loads((model_dir / "config.json").read_text())
    shards = shard_map(model_dir)
    w = {k: v.double() for k, v in load_tensors(shards, list(shards)).items()}
    C, nh, nkv, eps = d["d_model"], d["n_heads"], d["n_kv_heads"], d["rms_norm_eps"]
    hd = C // nh

    def rms(x, weight):
        return weight * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def forward(ids: np.ndarray) -> np.ndarray:
        T = ids.shape[1]
        x = w["model.transformer.wte.weight"][torch.from_numpy(ids[0])]
        inv = 1.0 / (d["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
        cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()
        for i in range(d["n_layers"]):
            p = f"model.transformer.blocks.{i}."
            h = rms(x, w[p + "attn_norm.weight"])
            q, k, v = (h @ w[p + n].T for n in ("q_proj.weight", "k_proj.weight", "v_proj.weight"))
            heads = []
            for head in range(nh):
                kvh = head // (nh // nkv)
                qh, kh = q[:, head * hd:(head + 1) * hd], k[:, kvh * hd:(kvh + 1) * hd]
                qh, kh = qh * cos + rotate_half(qh) * sin, kh * cos + rotate_half(kh) * sin
                att = torch.softmax(qh @ kh.T / math.sqrt(hd), dim=-1)  # no mask: bidirectional
                heads.append(att @ v[:, kvh * hd:(kvh + 1) * hd])
            x = x + torch.cat(heads, -1) @ w[p + "attn_out.weight"].T
            h = rms(x, w[p + "ff_norm.weight"])
            up = torch.nn.functional.silu(h @ w[p + "ff_proj.weight"].T) * (h @ w[p + "up_proj.weight"].T)
            x = x + up @ w[p + "ff_out.weight"].T
        x = rms(x, w["model.transformer.ln_f.weight"])
        return (x @ w["model.transformer.ff_out.weight"].T)[None].float().numpy()

    return forward


def reference(family: str, model_dir: Path):
    return llada_reference(model_dir) if family == "llada" else transformers_qwen2(model_dir)


def random_ids(n: int, vocab: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, (1, n), dtype=np.int64)


@pytest.mark.parametrize("family", FAMILIES)
def test_config_is_read_in_each_real_layout(checkpoints, family):
    cfg = load_config(checkpoints[family])
    assert (cfg.family, cfg.layout, cfg.shifted) == {"dream": ("dream", "qwen2", True),
                                                     "open-dcoder": ("open-dcoder", "qwen2", True),
                                                     "llada": ("llada", "llada", False)}[family]
    assert (cfg.n_layer, cfg.hidden, cfg.n_head, cfg.n_kv_head, cfg.head_dim) == (2, 64, 4, 2, 16)
    tok = HFTokenizer.from_dir(checkpoints[family], cfg)
    mask = {"dream": "<|mask|>", "open-dcoder": "<|mask|>", "llada": "<|mdm_mask|>"}[family]
    assert tok.hf.id_to_token(tok.mask_id) == mask and tok.hf.id_to_token(tok.eos_id) == "<|endoftext|>"
    assert tok.encode("x = '<|mask|>'") == tok.hf.encode("x = '<|mask|>'", add_special_tokens=False).ids
    assert tok.mask_id not in tok.encode(mask)  # a mask string typed in code is text


@pytest.mark.parametrize("family", FAMILIES)
def test_torch_logits_match_the_reference_forward(checkpoints, family):
    model, ref = load_hf_model(checkpoints[family]), reference(family, checkpoints[family])
    for n, seed in ((1, 0), (7, 1), (50, 2)):
        ids = random_ids(n, model.cfg.vocab, seed)
        with torch.no_grad():
            ours = model(torch.from_numpy(ids), torch.zeros(1, dtype=torch.int64))[0].numpy()
        theirs = ref(ids)
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() < TOL, (family, n, np.abs(ours - theirs).max())
    later = ids.copy()
    later[0, -1] = (later[0, -1] + 1) % model.cfg.vocab
    assert np.abs(ref(later)[0, 0] - ref(ids)[0, 0]).max() > 1e-3  # the reference really is bidirectional


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_runtime_matches_torch_and_the_reference(checkpoints, exported, family):
    from runtime.hf.ort import OrtOps

    cfg = load_config(checkpoints[family])
    ort_ops, torch_ops = OrtOps(exported[family], cfg), TorchOps(load_hf_model(checkpoints[family]))
    ref = reference(family, checkpoints[family])
    ids = random_ids(40, cfg.vocab, 3)
    for a, b in zip(ort_ops.context(ids), torch_ops.context(ids), strict=True):
        assert np.abs(a - b.numpy()).max() < TOL
    # a block over the whole sequence with an empty-free cache: positions [10, 19) recomputed, the rest cached
    cache = ort_ops.cut(ort_ops.context(ids), 10, 19)
    logits = ort_ops.block(ids[:, 10:19], 10, cache)
    assert np.abs(logits - ref(ids)[:, 10:19]).max() < TOL


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_backend_refreshed_every_step_is_exact(checkpoints, exported, family, backend):
    """refresh_every=1: each step's logits are the reference's full forward over the family's in-place
    layout, at the span's positions, shifted for the Dream family: the whole pipeline, not just the net."""
    model = load_model(checkpoints[family] if backend == "torch" else exported[family], backend=backend)
    net = model.backend
    net.refresh_every = 1
    tok = model.tokenizer
    ref = reference(family, checkpoints[family])
    state = net.encode_context(context_ids(tok, tok.encode(PREFIX), tok.encode(SUFFIX)))
    request = split_context(context_ids(tok, tok.encode(PREFIX), tok.encode(SUFFIX)), tok)
    span = np.full((1, 8), tok.mask_id, dtype=np.int64)
    for step in range(3):
        out = net.denoise_span(span, state)
        full = ref(request.sequence(span[0]))[0]
        P = request.span_at
        want = full[P - 1:P + 7] if net.cfg.shifted else full[P:P + 8]
        assert np.abs(out[0] - want).max() < TOL, (family, backend, step)
        span[0, step * 3] = int(out[0, step * 3].argmax())  # commit a token, as the sampler would
    assert state.kv.refreshes == 3


def test_layouts_follow_each_family(checkpoints):
    for family, d in checkpoints.items():
        cfg = load_config(d)
        tok = HFTokenizer.from_dir(d, cfg)
        req = split_context(context_ids(tok, tok.encode(PREFIX), tok.encode(SUFFIX)), tok)
        body = tok.encode(PREFIX)
        if family == "open-dcoder":  # prefix + masks + suffix (Open-dLLM eval_infill.py)
            assert req.head.tolist() == body and req.tail.tolist() == tok.encode(SUFFIX)
        else:  # BOS prefix masks suffix EOS (DreamOn's process_infilling_prompt; LLaDA adds its BOS)
            assert req.head.tolist() == [tok.bos_id, *body] and req.tail.tolist() == [*tok.encode(SUFFIX), tok.eos_id]
        noise = split_context(random_ids(30, 300, 5), tok)  # a warm-up's random ids: all prefix
        assert len(noise.head) >= 30


def test_context_cache_refresh_effect(checkpoints, capsys):
    """How far the approximate cache drifts from exact (refreshed every step) decoding on a tiny model:
    token agreement of the greedy sampler and the largest logit difference, per refresh interval."""
    report = {}
    for family, d in checkpoints.items():
        cfg = load_config(d)
        tok = HFTokenizer.from_dir(d, cfg)
        ops = TorchOps(load_hf_model(d))
        ids = SpecialIds.from_tokenizer(tok)
        ctx = context_ids(tok, tok.encode(PREFIX), tok.encode(SUFFIX))
        runs = {}
        for every in (1, 0, 2, 4):
            net = HFBackend(ops, cfg, tok, "torch", refresh_every=every)
            result = denoise_rows(net, net.encode_context(ctx), [16], steps=16, ids=ids)  # one token per step
            runs[every] = result.rows[0]
        # logits drift at the last step: cache from the all-MASK span vs exact
        exact = HFBackend(ops, cfg, tok, "torch", refresh_every=1)
        stale = HFBackend(ops, cfg, tok, "torch", refresh_every=0)
        s_exact, s_stale = exact.encode_context(ctx), stale.encode_context(ctx)
        span = np.full((1, 16), tok.mask_id, dtype=np.int64)
        stale.denoise_span(span, s_stale)  # builds the cache from the all-MASK span
        final = np.array([runs[1]])
        drift = float(np.abs(exact.denoise_span(final, s_exact) - stale.denoise_span(final, s_stale)).max())
        agree = {every: sum(a == b for a, b in zip(runs[every], runs[1], strict=True)) / 16 for every in (0, 2, 4)}
        report[family] = {"token_agreement_with_exact": agree, "max_logit_drift_never_refreshed": drift}
        assert drift > 0 and np.isfinite(drift)  # the approximation is real (its size is what gets reported)
    with capsys.disabled():
        print("\ncontext-cache refresh effect (16-token span, one token per step):", json.dumps(report, indent=1))


@pytest.mark.parametrize(("break_it", "message"), [
    (lambda d: (d / "model-00002-of-00002.safetensors").unlink(), "missing shard model-00002-of-00002.safetensors"),
    (lambda d: (d / "config.json").write_text(json.dumps({"model_type": "mamba", "architectures": ["Mamba"]})),
     "unknown architecture .*model_type='mamba'"),
    (lambda d: (d / "model-00001-of-00002.safetensors").write_bytes(b"\x00" * 64), "corrupt safetensors"),
    (lambda d: (d / "tokenizer.json").unlink(), "tokenizer file not found"),
    (lambda d: (d / "config.json").write_text("{not json"), "corrupt model config"),
])
def test_bad_checkpoints_fail_with_one_clear_error(tmp_path, break_it, message):
    d = write_checkpoint(tmp_path / "dream", "dream")
    break_it(d)
    with pytest.raises(ModelFileError, match=message):
        load_model(d, backend="torch")


def test_pickle_weights_are_refused_and_autoregressive_qwen2_is_named(tmp_path):
    d = write_checkpoint(tmp_path / "llada", "llada")
    for f in d.glob("model*"):
        f.unlink()
    (d / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelFileError, match="pickle weights .*safetensors only"):
        load_model(d, backend="torch")
    q = write_checkpoint(tmp_path / "qwen", "open-dcoder")
    tok = json.loads((q / "tokenizer.json").read_text())
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["content"] != "<|mask|>"]
    (q / "tokenizer.json").write_text(json.dumps(tok))
    (q / "tokenizer_config.json").write_text("{}")
    with pytest.raises(ModelFileError, match="autoregressive Qwen2, not a diffusion coder"):
        load_model(q, backend="torch")
