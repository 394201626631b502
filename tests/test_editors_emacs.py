"""The Emacs package (editors/emacs/quicksilver.el) in a real Emacs with eglot, against the real server.

editors/emacs/test/ghost-text.el types as a user would (`execute-kbd-macro`, so the command loop's hooks run):
typing at the end of a line shows a suggestion as an overlay on its own, C-b hides it, C-c C-q asks again and TAB
inserts it. The server is started by eglot from the entry `quicksilver-setup` adds to `eglot-server-programs`.
Only the shape is asserted (the bundled model is an early checkpoint): a non-empty suggestion shown at point,
and inserted exactly. Skips without Emacs or eglot; fails instead under CI (CI=true), where .ci/run installs
them (Debian `emacs-nox`, `elpa-eglot`).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tooling import require

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "editors" / "emacs"
MODEL_DIR = ROOT / "models" / "default"

TYPED = "y"  # completes the comment line tests/test_lsp_clients.py asks about
SOURCE = "import os\n\n\ndef list_files(path):\n    # return the names of the files in path, sorted b\n"
LINE = 4
LOAD_EGLOT = ["-l", str(PACKAGE / "test" / "load-eglot.el")]


def emacs_with_eglot() -> str:
    emacs = shutil.which("emacs")
    require(emacs is not None, "Emacs is not installed (Debian package emacs-nox)")
    probe = subprocess.run([emacs, "--batch", "-Q", *LOAD_EGLOT, "--eval", "(require 'eglot)"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    require(probe.returncode == 0, f"eglot does not load (Debian package elpa-eglot): {probe.stdout}{probe.stderr}")
    return emacs


def test_package_byte_compiles_cleanly(tmp_path):
    """No warnings from the byte compiler: unknown functions, free variables, wrong arities."""
    emacs = emacs_with_eglot()
    copy = tmp_path / "quicksilver.el"
    shutil.copy(PACKAGE / "quicksilver.el", copy)
    result = subprocess.run([emacs, "--batch", "-Q", *LOAD_EGLOT, "--eval", "(setq byte-compile-error-on-warn t)",
                             "-f", "batch-byte-compile", str(copy)],
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and (tmp_path / "quicksilver.elc").is_file(), result.stdout + result.stderr


def test_typing_shows_overlay_and_tab_inserts_it(tmp_path):
    emacs = emacs_with_eglot()
    require((MODEL_DIR / "encoder.onnx").is_file(), f"bundled model not in {MODEL_DIR}")
    source = tmp_path / "files.py"
    source.write_text(SOURCE)
    log = tmp_path / "server.log"
    out = tmp_path / "report.json"
    env = {**os.environ, "QS_PYTHON": sys.executable, "QS_SERVER_DIR": str(ROOT), "QS_LOG": str(log),
           "QS_FILE": str(source), "QS_LINE": str(LINE), "QS_TYPE": TYPED, "QS_OUT": str(out),
           "HOME": str(tmp_path)}  # no user init, no eglot state from the user's Emacs
    result = subprocess.run([emacs, "--batch", "-Q", *LOAD_EGLOT, "-l", str(PACKAGE / "quicksilver.el"),
                             "-l", str(PACKAGE / "test" / "ghost-text.el")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                            stdin=subprocess.DEVNULL)
    report = json.loads(out.read_text()) if out.exists() else {}
    server_log = log.read_text() if log.exists() else "(no server log)"
    assert result.returncode == 0 and "error" not in report, (
        f"driver failed: {report.get('error')}\n{result.stdout}\n{result.stderr}\n--- server log\n{server_log}")

    assert report["server_name"] == "quicksilver" and report["mode_on"]
    line_text = SOURCE.splitlines()[LINE] + TYPED
    before = SOURCE.replace(SOURCE.splitlines()[LINE], line_text)
    point = len(before.split("\n" + line_text)[0]) + 1 + len(line_text) + 1  # Emacs positions start at 1
    assert report["point"] == point

    auto = report["auto"]  # shown on its own while typing
    assert auto.strip() and report["auto_overlays"] == [[point, auto]]
    assert report["line_during"] == line_text  # an overlay, not text in the buffer
    assert report["after_dismiss_overlays"] == 0 and report["after_dismiss_visible"] is None

    shown = report["invoked"]  # asked with C-c C-q
    assert shown.strip() and report["invoked_overlays"] == [[point, shown]]
    assert report["before"] == before
    assert report["after"] == before[:point - 1] + shown + before[point - 1:]
    assert report["point_after"] == point + len(shown) and report["overlays_after"] == 0

    assert " dismissed after " in server_log and " accepted after " in server_log
    assert report["shut_down"]
