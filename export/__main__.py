"""`python -m export onnx --weights W.safetensors --out DIR [--check]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export", description="Export a Quicksilver checkpoint.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("onnx", help="export encoder.onnx + denoiser.onnx (shared weights.onnx.data)")
    p.add_argument("--weights", type=Path, required=True, help="checkpoint .safetensors")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--tokenizer", type=Path, default=None, help="tokenizer.json to copy into the model directory")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--check", action="store_true", help="compare ORT against torch on random inputs")
    args = parser.parse_args(argv)

    from export.onnx import check_parity, export_onnx, log

    try:
        out = export_onnx(args.weights, args.out, tokenizer=args.tokenizer, opset=args.opset)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for f in sorted(out.iterdir()):
        log(f"  {f.name:<20} {f.stat().st_size / 1e6:8.2f} MB")
    if args.check:
        result = check_parity(args.weights, out)
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
