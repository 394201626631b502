"""int8 dynamic quantization of an exported model directory, written beside the fp32 graphs.

`encoder.onnx` -> `encoder.int8.onnx` (likewise the denoiser and the decoder step),
all sharing `weights.int8.onnx.data`. Dynamic quantization stores the weights of
every MatMul with a constant operand as int8 (per output channel) and quantizes
activations to uint8 at run time, row by row, so it needs no calibration data;
on CPUs with VNNI (this one has AVX512-VNNI) the products run as int8 dot products.
Attention products (both operands activations) stay fp32, and so do embeddings
and LayerNorms: the quality cost comes only from the projection weights.

Only MatMul is quantized, the output projection included (`head_as_matmul`). The
quantizer's default also turns the embedding's Gather into a uint8 table plus
DequantizeLinear; the output projection read that table transposed, so every
denoising step dequantized all 8 MB of it (1 ms) and multiplied in fp32 without a
prepacked weight: int8 steps were no faster than fp32 (0.99x). Measured here (512-token
context, 32-token span, training beside it), against fp32: MatMul only, encode 1.44x,
step 1.51x, decoder step 1.36x; with the output projection in int8 too, a step is
another 1.25x faster. HumanEval pass@1 on 500 tasks: fp32 24, int8 25 passed.
Measured again on 2026-12-07 (bundle of step 21300, engine with the compiler check, budget
off): HumanEval 1033 holes fp32 106, int8 102 (McNemar p = 0.29); exact match on 2000 held-out
lines fp32 139, int8 136 (p = 0.38). The output projection kept in fp32 (the rest int8): 104
and 137, for a denoising step 1.3x slower (512-token context, 32-token span). Not taken.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from export.onnx import DECODER_STEP_FILE, DENOISER_FILE, ENCODER_FILE, log, save_shared
from runtime.onnx_backend import DECODER_SHARED_FILE, EXTENDER_FILE

INT8_DATA_FILE = "weights.int8.onnx.data"
GRAPHS = (ENCODER_FILE, DENOISER_FILE, DECODER_STEP_FILE, DECODER_SHARED_FILE, EXTENDER_FILE)


class _NoPreprocessHint(logging.Filter):
    """quantize_dynamic logs a hint to run shape pre-processing (for convolutional models) on
    every call; the exported graphs already carry shapes, so it is noise here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def int8_name(name: str) -> str:
    return name.replace(".onnx", ".int8.onnx")


