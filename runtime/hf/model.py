"""The public diffusion coders in PyTorch: one module for both tensor layouts.

Qwen2 (Dream, Dream-Coder, DiffuCoder, Open-dCoder) and LLaDA (an OLMo-style Llama) are
the same network: pre-norm RMSNorm blocks, rotary positions in the rotate-half form,
grouped-query attention (q/k/v biases in Qwen2), a SwiGLU MLP, a final RMSNorm and an
LM head. Attention is bidirectional: a masked-diffusion model sees the whole sequence.
Only the checkpoint's tensor names differ, so loading maps them onto one set of
modules (`checkpoint_names`).

One entry point, `forward`, serves three uses (and is what export/hf.py traces):
a full forward (no cache: the parity reference and the context encode) and a block
forward (a few positions attending to cached keys/values of every other position
plus to each other: the approximate context cache of runtime/hf/backend.py).
Imported by the torch backend and by export, never by the ONNX serving path.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from runtime.hf.config import HFConfig, load_config, load_tensors, shard_map


def checkpoint_names(cfg: HFConfig) -> dict[str, str]:
    """Our parameter name -> the checkpoint's tensor name."""
    out: dict[str, str] = {}
    if cfg.layout == "qwen2":  # transformers' Qwen2 names, which Dream's modeling code keeps
        out["embed.weight"] = "model.embed_tokens.weight"
        out["norm"] = "model.norm.weight"
        head = "lm_head.weight"
        per_layer = {"attn_norm": "input_layernorm.weight", "mlp_norm": "post_attention_layernorm.weight",
                     "q.weight": "self_attn.q_proj.weight", "k.weight": "self_attn.k_proj.weight",
                     "v.weight": "self_attn.v_proj.weight", "o.weight": "self_attn.o_proj.weight",
                     "gate.weight": "mlp.gate_proj.weight", "up.weight": "mlp.up_proj.weight",
                     "down.weight": "mlp.down_proj.weight"}
        bias = {"q.bias": "self_attn.q_proj.bias", "k.bias": "self_attn.k_proj.bias", "v.bias": "self_attn.v_proj.bias"}
        prefix = "model.layers.{i}."
    else:  # LLaDA's modeling_llada.py: LLaDALlamaBlock computes act(ff_proj(x)) * up_proj(x) -> ff_out
        out["embed.weight"] = "model.transformer.wte.weight"
        out["norm"] = "model.transformer.ln_f.weight"
        head = "model.transformer.ff_out.weight"
        per_layer = {"attn_norm": "attn_norm.weight", "mlp_norm": "ff_norm.weight",
                     "q.weight": "q_proj.weight", "k.weight": "k_proj.weight", "v.weight": "v_proj.weight",
                     "o.weight": "attn_out.weight", "gate.weight": "ff_proj.weight", "up.weight": "up_proj.weight",
                     "down.weight": "ff_out.weight"}
        bias = {"q.bias": "q_proj.bias", "k.bias": "k_proj.bias", "v.bias": "v_proj.bias"}
        prefix = "model.transformer.blocks.{i}."
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = head
    for i in range(cfg.n_layer):
        for ours, theirs in {**per_layer, **(bias if cfg.qkv_bias else {})}.items():
            out[f"layers.{i}.{ours}"] = prefix.format(i=i) + theirs
    return out


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """In float32 whatever the weights' dtype, as both reference implementations do."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Layer(nn.Module):
    def __init__(self, cfg: HFConfig):
        super().__init__()
        C, hd = cfg.hidden, cfg.head_dim
        self.attn_norm = nn.Parameter(torch.ones(C))
        self.q = nn.Linear(C, cfg.n_head * hd, bias=cfg.qkv_bias)
        self.k = nn.Linear(C, cfg.n_kv_head * hd, bias=cfg.qkv_bias)
        self.v = nn.Linear(C, cfg.n_kv_head * hd, bias=cfg.qkv_bias)
        self.o = nn.Linear(cfg.n_head * hd, C, bias=False)
        self.mlp_norm = nn.Parameter(torch.ones(C))
        self.gate = nn.Linear(C, cfg.intermediate, bias=False)
        self.up = nn.Linear(C, cfg.intermediate, bias=False)
        self.down = nn.Linear(cfg.intermediate, C, bias=False)


class HFDenoiser(nn.Module):
    def __init__(self, cfg: HFConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.hidden)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.n_layer))
        self.norm = nn.Parameter(torch.ones(cfg.hidden))
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.hidden, cfg.vocab, bias=False)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _rotary(self, start: torch.Tensor, n: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin (n, 1, hd) for positions start..start+n-1, computed in float32 (rotate-half layout)."""
        hd = self.cfg.head_dim
        inv = 1.0 / (self.cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32, device=start.device) / hd))
        pos = (torch.arange(n, device=start.device) + start).to(torch.float32)
        ang = pos[:, None] * inv[None, :]
        ang = torch.cat((ang, ang), dim=-1)[:, None, :]
        return ang.cos().to(dtype), ang.sin().to(dtype)

    def forward(self, ids: torch.Tensor, start: torch.Tensor, past: list[torch.Tensor] | None = None,
                logits: bool = True) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """ids (B, n) at positions start..start+n-1 (start: (1,) int64). past: [k0, v0, k1, ...]
        each (1, n_kv, T, hd), the rotated keys and values of T other positions, seen by every
        row. Returns (logits (B, n, V) float32 or None, this call's [k0, v0, ...] each
        (B, n_kv, n, hd)). No mask: every position sees every other (bidirectional)."""
        cfg = self.cfg
        B, n = ids.shape
        nh, nkv, hd = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        g = nh // nkv
        x = self.embed(ids)
        cos, sin = self._rotary(start, n, x.dtype)
        scale = 1.0 / math.sqrt(hd)
        new: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            h = rms_norm(x, layer.attn_norm, cfg.rms_eps)
            q = layer.q(h).view(B, n, nh, hd)
            k = layer.k(h).view(B, n, nkv, hd)
            v = layer.v(h).view(B, n, nkv, hd).transpose(1, 2)  # (B, nkv, n, hd)
            q = (q * cos + rotate_half(q) * sin) * scale
            k = (k * cos + rotate_half(k) * sin).transpose(1, 2)  # (B, nkv, n, hd)
            new += [k, v]
            # query head j*g + r uses kv head j (transformers' repeat_kv order): group the queries per kv head
            qg = q.view(B, n, nkv, g, hd).permute(0, 2, 3, 1, 4).reshape(B, nkv, g * n, hd)
            scores = qg @ k.transpose(-1, -2)  # (B, nkv, g*n, n)
            if past is not None:
                pk, pv = past[2 * i], past[2 * i + 1]
                T = pk.shape[2]
                p = torch.cat((qg @ pk.transpose(-1, -2), scores), dim=-1).float().softmax(dim=-1).to(x.dtype)
                y = p[..., :T] @ pv + p[..., T:] @ v
            else:
                y = scores.float().softmax(dim=-1).to(x.dtype) @ v
            y = y.view(B, nkv, g, n, hd).permute(0, 3, 1, 2, 4).reshape(B, n, nh * hd)
            x = x + layer.o(y)
            if not logits and i == len(self.layers) - 1:
                break  # the context encode needs keys/values only: the last MLP and the head are skipped
            h = rms_norm(x, layer.mlp_norm, cfg.rms_eps)
            x = x + layer.down(F.silu(layer.gate(h)) * layer.up(h))
        if not logits:
            return None, new
        h = rms_norm(x, self.norm, cfg.rms_eps)
        head = self.embed.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(h, head).float(), new


def load_hf_model(model_dir: Path, dtype: torch.dtype = torch.float32) -> HFDenoiser:
    """Build the model from a checkpoint directory's safetensors (never pickle, never its code)."""
    cfg = load_config(Path(model_dir))
    names = checkpoint_names(cfg)
    tensors = load_tensors(shard_map(Path(model_dir)), list(names.values()))
    with torch.device("meta"):
        model = HFDenoiser(cfg)
    state = {ours: tensors[theirs].to(dtype) for ours, theirs in names.items()}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for k, shape in expected.items():
        if tuple(state[k].shape) != shape:
            from runtime.base import ModelFileError

            raise ModelFileError(f"tensor {names[k]} in {model_dir} has shape {tuple(state[k].shape)}, "
                                 f"config.json implies {shape}")
    model.load_state_dict(state, assign=True, strict=True)
    return model.eval()
