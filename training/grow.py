"""Deepen a trained model without changing what it computes, so training goes on with more capacity.

    python -m training.grow /work/runs/diff25/last.safetensors --n-layer 9 --out grown.safetensors

The bundled 6-layer model stopped improving (validation loss 3.30-3.33 between cool-downs over
5,000 steps): more hours of it buy little. New blocks are inserted between the trained ones,
each a copy of the block before it with its two output projections (attention `proj`, MLP
`down`) set to zero: a block whose residual updates are zero is the identity, so the deeper
model's logits are the trained model's (tested), and training starts from its quality rather
than from scratch (Net2Net's function-preserving deepening, Chen et al. 2016, with copied
blocks as in progressive stacking, Gong et al. 2019: the copies give the new blocks working
features, the zeros keep the function). The result keeps the checkpoint's metadata (tokens, hours, step), so
`training.train --init` continues its counters and the learning curve adds up.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import replace
from pathlib import Path

import torch

from runtime.model import Denoiser, load_checkpoint, save_checkpoint


def insert_positions(old: int, new: int) -> list[int]:
    """Indices (in the old model) after which a new block goes, spread evenly: 6 -> 9 gives [1, 3, 5]."""
    if new < old:
        raise ValueError(f"cannot grow {old} layers into {new}")
    added = new - old
    return [round((i + 1) * old / added) - 1 for i in range(added)]


def deepen(model: Denoiser, n_layer: int) -> Denoiser:
    """A model of n_layer blocks computing what `model` computes: the trained blocks in order, with
    a zero-output copy of the block before each insertion point after it."""
    after = insert_positions(model.cfg.n_layer, n_layer)
    grown = Denoiser(replace(model.cfg, n_layer=n_layer))
    blocks = []
    for i, block in enumerate(model.blocks):
        blocks.append(copy.deepcopy(block))
        for _ in range(after.count(i)):
            twin = copy.deepcopy(block)
            with torch.no_grad():
                twin.attn.proj.weight.zero_()
                twin.mlp.down.weight.zero_()
            blocks.append(twin)
    with torch.no_grad():
        grown.embed.weight.copy_(model.embed.weight)
        grown.ln_f.weight.copy_(model.ln_f.weight)
    grown.blocks = torch.nn.ModuleList(blocks)
    return grown


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--n-layer", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    model, meta = load_checkpoint(args.checkpoint)
    grown = deepen(model, args.n_layer)
    meta["grown_from"] = {"path": str(args.checkpoint), "n_layer": model.cfg.n_layer}
    meta.pop("val_loss", None)  # measured on the smaller model; the next evaluation sets it
    save_checkpoint(grown, args.out, meta)
    print(f"{args.checkpoint} ({model.cfg.n_layer} layers, {model.num_params() / 1e6:.2f}M parameters) -> "
          f"{args.out} ({args.n_layer} layers, {grown.num_params() / 1e6:.2f}M)", file=sys.stderr)


if __name__ == "__main__":
    main()
