"""Tiny random checkpoints in each public diffusion coder's real layout, written at test time.

Real config.json keys, real tensor names, safetensors shards behind a
model.safetensors.index.json, and a byte-level BPE tokenizer.json (made with the
`tokenizers` library) holding the family's real special-token strings, appended after
the learned vocabulary as in the real tokenizers (ids scaled down: LLaDA's
`<|mdm_mask|>` is 126336 there, a few hundred here). 2 layers, width 64, so a test
runs in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

FAMILIES = ("dream", "open-dcoder", "llada")
WIDTH, LAYERS, HEADS, KV_HEADS, FFN = 64, 2, 4, 2, 128
MODEL_VOCAB = 384  # rows of the embedding: more than the tokenizer, as real checkpoints pad theirs

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "import os\n\n\ndef list_files(path):\n    return sorted(os.listdir(path))\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "for i in range(10):\n    print(i * i)\n",
    "if __name__ == '__main__':\n    main()\n",
]
# Appended in this order after the learned tokens (Qwen2.5 / Dream; LLaDA's Llama-3-like specials).
SPECIALS = {
    "dream": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
              "<|fim_pad|>", "<|beginoftext|>", "<|mask|>"],
    "open-dcoder": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_prefix|>", "<|fim_middle|>",
                    "<|fim_suffix|>", "<|fim_pad|>", "<|mask|>"],
    "llada": ["<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>", "<|start_header_id|>", "<|end_header_id|>",
              "<|eot_id|>"],
}


def write_tokenizer(out: Path, family: str, vocab: int = 300) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens(SPECIALS[family])
    tok.save(str(out / "tokenizer.json"))
    return tok


def qwen2_config(family: str, tok: Tokenizer) -> dict:
    ids = {s: tok.token_to_id(s) for s in SPECIALS[family]}
    d = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": WIDTH,
         "intermediate_size": FFN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
         "num_key_value_heads": KV_HEADS, "max_position_embeddings": 32768, "max_window_layers": LAYERS,
         "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_scaling": None, "sliding_window": None,
         "use_sliding_window": False, "hidden_act": "silu", "attention_dropout": 0.0, "initializer_range": 0.02,
         "vocab_size": MODEL_VOCAB, "tie_word_embeddings": True, "torch_dtype": "float32", "use_cache": False,
         "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|endoftext|>"]}
    if family == "dream":  # Dream-org/Dream-Coder-v0-*-7B, apple/DiffuCoder-7B-*: Dream's remote-code config
        d.update({"architectures": ["DreamModel"], "model_type": "Dream", "tie_word_embeddings": False,
                  "auto_map": {"AutoConfig": "configuration_dream.DreamConfig",
                               "AutoModel": "modeling_dream.DreamModel"},
                  "mask_token_id": ids["<|mask|>"], "bos_token_id": ids["<|beginoftext|>"],
                  "pad_token_id": ids["<|endoftext|>"], "torch_dtype": "bfloat16"})
    return d


def llada_config(tok: Tokenizer) -> dict:
    """GSAI-ML/LLaDA-8B-Base's config.json keys (configuration_llada.py), scaled down."""
    return {"architectures": ["LLaDAModelLM"], "model_type": "llada", "activation_type": "silu", "alibi": False,
            "attention_dropout": 0.0, "attention_layer_norm": False, "bias_for_layer_norm": False,
            "block_type": "llama", "d_model": WIDTH, "embedding_dropout": 0.0, "embedding_size": MODEL_VOCAB,
            "eos_token_id": tok.token_to_id("<|endoftext|>"), "pad_token_id": tok.token_to_id("<|endoftext|>"),
            "mask_token_id": tok.token_to_id("<|mdm_mask|>"), "flash_attention": False, "include_bias": False,
            "include_qkv_bias": False, "init_fn": "mitchell", "input_emb_norm": False, "layer_norm_type": "rms",
            "layer_norm_with_affine": True, "max_sequence_length": 4096, "mlp_hidden_size": FFN, "mlp_ratio": 4,
            "n_heads": HEADS, "n_kv_heads": KV_HEADS, "n_layers": LAYERS, "residual_dropout": 0.0,
            "rms_norm_eps": 1e-5, "rope": True, "rope_full_precision": True, "rope_theta": 500000.0,
            "scale_logits": False, "vocab_size": tok.get_vocab_size(), "weight_tying": False, "use_cache": False}


