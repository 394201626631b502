"""Read a Hugging Face checkpoint directory: which family it is, its shape, and its tensors.

Families (detected from config.json's `model_type` / `architectures`, never by running
the checkpoint's own code: no `trust_remote_code`, no pickle):

- "dream": Dream, Dream-Coder and DiffuCoder (DiffuCoder reuses Dream's modeling code,
  huggingface.co/apple/DiffuCoder-7B-Base README), `model_type` "Dream",
  `architectures` ["DreamModel"]: Qwen2 tensor names, logits shifted by one.
- "open-dcoder": Open-dCoder (github.com/pengzhangzhi/Open-dLLM), a plain `qwen2`
  config whose tokenizer has a mask token; its sampler shifts logits by one
  (veomni generation_utils `_mdm_sample`: `torch.cat([logits[:, :1], logits[:, :-1]])`).
- "llada": LLaDA (`model_type` "llada", ["LLaDAModelLM"]): OLMo-style names
  (`model.transformer.blocks.N.q_proj`, `ff_proj`/`up_proj`/`ff_out`), not shifted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.base import ModelFileError

CONFIG = "config.json"
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
SUPPORTED = "Dream / Dream-Coder / DiffuCoder (model_type 'Dream'), Open-dCoder ('qwen2' + mask token), LLaDA ('llada')"


@dataclass(frozen=True)
class HFConfig:
    """The shape of one checkpoint, in one vocabulary for both layouts."""

    family: str  # "dream" | "open-dcoder" | "llada"
    layout: str  # tensor names: "qwen2" | "llada"
    hidden: int
    n_layer: int
    n_head: int
    n_kv_head: int
    intermediate: int
    vocab: int  # rows of the embedding (LLaDA: embedding_size, padded past the tokenizer)
    rms_eps: float
    rope_theta: float
    tie_embeddings: bool
    qkv_bias: bool
    shifted: bool  # hidden state at i-1 predicts token i (Dream family), else at i (LLaDA)
    mask_token_id: int | None
    bos_token_id: int | None
    eos_token_id: int | None

    @property
    def head_dim(self) -> int:
        return self.hidden // self.n_head

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def is_hf_dir(model_dir: Path) -> bool:
    """A Hugging Face checkpoint (or our export of one): config.json names a model type or
    architecture. Our own model's config.json has `n_layer`/`d_model` and neither key."""
    path = Path(model_dir) / CONFIG
    if not path.is_file():
        return False
    try:
        d = json.loads(path.read_text())
    except (ValueError, OSError):  # unreadable: an HF directory if it has HF files, so the error names config.json
        return (Path(model_dir) / INDEX).is_file() or (Path(model_dir) / "context.onnx").is_file()
    return isinstance(d, dict) and ("model_type" in d or "architectures" in d)


def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ModelFileError(f"{what} not found: {path}")
    try:
        d = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise ModelFileError(f"corrupt {what} {path}: {exc}") from exc
    if not isinstance(d, dict):
        raise ModelFileError(f"corrupt {what} {path}: not a JSON object")
    return d


def detect_family(d: dict, path: Path) -> str:
    """'dream' | 'open-dcoder' | 'llada', or ModelFileError naming what config.json says."""
    model_type = str(d.get("model_type", "")).lower()
    archs = [str(a) for a in d.get("architectures") or []]
    if model_type == "dream" or any(a.startswith("Dream") for a in archs):
        return "dream"
    if model_type == "llada" or any(a.startswith("LLaDA") for a in archs):
        return "llada"
    if model_type == "qwen2" or "Qwen2ForCausalLM" in archs:
        return "open-dcoder"  # only a diffusion coder if its tokenizer has a mask token: checked on load
    raise ModelFileError(f"unknown architecture in {path}: model_type={d.get('model_type')!r}, "
                         f"architectures={archs}; supported: {SUPPORTED}")


def _opt_int(d: dict, key: str) -> int | None:
    v = d.get(key)
    if isinstance(v, list):  # some configs list several EOS ids; the first is the document end
        v = v[0] if v else None
    return int(v) if v is not None else None


