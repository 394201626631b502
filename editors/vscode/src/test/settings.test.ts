import * as assert from "node:assert/strict";
import * as path from "node:path";
import { test } from "node:test";
import {
  DEFAULTS,
  ExtensionSettings,
  languageEnabled,
  needsRestart,
  readSettings,
  resolveServerLaunch,
  serverArgs,
  toServerOptions,
  venvPython,
} from "../settings";

const getterFor = (values: Record<string, unknown>) => (key: string) => values[key];

test("absent settings read as the defaults", () => {
  assert.deepEqual(readSettings(getterFor({})), DEFAULTS);
});

test("wrong-typed settings fall back to their defaults, valid ones are kept", () => {
  const settings = readSettings(
    getterFor({
      latencyBudgetMs: "fast",
      maxLines: 2.5,
      enabledLanguages: ["python", 3],
      backend: "gpu-please",
      logLevel: "debug",
      modelPath: "/models/mine",
      enabled: "yes",
      recordTraceDirectory: 42,
    }),
  );
  assert.equal(settings.latencyBudgetMs, DEFAULTS.latencyBudgetMs);
  assert.equal(settings.maxLines, DEFAULTS.maxLines);
  assert.deepEqual(settings.enabledLanguages, DEFAULTS.enabledLanguages);
  assert.equal(settings.backend, "auto");
  assert.equal(settings.logLevel, "debug");
  assert.equal(settings.modelPath, "/models/mine");
  assert.equal(settings.enabled, true);
  assert.equal(settings.recordTraceDirectory, "");
});

test("server options carry exactly the server's keys", () => {
  const settings: ExtensionSettings = {
    ...DEFAULTS,
    latencyBudgetMs: 400,
    maxLines: 3,
    enabledLanguages: ["python", "rust"],
    backend: "torch",
    modelPath: " /models/mine ",
    pythonPath: "/usr/bin/python3",
    enabled: false,
    recordTraceDirectory: "/tmp/traces",
  };
  assert.deepEqual(toServerOptions(settings), {
    latencyBudgetMs: 400,
    maxLines: 3,
    enabledLanguages: ["python", "rust"],
    backend: "torch",
    modelPath: "/models/mine",
    logLevel: "info",
  });
});

test("an empty model path is left out (the server keeps its bundled model)", () => {
  assert.equal("modelPath" in toServerOptions({ ...DEFAULTS, modelPath: "  " }), false);
});

test("the server options do not share the settings' language list", () => {
  const settings = { ...DEFAULTS, enabledLanguages: ["python"] };
  toServerOptions(settings).enabledLanguages?.push("go");
  assert.deepEqual(settings.enabledLanguages, ["python"]);
});

test("only the interpreter, the checkout and trace recording need a new server process", () => {
  assert.equal(needsRestart(DEFAULTS, { ...DEFAULTS, latencyBudgetMs: 900, backend: "torch", modelPath: "/m" }), false);
  assert.equal(needsRestart(DEFAULTS, { ...DEFAULTS, pythonPath: "/opt/py/bin/python" }), true);
  assert.equal(needsRestart(DEFAULTS, { ...DEFAULTS, serverDirectory: "/src/quicksilver" }), true);
  const recording = { ...DEFAULTS, recordTraceDirectory: "/tmp/traces" };
  assert.equal(needsRestart(DEFAULTS, recording), true); // switched on
  assert.equal(needsRestart(recording, DEFAULTS), true); // switched off
  assert.equal(needsRestart(recording, { ...recording, recordTraceDirectory: "/tmp/other" }), true);
  assert.equal(needsRestart(recording, { ...recording, recordTraceDirectory: " /tmp/traces " }), false);
  assert.equal(needsRestart(DEFAULTS, { ...DEFAULTS, recordTraceDirectory: "   " }), false); // still off
});

