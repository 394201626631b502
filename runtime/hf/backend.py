"""`DenoiserBackend` for the public diffusion coders, with an approximate context cache.

These models attend bidirectionally, so no position's keys and values are exact until
the span is final: every denoising step would need a forward pass over the whole
prefix + span + suffix. Like Fast-dLLM's prefix/dual cache, the backend instead runs
that full pass once per request (at the first step, when the span is all MASKs),
keeps the keys/values of every position outside the span, and each step recomputes
only the span (plus, for the shifted families, the one position before it whose
hidden state predicts span token 0) against that cache. `refresh_every=N` re-runs
the full pass every N steps with the span as it stands; N=1 is exact (tested against
the full forward), 0 (the default) never refreshes. Set it with
QUICKSILVER_CACHE_REFRESH=N.

The span's logits come back already aligned (row j predicts span token j), and the
returned ContextState says so (`aligned=True`) so the sampler does not shift them again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from runtime.base import BackendUnavailable, ContextState, ModelFileError, ModelInfo, take_rows
from runtime.hf.config import HFConfig, load_config
from runtime.hf.prompt import HFTokenizer, Request, split_context

log = logging.getLogger("quicksilver.runtime")
REFRESH_ENV = "QUICKSILVER_CACHE_REFRESH"


class Ops(Protocol):
    """The two computations a backend runs, in its own array type."""

    def context(self, seq: np.ndarray) -> list[Any]:
        """Keys/values [k0, v0, ...] each (1, n_kv, L, hd) of a full bidirectional pass over seq (1, L)."""
        ...

    def cut(self, kv: list[Any], b0: int, b1: int) -> list[Any]:
        """The same without positions b0..b1-1 (the block recomputed every step)."""
        ...

    def block(self, ids: np.ndarray, start: int, cache: list[Any]) -> np.ndarray:
        """Logits (B, n, V) float32 of ids (B, n) at positions start.. attending to cache and themselves."""
        ...


class TorchOps:
    """The ops on runtime/hf/model.py (development, parity, and machines with PyTorch only)."""

    def __init__(self, model: Any):
        import torch

        self.model, self.torch = model, torch

    def context(self, seq: np.ndarray) -> list[Any]:
        torch = self.torch
        with torch.inference_mode():
            _, kv = self.model(torch.from_numpy(np.ascontiguousarray(seq)), torch.zeros(1, dtype=torch.int64),
                               logits=False)
        return kv

    def cut(self, kv: list[Any], b0: int, b1: int) -> list[Any]:
        return [self.torch.cat((t[:, :, :b0], t[:, :, b1:]), dim=2).contiguous() for t in kv]

    def block(self, ids: np.ndarray, start: int, cache: list[Any]) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            logits, _ = self.model(torch.from_numpy(np.ascontiguousarray(ids)), torch.tensor([start]), cache)
        return logits.numpy()


@dataclass
class CachedRequest:
    """What a ContextState carries for these backends: the request and its context cache."""

    request: Request
    span_len: int | None = None
    cache: list[Any] | None = None
    steps_since_refresh: int = 0
    refreshes: int = 0
    meta: dict = field(default_factory=dict)


class HFBackend:
    """The approximate-cache denoiser over Ops (torch or ONNX Runtime)."""

    def __init__(self, ops: Ops, cfg: HFConfig, tokenizer: HFTokenizer, name: str, refresh_every: int | None = None):
        self.ops, self.cfg, self.tokenizer, self.name = ops, cfg, tokenizer, name
        self.info = ModelInfo(vocab_size=cfg.vocab, n_layer=cfg.n_layer, n_head=cfg.n_head, d_model=cfg.hidden)
        if refresh_every is None:
            refresh_every = int(os.environ.get(REFRESH_ENV, "0") or 0)
        self.refresh_every = max(0, refresh_every)

    def encode_context(self, ids: np.ndarray) -> ContextState:
        """Only parses the context: its keys/values depend on the span (bidirectional attention), so
        the full pass runs at the first denoising step, once the span length is known."""
        request = split_context(ids, self.tokenizer)
        return ContextState(kv=CachedRequest(request), first_logits=np.zeros(self.cfg.vocab, dtype=np.float32),
                            length=int(np.asarray(ids).shape[-1]), aligned=True)

    def block_bounds(self, request: Request, S: int) -> tuple[int, int]:
        """Positions [b0, b1) recomputed every step: the span, and for shifted families the position before it."""
        P = request.span_at
        return (P - 1 if self.cfg.shifted and P > 0 else P), P + S

    def denoise_span(self, span_ids: np.ndarray, state: ContextState, rows: np.ndarray | None = None) -> np.ndarray:
        """(B, S) -> (B, S, V) float32 logits, row j predicting span token j; (B, R, V) at rows (B, R)."""
        return take_rows(self._span_logits(span_ids, state), rows)

    def _span_logits(self, span_ids: np.ndarray, state: ContextState) -> np.ndarray:
        entry: CachedRequest = state.kv
        request = entry.request
        span_ids = np.ascontiguousarray(span_ids, dtype=np.int64)
        B, S = span_ids.shape
        b0, b1 = self.block_bounds(request, S)
        stale = self.refresh_every and entry.steps_since_refresh >= self.refresh_every
        if entry.cache is None or entry.span_len != S or stale:
            full = self.ops.context(request.sequence(span_ids[0]))  # row 0 stands for the batch
            entry.cache, entry.span_len = self.ops.cut(full, b0, b1), S
            entry.steps_since_refresh = 0
            entry.refreshes += 1
        entry.steps_since_refresh += 1
        P = request.span_at
        block = span_ids if b0 == P else np.concatenate([np.full((B, 1), request.head[-1], np.int64), span_ids], 1)
        logits = self.ops.block(block, b0, entry.cache)
        if not self.cfg.shifted:
            return logits  # LLaDA: position j predicts token j
        if b0 < P:
            return logits[:, :S]  # position P-1+j predicts span token j
        # Open-dCoder with nothing before the span: token 0 from its own position (veomni's shift)
        return np.concatenate([logits[:, :1], logits[:, :-1]], axis=1)


def refresh_env() -> int | None:
    value = os.environ.get(REFRESH_ENV)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"{REFRESH_ENV} must be a whole number of steps, got {value!r}") from exc


def torch_backend(model_dir: Path, cfg: HFConfig, tokenizer: HFTokenizer, threads: int | None = None,
                  refresh_every: int | None = None) -> HFBackend:
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailable("the torch backend needs PyTorch: pip install 'quicksilver-lsp[train]'") from exc
    from runtime.hf.model import load_hf_model

    if threads:
        torch.set_num_threads(threads)
    model = load_hf_model(model_dir)
    return HFBackend(TorchOps(model), cfg, tokenizer, "torch", refresh_every)


def load_hf(model_dir: Path, backend: str, threads: int | None, precision: str) -> Any:
    """A LoadedModel for a checkpoint (or export) directory of one of the public diffusion coders.
    ONNX graphs beside it are served with ONNX Runtime; otherwise "auto" and "torch" run PyTorch
    on the safetensors."""
    from runtime.hf.ort import graphs_present, ort_backend
    from runtime.loader import LoadedModel

    model_dir = Path(model_dir)
    cfg = load_config(model_dir)
    tokenizer = HFTokenizer.from_dir(model_dir, cfg)
    if tokenizer.vocab_size > cfg.vocab:
        raise ModelFileError(f"tokenizer {model_dir / 'tokenizer.json'} has {tokenizer.vocab_size} tokens but the "
                             f"model only {cfg.vocab}: they are from different models")
    refresh = refresh_env()
    has_graphs, why = graphs_present(model_dir, precision)
    if backend == "tensorrt-engine":
        raise BackendUnavailable(f"backend 'tensorrt-engine' serves Quicksilver's own graphs; for {cfg.family} use "
                                 "--backend tensorrt (ONNX Runtime's TensorRT provider)")
    if backend == "torch" or (backend == "auto" and not has_graphs and precision == "fp32"):
        net = torch_backend(model_dir, cfg, tokenizer, threads, refresh)
        reason = "requested" if backend == "torch" else f"{why}; running the safetensors with PyTorch"
        log.info("backend torch: %s (%s, %s)", reason, cfg.family, model_dir)
    else:
        if not has_graphs:
            raise ModelFileError(f"{why}: export them with `python -m export onnx --hf {model_dir} --out {model_dir}`")
        net = ort_backend(model_dir, cfg, tokenizer, backend, threads, precision, refresh)
    return LoadedModel(tokenizer=tokenizer, backend=net, info=net.info, model_dir=model_dir)
