"""The VS Code extension (editors/vscode) builds, lints, passes its unit tests and packages into a .vsix.

Runs the README's steps with the real toolchain from npm, pinned by package-lock.json: `npm ci`, `npm run lint`
(ESLint + typescript-eslint), `npm run compile` (tsc), `npm test` (node's test runner on the pure modules),
`npm run package` (@vscode/vsce). Then opens the .vsix and checks that what VS Code loads is inside it.
Skips without Node.js/npm; fails instead under CI (CI=true), where .ci/run installs them.
"""

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from tooling import require

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = ROOT / "editors" / "vscode"


def npm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "npm_config_audit": "false", "npm_config_fund": "false", "npm_config_update_notifier": "false"}
    result = subprocess.run(["npm", *args], cwd=EXTENSION, env=env, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"npm {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def installed():
    require(shutil.which("node") is not None and shutil.which("npm") is not None, "Node.js and npm are not installed")
    npm("ci", "--loglevel=error", timeout=600)


def test_lint_compile_and_unit_tests(installed):
    npm("run", "lint")
    npm("run", "compile")
    assert (EXTENSION / "out" / "extension.js").is_file()
    result = npm("test")
    summary = result.stdout + result.stderr
    assert "# fail 0" in summary and "# pass 0" not in summary, summary[-2000:]


def test_package_builds_a_vsix_with_what_vs_code_loads(installed, tmp_path):
    vsix = tmp_path / "quicksilver.vsix"
    npm("run", "package", "--", "--out", str(vsix))
    manifest = json.loads((EXTENSION / "package.json").read_text())
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        packaged = json.loads(archive.read("extension/package.json"))
    assert "extension.vsixmanifest" in names
    assert "extension/" + manifest["main"].removeprefix("./") in names  # the compiled entry point
    for module in ("vscode-languageclient", "vscode-languageserver-protocol", "vscode-jsonrpc"):
        assert f"extension/node_modules/{module}/package.json" in names, module
    assert not any(name.startswith(("extension/src/", "extension/out/test/")) for name in names)
    assert not any("/node_modules/typescript/" in name or "/node_modules/eslint/" in name for name in names)
    assert packaged["version"] == manifest["version"] and packaged["engines"]["vscode"] == "^1.82.0"
    commands = {c["command"] for c in packaged["contributes"]["commands"]}
    assert commands == {"quicksilver.toggle", "quicksilver.restartServer", "quicksilver.showLog"}
    settings = packaged["contributes"]["configuration"]["properties"]
    for key in ("pythonPath", "latencyBudgetMs", "maxLines", "enabledLanguages", "backend", "modelPath",
                "recordTraceDirectory"):
        assert f"quicksilver.{key}" in settings
