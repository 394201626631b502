"""int8 dynamic quantization of an exported model directory, written beside the fp32 graphs.

`encoder.onnx` -> `encoder.int8.onnx` (likewise the denoiser and the decoder step),
all sharing `weights.int8.onnx.data`. Dynamic quantization stores the weights of
every MatMul with a constant operand as int8 (per output channel) and quantizes
activations to uint8 at run time, row by row, so it needs no calibration data;
on CPUs with VNNI (this one has AVX512-VNNI) the products run as int8 dot products.
Attention products (both operands activations) stay fp32, and so do embeddings
and LayerNorms: the quality cost comes only from the projection weights.

Only MatMul is quantized. The quantizer's default also turns the embedding's Gather
into a uint8 table plus DequantizeLinear; the output projection reads that table
transposed, so every denoising step dequantized all 8 MB of it (1 ms) and multiplied
in fp32 without a prepacked weight: int8 steps were no faster than fp32 (0.99x).
Measured here with MatMul only (512-token context, 32-token span): encode 1.44x, step
1.51x, decoder step 1.36x faster than fp32.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx

from export.onnx import DECODER_STEP_FILE, DENOISER_FILE, ENCODER_FILE, log, save_shared
from runtime.onnx_backend import EXTENDER_FILE

INT8_DATA_FILE = "weights.int8.onnx.data"
GRAPHS = (ENCODER_FILE, DENOISER_FILE, DECODER_STEP_FILE, EXTENDER_FILE)


class _NoPreprocessHint(logging.Filter):
    """quantize_dynamic logs a hint to run shape pre-processing (for convolutional models) on
    every call; the exported graphs already carry shapes, so it is noise here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def int8_name(name: str) -> str:
    return name.replace(".onnx", ".int8.onnx")


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
                quantize_dynamic(model_dir / name, out, weight_type=QuantType.QInt8, per_channel=per_channel,
                                 op_types_to_quantize=["MatMul"])
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
