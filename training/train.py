"""Train the denoiser: stage 1 autoregressive FIM, stage 2 masked-diffusion infilling.

    python -m training.train --stage ar --out runs/ar
    python -m training.train --stage diffusion --init runs/ar/best.safetensors --out runs/diff

Resumable: rerunning the same command continues from `<out>/last.safetensors` and
its optimizer state. Checkpoints are written atomically as safetensors with the
model config in their metadata; the best by validation loss is kept as
`best.safetensors`. Metrics go to `<out>/log.jsonl` and stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from runtime.model import Denoiser, ModelConfig, load_checkpoint, save_checkpoint
from runtime.tokenizer import Tokenizer
from training.corpus import load_documents
from training.data import ar_batch, infill_batch
from training.distill import Teacher, relabel


@dataclass
class TrainConfig:
    stage: str = "ar"
    batch: int = 16
    seq_len: int = 320
    lr: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    ctx_loss_weight: float = 0.5  # stage 2: the causal context still learns next tokens
    eval_every: int = 250
    eval_batches: int = 8
    save_every: int = 50
    seed: int = 1234
    cooldown: tuple[int, int] | None = None  # (start, end) steps: lr falls linearly to 0, training ends
    rewarm: tuple[int, int] | None = None  # (first step of this run, steps): ramp lr up again from 0
    bf16: bool = True  # autocast the matrix multiplies to bfloat16 (where the CPU does that natively)
    distill_fraction: float = 0.0  # stage 2 with a teacher: share of spans it fills (training/distill.py)


def bf16_is_fast(n: int = 512, reps: int = 5) -> bool:
    """Whether bfloat16 matrix multiplies beat float32 on this CPU. With AMX or AVX512-BF16 they
    run natively (a step ~2x faster); on an AVX2-only CPU PyTorch falls back to a scalar kernel,
    measured here (AMD EPYC, AVX2): a 512x1024x1024 product 21.9 ms in fp32, 1,611 ms in bf16.
    Best of `reps` after a warm-up: a single timing of a small product once said no on a Xeon
    with AMX (start-up noise), where bf16 runs 1.8x faster and a training step 1.6x."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = {}
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), b.to(dtype)
        x @ y
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - t0)
        best[dtype] = min(times)
    return best[torch.bfloat16] < best[torch.float32]


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then inverse-square-root decay: no horizon, so runs can go on. A cool-down
    (start, end) then takes the rate from its value at `start` linearly to zero at `end`, as
    warmup-stable-decay schedules end: the annealed weights are the ones to ship, and a later run
    can resume from them with the plain schedule. A run that starts from such weights with fresh
    Adam moments re-warms over `rewarm` steps: measured here, jumping straight to the schedule's
    rate raised the validation loss from 3.627 to 3.686 before it fell again."""
    if cfg.rewarm is not None:
        start, n = cfg.rewarm
        ramp = min(1.0, (step - start + 1) / n) if step >= start else 0.0
        return ramp * lr_at(step, replace(cfg, rewarm=None))
    if cfg.cooldown is not None and step >= cfg.cooldown[0]:
        start, end = cfg.cooldown
        return lr_at(start - 1, replace(cfg, cooldown=None)) * max(0.0, (end - step) / (end - start))
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    return cfg.lr * math.sqrt(cfg.warmup / (step + 1))


def ar_loss(model: Denoiser, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = model.logits(model.forward_causal(inputs))
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100)


def infill_loss(model: Denoiser, batch, ctx_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted CE on masked span tokens (shifted by one) plus next-token CE in the context."""
    ids = torch.from_numpy(batch.ids)
    ctx_len = torch.from_numpy(batch.ctx_len)
    h = model.forward_infill(ids, ctx_len, torch.from_numpy(batch.span_len))  # (B, T, C)
    S = batch.span_targets.shape[1]
    pos = (ctx_len[:, None] - 1 + torch.arange(S)[None, :]).clamp(max=ids.shape[1] - 1)  # (B, S)
    h_span = torch.gather(h, 1, pos[:, :, None].expand(-1, -1, h.shape[-1]))
    weights = torch.from_numpy(batch.span_weights)
    targets = torch.from_numpy(batch.span_targets).clamp(min=0)
    ce = F.cross_entropy(model.logits(h_span).float().flatten(0, 1), targets.flatten(), reduction="none")
    span_loss = (ce * weights.flatten()).sum() / weights.sum().clamp(min=1e-6)
    ctx_targets = torch.from_numpy(batch.ctx_targets)
    ctx_loss = F.cross_entropy(model.logits(h).float().flatten(0, 1), ctx_targets.flatten(), ignore_index=-100)
    return span_loss + ctx_weight * ctx_loss, span_loss


