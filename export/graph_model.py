"""The network's inference entry points, rewritten for a lean ONNX graph.

`runtime/model.py` is written to be read and trained; traced as is, one decoder
step becomes ~400 ONNX nodes (rotary embeddings as strided slices and stacks per
layer, the cache sliced, expanded and concatenated per layer). On a CPU a node
costs 5-20 us of dispatch before any arithmetic, and a one-token step has little
arithmetic, so this module computes the same function with fewer, larger ops:

- q, k and v stay one (3, B, nh, S, hs) tensor through the rotary embedding, which
  becomes `x * cos + (x @ R) * sin` (R the fixed pair-rotation matrix; v gets
  cos = 1, sin = 0), with cos/sin computed once per graph, not per layer;
- the attention scale is folded into the query weights;
- a span attends to the cache and to itself as two score blocks joined before one
  softmax, so the cache is never concatenated or expanded per step;
- the denoiser and the decoder step take the cache as one input per layer and per
  keys/values (`past_k_0`, `past_v_0`, ...): the runtime passes views of the
  encoder's single cache array, so no step copies the cache to split it.

Same weights, same arithmetic up to float rounding: `export/onnx.py` checks every
graph against `runtime/model.py` (largest logit difference, bounded in tests).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from runtime.model import Denoiser, take_rows


class InferenceGraphs(nn.Module):
    """Holds the weights in inference layout; `encode`, `denoise` and `decode_step` are exported."""

    def __init__(self, model: Denoiser):
        super().__init__()
        cfg = model.cfg
        self.L, self.nh, self.hs, self.C = cfg.n_layer, cfg.n_head, cfg.head_dim, cfg.d_model
        C, hs = self.C, self.hs
        with torch.no_grad():
            self.embed = nn.Parameter(model.embed.weight.detach().clone(), requires_grad=False)
            self.ln_f = nn.Parameter(model.ln_f.weight.detach().clone(), requires_grad=False)
            qkv, proj, ln1, ln2, up, down = [], [], [], [], [], []
            for block in model.blocks:
                w = block.attn.qkv.weight.detach().t().clone()  # (C, 3C): x @ w
                w[:, :C] *= 1.0 / math.sqrt(hs)  # softmax(q k^T / sqrt(hs)) with the scale in q
                qkv.append(w)
                proj.append(block.attn.proj.weight.detach().t().clone())
                up.append(block.mlp.up.weight.detach().t().clone())
                down.append(block.mlp.down.weight.detach().t().clone())
                ln1.append(block.ln1.weight.detach().clone())
                ln2.append(block.ln2.weight.detach().clone())
            inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs))
            rot = torch.zeros(hs, hs)
            idx = torch.arange(0, hs, 2)
            rot[idx + 1, idx] = -1.0  # (x @ rot)[2i] = -x[2i+1]
            rot[idx, idx + 1] = 1.0  # (x @ rot)[2i+1] = x[2i]
        self.qkv = nn.ParameterList([nn.Parameter(t, requires_grad=False) for t in qkv])
        self.proj = nn.ParameterList([nn.Parameter(t, requires_grad=False) for t in proj])
        self.up = nn.ParameterList([nn.Parameter(t, requires_grad=False) for t in up])
        self.down = nn.ParameterList([nn.Parameter(t, requires_grad=False) for t in down])
        self.ln1 = nn.ParameterList([nn.Parameter(t, requires_grad=False) for t in ln1])
        self.ln2 = nn.ParameterList([nn.Parameter(t, requires_grad=False) for t in ln2])
        self.register_buffer("inv_freq", inv.repeat_interleave(2))  # (hs,): pair i shares frequency i
        self.register_buffer("rot", rot)
        self.register_buffer("qk_only", torch.tensor([1.0, 1.0, 0.0]).view(3, 1, 1, 1, 1))
        self.register_buffer("v_only", torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1, 1, 1))

    # --- shared pieces -------------------------------------------------------------
    def _rotary(self, start: torch.Tensor | int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin for positions start..start+n-1 as (3, 1, 1, n, hs): rotation for q and k, identity for v."""
        pos = (torch.arange(n, device=self.rot.device) + start).to(torch.float32)
        ang = pos[:, None] * self.inv_freq[None, :]
        return ang.cos() * self.qk_only + self.v_only, ang.sin() * self.qk_only

    def _qkv(self, i: int, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """(B, S, C) -> rotated (3, B, nh, S, hs)."""
        B, S, _ = x.shape
        h = F.layer_norm(x, (self.C,), self.ln1[i], None, 1e-5)
        t = (h @ self.qkv[i]).view(B, S, 3, self.nh, self.hs).permute(2, 0, 3, 1, 4)
        return t * cos + (t @ self.rot) * sin

    def _finish(self, i: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """y (1, B, nh, S, hs) attention output -> the block's residual updates."""
        B, S = x.shape[0], x.shape[1]
        x = x + y.permute(1, 3, 0, 2, 4).reshape(B, S, self.C) @ self.proj[i]
        h = F.layer_norm(x, (self.C,), self.ln2[i], None, 1e-5)
        return x + F.gelu(h @ self.up[i], approximate="tanh") @ self.down[i]

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.layer_norm(x, (self.C,), self.ln_f, None, 1e-5), self.embed)

    def _attend_cached(self, q, k, v, pk, pv, mask: torch.Tensor | None = None,
                       past_mask: torch.Tensor | None = None) -> torch.Tensor:
        """q, k, v (1, B, nh, S, hs) of the new tokens; pk, pv (1, nh, T, hs) the cache; mask (S, S)
        added to the new tokens' scores among themselves (causal for a context extension), past_mask
        (T,) to their scores over the cache (a buffer's unwritten tail). One softmax over
        [cache | new] without concatenating keys or values."""
        T = pk.shape[2]
        own = q @ k.transpose(-1, -2)
        cached = q @ pk.transpose(-1, -2)
        scores = torch.cat((cached if past_mask is None else cached + past_mask,
                            own if mask is None else own + mask), dim=-1)
        p = scores.softmax(dim=-1)
        return p[..., :T] @ pv + p[..., T:] @ v


    # --- entry points ------------------------------------------------------------------
    def encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Causal pass over the context (1, T): (logits of span token 0 (1, V), kv (L, 2, 1, nh, T, hs))."""
        T = ids.shape[1]
        x = F.embedding(ids, self.embed)
        cos, sin = self._rotary(0, T)
        mask = torch.full((T, T), float("-inf"), device=ids.device).triu(1)
        cache = []
        for i in range(self.L):
            q, k, v = self._qkv(i, x, cos, sin).chunk(3, dim=0)  # each (1, 1, nh, T, hs)
            y = ((q @ k.transpose(-1, -2)) + mask).softmax(dim=-1) @ v
            x = self._finish(i, x, y)
            cache += [k, v]
        kv = torch.cat(cache).view(self.L, 2, 1, self.nh, T, self.hs)
        return self._logits(x[:, -1]), kv

    def extend(self, ids: torch.Tensor, past: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """`encode` continued: ids (1, N) after a cache past [k0, v0, ...] each (1, nh, P, hs), causal
        among themselves. (logits of span token 0 (1, V), the new tokens' kv (L, 2, 1, nh, N, hs))."""
        N = ids.shape[1]
        x = F.embedding(ids, self.embed)
        cos, sin = self._rotary(past[0].shape[2], N)
        mask = torch.full((N, N), float("-inf"), device=ids.device).triu(1)
        cache = []
        for i in range(self.L):
            q, k, v = self._qkv(i, x, cos, sin).chunk(3, dim=0)
            x = self._finish(i, x, self._attend_cached(q, k, v, past[2 * i], past[2 * i + 1], mask))
            cache += [k, v]
        kv = torch.cat(cache).view(self.L, 2, 1, self.nh, N, self.hs)
        return self._logits(x[:, -1]), kv

    def denoise(self, span_ids: torch.Tensor, past: list[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        """One denoising step: span (B, S) attends to the cache and to itself. past: [k0, v0, k1, ...]
        each (1, nh, T, hs), i.e. kv[i, 0] and kv[i, 1] of the encoder's cache. Logits (B, R, V) of
        the positions rows (B, R) only: the sampler needs them where a token is still masked, and the
        vocabulary projection is the largest single product of a step."""
        S = span_ids.shape[1]
        x = F.embedding(span_ids, self.embed)
        cos, sin = self._rotary(past[0].shape[2], S)
        for i in range(self.L):
            q, k, v = self._qkv(i, x, cos, sin).chunk(3, dim=0)
            x = self._finish(i, x, self._attend_cached(q, k, v, past[2 * i], past[2 * i + 1]))
        return self._logits(take_rows(x, rows))

    def decode_shared(self, ids: torch.Tensor, length: torch.Tensor,
                      past: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """`decode_step` over a cache buffer filled up to `length` (1,) int64: past [k0, v0, ...] each
        (1, nh, Tmax, hs), positions from `length` on not yet written (masked). Returns (next-token
        logits (1, V), this token's keys/values (L, 2, 1, nh, 1, hs)), which the caller writes at
        `length`: no step copies the cache (runtime/ar_decoder.py)."""
        x = F.embedding(ids, self.embed)
        cos, sin = self._rotary(length, 1)
        unwritten = torch.where(torch.arange(past[0].shape[2], device=ids.device) < length, 0.0, float("-inf"))
        new = []
        for i in range(self.L):
            q, k, v = self._qkv(i, x, cos, sin).chunk(3, dim=0)
            x = self._finish(i, x, self._attend_cached(q, k, v, past[2 * i], past[2 * i + 1], past_mask=unwritten))
            new.append(torch.cat((k, v)))  # (2, 1, nh, 1, hs)
        return self._logits(x[:, -1]), torch.stack(new)

    def decode_step(self, ids: torch.Tensor, past: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """One autoregressive step for ids (1, 1) over past [k0, v0, ...] each (1, nh, T, hs):
        (next-token logits (1, V), then each past extended by this token (1, nh, T + 1, hs))."""
        x = F.embedding(ids, self.embed)
        cos, sin = self._rotary(past[0].shape[2], 1)
        new = []
        for i in range(self.L):
            q, k, v = self._qkv(i, x, cos, sin).chunk(3, dim=0)
            x = self._finish(i, x, self._attend_cached(q, k, v, past[2 * i], past[2 * i + 1]))
            new += [k.squeeze(0), v.squeeze(0)]
        return (self._logits(x[:, -1]), *(torch.cat((p, n), dim=2) for p, n in zip(past, new, strict=True)))
