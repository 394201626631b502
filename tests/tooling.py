"""Helpers shared by tests that need an external tool (an editor, node, npm)."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")


def require(available: bool, reason: str) -> None:
    """Skip locally when a tool is missing; in CI, where .ci/run installs it, fail."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: .ci/run must install it)")
    pytest.skip(reason)
