"""PyTorch -> ONNX export of the denoiser as two graphs sharing one weights file.

`encoder.onnx` is `Denoiser.encode_context` (causal pass over the context, giving
the first span token's logits and every layer's keys/values) and `denoiser.onnx`
is `Denoiser.denoise_span` (one denoising step over a batch of spans attending to
that cache). A third, `decoder_step.onnx`, is `Denoiser.decode_step`: one greedy
autoregressive step with the cache in and the extended cache out, the baseline
the diffusion sampler is measured against (same weights, same runtime). A fourth,
`extender.onnx`, is `Denoiser.extend_context`: the encoder continued from a cache,
so after a keystroke only the context's tokens from the edit on are computed again
(the runtime reuses the rest). All use
the dynamo exporter: the legacy tracer bakes sequence lengths into the attention
reshapes. What is traced is `export/graph_model.py`, the same function as
`runtime/model.py` laid out for fewer ONNX nodes; the parity check compares the
graphs against `runtime/model.py` itself.

The graphs hold the same weights (the exporter folds transposes, so they are
bit-identical copies), and the export directory is committed, so tensors are
written once to `weights.onnx.data` and both graphs point at the same offsets,
matched by content (dtype, shape, bytes), not by name: the exporter names folded
constants differently per graph and merges equal tensors (e.g. fresh LayerNorm
weights) within one graph.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from onnx.external_data_helper import set_external_data
from torch import nn

from export.graph_model import InferenceGraphs
from runtime.model import Denoiser, ModelConfig, load_checkpoint
from runtime.onnx_backend import DECODER_SHARED_FILE, EXTENDER_FILE, cache_names

ENCODER_FILE = "encoder.onnx"
DENOISER_FILE = "denoiser.onnx"
DECODER_STEP_FILE = "decoder_step.onnx"
DATA_FILE = "weights.onnx.data"
SPAN_BUCKETS = [8, 16, 32, 64]
MAX_CONTEXT = 8192  # bounds for the symbolic dims; ORT itself does not enforce them
MAX_SPAN = 512
MAX_BATCH = 256
INLINE_BELOW = 1024  # bytes: small constants (shapes, scalars) stay inside each graph
PAGE = 4096  # big tensors start page-aligned so ORT can memory-map them


def log(msg: str) -> None:
    """Progress goes to stderr so stdout stays for results."""
    print(f"[export] {msg}", file=sys.stderr, flush=True)


class _Encoder(nn.Module):
    """Export wrappers: the exporter traces `forward` (with these argument names), so each
    exposes one entry point of InferenceGraphs."""

    def __init__(self, graphs: InferenceGraphs):
        super().__init__()
        self.graphs = graphs

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.graphs.encode(ids)


class _SpanDenoiser(_Encoder):
    def forward(self, span_ids: torch.Tensor, past: list[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        return self.graphs.denoise(span_ids, past, rows)


class _SharedDecoder(_Encoder):
    def forward(self, ids: torch.Tensor, length: torch.Tensor, past: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return self.graphs.decode_shared(ids, length, past)


class _Extender(_Encoder):
    def forward(self, ids: torch.Tensor, past: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.graphs.extend(ids, past)


class _DecoderStep(_Encoder):
    def forward(self, ids: torch.Tensor, past: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return self.graphs.decode_step(ids, past)


def export_graphs(model: Denoiser, opset: int | None = None) -> dict[str, onnx.ModelProto]:
    """Export the three graphs in memory with dynamic context, span and batch lengths.
    Example sizes are distinct (T=11, S=7, B=3) so no dim gets specialised to another.
    The decoder step is batch 1, one token: the cache it extends is one request's."""
    model = model.eval()
    cfg = model.cfg
    graphs = InferenceGraphs(model).eval()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (1, 11), generator=gen)
    with torch.no_grad():
        _, kv = model.encode_context(ids)
    T = torch.export.Dim("T", min=1, max=MAX_CONTEXT)
    B = torch.export.Dim("B", min=1, max=MAX_BATCH)
    S = torch.export.Dim("S", min=1, max=MAX_SPAN)
    common = dict(dynamo=True, opset_version=opset, verbose=False, external_data=False)
    # The exporter warns about optional torchvision ops and torch-internal deprecations: noise for this model.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
    warnings.filterwarnings("ignore", message=".*axis name: [TB] will not be used")  # cache inputs share T, rows B

    t0 = time.perf_counter()
    log(f"exporting {ENCODER_FILE} ...")
    enc = torch.onnx.export(_Encoder(graphs).eval(), (ids,), input_names=["ids"], output_names=["first_logits", "kv"],
                            dynamic_shapes={"ids": {1: T}}, **common)
    log(f"exported {ENCODER_FILE} in {time.perf_counter() - t0:.1f}s")

    t0 = time.perf_counter()
    log(f"exporting {DENOISER_FILE} ...")
    span = torch.randint(0, cfg.vocab_size, (3, 7), generator=gen)
    rows = torch.tensor([[0, 2, 4, 6, 6], [1, 3, 5, 5, 5], [0, 1, 2, 3, 4]])  # R=5 positions per span row
    R = torch.export.Dim("R", min=1, max=MAX_SPAN)
    past = [kv[i, j] for i in range(cfg.n_layer) for j in (0, 1)]  # what the runtime passes: views of kv
    past_dims = [{2: T}] * len(past)
    den = torch.onnx.export(_SpanDenoiser(graphs).eval(), (span, past, rows),
                            input_names=["span_ids", *cache_names(cfg.n_layer), "rows"], output_names=["logits"],
                            dynamic_shapes={"span_ids": {0: B, 1: S}, "past": past_dims, "rows": {0: B, 1: R}},
                            **common)
    log(f"exported {DENOISER_FILE} in {time.perf_counter() - t0:.1f}s")

    t0 = time.perf_counter()
    log(f"exporting {DECODER_STEP_FILE} ...")
    step = torch.randint(0, cfg.vocab_size, (1, 1), generator=gen)
    dec = torch.onnx.export(_DecoderStep(graphs).eval(), (step, past), input_names=["ids", *cache_names(cfg.n_layer)],
                            output_names=["logits", *cache_names(cfg.n_layer, "next")],
                            dynamic_shapes={"ids": None, "past": past_dims}, **common)
    log(f"exported {DECODER_STEP_FILE} in {time.perf_counter() - t0:.1f}s")

    t0 = time.perf_counter()
    log(f"exporting {DECODER_SHARED_FILE} ...")
    shared = torch.onnx.export(_SharedDecoder(graphs).eval(), (step, torch.tensor([7]), past),
                               input_names=["ids", "length", *cache_names(cfg.n_layer)],
                               output_names=["logits", "new_kv"],
                               dynamic_shapes={"ids": None, "length": None, "past": past_dims}, **common)
    log(f"exported {DECODER_SHARED_FILE} in {time.perf_counter() - t0:.1f}s")

    t0 = time.perf_counter()
    log(f"exporting {EXTENDER_FILE} ...")
    N = torch.export.Dim("N", min=1, max=MAX_CONTEXT)
    tail = torch.randint(0, cfg.vocab_size, (1, 5), generator=gen)
    ext = torch.onnx.export(_Extender(graphs).eval(), (tail, past), input_names=["ids", *cache_names(cfg.n_layer)],
                            output_names=["first_logits", "kv"], dynamic_shapes={"ids": {1: N}, "past": past_dims},
                            **common)
    log(f"exported {EXTENDER_FILE} in {time.perf_counter() - t0:.1f}s")
    return {ENCODER_FILE: _strip_debug(enc.model_proto, "encoder"),
            EXTENDER_FILE: _strip_debug(ext.model_proto, "extender"),
            DENOISER_FILE: _strip_debug(den.model_proto, "denoiser"),
            DECODER_STEP_FILE: _strip_debug(dec.model_proto, "decoder_step"),
            DECODER_SHARED_FILE: _strip_debug(shared.model_proto, "decoder_shared")}


