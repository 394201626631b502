"""Context reuse across keystrokes: continuing the last context's cache gives what a full
encode gives (ONNX Runtime and PyTorch, bundled model), and the engine reuses it while
the user types, with the same completions as an engine that never does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from completion.api import CompletionRequest, CompletionSettings
from completion.context_reuse import ContextReuse, common_prefix
from completion.engine import CompletionEngine
from runtime.base import extends
from runtime.costs import StepCostModel
from runtime.loader import load_model
from runtime.onnx_backend import OnnxBackend

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "default"
pytestmark = pytest.mark.skipif(not (MODEL / "extender.onnx").is_file(), reason="bundled model has no extender.onnx")

TYPED = "for name in sorted(os.listdir(folder)):\n        if name.endswith('.py'):\n            paths.append(name)"
DOC_BEFORE = "import os\n\n\ndef list_python_files(folder):\n    paths = []\n    "
DOC_AFTER = "\n    return paths\n"


def test_common_prefix():
    a = np.array([1, 2, 3, 4])
    assert common_prefix(a, np.array([1, 2, 9])) == 2
    assert common_prefix(a, a[:2]) == 2 and common_prefix(a, a) == 4 and common_prefix(a, np.array([7])) == 0


@pytest.fixture(scope="module")
def onnx_backend():
    return OnnxBackend(MODEL, threads=1)


def _contexts(rng: np.random.Generator, T: int = 300) -> list[np.ndarray]:
    """A context, then edits like typing's: one token changed near the end, one appended, one removed."""
    base = rng.integers(10, 8000, T, dtype=np.int64)
    edited = base.copy()
    edited[-40] = 77
    return [base[None], edited[None], np.concatenate((edited, [55]))[None], edited[None, :-1], edited[None, :-1]]


@pytest.mark.parametrize("backend_kind", ["onnx", "torch"])
def test_reused_context_equals_full_encode(onnx_backend, backend_kind):
    if backend_kind == "torch":
        pytest.importorskip("torch")
        from runtime.torch_backend import TorchBackend

        backend = TorchBackend(MODEL / "model.safetensors", threads=1)
    else:
        backend = onnx_backend
    assert extends(backend)
    reuse = ContextReuse()
    for ids in _contexts(np.random.default_rng(0)):
        state, kept = reuse.encode(backend, ids)
        full = backend.encode_context(ids)
        assert state.length == ids.shape[1] == np.asarray(state.kv).shape[4]
        assert np.abs(state.first_logits - full.first_logits).max() < 2e-4
        assert np.abs(np.asarray(state.kv) - np.asarray(full.kv)).max() < 2e-4
    s = reuse.stats
    assert (s.full, s.extended, s.same) == (1, 3, 1)  # the last context repeats the one before
    assert s.reused_tokens > 4 * 250 and s.encoded_tokens < 300 + 3 * 45


def test_extend_rejects_keeping_more_than_is_cached(onnx_backend):
    state = onnx_backend.encode_context(np.arange(10, 30, dtype=np.int64)[None])
    with pytest.raises(ValueError, match="outside the cached context"):
        onnx_backend.extend_context(np.array([[5]]), state, 21)


def test_int8_continued_context_is_as_close_as_int8_itself():
    """The int8 graphs quantize activations with scales measured per call, so a continued
    context is not bit-identical to a full int8 encode (the fp32 graphs' is, above); it must
    stay within the distance int8 already has from fp32: a broken continuation (wrong
    positions, a stale cache) is off by far more."""
    if not (MODEL / "extender.int8.onnx").is_file():
        pytest.skip("bundled model has no int8 graphs")
    int8, fp32 = OnnxBackend(MODEL, threads=1, precision="int8"), OnnxBackend(MODEL, threads=1)
    ids = np.random.default_rng(1).integers(10, 8000, (1, 300), dtype=np.int64)
    full = int8.encode_context(ids)
    continued = int8.extend_context(ids[:, 220:], int8.encode_context(ids[:, :220]), 220)
    noise = np.abs(full.kv - fp32.encode_context(ids).kv).max()
    assert np.abs(continued.kv - full.kv).max() <= 2 * noise
    broken = int8.extend_context(ids[:, 221:], int8.encode_context(ids[:, :220]), 220)  # one token lost
    assert np.abs(broken.kv[..., 221:, :] - full.kv[..., 222:, :]).max() > 2 * noise


def test_engine_reuses_the_context_while_typing_and_answers_the_same():
    """Type a loop body character by character: the engine that reuses the cache answers each
    keystroke exactly as one that encodes every context from scratch (fp32 graphs: the int8
    ones are only as close as the test above asks)."""
    settings = CompletionSettings(latency_budget_ms=0, span_candidates=1, span_len=8, steps=2)
    model = load_model(str(MODEL), backend="cpu-fp32", threads=1)
    reusing = CompletionEngine(model, settings, StepCostModel())
    fresh = CompletionEngine(model, settings, StepCostModel(), contexts=ContextReuse(min_keep=10**9))
    reused = []
    for n in range(20, len(TYPED), 7):
        text = DOC_BEFORE + TYPED[:n] + DOC_AFTER
        prefix = DOC_BEFORE + TYPED[:n]
        line, col = prefix.count("\n"), len(prefix) - (prefix.rfind("\n") + 1)
        request = CompletionRequest(text, line, col, "python", document_id="typing.py")
        got, want = reusing.complete(request), fresh.complete(request)
        assert got.candidate_text == want.candidate_text and got.text == want.text
        reused.append(got.reused_tokens)
        assert want.reused_tokens == 0
        reusing.cache.clear()  # every keystroke goes to the model, not the typed-ahead cache
        fresh.cache.clear()
    print("reused tokens per keystroke:", reused)
    assert reused[0] == 0 and sum(r > 0 for r in reused) >= len(reused) - 2
    assert fresh.contexts.stats.extended == 0 and reusing.contexts.stats.extended >= len(reused) - 2
    # the steps after a continued context are costed at its full length, like after an encode
    assert reusing.costs.last_context == fresh.costs.last_context


def test_each_document_keeps_its_own_context(onnx_backend):
    """Going back and forth between two files continues each one's cache; a third evicts the oldest."""
    rng = np.random.default_rng(1)
    a, b, c = (rng.integers(10, 8000, 200, dtype=np.int64) for _ in range(3))
    reuse = ContextReuse(max_documents=2)
    for doc, ids in (("a", a), ("b", b)):
        reuse.encode(onnx_backend, ids[None], doc)
    _, kept = reuse.encode(onnx_backend, np.concatenate((a, [7]))[None], "a")
    assert kept == 200
    _, kept = reuse.encode(onnx_backend, np.concatenate((b, [7]))[None], "b")
    assert kept == 200
    reuse.encode(onnx_backend, c[None], "c")  # evicts "a", the least recently used
    _, kept = reuse.encode(onnx_backend, np.concatenate((a, [7, 8]))[None], "a")
    assert kept == 0 and reuse.stats.full == 4 and reuse.stats.extended == 2
