"""Record real editing traces from Neovim: the plugin with `record_trace` on, typing code held out from training.

    python tests/traces/record_neovim.py [--out tests/traces/neovim] [--seed 2] [--only python|c]

For each language (Python, C) it picks a function of about 250-400 characters from a file of the corpus's
validation split (data/corpus/val.jsonl, built by `python -m training.corpus --out data/corpus`; never trained
on), opens the file without it in a headless Neovim running editors/neovim with `record_trace` set, and types
the function back at its place key by key through Neovim's input (editors/neovim/test/record_trace.lua): the
server records Neovim's own incremental didChange edits, the plugin's automatic requests and the answers.
Keystroke intervals are human-like (log-normal around 110 ms, pauses at line ends and now and then to think,
a few typos erased with backspace); 'autoindent' is off, so the typed text is exactly the original.

The recorded trace is copied to OUT/nvim-<file>.jsonl with the file:// URIs rewritten to
file:///held-out/<corpus path> (no local path is kept) and the header marked "source": "neovim" with
"nvim_version", "source_file" (the corpus path), "block_lines" (the typed lines, 0-based, end excluded) and
"seed". Each trace is checked before it is written: it reads with read_trace,
and its edits, applied to the opened text, rebuild the original file exactly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lsprotocol import types  # noqa: E402

from lsp_server.replay import document_states  # noqa: E402
from lsp_server.store import Document  # noqa: E402
from lsp_server.trace import read_trace  # noqa: E402

PLUGIN = ROOT / "editors" / "neovim"
DRIVER = PLUGIN / "test" / "record_trace.lua"
CORPUS = ROOT / "data" / "corpus" / "val.jsonl"
OUT = ROOT / "tests" / "traces" / "neovim"
MAX_TRACE_BYTES = 400_000
# A typo hits the key to the right on the same keyboard row (the one to the left at the row's end).
NEIGHBOURS = {row[i]: row[i + 1] if i + 1 < len(row) else row[i - 1]
              for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm") for i in range(len(row))}
# C++ headers the corpus files under "c" (torch, LLVM, libstdc++, pybind11): not C.
NOT_C = ("c++", "torch/", "llvm", "pybind11", "ATen", ".hpp")


# -- what to type ------------------------------------------------------------------------------------------------
@dataclass
class Block:
    path: str  # the corpus path
    lang: str
    text: str  # the whole original file
    start: int  # first line of the block (0-based)
    end: int  # one past its last line

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    @property
    def typed(self) -> str:
        """The block's text without its last newline: typed on a line opened with `O`, which provides it."""
        return "\n".join(self.lines[self.start:self.end])

    @property
    def opened(self) -> str:
        """The file without the block: what the editor opens."""
        lines = self.lines
        return "\n".join(lines[:self.start] + lines[self.end:])


def typable(text: str, tabs: bool) -> bool:
    return all(32 <= ord(c) < 127 or c == "\n" or (tabs and c == "\t") for c in text)


def python_blocks(path: str, text: str) -> list[Block]:
    lines = text.split("\n")
    blocks = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(async\s+)?def\s", line)
        if not m:
            continue
        indent = len(m.group(1))
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            j += 1
        while j > i + 1 and not lines[j - 1].strip():
            j -= 1  # trailing blank lines stay in the file
        if j < len(lines) - 1:  # a line follows it, to open the block's line above
            blocks.append(Block(path, "python", text, i, j))
    return blocks


def c_blocks(path: str, text: str) -> list[Block]:
    """Function definitions: a header from column 0 with its parameters, `{` (at column 0 or ending the header)
    within four lines, and the body closed by a line that is just `}`."""
    lines = text.split("\n")
    blocks = []
    for i, line in enumerate(lines):
        if not re.match(r"^[A-Za-z_]", line) or line.startswith(("typedef", "struct", "union", "enum")):
            continue
        k = next((k for k in range(i, min(i + 4, len(lines)))
                  if lines[k].startswith("{") or lines[k].rstrip().endswith("{")), None)
        if k is None:
            continue
        head = lines[i:k + 1]
        if any(not h.strip() or h.rstrip().endswith(";") for h in head) or "(" not in "".join(head):
            continue
        close = next((j for j in range(k + 1, min(k + 60, len(lines))) if lines[j].startswith("}")), None)
        if close is not None and lines[close].rstrip() == "}" and close + 1 < len(lines) - 1:
            blocks.append(Block(path, "c", text, i, close + 1))
    return blocks


