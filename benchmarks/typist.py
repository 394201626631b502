"""Human-like typing traces from real source files held out from training.

`python -m benchmarks.typist --out tests/traces/generated` picks files from the corpus's
validation split (never trained on), removes one to three regions of whole lines from each
(a function, a block), opens the file without them, and types them back as a person would:

- keystroke intervals drawn from a log-normal around 110 ms (about 90 words a minute), longer
  pauses at line ends and now and then a pause to think of several seconds;
- typos: a neighbouring key, sometimes a character or two more, noticed, erased with backspace
  and retyped;
- after Enter the editor indents the new line (an `auto` change, not counted as typing);
- moves: some lines are skipped and typed afterwards, and the cursor jumps between regions;
- an automatic inline-completion request after every edit, as VS Code sends them.

Whether a suggestion is accepted is decided at replay time (lsp_server/replay.py): the user
takes it when it is exactly what they were about to type. Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from lsp_server.trace import TraceWriter, header

ROOT = Path(__file__).resolve().parents[1]
NEIGHBOURS = dict(zip("qwertyuiopasdfghjklzxcvbnm", "wqertyuiopsadfghjklzxcvbnm"[::-1], strict=True))
LANGUAGE_IDS = {"python": "python", "c": "c", "cpp": "cpp"}
INLINE = "textDocument/inlineCompletion"


@dataclass
class Typing:
    key_ms: float = 110.0  # median interval between keys
    key_sigma: float = 0.45
    line_pause_ms: float = 500.0
    think_prob: float = 0.04  # per line: a pause of 2-6 s
    typo_prob: float = 0.02  # per character
    defer_prob: float = 0.06  # per line: typed later, after a move


def utf16_position(text: str, offset: int) -> dict[str, int]:
    line = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    return {"line": line, "character": len(text[start:offset].encode("utf-16-le", "surrogatepass")) // 2}


class Session:
    """The document as the simulated editor holds it, and the trace events it sends."""

    def __init__(self, writer: TraceWriter, uri: str, language: str, text: str, rng: random.Random, typing: Typing):
        self.writer, self.uri, self.text, self.rng, self.typing = writer, uri, text, rng, typing
        self.t = 0.0
        self.version = 1
        self.requests = 0
        self.keystrokes = 0
        writer.event("open", t=self.t, uri=uri, languageId=language, version=1, text=text)

    def wait(self, ms: float) -> None:
        self.t += ms

    def key_interval(self) -> float:
        return self.typing.key_ms * math.exp(self.rng.gauss(0, self.typing.key_sigma))

    def edit(self, start: int, end: int, new_text: str, auto: bool = False) -> None:
        rng = {"start": utf16_position(self.text, start), "end": utf16_position(self.text, end)}
        self.text = self.text[:start] + new_text + self.text[end:]
        self.version += 1
        self.keystrokes += 0 if auto else 1
        extra = {"auto": True} if auto else {}
        self.writer.event("change", t=round(self.t, 1), uri=self.uri, version=self.version,
                          changes=[{"range": rng, "text": new_text}], **extra)
        self.request(start + len(new_text))

    def request(self, cursor: int) -> None:
        self.requests += 1
        self.writer.event("request", t=round(self.t + 1, 1), id=self.requests, method=INLINE, uri=self.uri,
                          **utf16_position(self.text, cursor), trigger="automatic")

    def move(self, cursor: int) -> None:
        self.wait(600 + self.rng.expovariate(1 / 900))
        self.writer.event("cursor", t=round(self.t, 1), uri=self.uri, **utf16_position(self.text, cursor))

    def type_text(self, cursor: int, text: str) -> int:
        """Type text at cursor, key by key, with typos fixed on the way; returns the cursor after it."""
        ty = self.typing
        i = 0
        while i < len(text):
            ch = text[i]
            self.wait(self.key_interval())
            if ch.isalpha() and ch.lower() in NEIGHBOURS and self.rng.random() < ty.typo_prob:
                wrong = NEIGHBOURS[ch.lower()]
                extra = text[i + 1:i + 1 + self.rng.choice([0, 0, 1, 2])].split("\n")[0]
                typed = wrong + extra
                for k, c in enumerate(typed):
                    self.edit(cursor + k, cursor + k, c)
                    self.wait(self.key_interval())
                self.wait(250 + self.rng.expovariate(1 / 200))  # noticing
                for k in range(len(typed), 0, -1):
                    self.edit(cursor + k - 1, cursor + k, "")
                    self.wait(self.key_interval() * 0.7)
            self.edit(cursor, cursor, ch)
            cursor += 1
            i += 1
            if ch == "\n":
                indent = _indent_of(text[i:])
                if indent:
                    self.wait(5)
                    self.edit(cursor, cursor, indent, auto=True)  # the editor indents the new line
                    cursor += len(indent)
                    i += len(indent)
                self.wait(ty.line_pause_ms * math.exp(self.rng.gauss(0, 0.6)))
                if self.rng.random() < ty.think_prob:
                    self.wait(self.rng.uniform(2000, 6000))
        return cursor


def _indent_of(rest: str) -> str:
    line = rest.split("\n", 1)[0]
    return line[: len(line) - len(line.lstrip(" \t"))] if line.strip() else ""


def pick_regions(lines: list[str], rng: random.Random, target_chars: int, count: int) -> list[tuple[int, int]]:
    """Non-overlapping (first line, end line) regions of non-blank code, about target_chars in all."""
    regions: list[tuple[int, int]] = []
    per = max(80, target_chars // count)
    for _ in range(count * 20):
        if len(regions) == count:
            break
        start = rng.randrange(1, max(2, len(lines) - 3))
        end, size = start, 0
        while end < len(lines) and size < per:
            size += len(lines[end])
            end += 1
        if size < per // 2 or any(s < end + 1 and start < e + 1 for s, e in regions):
            continue
        if not lines[start].strip():
            continue
        regions.append((start, end))
    return sorted(regions)


def generate(path: str, text: str, language: str, out: Path, seed: int, target_chars: int,
             typing: Typing) -> dict:
    """One trace: regions of `text` removed, then typed back. Returns a summary line."""
    rng = random.Random(seed)
    lines = text.splitlines(keepends=True)
    regions = pick_regions(lines, rng, target_chars, rng.choice([1, 2, 2, 3]))
    if not regions:
        raise ValueError(f"{path}: no region to type")
    removed = set().union(*(range(s, e) for s, e in regions))
    start_text = "".join(line for k, line in enumerate(lines) if k not in removed)
    uri = f"file:///held-out/{path}"
    writer = TraceWriter(out, header("generated", source_file=path, seed=seed,
                                     note="typed by benchmarks/typist.py from a file held out from training"))
    session = Session(writer, uri, LANGUAGE_IDS[language], start_text, rng, typing)
    # Regions from the last to the first keep earlier offsets valid; lines put off are typed after their region.
    for s, e in reversed(regions):
        base = sum(len(line) for k, line in enumerate(lines[:s]) if k not in removed)
        deferred = {k for k in range(s + 1, e) if rng.random() < typing.defer_prob and lines[k].strip()}
        session.move(base)
        # the lines not put off are adjacent once the others are missing: one stretch of typing
        session.type_text(base, "".join(lines[k] for k in range(s, e) if k not in deferred))
        for k in sorted(deferred):  # every earlier line of the region is in place by now
            at = base + sum(len(lines[m]) for m in range(s, k))
            session.move(at)
            session.type_text(at, lines[k])
    writer.close()
    if session.text != text:
        raise AssertionError(f"{path}: typing did not rebuild the file")
    return {"trace": out.name, "source": path, "regions": regions, "keystrokes": session.keystrokes,
            "requests": session.requests, "seconds": round(session.t / 1000, 1)}


def held_out_files(corpus: Path, languages: dict[str, int], min_chars: int, max_chars: int,
                   seed: int) -> list[dict]:
    docs = [json.loads(line) for line in (corpus / "val.jsonl").open()]
    rng = random.Random(seed)
    rng.shuffle(docs)
    picked = []
    for lang, n in languages.items():
        pool = [d for d in docs if d["lang"] == lang and min_chars <= len(d["text"]) <= max_chars
                and not d["path"].endswith(".pyi")]  # stubs are not what people type
        picked.extend(pool[:n])
    return picked


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=str(ROOT / "data" / "corpus"))
    p.add_argument("--out", default=str(ROOT / "tests" / "traces" / "generated"))
    p.add_argument("--python", type=int, default=4)
    p.add_argument("--c", type=int, default=1)
    p.add_argument("--cpp", type=int, default=1)
    p.add_argument("--chars", type=int, default=300, help="characters to type per trace")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = held_out_files(Path(args.corpus), {"python": args.python, "c": args.c, "cpp": args.cpp},
                           2000, 12000, args.seed)
    for k, doc in enumerate(files):
        name = Path(doc["path"]).name.replace(".", "_")
        summary = generate(doc["path"], doc["text"], doc["lang"], out / f"{k:02d}-{name}.jsonl", args.seed + k,
                           args.chars, Typing())
        print(json.dumps(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