LOSSES = {"ar": ar_loss, "diffusion": infill_loss}


def compiled_losses() -> dict:
    """The loss functions through torch.compile (inductor, C++ kernels built with the system
    compiler): it fuses the elementwise work around the bf16 matrix multiplies (rotary
    embeddings, GELU, the cast and log-softmax of the vocabulary logits), which is most of a
    step on a CPU with AMX. Measured here, 2 threads, 16 x 320 tokens: a step 13-15% faster in
    both stages, the same losses; the first steps pay ~15 s of compilation. On an AMD EPYC with
    AVX-512 BF16, stage 2: ~3,250 -> ~3,650 tokens/s (12%)."""
    return {stage: torch.compile(fn, dynamic=False) for stage, fn in LOSSES.items()}


def compute_loss(model, docs, tok, rng, cfg: TrainConfig, losses: dict = LOSSES,
                 teacher=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to optimise, loss to report) for one batch of the configured stage; with a teacher
    (training/distill.py) some of stage 2's spans are the teacher's fillings."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        if cfg.stage == "ar":
            x, y = ar_batch(docs, tok, rng, cfg.batch, cfg.seq_len)
            loss = losses["ar"](model, torch.from_numpy(x), torch.from_numpy(y))
            return loss, loss
        batch = infill_batch(docs, tok, rng, cfg.batch, cfg.seq_len)
        if teacher is not None and cfg.distill_fraction > 0:
            relabel(batch, teacher, rng, cfg.distill_fraction)
        return losses["diffusion"](model, batch, cfg.ctx_loss_weight)


def val_set_id(val_docs: list[str]) -> str:
    """Which validation split the losses are measured on: documents and characters."""
    return f"{len(val_docs)} docs, {sum(map(len, val_docs))} chars"


@torch.no_grad()
def evaluate(model, val_docs, tok, cfg: TrainConfig) -> float:
    """Validation loss on a fixed, seeded set of batches (comparable across runs)."""
    model.eval()
    rng = random.Random(999)
    losses = [compute_loss(model, val_docs, tok, rng, cfg)[1].item() for _ in range(cfg.eval_batches)]
    model.train()
    return float(np.mean(losses))


def save_state(model, opt, out: Path, step: int, tokens: int, train_seconds: float, extra: dict) -> None:
    """Weights and optimizer moments as safetensors, written atomically (no pickle)."""
    from safetensors.torch import save_file

    meta = {"step": step, "tokens": tokens, "train_seconds": train_seconds, **extra}
    save_checkpoint(model, out / "last.safetensors", meta)
    names = {p: n for n, p in model.named_parameters()}
    moments = {}
    for p, st in opt.state.items():
        moments[f"{names[p]}.exp_avg"] = st["exp_avg"].contiguous()
        moments[f"{names[p]}.exp_avg_sq"] = st["exp_avg_sq"].contiguous()
    tmp = out / "optimizer.safetensors.tmp"
    save_file(moments, str(tmp), metadata={"step": str(step)})
    tmp.replace(out / "optimizer.safetensors")


def load_optimizer(model, opt, path: Path, step: int) -> None:
    from safetensors.torch import load_file

    if not path.exists():
        return
    moments = load_file(str(path))
    for n, p in model.named_parameters():
        if f"{n}.exp_avg" in moments:
            opt.state[p] = {"step": torch.tensor(float(step)), "exp_avg": moments[f"{n}.exp_avg"],
                            "exp_avg_sq": moments[f"{n}.exp_avg_sq"]}


