"""Average checkpoints of one lineage into one (a "model soup").

    python -m training.average A.safetensors B.safetensors [--weights 0.5 0.5] --out soup.safetensors

Checkpoints of one run, or a run and the checkpoint it continued from, sit in one basin of the
loss: their mean is often better than either, at no training cost (Izmailov et al. 2018,
stochastic weight averaging; Wortsman et al. 2022, model soups). The result carries the
counters (step, tokens, CPU time) of the most trained input, since all of that training went
into it, and names its inputs and weights in `averaged_from`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runtime.model import Denoiser, load_checkpoint, save_checkpoint


def average(paths: list[Path], weights: list[float] | None = None) -> tuple[Denoiser, dict]:
    """The weighted mean of the checkpoints' parameters (weights normalised to sum to 1) and
    the metadata of the most trained one, plus `averaged_from`. All must share one config."""
    if not paths:
        raise ValueError("nothing to average")
    weights = [1.0] * len(paths) if weights is None else list(weights)
    if len(weights) != len(paths) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"need one non-negative weight per checkpoint, got {weights} for {len(paths)}")
    total = sum(weights)
    loaded = [load_checkpoint(p) for p in paths]
    base, _ = loaded[0]
    for p, (model, _) in zip(paths[1:], loaded[1:], strict=True):
        if model.cfg != base.cfg:
            raise ValueError(f"{p} has another configuration than {paths[0]}: {model.cfg} vs {base.cfg}")
    states = [m.state_dict() for m, _ in loaded]
    mean = {k: sum(w / total * s[k].float() for w, s in zip(weights, states, strict=True)).to(v.dtype)
            for k, v in states[0].items()}
    soup = Denoiser(base.cfg)
    soup.load_state_dict(mean)
    metas = [meta for _, meta in loaded]
    meta = dict(max(metas, key=lambda m: (m.get("tokens", 0), m.get("step", 0))))
    meta["averaged_from"] = [{"path": str(p), "weight": round(w / total, 6), "step": m.get("step")}
                             for p, w, m in zip(paths, weights, metas, strict=True)]
    for key in ("best_val", "val_loss"):  # measured on one input, not on the mean
        meta.pop(key, None)
    return soup, meta


def validation_loss(model: Denoiser, corpus: Path, tokenizer: Path) -> tuple[float, str]:
    """(stage-2 validation loss, which split) measured as `training.train` measures it during a run."""
    from runtime.tokenizer import Tokenizer
    from training.corpus import load_documents
    from training.train import TrainConfig, bf16_is_fast, evaluate, val_set_id

    val_docs = [d["text"] for d in load_documents(Path(corpus) / "val.jsonl")]
    cfg = TrainConfig(stage="diffusion", bf16=bf16_is_fast())
    return evaluate(model, val_docs, Tokenizer.from_file(str(tokenizer)), cfg), val_set_id(val_docs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", type=Path, nargs="+")
    p.add_argument("--weights", type=float, nargs="+", help="one per checkpoint (default: equal)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--corpus", type=Path, default=None,
                   help="measure the mean's validation loss on this corpus's split (as training does)")
    p.add_argument("--tokenizer", type=Path, default=Path("models/default/tokenizer.json"))
    args = p.parse_args(argv)
    try:
        soup, meta = average(args.checkpoints, args.weights)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta.pop("config", None)
    if args.corpus is not None:
        meta["val_loss"], meta["val_set"] = validation_loss(soup, args.corpus, args.tokenizer)
        meta["val_loss"] = round(meta["val_loss"], 4)
        print(f"validation loss {meta['val_loss']} ({meta['val_set']})", file=sys.stderr)
    save_checkpoint(soup, args.out, meta)
    print(f"wrote {args.out}: mean of {len(args.checkpoints)} checkpoints (step {meta.get('step')})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
