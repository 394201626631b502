"""Self-distillation toward fewer denoising steps (`train.py --teacher`).

Parallel decoding commits several tokens of a step from their separate marginals; where
the data allow several fillings (`i += 1` or `i = i + 1`), tokens from different ones meet
and the line breaks, so the sampler needs more steps. Trained on spans a teacher filled
in many steps, the model sees one filling per context and its marginals agree with each
other: more tokens clear the sampler's confidence threshold early and a span finishes in
fewer steps. This is sequence-level knowledge distillation, the standard fix for the
multi-modality of non-autoregressive decoders (Gu et al. 2018; Zhou et al. 2020), applied
with the model's own multi-step decoding as teacher (as in self-distillation through time,
Deschenaux & Gulcehre 2024).

A fraction of each batch's spans is filled by the teacher (the exported model, run through
the same sampler the server uses); the rest keep the corpus's text, so the model stays
anchored to real code. The teacher reads the same context the student does.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from training.data import InfillBatch, put_noised_span


class Teacher:
    """An exported model directory decoding spans with the serving sampler."""

    def __init__(self, model_dir: Path, steps: int = 8, threshold: float = 0.9, threads: int | None = None):
        from completion.sampler import SpecialIds
        from runtime.onnx_backend import OnnxBackend
        from runtime.tokenizer import Tokenizer

        self.backend = OnnxBackend(Path(model_dir), threads=threads)  # fp32: the model itself, not its int8 copy
        tok = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self.ids = SpecialIds.from_tokenizer(tok)
        self.steps, self.threshold = steps, threshold

    def fill(self, context: np.ndarray, span_len: int) -> list[int]:
        """The teacher's span of span_len tokens (EOS after its end) for a context (T,) ending in <MID>."""
        from completion.sampler import denoise_rows

        state = self.backend.encode_context(np.asarray(context, dtype=np.int64)[None])
        return denoise_rows(self.backend, state, [span_len], self.steps, self.ids, self.threshold).rows[0]


def relabel(batch: InfillBatch, teacher: Teacher, rng: random.Random, fraction: float, eps: float = 0.05) -> int:
    """Replace about `fraction` of the batch's spans by the teacher's filling of the same hole, noised
    as `infill_batch` noises (mask rate t ~ U(eps, 1), padding after the first EOS down-weighted).
    Returns how many spans were replaced."""
    mask, eos = teacher.ids.mask, teacher.ids.eos
    replaced = 0
    for b in range(len(batch.ctx_len)):
        if rng.random() >= fraction:
            continue
        c, L = int(batch.ctx_len[b]), int(batch.span_len[b])
        span = np.array(teacher.fill(batch.ids[b, :c], L), dtype=np.int64)
        span[span == mask] = eos  # nothing stays masked after the last step; a guard, not expected
        ends = np.flatnonzero(span == eos)
        put_noised_span(batch, b, span, int(ends[0]) if len(ends) else L, mask, rng, eps)
        replaced += 1
    return replaced