def train(args) -> None:
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(stage=args.stage, batch=args.batch, seq_len=args.seq_len, lr=args.lr,
                      eval_every=args.eval_every, save_every=args.save_every,
                      cooldown=tuple(args.cooldown) if args.cooldown else None,
                      distill_fraction=args.distill_fraction if args.teacher else 0.0,
                      bf16=args.precision == "bf16" or (args.precision == "auto" and bf16_is_fast()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.from_file(args.tokenizer)
    docs = [d["text"] for d in load_documents(Path(args.corpus) / "train.jsonl")
            if not args.languages or d.get("lang") in args.languages]
    if not docs:
        raise SystemExit(f"no training documents in {args.corpus} for languages {args.languages}")
    val_docs = [d["text"] for d in load_documents(Path(args.corpus) / "val.jsonl")]
    state = {"step": 0, "tokens": 0, "train_seconds": 0.0, "best_val": float("inf"), "stage": cfg.stage}
    val_set = val_set_id(val_docs)
    if (out / "last.safetensors").exists():
        model, meta = load_checkpoint(out / "last.safetensors")
        kept = (*state, "val_set", "init", "run_start", "seed", "distilled", "val_loss", "val_step")
        state.update({k: meta[k] for k in kept if k in meta})
        print(f"resuming {out} at step {state['step']}", file=sys.stderr)
    elif args.init:
        model, meta = load_checkpoint(Path(args.init))
        if meta.get("stage") == cfg.stage:  # the same stage goes on (e.g. from the bundle): keep its counters
            state.update({k: meta[k] for k in ("step", "tokens", "train_seconds", "best_val", "init", "val_set")
                          if k in meta})
            state["run_start"] = state["step"]  # the optimizer starts afresh here: --rewarm ramps from it
        else:
            state["init"] = {"path": str(args.init), "tokens": meta.get("tokens", 0),
                             "train_seconds": meta.get("train_seconds", 0.0), "stage": meta.get("stage")}
        print(f"initialised from {args.init} (stage {meta.get('stage')}, step {meta.get('step')})", file=sys.stderr)
    else:
        model = Denoiser(ModelConfig(vocab_size=tok.vocab_size, n_layer=args.n_layer,
                                     d_model=args.d_model, n_head=args.n_head))
    if state.get("val_set") != val_set and state["best_val"] < float("inf"):
        # A rebuilt corpus (more packages installed) has another validation split: the checkpoint's
        # best loss was measured on the old one, and a run that kept it might never save a best again.
        print(f"validation split is not the checkpoint's ({val_set}): best validation loss starts over",
              file=sys.stderr)
        state["best_val"] = float("inf")
    state["val_set"] = val_set
    # The data order: a resume keeps its run's seed; a new seed from the same weights gives a sibling run
    # (same schedule, other batches), whose checkpoints average well with the first's (training/average.py).
    state["seed"] = args.seed if args.seed is not None else state.get("seed", TrainConfig.seed)
    cfg = replace(cfg, seed=state["seed"])
    if args.rewarm:
        cfg = replace(cfg, rewarm=(state.get("run_start", 0), args.rewarm))
    teacher = None
    if args.teacher:
        if cfg.stage != "diffusion":
            raise SystemExit("--teacher distils stage 2 (--stage diffusion)")
        teacher = Teacher(Path(args.teacher), steps=args.teacher_steps, threads=args.threads)
        state["distilled"] = {"teacher": str(args.teacher), "teacher_steps": args.teacher_steps,
                              "fraction": cfg.distill_fraction, "from_step": state.get("distilled", {}).get(
                                  "from_step", state["step"])}
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    load_optimizer(model, opt, out / "optimizer.safetensors", state["step"])
    print(f"{model.num_params() / 1e6:.2f}M parameters, stage {cfg.stage}, {len(docs)} train docs, "
          f"{'bf16 autocast' if cfg.bf16 else 'fp32'} ({torch.backends.cpu.get_cpu_capability()})", file=sys.stderr)
    losses = compiled_losses() if args.compile else LOSSES
    log = open(out / "log.jsonl", "a")
    deadline = time.time() + args.max_hours * 3600 if args.max_hours else None
    t_last, tokens_last = time.time(), state["tokens"]
    last_step = min(x for x in (args.max_steps, cfg.cooldown and cfg.cooldown[1], math.inf) if x is not None)
    while state["step"] < last_step:
        step = state["step"]
        rng = random.Random(cfg.seed * 1_000_003 + step)  # deterministic per step, so resumes repeat nothing
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        t0 = time.time()
        loss, report = compute_loss(model, docs, tok, rng, cfg, losses, teacher)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        state["step"] += 1
        state["tokens"] += cfg.batch * cfg.seq_len
        state["train_seconds"] += time.time() - t0
        record = {"step": state["step"], "tokens": state["tokens"], "loss": round(report.item(), 4),
                  "lr": lr_at(step, cfg), "train_hours": round(state["train_seconds"] / 3600, 4)}
        if state["step"] % 10 == 0:
            now = time.time()
            record["tok_per_s"] = round((state["tokens"] - tokens_last) / (now - t_last))
            t_last, tokens_last = now, state["tokens"]
            print(json.dumps(record), file=sys.stderr, flush=True)
        is_eval = state["step"] % cfg.eval_every == 0
        if is_eval:
            record["val_loss"] = round(evaluate(model, val_docs, tok, cfg), 4)
            # the weights' own loss goes into every later save (last.safetensors), with the step it was
            # measured at: the run's best is another checkpoint's
            state["val_loss"], state["val_step"] = record["val_loss"], state["step"]
            print(json.dumps(record), file=sys.stderr, flush=True)
        log.write(json.dumps(record) + "\n")
        log.flush()
        if state["step"] % cfg.save_every == 0 or is_eval:
            extra = {k: v for k, v in state.items() if k not in ("step", "tokens", "train_seconds")}
            eval_meta = {**extra, "step": state["step"], "tokens": state["tokens"],
                         "train_seconds": state["train_seconds"], "val_loss": record.get("val_loss")}
            if is_eval and args.snapshots:  # kept for the learning curve, evaluated later
                save_checkpoint(model, out / "snapshots" / f"step{state['step']:07d}.safetensors", eval_meta)
            if is_eval and record["val_loss"] < state["best_val"]:
                state["best_val"] = extra["best_val"] = eval_meta["best_val"] = record["val_loss"]
                save_checkpoint(model, out / "best.safetensors", eval_meta)
            save_state(model, opt, out, state["step"], state["tokens"], state["train_seconds"], extra)
        if deadline and time.time() > deadline:
            break
    extra = {k: v for k, v in state.items() if k not in ("step", "tokens", "train_seconds")}
    save_state(model, opt, out, state["step"], state["tokens"], state["train_seconds"], extra)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=["ar", "diffusion"], default="ar")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--tokenizer", default="data/tokenizer.json")
    p.add_argument("--out", default="runs/ar")
    p.add_argument("--init", help="checkpoint to start from (stage 2 starts from stage 1's best)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=320)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-layer", type=int, default=6)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-head", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="bf16 autocast or fp32 matrix multiplies; auto: bf16 where this CPU runs it faster")
    p.add_argument("--compile", action="store_true",
                   help="run the loss through torch.compile (needs a C++ compiler; ~15%% faster steps)")
    p.add_argument("--languages", nargs="+", default=None, metavar="LANG",
                   help="train only on documents of these corpus languages (e.g. python, for an anneal on the "
                        "language most requests are in; pass it again on every resume); validation keeps the "
                        "whole split, so losses compare")
    p.add_argument("--seed", type=int, default=None,
                   help=f"data order (default: the resumed run's, else {TrainConfig.seed})")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-hours", type=float, default=None)
    p.add_argument("--cooldown", type=int, nargs=2, metavar=("START", "END"),
                   help="from step START the learning rate falls linearly to 0 at step END, where training stops")
    p.add_argument("--rewarm", type=int, default=0, metavar="STEPS",
                   help="ramp the learning rate up from 0 over STEPS steps from where this run starts "
                        "(for a run initialised from annealed weights, whose optimizer starts afresh)")
    p.add_argument("--teacher", type=Path, default=None, metavar="MODEL_DIR",
                   help="stage 2: an exported model (e.g. models/default) fills some spans in many steps, "
                        "so the model learns to finish in fewer (training/distill.py)")
    p.add_argument("--teacher-steps", type=int, default=8, help="denoising steps of the teacher's fillings")
    p.add_argument("--distill-fraction", type=float, default=0.5, help="share of spans the teacher fills")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--snapshots", action="store_true", help="keep a copy of the weights at every evaluation")
    args = p.parse_args(argv)
    if args.cooldown and not 0 < args.cooldown[0] < args.cooldown[1]:
        p.error(f"--cooldown START END needs 0 < START < END, got {args.cooldown[0]} {args.cooldown[1]}")
    train(args)


if __name__ == "__main__":
    main()
