"""The stage-1 reference: autoregressive fill-in-the-middle decoding with a KV cache.

Same context as the engine (`build_context` with the engine's token budgets, then
`context_ids`), encoded once by `Denoiser.encode_context`; then one token per
forward pass through `Denoiser.hidden` with the cache. A single query token may
attend to every cached position and itself, so no mask is needed (and
`is_causal=True` would be wrong: SDPA aligns its causal mask top-left, so the one
query would see only the first key). Greedy, never a FIM marker or MASK; stops at
EOS or at the end of the first line; the text goes through the engine's
post-processing (and, on a blank line, its indentation rule for the first token) so
both are judged on the same rules.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from completion.api import Completion, CompletionRequest, CompletionSettings
from completion.context import build_context, cursor_offset
from completion.hole import classify
from completion.indent import first_token_limit
from completion.mask import context_ids
from completion.postprocess import postprocess
from runtime.tokenizer import Tokenizer

MAX_NEW_TOKENS = 64


@dataclass
class ArDecoder:
    """Greedy KV-cached decoding of a stage-1 checkpoint (torch)."""

    model: object  # runtime.model.Denoiser
    meta: dict
    tokenizer: Tokenizer
    settings: CompletionSettings
    max_new_tokens: int = MAX_NEW_TOKENS

    @classmethod
    def load(cls, weights: Path, tokenizer: Tokenizer, settings: CompletionSettings,
             threads: int | None = None) -> ArDecoder:
        import torch

        from runtime.model import load_checkpoint

        if threads:
            torch.set_num_threads(threads)
        model, meta = load_checkpoint(Path(weights))
        return cls(model.eval(), meta, tokenizer, settings)

    def _forbidden(self) -> list[int]:
        tok = self.tokenizer
        return [tok.mask_id, tok.prefix_id, tok.suffix_id, tok.middle_id]

    def generate_ids(self, ids: np.ndarray, first_allowed: np.ndarray | None = None) -> tuple[list[int], int]:
        """(generated ids without the EOS, forward passes) for a (1, T) context ending in <MID>;
        first_allowed limits the first token as the engine's indentation rule does."""
        import torch

        tok, model = self.tokenizer, self.model
        forbidden = self._forbidden()
        out: list[int] = []
        with torch.inference_mode():
            logits, kv = model.encode_context(torch.from_numpy(ids))
            passes = 1
            while True:
                logits = logits.float()
                logits[..., forbidden] = -float("inf")
                if not out:  # like the engine's sampler: a suggestion has at least one token
                    logits[..., tok.eos_id] = -float("inf")
                    if first_allowed is not None:
                        logits[..., ~torch.from_numpy(first_allowed)] = -float("inf")
                nxt = int(logits.reshape(-1).argmax())
                if nxt == tok.eos_id:
                    break
                out.append(nxt)
                if len(out) >= self.max_new_tokens or self._line_done(out):
                    break
                logits, kv = model.decode_step(torch.tensor([[nxt]]), kv)
                passes += 1
        return out, passes

    def _line_done(self, out: list[int]) -> bool:
        """A line is complete once a newline follows non-blank text (a leading newline,
        i.e. a completion that starts on the next line, is allowed as the engine allows it)."""
        if self.settings.max_lines > 1:
            return False
        text = self.tokenizer.decode(out).lstrip("\n")
        return "\n" in text and bool(text.split("\n", 1)[0].strip())

    def complete(self, request: CompletionRequest) -> Completion:
        t0 = time.perf_counter()
        s, tok = self.settings, self.tokenizer
        offset = cursor_offset(request.text, request.line, request.column)
        ctx = build_context(request.text, offset, tok, s.prefix_tokens, s.suffix_tokens)
        ids = context_ids(tok, ctx.prefix_ids, ctx.suffix_ids)
        limit = (first_token_limit(ctx, classify(ctx), request.language, tok) if s.indent_from_context
                 else None)
        out, passes = self.generate_ids(ids, limit)
        text = postprocess(tok.decode(out), ctx, s.max_lines)
        return Completion(text=text, latency_ms=(time.perf_counter() - t0) * 1000, steps=len(out),
                          forward_passes=passes, span_len=len(out))


def check_kv_decoding(model, n_ctx: int = 23, n_new: int = 5, seed: int = 0) -> float:
    """Largest |logit difference| between cached one-token decoding and a full causal
    pass over the same ids: ~1e-5 means `Denoiser.decode_step` is exact."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.cfg.vocab_size, (1, n_ctx + n_new), generator=gen)
    with torch.inference_mode():
        full = model.logits(model.forward_causal(ids))[0]  # (T, V): row i predicts token i + 1
        logits, kv = model.encode_context(ids[:, :n_ctx])
        rows = [logits[0]]
        for i in range(n_ctx, n_ctx + n_new - 1):
            step_logits, kv = model.decode_step(ids[:, i:i + 1], kv)
            rows.append(step_logits[0])
        cached = torch.stack(rows)
    return float((cached - full[n_ctx - 1:n_ctx + n_new - 1]).abs().max())
