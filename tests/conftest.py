"""Shared fixtures: the repo's paths and the bundled tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "models" / "default"


@pytest.fixture(scope="session")
def tokenizer():
    from runtime.tokenizer import Tokenizer

    return Tokenizer.from_file(MODEL_DIR / "tokenizer.json")
