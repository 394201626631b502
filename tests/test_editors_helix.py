"""editors/helix/languages.toml: the server starts with its exact command line and settings and completes.

Helix is not packaged for Debian, so this reads the snippet and does what Helix does with it: spawn `command`
with `args` and `environment`, send `config` as initializationOptions, and ask textDocument/completion
(the menu item Helix shows), over stdio with Content-Length frames.
"""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from tooling import IN_CI

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = ROOT / "editors" / "helix" / "languages.toml"
MODEL_DIR = ROOT / "models" / "default"
PLACEHOLDER = "/path/to/quicksilver"

SOURCE = "import os\n\n\ndef list_files(path):\n    # return the names of the files in path, sorted by\n"
LINE, CHARACTER = 4, len("    # return the names of the files in path, sorted by")


class Stdio:
    """A minimal LSP client: requests answered in order, notifications from the server skipped."""

    def __init__(self, argv: list[str], env: dict, cwd: Path):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env, cwd=cwd)
        self.next_id = 0

    def send(self, method: str, params=None, id_: int | None = None) -> None:
        message = {"jsonrpc": "2.0", "method": method, "params": params}
        if id_ is not None:
            message["id"] = id_
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.proc.stdin.flush()

    def read(self) -> dict:
        length = None
        while (header := self.proc.stdout.readline().strip()) or length is None:
            assert header or length is not None, "the server closed its output"
            if header.lower().startswith(b"content-length:"):
                length = int(header.split(b":")[1])
        return json.loads(self.proc.stdout.read(length))

    def request(self, method: str, params) -> dict:
        self.next_id += 1
        self.send(method, params, self.next_id)
        while True:
            message = self.read()
            if message.get("id") == self.next_id and "method" not in message:
                assert "error" not in message, message
                return message["result"]
            if "method" in message and "id" in message:  # a request from the server: answer like Helix, empty
                self.send_response(message["id"], [None] * len(message["params"].get("items", [])) or None)

    def send_response(self, id_, result) -> None:
        body = json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.proc.stdin.flush()


@pytest.fixture
def snippet() -> dict:
    return tomllib.loads(SNIPPET.read_text())


def test_snippet_attaches_quicksilver_for_completion_only(snippet):
    server = snippet["language-server"]["quicksilver"]
    assert server["command"] == f"{PLACEHOLDER}/.venv/bin/python" and server["args"][:2] == ["-m", "lsp_server"]
    for language in snippet["language"]:
        entries = [s for s in language["language-servers"] if isinstance(s, dict) and s["name"] == "quicksilver"]
        assert entries == [{"name": "quicksilver", "only-features": ["completion"]}], language["name"]


def test_server_starts_from_the_snippet_and_completes(snippet, tmp_path):
    if not (MODEL_DIR / "encoder.onnx").is_file():
        (pytest.fail if IN_CI else pytest.skip)(f"bundled model not in {MODEL_DIR}")
    server = snippet["language-server"]["quicksilver"]
    log = tmp_path / "quicksilver.log"
    # This checkout for the placeholder, this interpreter for its .venv's, a temporary log for /tmp/quicksilver.log.
    args = [str(log) if arg == "/tmp/quicksilver.log" else arg.replace(PLACEHOLDER, str(ROOT))
            for arg in server["args"]]
    environment = {k: v.replace(PLACEHOLDER, str(ROOT)) for k, v in server.get("environment", {}).items()}
    env = {**os.environ, "PYTHONPATH": "", **environment}  # only the snippet's PYTHONPATH finds the server
    client = Stdio([sys.executable, *args], env, cwd=tmp_path)  # Helix runs it in the workspace, not the checkout
    try:
        init = client.request("initialize", {
            "processId": os.getpid(), "rootUri": None, "clientInfo": {"name": "helix", "version": "25.07.1"},
            "initializationOptions": server["config"],
            "capabilities": {"textDocument": {"completion": {"completionItem": {"snippetSupport": True}}},
                             "workspace": {"configuration": True},
                             "general": {"positionEncodings": ["utf-8", "utf-32", "utf-16"]}},
        })
        assert init["capabilities"]["completionProvider"] is not None
        encoding = init["capabilities"].get("positionEncoding", "utf-16")
        client.send("initialized", {})
        uri = (tmp_path / "files.py").as_uri()
        client.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 0,
                                                              "text": SOURCE}})
        result = client.request("textDocument/completion", {
            "textDocument": {"uri": uri}, "position": {"line": LINE, "character": CHARACTER},
            "context": {"triggerKind": 1}})
        (item,) = result["items"]
        assert item["textEdit"]["newText"].strip() and item["detail"] == "quicksilver"
        assert item["textEdit"]["range"]["start"] == {"line": LINE, "character": CHARACTER}
        client.request("shutdown", None)
        client.send("exit", None)
        assert client.proc.wait(timeout=30) == 0
    finally:
        if client.proc.poll() is None:
            client.proc.kill()
    text = log.read_text()
    assert "initialize: helix" in text and f"position encoding {encoding}" in text
    assert "unknown initialization option" not in text and "ignoring initialization option" not in text
