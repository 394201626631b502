"""End to end: `python -m lsp_server --model DIR` serves inline completions from a tiny random checkpoint
of each public diffusion coder family (PyTorch on the safetensors), and from one exported with
`python -m export onnx --hf` (ONNX Runtime, no torch in the serving path). The TensorRT route needs
an NVIDIA GPU and skips without one."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from clients.raw import ENV, ROOT, RawSession
from hf_checkpoints import FAMILIES, write_checkpoint

from runtime.loader import gpu_visible

DOC = "file:///hf/home.py"
# The cursor ends a comment line: any single line a random model writes there keeps the parse valid.
TEXT = "import os\n\n\ndef list_files(path):\n    # return the names of the files in path, sorted by\n    pass\n"
CURSOR = (4, len("    # return the names of the files in path, sorted by"))


def serve_one(model_dir: Path, *extra: str) -> dict:
    session = RawSession("--model", str(model_dir), "--log-level", "warning", "--threads", "1", *extra)
    try:
        session.initialize({"general": {"positionEncodings": ["utf-16"]}})
        session.open(DOC, TEXT)
        reply = session.inline(DOC, *CURSOR, timeout=180)
        assert session.request("shutdown")["result"] is None
        session.send("exit")
        assert session.wait() == 0
        return reply
    finally:
        session.close()


def assert_completion(reply: dict) -> str:
    assert "error" not in reply, reply
    (item,) = reply["result"]["items"]
    cursor = {"line": CURSOR[0], "character": CURSOR[1]}
    assert item["range"] == {"start": cursor, "end": cursor}
    assert item["insertText"].strip() and "\n" not in item["insertText"]
    return item["insertText"]


@pytest.mark.parametrize("family", FAMILIES)
def test_lsp_server_serves_each_family_from_its_checkpoint(tmp_path, family):
    pytest.importorskip("torch")
    text = assert_completion(serve_one(write_checkpoint(tmp_path / family, family)))
    print(f"{family}: {text!r}")


def test_export_cli_then_serve_with_onnx_runtime(tmp_path):
    """`python -m export onnx --hf` (fp32 + int8, parity checked), then the server on the exported
    directory alone: ONNX Runtime, the checkpoint's safetensors not even present."""
    pytest.importorskip("torch")
    ckpt = write_checkpoint(tmp_path / "ckpt", "llada")
    out = tmp_path / "onnx"
    run = subprocess.run([sys.executable, "-m", "export", "onnx", "--hf", str(ckpt), "--out", str(out), "--check",
                          "--int8"], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    parity = json.loads(run.stdout.strip().splitlines()[-1])
    assert parity["fp32"]["logits"] < 1e-4 and parity["fp32"]["kv"] < 1e-4
    assert parity["int8"]["greedy_agreement"] > 0.5  # lossy: reported, loosely bounded
    assert not list(out.glob("*.safetensors")) and (out / "tokenizer.json").is_file()
    assert_completion(serve_one(out, "--backend", "cpu"))
    assert_completion(serve_one(out, "--backend", "cpu-int8"))


def test_export_cli_errors_are_one_line(tmp_path):
    d = write_checkpoint(tmp_path / "d", "dream")
    (d / "model-00001-of-00002.safetensors").unlink()
    run = subprocess.run([sys.executable, "-m", "export", "onnx", "--hf", str(d), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("error: missing shard model-00001-of-00002.safetensors")


def test_tensorrt_profiles_cover_every_span_bucket():
    from runtime.hf.config import HFConfig
    from runtime.hf.ort import SPAN_BUCKETS, trt_profile_options, trt_profiles

    cfg = HFConfig("dream", "qwen2", 3584, 28, 28, 4, 18944, 152064, 1e-6, 1e6, False, True, True, 151666, None, None)
    block = trt_profiles("block", cfg)
    for S in SPAN_BUCKETS:  # a shifted span of S tokens is a block of S + 1
        assert any(p["block_ids"][0][1] <= S + 1 <= p["block_ids"][2][1] for p in block)
    opts = trt_profile_options("block", cfg)
    assert opts["trt_profile_opt_shapes"].startswith("block_ids:1x9,start:1,past_k_0:1x4x512x128,")
    assert opts["trt_profile_min_shapes"].count("past_v_27:") == len(block)


GPU, GPU_WHY = gpu_visible()
HAVE_TRT_EP = False
if importlib.util.find_spec("onnxruntime") is not None:
    import onnxruntime

    HAVE_TRT_EP = "TensorrtExecutionProvider" in onnxruntime.get_available_providers()


@pytest.mark.skipif(not (GPU and HAVE_TRT_EP), reason=f"TensorRT needs an NVIDIA GPU ({GPU_WHY}) and onnxruntime-gpu "
                    f"with the TensorRT provider ({'present' if HAVE_TRT_EP else 'absent'})")
def test_tensorrt_cache_then_serve(tmp_path):
    from export.hf import build_hf_ort_trt_cache, export_hf
    from runtime.loader import load_model

    out = export_hf(write_checkpoint(tmp_path / "ckpt", "dream"), tmp_path / "onnx", fp16=True)
    built = build_hf_ort_trt_cache(out)
    assert built["profiles"]["block"] > 0
    model = load_model(out, backend="tensorrt")
    assert model.backend.name == "onnxruntime-tensorrt"
