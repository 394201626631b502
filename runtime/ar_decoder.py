"""Greedy autoregressive decoding with a KV cache on ONNX Runtime: the baseline.

The diffusion sampler's speed only means something against the alternative it
replaces: the same network writing one token per forward pass, reusing its
keys/values. `decoder_step.onnx` (export/onnx.py) is that pass, exported from the
same weights as the encoder and denoiser and run by the same runtime, so the two
differ only in how they decode. The context is encoded by the same `encoder.onnx`
(its cache is exactly an autoregressive cache, and its last logits give the first
token), then every further token costs one step that extends the cache.

`generate` runs `decoder_shared.onnx` where the model has it: the cache lives in one buffer
allocated per request for the context and the tokens to come, each step writes its token's
keys/values into it and masks what is not written yet, so no step copies the cache. With
`decoder_step.onnx` alone (older exports; `step`, the parity check) every step returns the
whole cache extended, a copy of it: at 512 context tokens 19% of an int8 step's kernel time;
measured here, 32 tokens int8 35.9 ms that way, 26.8 ms in place (fp32 48.5 and 37.5). A baseline that pays
for copies a good decoder does not make would flatter the diffusion sampler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.base import ContextState, ModelInfo
from runtime.onnx_backend import (
    DECODER_SHARED_FILE,
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
        shared = model_dir / graph_file(DECODER_SHARED_FILE, precision)
        self.shared = None
        # CPU only: the TensorRT profiles (runtime/trt_profiles.py) are decoder_step.onnx's
        on_cpu = all((p if isinstance(p, str) else p[0]) == "CPUExecutionProvider" for p in providers or [])
        if shared.is_file() and on_cpu:
            self.shared = open_session(shared, session_options(threads))
            check_signature(self.shared, shared, ["ids", "length", *cache_names(L)], ["logits", "new_kv"])

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
        logits = state.first_logits
        step = self._buffered_steps(state, max_tokens) if self.shared is not None else self._copying_steps(state)
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
            logits = step(token)
            steps += 1
        return Decoded(tokens, steps)

    def _copying_steps(self, state: ContextState) -> Callable[[int], np.ndarray]:
        """Steps through decoder_step.onnx, each returning the cache extended (a copy)."""
        cache: np.ndarray | list[np.ndarray] = state.kv

        def step(token: int) -> np.ndarray:
            nonlocal cache
            logits, cache = self.step(token, cache)
            return logits
        return step

    def _buffered_steps(self, state: ContextState, max_tokens: int) -> Callable[[int], np.ndarray]:
        """Steps through decoder_shared.onnx over one buffer for the context and max_tokens more,
        bound once; each step writes its token's keys/values at the current length."""
        L, _, _, nh, T, hs = state.kv.shape
        buffer = np.zeros((L, 2, 1, nh, T + max_tokens, hs), dtype=np.float32)
        buffer[..., :T, :] = state.kv
        binding = self.shared.io_binding()
        for name, view in cache_feeds(buffer, L).items():
            binding.bind_cpu_input(name, view)
        length = np.array([T], dtype=np.int64)
        logits = np.empty((1, self.info.vocab_size), dtype=np.float32)
        new_kv = np.empty((L, 2, 1, nh, 1, hs), dtype=np.float32)
        binding.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
        binding.bind_output("new_kv", "cpu", 0, np.float32, list(new_kv.shape), new_kv.ctypes.data)

        def step(token: int) -> np.ndarray:
            n = int(length[0])
            if n >= buffer.shape[4]:
                raise ValueError(f"the cache buffer holds {max_tokens} tokens after the context")
            binding.bind_cpu_input("ids", np.array([[token]], dtype=np.int64))
            binding.bind_cpu_input("length", length)
            self.shared.run_with_iobinding(binding)
            buffer[..., n:n + 1, :] = new_kv
            length[0] = n + 1
            return logits[0]
        return step
