"""Checkpoint metadata and the learning-curve record.

Reads the safetensors header directly (8-byte length + JSON), so a benchmark of an
ONNX model directory needs no torch to learn what checkpoint it came from.
"""

from __future__ import annotations

import json
import math
import struct
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_CURVE = Path(__file__).resolve().parent / "results" / "learning_curve.json"


def read_metadata(path: Path) -> dict:
    """The checkpoint's metadata, each value JSON-decoded as `save_checkpoint` wrote it."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    out = {}
    for k, v in (header.get("__metadata__") or {}).items():
        try:
            out[k] = json.loads(v)
        except (ValueError, TypeError):
            out[k] = v
    return out


def _finite(x) -> float | None:
    """Training writes best_val = inf before the first evaluation; that is no loss."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def summarize(meta: dict) -> dict:
    """Stage, tokens and training time, counting stage 1's time for a diffusion checkpoint
    (it was initialised from it, so its hours are part of the cost)."""
    stage = meta.get("stage")
    seconds = float(meta.get("train_seconds") or 0.0)
    tokens = int(meta.get("tokens") or 0)
    init = meta.get("init") if isinstance(meta.get("init"), dict) else None
    init_seconds = float(init.get("train_seconds") or 0.0) if init else 0.0
    init_tokens = int(init.get("tokens") or 0) if init else 0
    val = _finite(meta.get("val_loss"))  # never the run's best_val: that was another checkpoint's
    return {"stage": stage, "step": meta.get("step"), "tokens": tokens, "total_tokens": tokens + init_tokens,
            "train_seconds": seconds, "init_train_seconds": init_seconds,
            "train_hours": round((seconds + init_seconds) / 3600, 4), "val_loss": val,
            "val_set": meta.get("val_set"),  # which validation split val_loss is on (losses on others differ)
            "init": init.get("path") if init else None}


def checkpoint_info(weights: Path | None) -> dict:
    """Summary plus the model config for a checkpoint file, {} when there is none."""
    if weights is None or not Path(weights).is_file():
        return {}
    meta = read_metadata(Path(weights))
    return {"checkpoint": str(Path(weights).resolve()), "config": meta.get("config"), **summarize(meta)}


def append_curve(entry: dict, path: Path = DEFAULT_CURVE) -> list[dict]:
    """Append one point to the learning curve (a JSON list) and return all points."""
    path = Path(path)
    entries = json.loads(path.read_text()) if path.is_file() else []
    entries.append({"date": datetime.now(UTC).isoformat(timespec="seconds"), **entry})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=2) + "\n")
    tmp.replace(path)
    return entries
