"""Greedy autoregressive decoding with a KV cache on ONNX Runtime: the baseline.

The diffusion sampler's speed only means something against the alternative it
replaces: the same network writing one token per forward pass, reusing its
keys/values. `decoder_step.onnx` (export/onnx.py) is that pass, exported from the
same weights as the encoder and denoiser and run by the same runtime, so the two
differ only in how they decode. The context is encoded by the same `encoder.onnx`
(its cache is exactly an autoregressive cache, and its last logits give the first
token), then every further token costs one step that extends the cache. The cache
travels as one array per layer and keys/values, as the graph takes and returns it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.base import ContextState, ModelInfo
from runtime.onnx_backend import (
    DECODER_STEP_FILE,
    cache_feeds,
    cache_names,
    check_signature,
    graph_file,
    open_session,
    providers_for,
    session_options,
)


@dataclass
class Decoded:
    tokens: list[int]  # generated ids, the stop token excluded
    steps: int  # decoder_step.onnx calls (the first token comes from the encoder's logits)


class OnnxStepDecoder:
    """One-token decode steps over `decoder_step.onnx`; pair it with an OnnxBackend for the context."""

    def __init__(self, model_dir: Path, threads: int | None = None, providers: list | None = None,
                 precision: str = "fp32"):
        model_dir = Path(model_dir)
        self.info = ModelInfo.from_file(model_dir / "config.json")
        path = model_dir / graph_file(DECODER_STEP_FILE, precision)
        self.session = open_session(path, session_options(threads), providers_for(providers, "decoder_step", self.info))
        L = self.info.n_layer
        check_signature(self.session, path, ["ids", *cache_names(L)], ["logits", *cache_names(L, "next")])
        self.cache_names = cache_names(L)

    def step(self, token: int, cache: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """(logits of the next token (V,), the cache extended by `token`). cache: the encoder's
        (L, 2, 1, nh, T, hs) array or what the previous step returned ([k0, v0, k1, ...])."""
        feeds = (cache_feeds(cache, self.info.n_layer) if isinstance(cache, np.ndarray)
                 else dict(zip(self.cache_names, cache, strict=True)))
        logits, *next_cache = self.session.run(None, {"ids": np.array([[token]], dtype=np.int64), **feeds})
        return logits[0], next_cache

    @staticmethod
    def stacked(cache: list[np.ndarray]) -> np.ndarray:
        """[k0, v0, k1, ...] -> one (L, 2, 1, nh, T, hs) array, the encoder's layout (for checks)."""
        L = len(cache) // 2
        return np.stack([np.stack(cache[2 * i:2 * i + 2]) for i in range(L)])

    def generate(self, state: ContextState, max_tokens: int, forbidden: tuple[int, ...] = (),
                 stop: Callable[[int], bool] | None = None) -> Decoded:
        """Greedy: argmax of each step's logits (never a `forbidden` id) until `stop(token)`
        or max_tokens. The token that stops is not returned."""
        banned = list(forbidden)
        logits, kv = state.first_logits, state.kv
        tokens: list[int] = []
        steps = 0
        while True:
            logits = np.array(logits, dtype=np.float32, copy=True)
            logits[banned] = -np.inf
            token = int(logits.argmax())
            if stop is not None and stop(token):
                break
            tokens.append(token)
            if len(tokens) >= max_tokens:
                break
            logits, kv = self.step(token, kv)
            steps += 1
        return Decoded(tokens, steps)
