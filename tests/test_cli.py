"""The command line: argument and FILE:LINE:COL parsing, and `complete` run as a real process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_server.cli import CliError, Location, build_request, config_from_args, parse_args, parse_location, read_source

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(os.environ.get("QUICKSILVER_MODEL") or ROOT / "models" / "default")  # as the runtime finds it
MODEL_READY = all((MODEL_DIR / f).is_file() for f in ("config.json", "tokenizer.json", "encoder.onnx", "denoiser.onnx"))
needs_model = pytest.mark.skipif(not MODEL_READY, reason=f"bundled model not complete in {MODEL_DIR}")


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "lsp_server", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def test_parse_location():
    assert parse_location("src/a.py:3:7") == Location(Path("src/a.py"), 3, 7)
    assert parse_location("C:/x/a:b.py:10:1") == Location(Path("C:/x/a:b.py"), 10, 1)  # split from the right


@pytest.mark.parametrize("spec", ["a.py", "a.py:3", ":1:1", "a.py:x:1", "a.py:0:1", "a.py:1:0", "a.py:-1:2"])
def test_parse_location_rejects(spec):
    with pytest.raises(CliError):
        parse_location(spec)


def test_parse_args_defaults_serve():
    args = parse_args([])
    assert args.command is None and args.model is None and args.backend == "auto" and args.log_level == "info"
    assert args.tcp is None and args.threads is None


def test_parse_args_tcp_and_threads():
    args = parse_args(["--tcp", "0", "--threads", "1", "--log-file", "x.log", "--backend", "torch"])
    assert (args.tcp, args.threads, args.log_file) == (0, 1, "x.log")
    assert config_from_args(args).threads == 1 and config_from_args(args).backend == "torch"


@pytest.mark.parametrize("argv", [["--tcp", "70000"], ["--tcp", "-1"], ["--threads", "0"], ["--backend", "gpu"]])
def test_parse_args_rejects(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2 and "error" in capsys.readouterr().err


def test_tcp_port_in_use_is_one_error_line():
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        result = run_cli("--tcp", str(taken.getsockname()[1]))
    assert result.returncode == 1 and "cannot listen on 127.0.0.1" in result.stderr


@pytest.mark.parametrize("argv", [
    ["--model", "m", "--latency-budget-ms", "80", "complete", "a.py:1:1"],
    ["complete", "a.py:1:1", "--model", "m", "--latency-budget-ms", "80"],
])
def test_parse_args_complete_takes_options_on_either_side(argv):
    args = parse_args(argv)
    assert (args.command, args.location, args.model) == ("complete", "a.py:1:1", "m")
    config = config_from_args(args)
    assert config.model_dir == "m" and config.settings.latency_budget_ms == 80 and config.backend == "auto"


def test_build_request_converts_to_zero_based():
    text = "def add(a, b):\n    return \n"
    request = build_request(Location(Path("x.py"), 2, 12), text)  # column 12 = just past "    return "
    assert (request.line, request.column, request.language) == (1, 11, "python")
    assert build_request(Location(Path("x.rs"), 3, 1), text).language == "rust"  # the empty last line
    assert build_request(Location(Path("x.txt"), 1, 1), text).language == "text"


def test_build_request_errors_name_the_file():
    text = "a\nbb\n"
    with pytest.raises(CliError, match=r"line 9 is past the end of foo.py \(3 lines\)"):
        build_request(Location(Path("d/foo.py"), 9, 1), text)
    with pytest.raises(CliError, match=r"column 4 is past the end of line 2 of foo.py \(2 characters\)"):
        build_request(Location(Path("foo.py"), 2, 4), text)


def test_read_source(tmp_path):
    (tmp_path / "ok.py").write_text("x = 'é'\n", encoding="utf-8")
    assert read_source(tmp_path / "ok.py") == "x = 'é'\n"
    (tmp_path / "bin").write_bytes(b"\x7fELF\0\0")
    (tmp_path / "latin1.py").write_bytes("x = 'é'".encode("latin-1"))
    for name, message in [("missing.py", "no such file"), ("bin", "binary"), ("latin1.py", "not UTF-8"),
                          (".", "is a directory")]:
        with pytest.raises(CliError, match=message):
            read_source(tmp_path / name)


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == "quicksilver 0.1.0"


def test_complete_missing_file_is_one_error_line(tmp_path):
    result = run_cli("complete", f"{tmp_path}/nope.py:1:1")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [f"error: {tmp_path}/nope.py: no such file"]


def test_complete_out_of_range_is_one_error_line(tmp_path):
    (tmp_path / "foo.py").write_text("a = 1\nb = 2\n")
    result = run_cli("complete", f"{tmp_path}/foo.py:99:1")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == ["error: line 99 is past the end of foo.py (3 lines)"]


def test_complete_binary_file_is_one_error_line(tmp_path):
    (tmp_path / "blob.py").write_bytes(b"\0\1\2")
    result = run_cli("complete", f"{tmp_path}/blob.py:1:1")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and "binary" in result.stderr


@needs_model
def test_complete_prints_a_completion(tmp_path):
    # the cursor ends a comment: whatever single line the early checkpoint writes keeps the parse valid
    (tmp_path / "add.py").write_text("def add(a, b):\n    # add a and b, then return the\n")
    result = run_cli("--log-level", "warning", "complete", f"{tmp_path}/add.py:2:35", timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "latency:" in result.stderr.splitlines()[-1]
