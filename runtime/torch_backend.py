"""PyTorch backend: for development and parity checks (serving uses ONNX Runtime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.base import ContextState, ModelFileError, ModelInfo


class TorchBackend:
    name = "torch"
    extends = True

    def __init__(self, weights: Path, threads: int | None = None):
        try:
            import torch
        except ImportError as exc:
            raise ModelFileError("the torch backend needs PyTorch: pip install 'quicksilver-lsp[train]'") from exc
        from runtime.model import load_checkpoint

        if threads:
            torch.set_num_threads(threads)
        try:
            self.model, self.meta = load_checkpoint(Path(weights))
        except (FileNotFoundError, ValueError) as exc:
            raise ModelFileError(str(exc)) from exc
        self.model.eval()
        cfg = self.model.cfg
        self.info = ModelInfo(cfg.vocab_size, cfg.n_layer, cfg.n_head, cfg.d_model)
        self._torch = torch

    def encode_context(self, ids: np.ndarray) -> ContextState:
        torch = self._torch
        with torch.inference_mode():
            logits, kv = self.model.encode_context(torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64)))
        return ContextState(kv=kv, first_logits=logits[0].float().numpy(), length=ids.shape[1])

    def extend_context(self, ids: np.ndarray, state: ContextState, keep: int) -> ContextState:
        """See runtime/base.py: the cached context's first `keep` tokens, then ids (1, N)."""
        torch = self._torch
        if not 0 < keep <= state.length:
            raise ValueError(f"keep={keep} outside the cached context (1..{state.length})")
        past = state.kv[..., :keep, :]
        with torch.inference_mode():
            logits, tail = self.model.extend_context(torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64)), past)
        return ContextState(kv=torch.cat((past, tail), dim=4), first_logits=logits[0].float().numpy(),
                            length=keep + ids.shape[1])

    def denoise_span(self, span_ids: np.ndarray, state: ContextState, rows: np.ndarray | None = None) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            logits = self.model.denoise_span(torch.from_numpy(np.ascontiguousarray(span_ids, dtype=np.int64)), state.kv,
                                             None if rows is None else torch.from_numpy(
                                                 np.ascontiguousarray(rows, dtype=np.int64)))
        return logits.float().numpy()