def parse_config(d: dict, path: Path) -> HFConfig:
    family = detect_family(d, path)
    try:
        if family == "llada":
            # LLaDA's own keys (configuration_llada.py / its config.json): d_model, n_layers, n_heads, ...
            if d.get("block_type", "llama") != "llama" or d.get("activation_type", "silu") != "silu":
                raise ModelFileError(f"unsupported LLaDA variant in {path}: block_type={d.get('block_type')!r}, "
                                     f"activation_type={d.get('activation_type')!r} (need 'llama' + 'silu')")
            for flag in ("include_bias", "input_emb_norm", "scale_logits", "alibi", "attention_layer_norm"):
                if d.get(flag):
                    raise ModelFileError(f"unsupported LLaDA option {flag}=true in {path}")
            if d.get("layer_norm_type", "rms") != "rms":
                raise ModelFileError(f"unsupported LLaDA layer_norm_type {d.get('layer_norm_type')!r} in {path}")
            n_head = int(d["n_heads"])
            return HFConfig(family=family, layout="llada", hidden=int(d["d_model"]), n_layer=int(d["n_layers"]),
                            n_head=n_head, n_kv_head=int(d.get("n_kv_heads") or n_head),
                            intermediate=int(d["mlp_hidden_size"]),
                            vocab=int(d.get("embedding_size") or d["vocab_size"]),
                            rms_eps=float(d.get("rms_norm_eps", 1e-5)), rope_theta=float(d.get("rope_theta", 10000.0)),
                            tie_embeddings=bool(d.get("weight_tying", False)),
                            qkv_bias=bool(d.get("include_qkv_bias", False)), shifted=False,
                            mask_token_id=_opt_int(d, "mask_token_id"), bos_token_id=_opt_int(d, "bos_token_id"),
                            eos_token_id=_opt_int(d, "eos_token_id"))
        if d.get("rope_scaling"):
            raise ModelFileError(f"unsupported rope_scaling {d['rope_scaling']!r} in {path}")
        if d.get("use_sliding_window"):
            raise ModelFileError(f"unsupported use_sliding_window=true in {path}")
        if d.get("hidden_act", "silu") != "silu":
            raise ModelFileError(f"unsupported hidden_act {d.get('hidden_act')!r} in {path}")
        n_head = int(d["num_attention_heads"])
        return HFConfig(family=family, layout="qwen2", hidden=int(d["hidden_size"]),
                        n_layer=int(d["num_hidden_layers"]), n_head=n_head,
                        n_kv_head=int(d.get("num_key_value_heads") or n_head),
                        intermediate=int(d["intermediate_size"]), vocab=int(d["vocab_size"]),
                        rms_eps=float(d.get("rms_norm_eps", 1e-6)), rope_theta=float(d.get("rope_theta", 10000.0)),
                        tie_embeddings=bool(d.get("tie_word_embeddings", False)), qkv_bias=True, shifted=True,
                        mask_token_id=_opt_int(d, "mask_token_id"), bos_token_id=_opt_int(d, "bos_token_id"),
                        eos_token_id=_opt_int(d, "eos_token_id"))
    except KeyError as exc:
        raise ModelFileError(f"config {path} lacks key {exc.args[0]!r} needed for the {family} family") from exc
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"corrupt config {path}: {exc}") from exc


def load_config(model_dir: Path) -> HFConfig:
    path = Path(model_dir) / CONFIG
    return parse_config(read_json(path, "model config"), path)


def shard_map(model_dir: Path) -> dict[str, Path]:
    """Tensor name -> shard file, from model.safetensors.index.json or the single file. Refuses
    pickle checkpoints and names any shard the index lists that is not on disk."""
    model_dir = Path(model_dir)
    index = model_dir / INDEX
    if index.is_file():
        weight_map = read_json(index, "safetensors index").get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelFileError(f"corrupt safetensors index {index}: no weight_map")
        shards = {name: model_dir / str(f) for name, f in weight_map.items()}
        for f in sorted(set(shards.values())):
            if not f.is_file():
                raise ModelFileError(f"missing shard {f.name} listed in {index}")
        return shards
    single = model_dir / SINGLE
    if single.is_file():
        return {name: single for name in _tensor_names(single)}
    pickles = sorted(p.name for p in model_dir.glob("*.bin")) + sorted(p.name for p in model_dir.glob("*.pt*"))
    if pickles:
        raise ModelFileError(f"{model_dir} holds only pickle weights ({', '.join(pickles)}); Quicksilver loads "
                             "safetensors only (convert them with safetensors' convert script)")
    raise ModelFileError(f"no weights in {model_dir}: need {SINGLE} or {INDEX} with its shards")


def _tensor_names(path: Path) -> list[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return list(f.keys())
    except Exception as exc:  # safetensors raises SafetensorError / OSError on a bad header
        raise ModelFileError(f"corrupt safetensors file {path}: {exc}") from exc


def load_tensors(shards: dict[str, Path], names: list[str]) -> dict[str, Any]:
    """torch tensors for `names`, each read from its shard (one open per shard). ModelFileError
    naming the tensor if the checkpoint lacks it, or the shard if it cannot be read."""
    from safetensors import safe_open

    missing = [n for n in names if n not in shards]
    if missing:
        shown = ", ".join(missing[:3]) + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else "")
        raise ModelFileError(f"checkpoint lacks tensor {shown}")
    by_shard: dict[Path, list[str]] = {}
    for n in names:
        by_shard.setdefault(shards[n], []).append(n)
    out: dict[str, Any] = {}
    for shard, wanted in by_shard.items():
        try:
            with safe_open(str(shard), framework="pt") as f:
                have = set(f.keys())
                for n in wanted:
                    if n not in have:
                        raise ModelFileError(f"tensor {n} missing from shard {shard.name} (the index says it is there)")
                    out[n] = f.get_tensor(n)
        except ModelFileError:
            raise
        except Exception as exc:
            raise ModelFileError(f"corrupt safetensors shard {shard}: {exc}") from exc
    return out