def pick_blocks(corpus: Path, seed: int, low: int = 250, high: int = 400,
                max_file_chars: int = 20_000) -> dict[str, Block]:
    """One block per language, chosen deterministically for the seed among every function of the right size."""
    found: dict[str, list[Block]] = {"python": [], "c": []}
    with corpus.open(encoding="utf-8") as f:
        for row in f:
            item = json.loads(row)
            path, lang, text = item["path"], item["lang"], item["text"]
            if lang not in found or len(text) > max_file_chars or not text.endswith("\n") or "\r" in text:
                continue
            if lang == "python" and path.endswith(".py"):
                blocks = python_blocks(path, text)
            elif lang == "c" and not any(s in path for s in NOT_C):
                blocks = c_blocks(path, text)
            else:
                continue
            found[lang].extend(b for b in blocks if low <= len(b.typed) + 1 <= high
                               and typable(b.typed, tabs=lang == "c"))
    rng = random.Random(seed)
    picked = {}
    for lang, blocks in found.items():
        if not blocks:
            raise SystemExit(f"no {lang} function of {low}-{high} characters in {corpus}")
        in_c_files = [b for b in blocks if b.path.endswith(".c")]  # real .c files first, headers otherwise
        pool = sorted(in_c_files or blocks, key=lambda b: (b.path, b.start))
        picked[lang] = rng.choice(pool)
    return picked


# -- how it is typed -----------------------------------------------------------------------------------------------
def key_of(ch: str) -> str:
    """nvim_input notation for one character."""
    return {"\n": "<CR>", "\t": "<Tab>", "<": "<lt>"}.get(ch, ch)


def human_keys(text: str, rng: random.Random, key_ms: float = 110.0, sigma: float = 0.45,
               typo_prob: float = 0.02, think_prob: float = 0.05) -> list[list[Any]]:
    """[[key, delay_ms before it], ...] typing `text` like a person: log-normal intervals, a pause after each line
    (sometimes a long one, to think), indentation in quick runs, and a few typos noticed and erased with <BS>."""
    keys: list[list[Any]] = []

    def interval(scale: float = 1.0) -> float:
        return scale * key_ms * math.exp(rng.gauss(0, sigma))

    at_line_start, pause = True, 0.0
    for ch in text:
        if at_line_start and ch in " \t":
            delay = interval(0.5)  # indentation: the same key, fast
        else:
            delay = interval()
            at_line_start = False
        delay += pause  # the pause after a line belongs before the next line's first key
        pause = 0.0
        if ch.isalpha() and ch.lower() in NEIGHBOURS and rng.random() < typo_prob:
            wrong = NEIGHBOURS[ch.lower()]
            keys.append([wrong.upper() if ch.isupper() else wrong, round(delay, 1)])
            keys.append(["<BS>", round(rng.uniform(250, 600), 1)])  # noticed, erased
            delay = interval()
        keys.append([key_of(ch), round(delay, 1)])
        if ch == "\n":
            at_line_start = True
            pause = rng.uniform(1500, 4000) if rng.random() < think_prob else rng.uniform(250, 800)
    return keys


