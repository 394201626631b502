"""Make a trained pair of checkpoints the bundled model, in one step.

    python -m training.bundle --diffusion runs/diff/best.safetensors \
        --stage1 runs/ar/best.safetensors --corpus data/corpus --out models/default

Writes the serving files (ONNX graphs, fp32 and int8, with their shared weights),
the diffusion weights as safetensors (training resumes from them), the stage-1
checkpoint in bfloat16 (the autoregressive baseline of the benchmark, and where
stage 1 resumes), and the corpus manifest. Then run the benchmarks and
`python -m benchmarks.model_card` so the card's numbers are the benchmark's.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from export.onnx import check_parity, export_onnx
from export.quantize import quantize_dir
from runtime.model import load_checkpoint, save_checkpoint

STAGE1_FILE = "stage1_ar.safetensors"


def save_stage1_bf16(weights: Path, out: Path) -> bool:
    """Half the bytes of fp32; loading casts back into the fp32 parameters. An `out` that already
    holds these weights and metadata is left as it is (written again, its bytes differ: 13 MB of
    repository diff for nothing). Returns whether it wrote."""
    model, meta = load_checkpoint(weights)
    model = model.to(torch.bfloat16)
    if out.is_file():
        old, old_meta = load_checkpoint(out)
        new_state, old_state = model.state_dict(), old.to(torch.bfloat16).state_dict()
        if old_meta == meta and all(torch.equal(new_state[k], old_state[k]) for k in new_state):
            return False
    save_checkpoint(model, out, meta)
    return True


def bundle(diffusion: Path, stage1: Path, out: Path, corpus: Path | None, tokenizer: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(diffusion, out, tokenizer=tokenizer)
    quantize_dir(out)
    parity = check_parity(diffusion, out)
    save_stage1_bf16(stage1, out / STAGE1_FILE)
    if corpus is not None and (corpus / "manifest.json").is_file():
        shutil.copyfile(corpus / "manifest.json", out / "corpus_manifest.json")
    return parity


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--diffusion", type=Path, required=True, help="stage-2 checkpoint to serve")
    p.add_argument("--stage1", type=Path, required=True, help="stage-1 checkpoint it was adapted from")
    p.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    p.add_argument("--tokenizer", type=Path, default=Path("models/default/tokenizer.json"))
    p.add_argument("--out", type=Path, default=Path("models/default"))
    args = p.parse_args(argv)
    parity = bundle(args.diffusion, args.stage1, args.out, args.corpus, args.tokenizer)
    print(f"bundled into {args.out}; parity {parity}", file=sys.stderr)


if __name__ == "__main__":
    main()
