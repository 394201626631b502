"""The one small interface every denoiser backend implements.

A request encodes its context once (`encode_context`, causal, giving the keys and
values of every layer and the logits of the first span token) and then runs a few
denoising steps over the span (`denoise_span`), each attending to that cache.
Arrays cross this boundary as numpy so `completion/` never sees a framework.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class ModelFileError(Exception):
    """A model file is missing or unreadable; the message names the file."""


class BackendUnavailable(RuntimeError):
    """An explicitly requested backend cannot run here; the message says what is missing."""


@dataclass(frozen=True)
class ModelInfo:
    """What the engine needs to know about a network, read from config.json."""

    vocab_size: int
    n_layer: int
    n_head: int
    d_model: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @classmethod
    def from_file(cls, path: Path) -> ModelInfo:
        if not path.is_file():
            raise ModelFileError(f"model config not found: {path}")
        try:
            d = json.loads(path.read_text())
            return cls(vocab_size=int(d["vocab_size"]), n_layer=int(d["n_layer"]),
                       n_head=int(d["n_head"]), d_model=int(d["d_model"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFileError(f"corrupt model config {path}: {exc}") from exc


@dataclass
class ContextState:
    """A request's encoded context: backend-native keys/values and first-token logits."""

    kv: Any  # (n_layer, 2, 1, n_head, T, head_dim) in the backend's own array type
    first_logits: np.ndarray  # (vocab,) float32: logits of span token 0
    length: int  # context tokens T
    # True when denoise_span's row j already predicts span token j (runtime/hf: in-place layouts that
    # shift inside the backend); the sampler then takes the logits as they are, without first_logits.
    aligned: bool = False


class DenoiserBackend(Protocol):
    name: str
    info: ModelInfo

    def encode_context(self, ids: np.ndarray) -> ContextState:
        """ids: (1, T) int64 ending with <MID>."""
        ...

    def denoise_span(self, span_ids: np.ndarray, state: ContextState, rows: np.ndarray | None = None) -> np.ndarray:
        """span_ids: (B, S) int64. Returns (B, S, vocab) float32 logits where row j
        predicts span token j + 1; with rows (B, R) int64, only those positions' (B, R, vocab).
        The result may live in a buffer the backend reuses from the call after next (OnnxBackend
        on the CPU): read it, or copy it, before then."""
        ...

    # Optional, where `extends` is True: the context of `state`'s first `keep` tokens followed by
    # ids (1, N), equal to encode_context over the whole but computing only the N new tokens.
    # def extend_context(self, ids: np.ndarray, state: ContextState, keep: int) -> ContextState


def extends(backend: object) -> bool:
    """Whether a backend can continue a cached context (`extend_context`) instead of re-encoding it."""
    return bool(getattr(backend, "extends", False))


def rows_input(span_ids: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """The `rows` input of a denoiser graph that takes it: the given positions, or every one."""
    if rows is None:
        rows = np.broadcast_to(np.arange(span_ids.shape[1], dtype=np.int64), span_ids.shape)
    return np.ascontiguousarray(rows, dtype=np.int64)


def take_rows(logits: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """(B, S, V) logits -> (B, R, V) at positions rows (B, R): for backends whose graph computes
    every position's logits (older exports, TensorRT engines built from them, runtime/hf)."""
    if rows is None:
        return logits
    return np.take_along_axis(logits, np.asarray(rows, dtype=np.int64)[..., None], axis=1)