def random_tensors(family: str, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Weights under the checkpoint's own names, large enough (std 0.1-0.2) that attention is not uniform."""
    g = torch.Generator().manual_seed(seed)

    def w(*shape: int, std: float = 0.15) -> torch.Tensor:
        return (torch.randn(*shape, generator=g) * std).to(dtype)

    def norm() -> torch.Tensor:
        return (1.0 + torch.randn(WIDTH, generator=g) * 0.1).to(dtype)

    hd = WIDTH // HEADS
    t: dict[str, torch.Tensor] = {}
    if family == "llada":
        t["model.transformer.wte.weight"] = w(MODEL_VOCAB, WIDTH, std=0.5)
        for i in range(LAYERS):
            p = f"model.transformer.blocks.{i}."
            t.update({p + "attn_norm.weight": norm(), p + "q_proj.weight": w(WIDTH, WIDTH),
                      p + "k_proj.weight": w(KV_HEADS * hd, WIDTH), p + "v_proj.weight": w(KV_HEADS * hd, WIDTH),
                      p + "attn_out.weight": w(WIDTH, WIDTH), p + "ff_norm.weight": norm(),
                      p + "ff_proj.weight": w(FFN, WIDTH), p + "up_proj.weight": w(FFN, WIDTH),
                      p + "ff_out.weight": w(WIDTH, FFN)})
        t["model.transformer.ln_f.weight"] = norm()
        t["model.transformer.ff_out.weight"] = w(MODEL_VOCAB, WIDTH)
        return t
    t["model.embed_tokens.weight"] = w(MODEL_VOCAB, WIDTH, std=0.5)
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        t.update({p + "input_layernorm.weight": norm(), p + "self_attn.q_proj.weight": w(WIDTH, WIDTH),
                  p + "self_attn.q_proj.bias": w(WIDTH), p + "self_attn.k_proj.weight": w(KV_HEADS * hd, WIDTH),
                  p + "self_attn.k_proj.bias": w(KV_HEADS * hd), p + "self_attn.v_proj.weight": w(KV_HEADS * hd, WIDTH),
                  p + "self_attn.v_proj.bias": w(KV_HEADS * hd), p + "self_attn.o_proj.weight": w(WIDTH, WIDTH),
                  p + "post_attention_layernorm.weight": norm(), p + "mlp.gate_proj.weight": w(FFN, WIDTH),
                  p + "mlp.up_proj.weight": w(FFN, WIDTH), p + "mlp.down_proj.weight": w(WIDTH, FFN)})
    t["model.norm.weight"] = norm()
    if family == "dream":  # Open-dCoder (Qwen2.5-Coder-0.5B) ties its head to the embedding
        t["lm_head.weight"] = w(MODEL_VOCAB, WIDTH)
    return t


def write_shards(out: Path, tensors: dict[str, torch.Tensor], n_shards: int = 2) -> None:
    """model-0000k-of-0000n.safetensors + model.safetensors.index.json, as save_pretrained writes them."""
    from safetensors.torch import save_file

    names = list(tensors)
    per = -(-len(names) // n_shards)
    weight_map, total = {}, 0
    for k in range(n_shards):
        shard = f"model-{k + 1:05d}-of-{n_shards:05d}.safetensors"
        part = {n: tensors[n].contiguous() for n in names[k * per:(k + 1) * per]}
        save_file(part, str(out / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, shard))
        total += sum(v.numel() * v.element_size() for v in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def write_checkpoint(out: Path, family: str, seed: int = 0) -> Path:
    """A tiny random checkpoint directory of `family` ("dream", "open-dcoder", "llada")."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = write_tokenizer(out, family)
    if family == "llada":
        config = llada_config(tok)
        tok_cfg = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "tokenizer_class": "PreTrainedTokenizerFast"}
    else:
        config = qwen2_config(family, tok)
        tok_cfg = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "mask_token": "<|mask|>",
                   "tokenizer_class": "Qwen2Tokenizer"}
        if family == "dream":
            tok_cfg["bos_token"] = "<|beginoftext|>"
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2))
    dtype = torch.bfloat16 if family == "dream" else torch.float32  # Dream ships bf16: exercises the upcast
    write_shards(out, random_tensors(family, seed, dtype))
    return out
