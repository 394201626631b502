"""The denoiser network in PyTorch: one readable module, nanoGPT style.

A decoder-only Transformer (pre-norm, rotary positions, tied embeddings) used in
two ways that share every weight:

- autoregressive fill-in-the-middle (stage 1): causal attention over
  `<PRE> prefix <SUF> suffix <MID> middle <EOS>`;
- masked-diffusion infilling (stage 2): the context `<PRE> prefix <SUF> suffix <MID>`
  stays causal, so its keys/values are exactly the autoregressive cache, and the
  span of MASK tokens after it attends to the whole context and to itself in both
  directions. Logits are shifted by one: the hidden state at i-1 predicts token i,
  so the first span token is predicted from the context's last position.

Training, export and the PyTorch backend import this; serving uses the ONNX
export and never needs torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelConfig:
    vocab_size: int = 8192  # byte-level BPE trained on our corpus
    n_layer: int = 6
    n_head: int = 8
    d_model: int = 256  # head size 32: small heads keep CPU attention cheap
    mlp_ratio: int = 4
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def rope(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotate pairs of channels by position. x: (B, nh, T, hs), positions: (T,)."""
    hs = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hs, 2, device=x.device, dtype=torch.float32) / hs))
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # (T, hs/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x, positions, attn_mask=None, is_causal=False, past_k=None, past_v=None):
        B, T, C = x.shape
        nh, hs = self.cfg.n_head, self.cfg.head_dim
        q, k, v = self.qkv(x).split(C, dim=2)
        q = rope(q.view(B, T, nh, hs).transpose(1, 2), positions, self.cfg.rope_theta)  # (B, nh, T, hs)
        k = rope(k.view(B, T, nh, hs).transpose(1, 2), positions, self.cfg.rope_theta)
        v = v.view(B, T, nh, hs).transpose(1, 2)
        new_k, new_v = k, v
        if past_k is not None:
            k = torch.cat((past_k.expand(B, -1, -1, -1), k), dim=2)
            v = torch.cat((past_v.expand(B, -1, -1, -1), v), dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.proj(y), new_k, new_v


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model, bias=False)
        self.down = nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x):
        return self.down(F.gelu(self.up(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model, bias=False)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, bias=False)
        self.mlp = MLP(cfg)

    def forward(self, x, positions, attn_mask=None, is_causal=False, past_k=None, past_v=None):
        a, k, v = self.attn(self.ln1(x), positions, attn_mask, is_causal, past_k, past_v)
        x = x + a
        x = x + self.mlp(self.ln2(x))
        return x, k, v


class Denoiser(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2 scaled init of residual projections
            if name.endswith(("proj.weight", "down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Vocabulary projection (tied to the embedding); call only where needed."""
        return F.linear(self.ln_f(h), self.embed.weight)

    def hidden(self, ids, positions, attn_mask=None, is_causal=False, past_kv=None):
        """Run the blocks. Returns hidden states and this call's keys/values
        stacked as (n_layer, 2, B, nh, T, hs)."""
        x = self.embed(ids)
        layers = []
        for i, block in enumerate(self.blocks):
            pk = past_kv[i, 0] if past_kv is not None else None
            pv = past_kv[i, 1] if past_kv is not None else None
            x, k, v = block(x, positions, attn_mask, is_causal, pk, pv)
            layers.append(torch.stack((k, v)))
        return x, torch.stack(layers)

    # --- stage 1: autoregressive --------------------------------------------
    def forward_causal(self, ids: torch.Tensor) -> torch.Tensor:
        """Hidden states of a causal pass over ids (B, T)."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        x, _ = self.hidden(ids, positions, is_causal=True)
        return x

    # --- stage 2: masked-diffusion infilling -----------------------------------
    def encode_context(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Causal pass over the context (1, T) ending in <MID>.
        Returns (logits of the first span token (1, V), kv (n_layer, 2, 1, nh, T, hs))."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        x, kv = self.hidden(ids, positions, is_causal=True)
        return self.logits(x[:, -1]), kv

    def extend_context(self, ids: torch.Tensor, past_kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Continue a context whose first P tokens are cached: ids (1, N) are tokens P..P+N-1,
        past_kv (n_layer, 2, 1, nh, P, hs). Returns what `encode_context` over all P + N tokens
        would (the first span token's logits), with only the new tokens' kv (n_layer, 2, 1, nh, N, hs).
        The context is causal, so a keystroke near its end leaves the cache of everything before
        the edit valid: only the tail is computed again."""
        P, N = past_kv.shape[4], ids.shape[1]
        positions = torch.arange(N, device=ids.device) + P
        sees = torch.ones(N, P + N, dtype=torch.bool, device=ids.device).tril(diagonal=P)  # new token i: keys <= P+i
        x, kv = self.hidden(ids, positions, attn_mask=sees, past_kv=past_kv)
        return self.logits(x[:, -1]), kv

    def denoise_span(self, span_ids: torch.Tensor, kv: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """One denoising step. span_ids (B, S) of tokens and MASKs attend to the whole
        cached context and to each other. Returns logits (B, S, V) where position j
        predicts span token j+1 (the shift); the last one is unused by the sampler.
        rows (B, R): only those positions' logits (B, R, V), the vocabulary projection
        being a large part of a step and committed positions needing none."""
        T = kv.shape[4]
        positions = torch.arange(span_ids.shape[1], device=span_ids.device) + T
        x, _ = self.hidden(span_ids, positions, past_kv=kv)
        return self.logits(x if rows is None else take_rows(x, rows))

    def decode_step(self, ids: torch.Tensor, past_kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One autoregressive step with a KV cache: ids (B, 1) is the newest token,
        past_kv (n_layer, 2, 1, nh, P, hs) the cache of everything before it (from
        encode_context or earlier steps). Returns (logits of the next token (B, V),
        the cache extended by this token (n_layer, 2, B, nh, P + 1, hs)). One query
        row sees every cached key and itself, so no mask is needed (stage 1's order)."""
        P = past_kv.shape[4]
        positions = torch.arange(ids.shape[1], device=ids.device) + P
        x, new_kv = self.hidden(ids, positions, past_kv=past_kv)
        return self.logits(x[:, -1]), torch.cat((past_kv.expand(-1, -1, ids.shape[0], -1, -1, -1), new_kv), dim=4)

    def forward_infill(self, ids: torch.Tensor, ctx_len: torch.Tensor, span_len: torch.Tensor) -> torch.Tensor:
        """Training pass with the stage-2 mask over ids (B, T): row i of example b is
        causal if i < ctx_len[b], else it sees everything before ctx_len[b] + span_len[b].
        Returns hidden states (B, T, C); a full-sequence equivalent of
        encode_context + denoise_span (tested)."""
        B, T = ids.shape
        i = torch.arange(T, device=ids.device)
        causal = i[None, :, None] >= i[None, None, :]  # (1, T, T)
        c = ctx_len.view(B, 1, 1)
        in_span_row = i[None, :, None] >= c
        visible = i[None, None, :] < c + span_len.view(B, 1, 1)
        allowed = causal | (in_span_row & visible)  # (B, T, T)
        x, _ = self.hidden(ids, i, attn_mask=allowed[:, None])
        return x


def take_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """x (B, S, C), rows (B, R) int64 -> (B, R, C): each batch row's chosen positions."""
    return x.gather(1, rows.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def save_checkpoint(model: Denoiser, path: Path, extra: dict | None = None) -> None:
    """Atomic safetensors write with the config in the metadata (never pickle)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"config": model.cfg.to_json(), **{k: json.dumps(v) for k, v in (extra or {}).items()}}
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def load_checkpoint(path: Path) -> tuple[Denoiser, dict]:
    """Rebuild the model from a safetensors file; returns (model, metadata)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        state = load_file(str(path))
    except Exception as exc:
        raise ValueError(f"corrupt model weights {path}: {exc}") from exc
    cfg = ModelConfig.from_dict(json.loads(meta.pop("config")))
    model = Denoiser(cfg)
    model.load_state_dict(state)
    return model, {k: json.loads(v) for k, v in meta.items()}