# -- running Neovim ------------------------------------------------------------------------------------------------
def run_driver(file: Path, filetype: str, line: int, keys: list[list[Any]], workdir: Path, start: str = "O",
               col: int = 0, setup: dict[str, Any] | None = None, timeout: float = 900) -> dict[str, Any]:
    """Type `keys` into `file` in a headless Neovim with the plugin recording to workdir/record; the driver's report.

    Raises RuntimeError with the driver's error, its output and the server log when it fails."""
    nvim = shutil.which("nvim")
    if nvim is None:
        raise RuntimeError("Neovim is not installed (Debian package neovim)")
    record = workdir / "record"
    log = workdir / "server.log"
    out = workdir / "report.json"
    spec = {"plugin": str(PLUGIN), "python": sys.executable, "server_dir": str(ROOT), "log_file": str(log),
            "record_trace": str(record), "file": str(file), "filetype": filetype, "line": line, "col": col,
            "start": start, "keys": keys, "setup": setup or {}}
    (workdir / "input.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QS_INPUT": str(workdir / "input.json"), "QS_OUT": str(out),
           "XDG_STATE_HOME": str(workdir / "state"), "XDG_CACHE_HOME": str(workdir / "cache")}
    result = subprocess.run([nvim, "--headless", "-u", "NONE", "-i", "NONE", "-n", "-c", f"luafile {DRIVER}"],
                            cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    report = json.loads(out.read_text()) if out.exists() else {}
    if result.returncode != 0 or "error" in report or not report.get("trace_files"):
        server_log = log.read_text()[-6000:] if log.exists() else "(no server log)"
        raise RuntimeError(f"driver failed: {report.get('error')}\n{result.stdout}\n{result.stderr}\n"
                           f"--- server log\n{server_log}")
    report["server_log"] = log.read_text() if log.exists() else ""
    return report


def buffer_text(report: dict[str, Any]) -> str:
    """The final buffer as the file Neovim would write (and as its LSP client sends it)."""
    return "\n".join(report["lines"]) + ("\n" if report.get("eol", True) else "")


def rebuild(events: list[dict[str, Any]], encoding: str) -> dict[str, str]:
    """Each document's text after all of a trace's edits, applied with the server's own Document."""
    docs: dict[str, Document] = {}
    for ev in events:
        if ev["type"] == "open":
            docs[ev["uri"]] = Document(uri=ev["uri"], text=ev["text"])
        elif ev["type"] == "change":
            for c in ev["changes"]:
                if "range" in c:
                    r = c["range"]
                    change = types.TextDocumentContentChangePartial(
                        range=types.Range(start=types.Position(**r["start"]), end=types.Position(**r["end"])),
                        text=c["text"])
                else:
                    change = types.TextDocumentContentChangeWholeDocument(text=c["text"])
                docs[ev["uri"]].apply(change, encoding)
    return {uri: doc.text for uri, doc in docs.items()}


def anonymize(trace_file: Path, local_uri: str, held_out_uri: str, extra_header: dict[str, Any]) -> str:
    """The trace's JSON Lines with the local file's URI replaced and the header extended."""
    lines = []
    for number, line in enumerate(trace_file.read_text(encoding="utf-8").splitlines()):
        item = json.loads(line)
        if number == 0:
            item.update(extra_header)
        elif item.get("uri") == local_uri:
            item["uri"] = held_out_uri
        lines.append(json.dumps(item, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def record(block: Block, out: Path, seed: int, workdir: Path) -> dict[str, Any]:
    """Type one block back in Neovim, check the recorded trace and write it to `out`; a summary."""
    name = Path(block.path).name
    file = workdir / name
    file.write_text(block.opened)
    keys = human_keys(block.typed, random.Random(seed))
    report = run_driver(file, block.lang, block.start + 1, keys, workdir)
    typed_result = buffer_text(report)
    if typed_result != block.text:
        raise RuntimeError(f"the buffer is not the original file after typing:\n{typed_result}")
    (trace_file,) = report["trace_files"]
    local_uri = Path(file).resolve().as_uri()
    held_out_uri = f"file:///held-out/{block.path}"
    text = anonymize(Path(trace_file), local_uri, held_out_uri, {
        "source": "neovim", "nvim_version": report["nvim_version"], "source_file": block.path,
        "block_lines": [block.start, block.end], "seed": seed,
        "note": "typed key by key into headless Neovim (editors/neovim, record_trace) by tests/traces/record_neovim.py "
                "from a file held out from training"})
    for leak in {str(workdir), str(workdir.resolve())}:
        if leak in text:
            raise RuntimeError(f"the trace still holds the local path {leak}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return check_trace(out, block, report)


def check_trace(path: Path, block: Block, report: dict[str, Any]) -> dict[str, Any]:
    trace = read_trace(path)
    events = trace.events
    uri = f"file:///held-out/{block.path}"
    kinds = [e["type"] for e in events]
    opened = [e for e in events if e["type"] == "open"]
    changes = [e for e in events if e["type"] == "change"]
    requests = [e for e in events if e["type"] == "request"]
    assert len(opened) == 1 and opened[0]["uri"] == uri and opened[0]["text"] == block.opened, "open event"
    assert changes and all("range" in c for e in changes for c in e["changes"]), "incremental changes"
    assert requests and all(r["uri"] == uri for r in requests), "requests"
    assert rebuild(events, trace.position_encoding)[uri] == block.text, "the edits do not rebuild the file"
    states = document_states(events, trace.position_encoding)
    last_change = max(i for i, kind in enumerate(kinds) if kind == "change")
    assert states[last_change] == (len(block.text), hash(block.text)), "document_states disagrees"
    size = path.stat().st_size
    assert size < MAX_TRACE_BYTES, f"{path} is {size} bytes"
    answers = [e for e in events if e["type"] == "answer"]
    return {"trace": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path), "source_file": block.path,
            "lines": [block.start + 1, block.end], "chars": len(block.typed) + 1, "keys": report["keys_sent"],
            "changes": len(changes), "requests": len(requests),
            "answered": sum(1 for a in answers if "items" in a),
            "with_suggestion": sum(1 for a in answers if a.get("items")),
            "typing_s": round(report["typing_ms"] / 1000, 1), "bytes": size, "nvim": report["nvim_version"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--only", choices=("python", "c"), default=None)
    args = parser.parse_args(argv)
    blocks = pick_blocks(args.corpus, args.seed)
    for lang, block in blocks.items():
        if args.only and lang != args.only:
            continue
        stem = Path(block.path).name.replace(".", "_")
        with tempfile.TemporaryDirectory(prefix="qs-nvim-record-") as tmp:
            summary = record(block, args.out / f"nvim-{stem}.jsonl", args.seed, Path(tmp))
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
