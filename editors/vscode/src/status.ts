/**
 * The status bar item's text, and what it learns from the server's log.
 *
 * Pure functions (no `vscode` import), unit-tested under plain Node.
 */

export interface StatusState {
  enabled: boolean;
  /** "starting", "running", "stopped" (the language client's states, in words). */
  server: "starting" | "running" | "stopped";
  /** The backend the server says it loaded, or undefined before it says so. */
  backend: string | undefined;
  /** The configured backend, shown until the server names the one it chose. */
  configuredBackend: string;
  /** Round trip of the last inline completion request that reached the server, in milliseconds. */
  lastLatencyMs: number | undefined;
  /** Whether that request brought a suggestion. */
  lastHadSuggestion: boolean | undefined;
}

export interface StatusView {
  text: string;
  tooltip: string;
}

export function formatLatency(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) {
    return "–";
  }
  if (ms < 10) {
    return `${ms.toFixed(1)} ms`;
  }
  if (ms < 10_000) {
    return `${Math.round(ms)} ms`;
  }
  return `${(ms / 1000).toFixed(1)} s`;
}

/** "$(zap) Quicksilver onnxruntime 84 ms" while on; codicons mark off and stopped at a glance. */
export function formatStatus(state: StatusState): StatusView {
  const backend = state.backend ?? (state.configuredBackend === "auto" ? "auto" : `${state.configuredBackend}?`);
  const lines = [
    `Quicksilver: suggestions ${state.enabled ? "on" : "off"} (click to turn them ${state.enabled ? "off" : "on"})`,
    `server: ${state.server}`,
    `backend: ${state.backend ?? `${state.configuredBackend} (not loaded yet)`}`,
    `last request: ${formatLatency(state.lastLatencyMs)}${
      state.lastHadSuggestion === undefined ? "" : state.lastHadSuggestion ? ", suggestion shown" : ", no suggestion"
    }`,
  ];
  let text: string;
  if (state.server === "stopped") {
    text = "$(error) Quicksilver stopped";
  } else if (!state.enabled) {
    text = "$(circle-slash) Quicksilver off";
  } else if (state.server === "starting") {
    text = "$(sync~spin) Quicksilver";
  } else {
    text = `$(zap) Quicksilver ${backend}` + (state.lastLatencyMs === undefined ? "" : ` ${formatLatency(state.lastLatencyMs)}`);
  }
  return { text, tooltip: lines.join("\n") };
}

// lsp_server/runner.py: "engine loaded: backend onnxruntime-cpu in 812 ms"; server.py: "engine reloaded: torch (model ...)"
const BACKEND_LINE = /engine (?:loaded: backend|reloaded:) (\S+)/g;

/**
 * The backend named last in a chunk of server log, if any. The server's stderr goes to the output channel;
 * reading the backend from it needs no extra protocol and stays right across reloads.
 */
export function backendFromLog(chunk: string): string | undefined {
  let backend: string | undefined;
  for (const match of chunk.matchAll(BACKEND_LINE)) {
    backend = match[1];
  }
  return backend;
}

/**
 * Joins output chunks into whole lines before parsing, since a log line may arrive split across chunks.
 * Returns the backend named by the complete lines seen so far.
 */
export class LogLineReader {
  private pending = "";
  backend: string | undefined;

  push(chunk: string): string | undefined {
    const text = this.pending + chunk;
    const cut = text.lastIndexOf("\n");
    if (cut < 0) {
      this.pending = text;
      return this.backend;
    }
    this.pending = text.slice(cut + 1);
    this.backend = backendFromLog(text.slice(0, cut + 1)) ?? this.backend;
    return this.backend;
  }
}
