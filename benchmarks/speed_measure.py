"""Measuring helpers for `python -m benchmarks.speed`: timers, real-code inputs, FLOP counts.

Timings interleave the things being compared (one call of each in turn, repeated),
so a change in the machine's load (a training job shares these cores) hits all of
them alike instead of whichever happened to run during the busy minute.
"""

from __future__ import annotations

import functools
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from completion.mask import context_ids
from runtime.base import ModelInfo
from runtime.tokenizer import Tokenizer

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("completion", "runtime", "lsp_server", "export", "training", "benchmarks")


def progress(msg: str) -> None:
    print(f"[speed] {msg}", file=sys.stderr, flush=True)


def stats(samples_ms: list[float]) -> dict:
    a = np.asarray(samples_ms, dtype=np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "mean": round(float(a.mean()), 3), "min": round(float(a.min()), 3), "n": len(a)}


SHARED_BUSY = 0.25  # share of the cores busy in the second before the start that marks a run as shared


def cpu_busy(seconds: float = 1.0) -> float | None:
    """Share of all cores busy over the next `seconds` (/proc/stat), None where there is no
    /proc/stat. Unlike the load average, which trails by a minute, it says whether other work
    is running now (a training job just paused still shows in the load average)."""
    def sample() -> list[int] | None:
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        except OSError:
            return None
        return [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal

    a = sample()
    if a is None:
        return None
    time.sleep(seconds)
    b = sample()
    if b is None:
        return None
    d = [y - x for x, y in zip(a, b, strict=True)]
    total = sum(d)
    return round((total - d[3] - d[4]) / total, 3) if total > 0 else None


def interleaved(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 1) -> dict[str, dict]:
    """Time each function `reps` times, round-robin, after `warmup` untimed rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1000)
    return {k: stats(v) for k, v in samples.items()}


def code_files() -> list[Path]:
    """This repository's own Python sources: real code, present in every checkout."""
    files = []
    for d in CODE_DIRS:
        files.extend(sorted((REPO / d).glob("*.py")))
    return [f for f in files if f.stat().st_size > 2000]


@functools.lru_cache(maxsize=2)
def code_ids(tok: Tokenizer) -> list[int]:
    """This repository's code as one token list, tokenized once per tokenizer: every context is cut from it."""
    return tok.encode("\n".join(f.read_text() for f in code_files()))


HOLE_TOKENS = 32  # real code taken out between prefix and suffix, so the decoders fill a real hole


def real_context(tok: Tokenizer, T: int, seed: int = 0, hole: int = HOLE_TOKENS) -> np.ndarray:
    """(1, T) ids `<PRE> prefix <SUF> suffix <MID>` cut from real code, prefix:suffix 3:1 like the engine's
    windows, with `hole` tokens of the code between them taken out: around an empty hole the right
    answer is to stop at once, and a sampler that commits the end early would finish in fewer steps
    than any real completion takes."""
    ids = code_ids(tok)
    n_suffix = max(1, (T - 3) // 4)
    n_prefix = T - 3 - n_suffix
    if n_prefix + hole + n_suffix > len(ids):
        raise ValueError(f"not enough code for a {T}-token context ({len(ids)} tokens)")
    cut = random.Random(seed).randrange(n_prefix, len(ids) - hole - n_suffix + 1)
    out = context_ids(tok, ids[cut - n_prefix:cut], ids[cut + hole:cut + hole + n_suffix])
    assert out.shape == (1, T), out.shape
    return out


def completion_requests(n: int, seed: int = 0) -> list[tuple[str, int, int]]:
    """(text, line, column) cursors in real files: mid-line (after the first word of a
    statement) and at line ends, where an editor asks for a suggestion."""
    rng = random.Random(seed)
    files = code_files()
    out = []
    while len(out) < n:
        path = rng.choice(files)
        text = path.read_text()
        lines = text.split("\n")
        candidates = [i for i, line in enumerate(lines) if len(line.strip()) > 12 and not line.strip().startswith("#")]
        i = rng.choice(candidates)
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        first_space = line.find(" ", indent)
        column = first_space + 1 if rng.random() < 0.5 and first_space > 0 else len(line)
        out.append((text, i, column))
    return out


def typing_requests(n_places: int, n_chars: int, seed: int = 1) -> list[list[tuple[str, int, int]]]:
    """Per place in a real file, the requests of typing the next `n_chars` characters of a line
    one at a time: the document holds what is typed so far, the cursor follows it."""
    rng = random.Random(seed)
    files = code_files()
    out = []
    while len(out) < n_places:
        text = rng.choice(files).read_text()
        lines = text.split("\n")
        candidates = [i for i, line in enumerate(lines) if len(line.strip()) > n_chars + 4]
        i = rng.choice(candidates)
        line = lines[i]
        start = len(line) - len(line.lstrip())
        before = "\n".join(lines[:i]) + "\n" + line[:start]
        after = line[start + n_chars:] + "\n" + "\n".join(lines[i + 1:])
        typed = line[start:start + n_chars]
        out.append([(before + typed[:k] + after, i, start + k) for k in range(1, n_chars + 1)])
    return out


# --- FLOPs (multiply-add = 2) -------------------------------------------------------------

def _mlp_proj_flops(info: ModelInfo, tokens: int, mlp_ratio: int = 4) -> float:
    """qkv (3d^2) + output projection (d^2) + MLP (2*ratio*d^2) per token and layer."""
    d = info.d_model
    return 2.0 * tokens * info.n_layer * (4 + 2 * mlp_ratio) * d * d


def encode_flops(info: ModelInfo, T: int) -> float:
    """Causal pass over T tokens: projections, attention on the causal half, logits of the last position."""
    attn = 2.0 * 2 * info.n_layer * info.d_model * T * (T + 1) / 2
    return _mlp_proj_flops(info, T) + attn + 2.0 * info.d_model * info.vocab_size


def step_flops(info: ModelInfo, S: int, T: int, B: int = 1) -> float:
    """One denoising step: S span tokens attend to T + S keys; logits at every span position."""
    attn = 2.0 * 2 * info.n_layer * info.d_model * S * (T + S)
    return B * (_mlp_proj_flops(info, S) + attn + 2.0 * S * info.d_model * info.vocab_size)


def ar_step_flops(info: ModelInfo, T: int) -> float:
    """One autoregressive step: one token attends to T + 1 keys; one row of logits."""
    attn = 2.0 * 2 * info.n_layer * info.d_model * (T + 1)
    return _mlp_proj_flops(info, 1) + attn + 2.0 * info.d_model * info.vocab_size


def matmul_reference(n: int = 1024, reps: int = 7, threads: int | None = None) -> dict:
    """GFLOP/s of an n x n x n float32 matrix multiply in numpy (its BLAS) and in ONNX Runtime
    (one MatMul node, same session options as serving): what these cores reach on dense work."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from runtime.onnx_backend import session_options

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"])
    onnx.checker.check_model(model)
    t = interleaved({"numpy": lambda: a @ b, "onnxruntime": lambda: sess.run(None, {"a": a, "b": b})}, reps)
    flops = 2.0 * n ** 3
    return {"size": n, **{k: {"ms": v, "gflops_best": round(flops / v["min"] / 1e6, 2),
                              "gflops_p50": round(flops / v["p50"] / 1e6, 2)} for k, v in t.items()}}


def keystroke_keep(T: int) -> int:
    """Context tokens before a keystroke at the end of `real_context`'s prefix (<PRE> + prefix):
    what a continued context keeps; the edited token, <SUF>, the suffix and <MID> are recomputed."""
    return T - 3 - max(1, (T - 3) // 4)