test("the trace directory is a launch option, never sent to the server as a setting", () => {
  assert.equal("recordTraceDirectory" in toServerOptions({ ...DEFAULTS, recordTraceDirectory: "/tmp/traces" }), false);
});

test("languages: '*' enables all, otherwise listed ids only", () => {
  assert.equal(languageEnabled("python", ["*"]), true);
  assert.equal(languageEnabled("python", ["python", "go"]), true);
  assert.equal(languageEnabled("markdown", ["python", "go"]), false);
});

const checkout = path.join("/src", "quicksilver");
const files = (...present: string[]) => (file: string) => present.includes(file);
const marker = (dir: string) => path.join(dir, "lsp_server", "__main__.py");

test("the checkout's .venv is found in a workspace folder", () => {
  const exists = files(marker(checkout), venvPython(checkout, "linux"));
  const launch = resolveServerLaunch(DEFAULTS, ["/work/other", checkout], "/ext/quicksilver-0.1.0", exists, "linux");
  assert.deepEqual(launch, {
    command: path.join(checkout, ".venv", "bin", "python"),
    args: ["-m", "lsp_server"],
    cwd: checkout,
  });
});

test("run from source, the extension finds its own checkout two folders up", () => {
  const extension = path.join(checkout, "editors", "vscode");
  const launch = resolveServerLaunch(DEFAULTS, [], extension, files(marker(checkout), venvPython(checkout, "linux")), "linux");
  assert.equal(launch.command, venvPython(checkout, "linux"));
  assert.equal(launch.cwd, checkout);
});

test("a checkout without .venv runs python3 there; no checkout at all runs python3 anywhere", () => {
  assert.deepEqual(resolveServerLaunch(DEFAULTS, [checkout], "/ext", files(marker(checkout)), "linux"), {
    command: "python3",
    args: ["-m", "lsp_server"],
    cwd: checkout,
  });
  const nowhere = resolveServerLaunch(DEFAULTS, ["/work/other"], "/ext", files(), "linux");
  assert.equal(nowhere.command, "python3");
  assert.equal(nowhere.cwd, undefined);
});

test("explicit settings win over what is found", () => {
  const exists = files(marker(checkout), venvPython(checkout, "linux"));
  const launch = resolveServerLaunch(
    { pythonPath: "/opt/py/bin/python", serverDirectory: "/elsewhere" },
    [checkout],
    "/ext",
    exists,
    "linux",
  );
  assert.deepEqual(launch, { command: "/opt/py/bin/python", args: ["-m", "lsp_server"], cwd: "/elsewhere" });
});

test("Windows virtual environments keep python.exe under Scripts", () => {
  assert.equal(venvPython("C:\\qs", "win32"), path.join("C:\\qs", ".venv", "Scripts", "python.exe"));
  assert.equal(resolveServerLaunch(DEFAULTS, [], "C:\\ext", files(), "win32").command, "python");
});

test("trace recording adds --record-trace DIR to the server's arguments, and only when set", () => {
  assert.deepEqual(serverArgs(), ["-m", "lsp_server"]);
  assert.deepEqual(serverArgs(""), ["-m", "lsp_server"]);
  assert.deepEqual(serverArgs("  "), ["-m", "lsp_server"]);
  assert.deepEqual(serverArgs(" /tmp/qs traces "), ["-m", "lsp_server", "--record-trace", "/tmp/qs traces"]);
  const exists = files(marker(checkout), venvPython(checkout, "linux"));
  const launch = resolveServerLaunch({ ...DEFAULTS, recordTraceDirectory: "/tmp/traces" }, [checkout], "/ext", exists, "linux");
  assert.deepEqual(launch, {
    command: venvPython(checkout, "linux"),
    args: ["-m", "lsp_server", "--record-trace", "/tmp/traces"],
    cwd: checkout,
  });
  assert.deepEqual(resolveServerLaunch(DEFAULTS, [checkout], "/ext", exists, "linux").args, ["-m", "lsp_server"]);
});