def _strip_debug(proto: onnx.ModelProto, role: str) -> onnx.ModelProto:
    """Drop the exporter's per-node provenance (about 1 KB a node, most of a graph file's size)."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for value in proto.graph.value_info:
        del value.metadata_props[:]
    onnx.helper.set_model_props(proto, {"quicksilver.graph": role})
    return proto


def _raw_bytes(tensor: onnx.TensorProto) -> bytes:
    """The tensor's bytes in raw_data form (converting typed fields if the exporter used them)."""
    if not tensor.HasField("raw_data"):
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))
    return tensor.raw_data


def save_shared(graphs: dict[str, onnx.ModelProto], out_dir: Path, data_name: str = DATA_FILE) -> dict[str, int]:
    """Write each graph with its large initializers moved into one shared data file,
    deduplicated by content. Returns {"tensors": unique tensors, "bytes": data size}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path = out_dir / data_name
    tmp = data_path.with_suffix(".tmp")
    placed: dict[tuple, tuple[int, int]] = {}
    with open(tmp, "wb") as f:
        for proto in graphs.values():
            for tensor in proto.graph.initializer:
                if tensor.data_location == onnx.TensorProto.EXTERNAL:
                    raise ValueError(f"initializer {tensor.name} is already external; export in memory")
                raw = _raw_bytes(tensor)
                if len(raw) < INLINE_BELOW:
                    continue
                key = (tensor.data_type, tuple(tensor.dims), hashlib.sha256(raw).digest())
                if key not in placed:
                    align = PAGE if len(raw) >= PAGE else 64
                    pad = -f.tell() % align
                    f.write(b"\0" * pad)
                    placed[key] = (f.tell(), len(raw))
                    f.write(raw)
                offset, length = placed[key]
                set_external_data(tensor, location=data_name, offset=offset, length=length)
                tensor.ClearField("raw_data")
        size = f.tell()
    tmp.replace(data_path)
    for name, proto in graphs.items():
        onnx.save_model(proto, str(out_dir / name))  # external_data fields are set; nothing is converted again
    return {"tensors": len(placed), "bytes": size}


def write_config(cfg: ModelConfig, out_dir: Path) -> None:
    d = {"vocab_size": cfg.vocab_size, "n_layer": cfg.n_layer, "n_head": cfg.n_head, "d_model": cfg.d_model,
         "mlp_ratio": cfg.mlp_ratio, "rope_theta": cfg.rope_theta, "span_buckets": SPAN_BUCKETS}
    (out_dir / "config.json").write_text(json.dumps(d, indent=2) + "\n")


def export_onnx(weights: Path, out_dir: Path, tokenizer: Path | None = None, opset: int | None = None) -> Path:
    """Export a checkpoint into a model directory the runtime can load without torch."""
    weights, out_dir = Path(weights), Path(out_dir)
    log(f"loading {weights}")
    model, meta = load_checkpoint(weights)
    cfg = model.cfg
    log(f"model: {cfg.n_layer} layers, {cfg.n_head} heads, width {cfg.d_model}, vocab {cfg.vocab_size}, "
        f"{model.num_params() / 1e6:.2f}M params" + (f", step {meta['step']}" if "step" in meta else ""))
    graphs = export_graphs(model, opset)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = save_shared(graphs, out_dir)
    log(f"wrote {', '.join(graphs)} and {DATA_FILE} ({stats['tensors']} shared tensors, "
        f"{stats['bytes'] / 1e6:.1f} MB)")
    write_config(cfg, out_dir)
    target = out_dir / "model.safetensors"
    if not target.exists() or not target.samefile(weights):
        shutil.copyfile(weights, target)
        log(f"copied weights to {target}")
    if tokenizer is not None and Path(tokenizer).resolve() != (out_dir / "tokenizer.json").resolve():
        shutil.copyfile(tokenizer, out_dir / "tokenizer.json")
        log(f"copied tokenizer to {out_dir / 'tokenizer.json'}")
    return out_dir


def check_parity(weights: Path, onnx_dir: Path, ctx_lens: tuple[int, ...] = (3, 17, 64, 320),
                 span_shapes: tuple[tuple[int, int], ...] = ((1, 1), (1, 8), (2, 16), (3, 32), (1, 64)),
                 seed: int = 0, decode_steps: int = 3) -> dict:
    """Largest |torch - ORT| logit difference over random contexts and spans, per graph.
    Goes through `OnnxBackend` and `OnnxStepDecoder`, so the serving code path is what
    gets checked. The decoder step is chained `decode_steps` times on its own cache."""
    from runtime.ar_decoder import OnnxStepDecoder
    from runtime.onnx_backend import OnnxBackend

    model, _ = load_checkpoint(Path(weights))
    model.eval()
    backend = OnnxBackend(Path(onnx_dir))
    decoder = OnnxStepDecoder(Path(onnx_dir)) if (Path(onnx_dir) / DECODER_STEP_FILE).is_file() else None
    rng = np.random.default_rng(seed)
    V = model.cfg.vocab_size
    enc_diff = den_diff = kv_diff = dec_diff = ext_diff = 0.0
    with torch.inference_mode():
        for T in ctx_lens:
            ids = rng.integers(0, V, (1, T), dtype=np.int64)
            ref_logits, ref_kv = model.encode_context(torch.from_numpy(ids))
            state = backend.encode_context(ids)
            enc_diff = max(enc_diff, float(np.abs(state.first_logits - ref_logits[0].numpy()).max()))
            kv_diff = max(kv_diff, float(np.abs(state.kv - ref_kv.numpy()).max()))
            for B, S in span_shapes:
                span = rng.integers(0, V, (B, S), dtype=np.int64)
                ref = model.denoise_span(torch.from_numpy(span), ref_kv).numpy()
                out = backend.denoise_span(span, state)
                if out.shape != ref.shape:
                    raise AssertionError(f"denoiser shape {out.shape} != torch {ref.shape} (T={T}, B={B}, S={S})")
                # and only some positions' logits, as the sampler asks for the masked ones
                rows = np.sort(rng.integers(0, S, (B, max(1, S // 2))), axis=1)
                picked = backend.denoise_span(span, state, rows)
                if picked.shape != (B, rows.shape[1], V):
                    raise AssertionError(f"denoiser rows shape {picked.shape} != {(B, rows.shape[1], V)}")
                den_diff = max(den_diff, float(np.abs(out - ref).max()),
                               float(np.abs(picked - np.take_along_axis(ref, rows[..., None], axis=1)).max()))
            for P in sorted({1, T // 2, T - 1} - {0, T}) if backend.extender is not None else ():
                tail_logits, tail_kv = model.extend_context(torch.from_numpy(ids[:, P:]), ref_kv[..., :P, :])
                ext = backend.extend_context(ids[:, P:], state, P)
                ext_diff = max(ext_diff, float(np.abs(ext.first_logits - tail_logits[0].numpy()).max()),
                               float(np.abs(ext.kv[..., P:, :] - tail_kv.numpy()).max()),
                               float(np.abs(ext.first_logits - ref_logits[0].numpy()).max()))
            kv_t, kv_o = ref_kv, state.kv
            for _ in range(decode_steps if decoder is not None else 0):
                token = int(rng.integers(0, V))
                ref_step, kv_t = model.decode_step(torch.tensor([[token]]), kv_t)
                out_step, kv_o = decoder.step(token, kv_o)
                stacked = decoder.stacked(kv_o)
                if stacked.shape != tuple(kv_t.shape):
                    raise AssertionError(f"decoder step cache {stacked.shape} != torch {tuple(kv_t.shape)} (T={T})")
                dec_diff = max(dec_diff, float(np.abs(out_step - ref_step[0].numpy()).max()),
                               float(np.abs(stacked - kv_t.numpy()).max()))
    result = {"encoder": enc_diff, "kv": kv_diff, "denoiser": den_diff,
              "context_lengths": list(ctx_lens), "span_shapes": [list(s) for s in span_shapes]}
    if decoder is not None:
        result["decoder_step"] = dec_diff
    if backend.extender is not None:
        result["extender"] = ext_diff
    log(f"parity: encoder logits max|diff| {enc_diff:.2e}, kv {kv_diff:.2e}, denoiser logits {den_diff:.2e}"
        + (f", decoder step {dec_diff:.2e}" if decoder is not None else "")
        + (f", extender {ext_diff:.2e}" if backend.extender is not None else "")
        + f" (contexts {list(ctx_lens)}, spans BxS {[f'{b}x{s}' for b, s in span_shapes]})")
    return result
