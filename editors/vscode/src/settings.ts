/**
 * VS Code settings -> the server's options, and where the server's Python is.
 *
 * Pure functions (no `vscode` import) so they are unit-tested under plain Node. The server takes the
 * same keys as initializationOptions and as the "quicksilver" section of didChangeConfiguration
 * (lsp_server/config.py); it warns about keys it does not know, so only server keys are sent.
 */
import * as path from "path";

/** What the user sets under "quicksilver.*" (as read from the workspace configuration). */
export interface ExtensionSettings {
  enabled: boolean;
  pythonPath: string;
  serverDirectory: string;
  latencyBudgetMs: number;
  maxLines: number;
  enabledLanguages: string[];
  backend: string;
  modelPath: string;
  logLevel: string;
  completionItems: boolean;
  /** Where the server records edits/requests/answers for `python -m lsp_server replay`; empty: off. */
  recordTraceDirectory: string;
}

/** The server's option keys (lsp_server/config.py OPTIONS), as sent in JSON. */
export interface ServerOptions {
  latencyBudgetMs?: number;
  maxLines?: number;
  enabledLanguages?: string[];
  backend?: string;
  modelPath?: string;
  logLevel?: string;
}

export const DEFAULTS: ExtensionSettings = {
  enabled: true,
  pythonPath: "",
  serverDirectory: "",
  latencyBudgetMs: 150,
  maxLines: 1,
  enabledLanguages: ["*"],
  backend: "auto",
  modelPath: "",
  logLevel: "info",
  completionItems: false,
  recordTraceDirectory: "",
};

export const BACKENDS = ["auto", "onnxruntime", "cpu", "cpu-int8", "cpu-fp32", "cuda", "tensorrt", "tensorrt-engine", "torch"];
export const LOG_LEVELS = ["debug", "info", "warning", "error"];

/** Reads one setting by name; `vscode.WorkspaceConfiguration.get` fits. */
export type SettingGetter = (key: string) => unknown;

/** The settings with every wrong-typed value replaced by its default, so a typo cannot stop the extension. */
export function readSettings(get: SettingGetter): ExtensionSettings {
  const pick = <K extends keyof ExtensionSettings>(key: K, valid: (value: unknown) => boolean): ExtensionSettings[K] => {
    const value = get(key);
    return (valid(value) ? value : DEFAULTS[key]) as ExtensionSettings[K];
  };
  const isString = (value: unknown): boolean => typeof value === "string";
  const isPositive = (value: unknown): boolean => typeof value === "number" && Number.isFinite(value) && value > 0;
  return {
    enabled: pick("enabled", (value) => typeof value === "boolean"),
    pythonPath: pick("pythonPath", isString),
    serverDirectory: pick("serverDirectory", isString),
    latencyBudgetMs: pick("latencyBudgetMs", isPositive),
    maxLines: pick("maxLines", (value) => isPositive(value) && Number.isInteger(value)),
    enabledLanguages: pick(
      "enabledLanguages",
      (value) => Array.isArray(value) && value.length > 0 && value.every((item) => typeof item === "string"),
    ),
    backend: pick("backend", (value) => typeof value === "string" && BACKENDS.includes(value)),
    modelPath: pick("modelPath", isString),
    logLevel: pick("logLevel", (value) => typeof value === "string" && LOG_LEVELS.includes(value)),
    completionItems: pick("completionItems", (value) => typeof value === "boolean"),
    recordTraceDirectory: pick("recordTraceDirectory", isString),
  };
}

/** The server's options for these settings: sent as initializationOptions and on every change. */
export function toServerOptions(settings: ExtensionSettings): ServerOptions {
  const options: ServerOptions = {
    latencyBudgetMs: settings.latencyBudgetMs,
    maxLines: settings.maxLines,
    enabledLanguages: [...settings.enabledLanguages],
    backend: settings.backend,
    logLevel: settings.logLevel,
  };
  const modelPath = settings.modelPath.trim();
  if (modelPath) {
    options.modelPath = modelPath; // empty means "the bundled model": the server rejects an empty path
  }
  return options;
}

/**
 * Settings whose change needs a new server process rather than a didChangeConfiguration: the interpreter, the
 * checkout, and trace recording (a command-line option of the server).
 */
export function needsRestart(before: ExtensionSettings, after: ExtensionSettings): boolean {
  return (
    before.pythonPath !== after.pythonPath ||
    before.serverDirectory !== after.serverDirectory ||
    before.recordTraceDirectory.trim() !== after.recordTraceDirectory.trim()
  );
}

/**
 * The server's arguments: `-m lsp_server`, plus `--record-trace DIR` when recording is on. `--record-trace` is a
 * global option of the server's command line, so it comes before any subcommand (there is none here: stdio).
 */
export function serverArgs(recordTraceDirectory: string = ""): string[] {
  const directory = recordTraceDirectory.trim();
  return directory ? ["-m", "lsp_server", "--record-trace", directory] : ["-m", "lsp_server"];
}

/** Whether the server is asked about this language id at all ("*" matches every language). */
export function languageEnabled(languageId: string, enabledLanguages: string[]): boolean {
  return enabledLanguages.includes("*") || enabledLanguages.includes(languageId);
}

export interface ServerLaunch {
  command: string;
  args: string[];
  cwd: string | undefined;
}

/** A Quicksilver checkout: it holds the server package. */
export function isCheckout(dir: string, exists: (file: string) => boolean): boolean {
  return exists(path.join(dir, "lsp_server", "__main__.py"));
}

export function venvPython(dir: string, platform: string = process.platform): string {
  return platform === "win32" ? path.join(dir, ".venv", "Scripts", "python.exe") : path.join(dir, ".venv", "bin", "python");
}

/**
 * How to start the server. The checkout is `serverDirectory` if set, else the first workspace folder that is
 * one, else the extension's own checkout (editors/vscode inside the repository, when run from source).
 * The interpreter is `pythonPath` if set, else the checkout's .venv, else `python3` (which then needs
 * `pip install` of the server package). The server runs in the checkout so `-m lsp_server` finds it either way.
 * With `recordTraceDirectory` set, the server records the session there (`--record-trace`, see serverArgs).
 */
export function resolveServerLaunch(
  settings: Pick<ExtensionSettings, "pythonPath" | "serverDirectory"> & Partial<Pick<ExtensionSettings, "recordTraceDirectory">>,
  workspaceFolders: string[],
  extensionPath: string,
  exists: (file: string) => boolean,
  platform: string = process.platform,
): ServerLaunch {
  const candidates = settings.serverDirectory.trim()
    ? [settings.serverDirectory.trim()]
    : [...workspaceFolders, path.resolve(extensionPath, "..", "..")];
  const checkout = candidates.find((dir) => isCheckout(dir, exists));
  let command = settings.pythonPath.trim();
  if (!command) {
    const python = checkout === undefined ? undefined : venvPython(checkout, platform);
    command = python !== undefined && exists(python) ? python : platform === "win32" ? "python" : "python3";
  }
  return { command, args: serverArgs(settings.recordTraceDirectory), cwd: settings.serverDirectory.trim() || checkout };
}
