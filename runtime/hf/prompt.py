"""Each family's infilling layout, and the tokenizer wrapper that gives the engine its ids.

The engine always builds `<PRE> prefix <SUF> suffix <MID>` and a span of MASKs after
it (completion/mask.py). These models were trained differently: the span sits *in
place*, between prefix and suffix, and attention is bidirectional. So the backend
reads prefix and suffix back out of the engine's ids (`split_context`) and lays the
sequence out as its family was trained:

- Dream / Dream-Coder / DiffuCoder: `<|beginoftext|> prefix MASK*S suffix <|endoftext|>`
  (DreamOn's `process_infilling_prompt`, github.com/DreamLM/DreamOn README);
- Open-dCoder: `prefix MASK*S suffix` (Open-dLLM eval/eval_infill/eval_infill.py:
  `p + [mask_token_id] * m + tokenizer.encode(s)`, the Qwen2 tokenizer adds no BOS);
- LLaDA: `<|startoftext|> prefix MASK*S suffix <|endoftext|>` (its tokenizer adds the
  BOS; masks are filled in place, as the LLaDA infilling samplers do).

The markers the engine uses for <PRE>/<SUF>/<MID> are special tokens of the model's
own vocabulary that never occur in encoded text (Qwen2's FIM tokens; LLaDA's chat
header tokens), so they round-trip unambiguously and are never predicted (the
engine forbids them). EOS past the true middle is the span's padding, as in the
engine's own model; the sampler cuts the text there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer as RawTokenizer

from runtime.base import ModelFileError
from runtime.hf.config import HFConfig
from runtime.tokenizer import Tokenizer


@dataclass(frozen=True)
class Layout:
    """How one family lays out an infilling request, by token strings of its vocabulary."""

    markers: tuple[str, str, str]  # stand-ins for <PRE>, <SUF>, <MID> in the engine's context ids
    mask: tuple[str, ...]  # mask token candidates, tried after config.json / tokenizer_config.json
    eos: str
    bos: str | None  # prepended before the prefix (None: nothing)
    eos_after_suffix: bool  # the sequence ends with EOS after the suffix


QWEN2_MARKERS = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
LAYOUTS = {
    "dream": Layout(QWEN2_MARKERS, ("<|mask|>",), "<|endoftext|>", "<|beginoftext|>", True),
    "open-dcoder": Layout(QWEN2_MARKERS, ("<|mask|>", "<mask>"), "<|endoftext|>", None, False),
    "llada": Layout(("<|startoftext|>", "<|start_header_id|>", "<|end_header_id|>"), ("<|mdm_mask|>",),
                    "<|endoftext|>", "<|startoftext|>", True),
}


def _special(tok_cfg: dict, key: str) -> str | None:
    v = tok_cfg.get(key)
    if isinstance(v, dict):  # {"content": "<|mask|>", ...} in older tokenizer_config.json files
        v = v.get("content")
    return v if isinstance(v, str) else None


class HFTokenizer(Tokenizer):
    """The engine's tokenizer interface over a checkpoint's own tokenizer.json."""

    def __init__(self, hf: RawTokenizer, cfg: HFConfig, tok_cfg: dict, path: Path):
        self.hf = hf
        hf.encode_special_tokens = True  # "<|mask|>" typed in a file is text, not the model's marker
        self.family = cfg.family
        layout = LAYOUTS[cfg.family]

        def need(token: str, what: str) -> int:
            i = hf.token_to_id(token)
            if i is None:
                raise ModelFileError(f"tokenizer {path} lacks the {what} token {token!r} of the {cfg.family} family")
            return i

        mask_id = cfg.mask_token_id
        if mask_id is None or hf.id_to_token(mask_id) is None:
            names = [n for n in (_special(tok_cfg, "mask_token"), *layout.mask) if n]
            mask_id = next((hf.token_to_id(n) for n in names if hf.token_to_id(n) is not None), None)
        if mask_id is None:
            what = "an autoregressive Qwen2, not a diffusion coder" if cfg.family == "open-dcoder" else "unusable"
            raise ModelFileError(f"no mask token in {path} or config.json (tried {', '.join(layout.mask)}): {what}")
        self.mask_id = int(mask_id)
        self.eos_id = need(layout.eos, "end-of-text")
        self.bos_id = need(layout.bos, "begin-of-text") if layout.bos else None
        self.prefix_id, self.suffix_id, self.middle_id = (need(m, "marker") for m in layout.markers)
        self.eos_after_suffix = layout.eos_after_suffix
        added = {i for i, t in hf.get_added_tokens_decoder().items() if t.special}
        self.special_ids = frozenset(added | {self.mask_id, self.eos_id})

    @classmethod
    def from_dir(cls, model_dir: Path, cfg: HFConfig) -> HFTokenizer:
        path = Path(model_dir) / "tokenizer.json"
        if not path.is_file():
            raise ModelFileError(f"tokenizer file not found: {path} (Quicksilver reads the fast tokenizer.json; "
                                 "save one with transformers' tokenizer.save_pretrained)")
        try:
            raw = RawTokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises plain Exception on bad JSON
            raise ModelFileError(f"corrupt tokenizer file {path}: {exc}") from exc
        tok_cfg_path = Path(model_dir) / "tokenizer_config.json"
        tok_cfg: dict = {}
        if tok_cfg_path.is_file():
            try:
                tok_cfg = json.loads(tok_cfg_path.read_text())
            except ValueError as exc:
                raise ModelFileError(f"corrupt tokenizer config {tok_cfg_path}: {exc}") from exc
        return cls(raw, cfg, tok_cfg, path)


@dataclass
class Request:
    """One request in the family's own layout: `head` + span + `tail`, span starting at `span_at`."""

    head: np.ndarray  # (P,) int64: BOS? + prefix
    tail: np.ndarray  # (U,) int64: suffix + EOS?

    @property
    def span_at(self) -> int:
        return len(self.head)

    def sequence(self, span: np.ndarray) -> np.ndarray:
        """(1, P + S + U) int64 for one span row (S,)."""
        return np.concatenate([self.head, span.astype(np.int64), self.tail])[None, :]


def split_context(ids: np.ndarray, tok: HFTokenizer) -> Request:
    """The engine's `<PRE> prefix <SUF> suffix <MID>` (1, T) as this family's head and tail. Ids
    not in that form (a benchmark's random ids) are all prefix. Encoded text never holds a
    marker (special tokens in text stay text), so the first <SUF> after <PRE> is the one."""
    row = np.asarray(ids, dtype=np.int64).reshape(-1)
    prefix, suffix = row, row[:0]
    if len(row) >= 3 and row[0] == tok.prefix_id and row[-1] == tok.middle_id:
        at = np.flatnonzero(row[1:-1] == tok.suffix_id)
        if len(at):
            prefix, suffix = row[1:1 + at[0]], row[2 + at[0]:-1]
    head = prefix if tok.bos_id is None else np.concatenate([[tok.bos_id], prefix]).astype(np.int64)
    tail = np.concatenate([suffix, [tok.eos_id]]).astype(np.int64) if tok.eos_after_suffix else suffix
    if len(head) == 0 and len(tail) == 0:  # an empty document: the context cache needs one position
        tail = np.array([tok.eos_id], dtype=np.int64)
    return Request(head=head.astype(np.int64), tail=tail.astype(np.int64))
