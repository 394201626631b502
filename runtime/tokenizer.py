"""The model's byte-level BPE tokenizer and its special tokens.

Serving and training both go through this wrapper so that special-token ids and
the encode/decode rules (no added spaces, exact round trip) are defined once.
"""

from __future__ import annotations

import functools
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer

EOS = "<|endoftext|>"  # also the padding after a span's true end
MASK = "<|mask|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_SUFFIX = "<|fim_suffix|>"
FIM_MIDDLE = "<|fim_middle|>"
SPECIAL_TOKENS = [EOS, MASK, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE]


class Tokenizer:
    """Thin wrapper over a `tokenizers` byte-level BPE with our special ids."""

    def __init__(self, hf: HFTokenizer):
        self.hf = hf
        hf.encode_special_tokens = True  # "<|mask|>" typed in a file is text, not our marker
        ids = {tok: hf.token_to_id(tok) for tok in SPECIAL_TOKENS}
        missing = [tok for tok, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"tokenizer lacks special tokens {missing}")
        self.eos_id = ids[EOS]
        self.mask_id = ids[MASK]
        self.prefix_id = ids[FIM_PREFIX]
        self.suffix_id = ids[FIM_SUFFIX]
        self.middle_id = ids[FIM_MIDDLE]
        self.special_ids = frozenset(ids.values())

    @classmethod
    def from_file(cls, path: str | Path) -> Tokenizer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        try:
            return cls(HFTokenizer.from_file(str(path)))
        except Exception as exc:  # tokenizers raises plain Exception on bad JSON
            raise ValueError(f"corrupt tokenizer file {path}: {exc}") from exc

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        """Ids of plain text; special-token strings inside code stay plain text."""
        if not text:
            return []
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    @functools.cached_property
    def token_texts(self) -> list[str]:
        """Each id's own text ("" for special tokens): what constrained sampling masks by."""
        return [self.decode([i]) for i in range(self.vocab_size)]

    def decode(self, ids: list[int]) -> str:
        """Text of ids, special tokens dropped."""
        return self.hf.decode([i for i in ids if i not in self.special_ids], skip_special_tokens=False)
