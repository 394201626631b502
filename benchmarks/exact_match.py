"""Exact match of completed lines on held-out files (the corpus validation split).

The cursor goes after a line's indentation, the rest of that line is removed from
the document, and the first line of the completion must equal it (both stripped).
Lines are a fixed-seed sample over every non-blank line of the Python files, so
runs are comparable across checkpoints.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from completion.api import CompletionRequest

DEFAULT_VAL = Path(__file__).resolve().parents[1] / "data" / "corpus" / "val.jsonl"
SEED = 20240601


@dataclass(frozen=True)
class LineTask:
    path: str
    line: int  # 0-based
    column: int  # after the indentation
    text: str  # the document with the rest of the line removed
    target: str  # the removed rest of the line, stripped

    def request(self) -> CompletionRequest:
        return CompletionRequest(text=self.text, line=self.line, column=self.column, language="python")


def load_files(path: Path = DEFAULT_VAL, lang: str = "python") -> list[tuple[str, str]]:
    """(path, text) of the split's files in one language, sorted by path."""
    files = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            d = json.loads(raw)
            if d.get("lang") == lang:
                files.append((d["path"], d["text"]))
    return sorted(files)


def sample_lines(files: list[tuple[str, str]], n: int, seed: int = SEED) -> list[LineTask]:
    """A deterministic sample of n non-blank lines, each turned into a hole."""
    candidates = [(fi, li) for fi, (_, text) in enumerate(files)
                  for li, line in enumerate(text.split("\n")) if line.strip()]
    picked = sorted(random.Random(seed).sample(candidates, min(n, len(candidates))))
    tasks = []
    for fi, li in picked:
        path, text = files[fi]
        lines = text.split("\n")
        line = lines[li]
        column = len(line) - len(line.lstrip())
        start = sum(len(x) + 1 for x in lines[:li]) + column
        end = start + len(line) - column
        if line.endswith("\r"):
            end -= 1
        tasks.append(LineTask(path, li, column, text[:start] + text[end:], line.strip()))
    return tasks


def first_line(completion: str) -> str:
    return completion.split("\n", 1)[0].strip()


def is_exact(task: LineTask, completion: str) -> bool:
    return first_line(completion) == task.target
