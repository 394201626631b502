"""Diffusion against autoregressive decoding with each at its own best thread count.

The headline ratio (`diffusion_vs_ar` in benchmarks/speed.py) runs both decoders
as the server runs the sampler: the same sessions' settings, intra-op threads
that spin within a run and park after it. A one-token decode step is mostly
dispatch, and handing each of its ~200 small ops to a second thread can cost it
more than the thread gives back, while a 32-token denoising step has work to
split. So the same threads may favour the sampler; this section times both at
every thread count up to the machine's cores, side by side, and reports the
ratio of the fastest of each, the comparison a sceptic would ask for.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from benchmarks import speed_measure as m
from benchmarks.speed_measure import progress


def thread_counts(model_dir: Path, ids: np.ndarray, steps: int, precision: str, special, S: int = 32,
                  reps: int = 15, threshold: float | None = None) -> dict:
    """32-token decode after one encode of `ids` (1, T): the sampler at `steps` steps and greedy
    AR, for 1..cores intra-op threads, all timed round-robin in one loop."""
    from completion.sampler import denoise_rows
    from runtime.ar_decoder import OnnxStepDecoder
    from runtime.onnx_backend import OnnxBackend

    counts = list(range(1, max(1, os.cpu_count() or 1) + 1))
    fns = {}
    for n in counts:
        backend = OnnxBackend(model_dir, threads=n, precision=precision)
        decoder = OnnxStepDecoder(model_dir, threads=n, precision=precision)
        state = backend.encode_context(ids)
        fns[f"diffusion_{n}"] = lambda b=backend, st=state: denoise_rows(b, st, [S], steps, special, threshold)
        fns[f"ar_{n}"] = lambda d=decoder, st=state: d.generate(st, S, forbidden=special.forbidden)
    progress(f"diffusion vs AR at {', '.join(map(str, counts))} intra-op threads: {S} tokens, {steps} steps")
    timed = m.interleaved(fns, reps, warmup=2)
    best_d = min(counts, key=lambda n: timed[f"diffusion_{n}"]["p50"])
    best_a = min(counts, key=lambda n: timed[f"ar_{n}"]["p50"])
    d, a = timed[f"diffusion_{best_d}"]["p50"], timed[f"ar_{best_a}"]["p50"]
    return {
        "context": int(ids.shape[1]), "span": S, "steps": steps, "threads": counts, "ms": timed,
        "speedup_by_threads": {n: round(timed[f"ar_{n}"]["p50"] / timed[f"diffusion_{n}"]["p50"], 3)
                               for n in counts},
        "best_threads": {"diffusion": best_d, "ar": best_a},
        "speedup_best_vs_best": round(a / d, 3),
    }
