"""Export commands:

    python -m export onnx --weights W.safetensors --out DIR [--check] [--int8]
    python -m export onnx --hf CHECKPOINT_DIR --out DIR [--check] [--int8] [--fp16]
    python -m export quantize --model DIR
    python -m export tensorrt --model DIR [--route engine|ort|both] [--out DIR] [--no-fp16]
    (for an --hf export: --route ort)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m export", description="Export a Quicksilver checkpoint.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("onnx", help="export encoder.onnx, denoiser.onnx, decoder_step.onnx (shared weights.onnx.data)")
    p.add_argument("--weights", type=Path, default=None, help="checkpoint .safetensors (Quicksilver's own model)")
    p.add_argument("--hf", type=Path, default=None, metavar="DIR",
                   help="a public diffusion coder's checkpoint directory (Dream, DiffuCoder, Open-dCoder, LLaDA)")
    p.add_argument("--fp16", action="store_true", help="with --hf: also write fp16 graphs (for GPUs)")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--tokenizer", type=Path, default=None, help="tokenizer.json to copy into the model directory")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--check", action="store_true", help="compare ORT against torch on random inputs")
    p.add_argument("--int8", action="store_true", help="also write the int8 dynamically quantized graphs")

    q = sub.add_parser("quantize", help="write int8 dynamically quantized graphs beside the fp32 ones")
    q.add_argument("--model", type=Path, required=True, help="model directory holding the fp32 graphs")
    q.add_argument("--per-tensor", action="store_true", help="one scale per weight matrix (default: per channel)")

    t = sub.add_parser("tensorrt", help="build TensorRT engines (needs an NVIDIA GPU and TensorRT 10)")
    t.add_argument("--model", type=Path, required=True, help="model directory holding the ONNX graphs")
    t.add_argument("--route", choices=("engine", "ort", "both"), default="engine",
                   help="engine: serialized .plan files via the TensorRT API; ort: ONNX Runtime's TensorRT "
                        "provider engine cache")
    t.add_argument("--out", type=Path, default=None, help="engine directory (default: MODEL/tensorrt; "
                                                          "with --route ort the cache, default MODEL/trt_cache)")
    t.add_argument("--no-fp16", action="store_true", help="build FP32 engines")
    t.add_argument("--workspace-mb", type=int, default=2048, help="builder workspace limit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from runtime.base import BackendUnavailable, ModelFileError

    try:
        if args.command == "onnx":
            return _onnx(args)
        if args.command == "quantize":
            from export.quantize import int8_parity, quantize_dir

            quantize_dir(args.model, per_channel=not args.per_tensor)
            print(json.dumps(int8_parity(args.model)))
            return 0
        return _tensorrt(args)
    except (FileNotFoundError, ValueError, ModelFileError, BackendUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _onnx(args: argparse.Namespace) -> int:
    if (args.weights is None) == (args.hf is None):
        raise ValueError("give exactly one of --weights (Quicksilver's checkpoint) and --hf (a checkpoint directory)")
    if args.hf is not None:
        return _onnx_hf(args)
    from export.onnx import check_parity, export_onnx, log

    out = export_onnx(args.weights, args.out, tokenizer=args.tokenizer, opset=args.opset)
    result: dict = {}
    if args.int8:
        from export.quantize import int8_parity, quantize_dir

        quantize_dir(out)
        result["int8"] = int8_parity(out)
    for f in sorted(out.iterdir()):
        if f.is_file():
            log(f"  {f.name:<24} {f.stat().st_size / 1e6:8.2f} MB")
    if args.check:
        result.update(check_parity(args.weights, out))
    if result:
        print(json.dumps(result))
    return 0


def _onnx_hf(args: argparse.Namespace) -> int:
    from export.hf import check_hf_parity, export_hf

    out = export_hf(args.hf, args.out, fp16=args.fp16, int8=args.int8, opset=args.opset)
    result: dict = {}
    if args.check:
        for precision in ("fp32", *(("fp16",) if args.fp16 else ()), *(("int8",) if args.int8 else ())):
            result[precision] = check_hf_parity(args.hf, out, precision)
        print(json.dumps(result))
    return 0


def _tensorrt(args: argparse.Namespace) -> int:
    from runtime.hf.config import is_hf_dir

    if is_hf_dir(args.model):  # the public diffusion coders: ONNX Runtime's TensorRT provider route
        if args.route != "ort":
            raise ValueError(f"{args.model} holds a Hugging Face model's graphs: use --route ort (ONNX Runtime's "
                             "TensorRT provider serves them; serialized engines are for Quicksilver's own graphs)")
        from export.hf import build_hf_ort_trt_cache

        print(json.dumps({"ort": build_hf_ort_trt_cache(args.model, args.out, fp16=not args.no_fp16)}))
        return 0
    from export.tensorrt import build_engines, build_ort_cache

    result: dict = {}
    if args.route in ("engine", "both"):
        out = args.out if args.route == "engine" else None
        result["engine"] = build_engines(args.model, out, fp16=not args.no_fp16, workspace_mb=args.workspace_mb)
    if args.route in ("ort", "both"):
        out = args.out if args.route == "ort" else None
        result["ort"] = build_ort_cache(args.model, out, fp16=not args.no_fp16)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