def head_as_matmul(model: onnx.ModelProto) -> onnx.ModelProto:
    """The output projection (logits = h @ embed^T) as a MatMul with a constant weight, so the
    quantizer takes it like every other projection. The exporter writes it as Gemm(transB=1) on
    the embedding (encoder, extender, decoder step) or Transpose(embedding) + MatMul (denoiser),
    and the quantizer only takes a MatMul with an initializer; the transposed table is stored
    once (save_shared deduplicates it across graphs). In place; returns the model."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    transposed: dict[str, str] = {}

    def weight_t(name: str) -> str:
        if name not in transposed:
            arr = numpy_helper.to_array(inits[name])
            transposed[name] = f"{name}.T"
            graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(arr.T), transposed[name]))
        return transposed[name]

    nodes = []
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        const = len(node.input) > 1 and node.input[1] in inits and len(inits[node.input[1]].dims) == 2
        if (node.op_type == "Transpose" and node.input[0] in inits and len(inits[node.input[0]].dims) == 2
                and list(attrs.get("perm", [1, 0])) == [1, 0]):
            rename = {node.output[0]: weight_t(node.input[0])}
            for other in graph.node:  # consumers read the transposed initializer instead
                for i, name in enumerate(other.input):
                    if name in rename:
                        other.input[i] = rename[name]
            continue
        if (node.op_type == "Gemm" and const and attrs.get("transB") == 1 and not attrs.get("transA")
                and attrs.get("alpha", 1.0) == 1.0 and len(node.input) == 2):
            nodes.append(onnx.helper.make_node("MatMul", [node.input[0], weight_t(node.input[1])], list(node.output),
                                               name=node.name))
            continue
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def permutation_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMul nodes whose constant operand is a signed permutation (the rotary embedding's pair
    rotation, `export/graph_model.py`): exact in fp32 and tiny, so quantizing them only adds a
    per-call activation quantization and rounding error. They are left in fp32."""
    inits = {t.name: t for t in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type == "MatMul" and len(node.input) > 1 and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            if w.ndim == 2 and np.isin(w, (-1.0, 0.0, 1.0)).all() and (np.abs(w).sum(axis=0) == 1).all():
                names.append(node.name)
    return names


def quantize_dir(model_dir: Path, per_channel: bool = True) -> dict:
    """Quantize every fp32 graph present in model_dir; returns {"graphs": [...], "bytes": data size}."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model_dir = Path(model_dir)
    present = [g for g in GRAPHS if (model_dir / g).is_file()]
    if ENCODER_FILE not in present or DENOISER_FILE not in present:
        raise FileNotFoundError(f"no exported graphs in {model_dir} (need {ENCODER_FILE} and {DENOISER_FILE}); "
                                "run `python -m export onnx` first")
    quantized: dict[str, onnx.ModelProto] = {}
    hint = _NoPreprocessHint()
    logging.getLogger().addFilter(hint)
    try:
        with tempfile.TemporaryDirectory(prefix="qs_int8_") as tmp:
            for name in present:
                out = Path(tmp) / int8_name(name)
                log(f"quantizing {name} -> {out.name} (dynamic, int8 weights{', per channel' if per_channel else ''})")
                fp32 = head_as_matmul(onnx.load(str(model_dir / name)))  # with its external weights
                quantize_dynamic(fp32, out, weight_type=QuantType.QInt8, per_channel=per_channel,
                                 op_types_to_quantize=["MatMul"], nodes_to_exclude=permutation_matmuls(fp32))
                quantized[out.name] = onnx.load(str(out))  # weights are embedded (small); save_shared moves them
    finally:
        logging.getLogger().removeFilter(hint)
    stats = save_shared(quantized, model_dir, data_name=INT8_DATA_FILE)
    log(f"wrote {', '.join(quantized)} and {INT8_DATA_FILE} ({stats['tensors']} shared tensors, "
        f"{stats['bytes'] / 1e6:.1f} MB)")
    return {"graphs": list(quantized), "bytes": stats["bytes"]}


def int8_parity(model_dir: Path, ctx_lens: tuple[int, ...] = (17, 200), span_len: int = 32, seed: int = 0) -> dict:
    """How far int8 logits are from fp32 (ORT both): largest |diff| and how often the
    greedy token agrees. Quantization is lossy: this is reported, not bounded to 1e-3."""
    from runtime.onnx_backend import OnnxBackend

    fp32, int8 = OnnxBackend(model_dir, threads=1), OnnxBackend(model_dir, threads=1, precision="int8")
    rng = np.random.default_rng(seed)
    vocab = fp32.info.vocab_size
    worst, agree, total = 0.0, 0, 0
    for T in ctx_lens:
        ids = rng.integers(0, vocab, (1, T), dtype=np.int64)
        a, b = fp32.encode_context(ids), int8.encode_context(ids)
        span = rng.integers(0, vocab, (1, span_len), dtype=np.int64)
        la, lb = fp32.denoise_span(span, a), int8.denoise_span(span, b)
        worst = max(worst, float(np.abs(la - lb).max()), float(np.abs(a.first_logits - b.first_logits).max()))
        agree += int((la.argmax(-1) == lb.argmax(-1)).sum())
        total += la.shape[0] * la.shape[1]
    result = {"max_abs_logit_diff": worst, "greedy_agreement": agree / total}
    log(f"int8 vs fp32: max|logit diff| {worst:.3f}, greedy token agreement {agree / total:.1%}")
    return result
