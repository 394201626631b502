"""Train the byte-level BPE tokenizer on the corpus.

    python -m training.tokenizer --corpus data/corpus --out data/tokenizer.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from runtime.tokenizer import SPECIAL_TOKENS


def build_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE: every byte is representable, so round trips are exact."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def sample_texts(corpus_file: Path, max_bytes: int, seed: int = 0):
    """A deterministic sample of documents up to max_bytes."""
    with open(corpus_file, encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for line in f]
    random.Random(seed).shuffle(docs)
    total = 0
    for text in docs:
        if total >= max_bytes:
            break
        total += len(text)
        yield text


def train_tokenizer(corpus_file: Path, out: Path, vocab_size: int = 8192, max_bytes: int = 60_000_000) -> Tokenizer:
    tok = build_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=sys.stderr.isatty(),
    )
    tok.train_from_iterator(sample_texts(corpus_file, max_bytes), trainer=trainer)
    out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(out))
    return tok


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    p.add_argument("--out", type=Path, default=Path("data/tokenizer.json"))
    p.add_argument("--vocab-size", type=int, default=8192)
    p.add_argument("--max-mb", type=float, default=60)
    args = p.parse_args(argv)
    tok = train_tokenizer(args.corpus / "train.jsonl", args.out, args.vocab_size, int(args.max_mb * 1e6))
    print(f"tokenizer: {tok.get_vocab_size()} entries -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
