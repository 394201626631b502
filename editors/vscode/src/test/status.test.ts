import * as assert from "node:assert/strict";
import { test } from "node:test";
import { LogLineReader, StatusState, backendFromLog, formatLatency, formatStatus } from "../status";

const running: StatusState = {
  enabled: true,
  server: "running",
  backend: "onnxruntime-cpu",
  configuredBackend: "auto",
  lastLatencyMs: 84.4,
  lastHadSuggestion: true,
};

test("latency is short and readable at every scale", () => {
  assert.equal(formatLatency(undefined), "–");
  assert.equal(formatLatency(3.14159), "3.1 ms");
  assert.equal(formatLatency(84.4), "84 ms");
  assert.equal(formatLatency(12_345), "12.3 s");
  assert.equal(formatLatency(Number.NaN), "–");
});

test("on: backend and last latency", () => {
  const view = formatStatus(running);
  assert.equal(view.text, "$(zap) Quicksilver onnxruntime-cpu 84 ms");
  assert.match(view.tooltip, /suggestions on/);
  assert.match(view.tooltip, /last request: 84 ms, suggestion shown/);
});

test("before the first request no latency is shown", () => {
  assert.equal(formatStatus({ ...running, lastLatencyMs: undefined, lastHadSuggestion: undefined }).text, "$(zap) Quicksilver onnxruntime-cpu");
});

test("until the server names its backend the configured one is shown, marked unconfirmed", () => {
  assert.equal(formatStatus({ ...running, backend: undefined, lastLatencyMs: undefined }).text, "$(zap) Quicksilver auto");
  const view = formatStatus({ ...running, backend: undefined, configuredBackend: "torch", lastLatencyMs: undefined });
  assert.equal(view.text, "$(zap) Quicksilver torch?");
  assert.match(view.tooltip, /backend: torch \(not loaded yet\)/);
});

test("off, starting and stopped each have their own text", () => {
  assert.equal(formatStatus({ ...running, enabled: false }).text, "$(circle-slash) Quicksilver off");
  assert.match(formatStatus({ ...running, enabled: false }).tooltip, /click to turn them on/);
  assert.equal(formatStatus({ ...running, server: "starting" }).text, "$(sync~spin) Quicksilver");
  assert.equal(formatStatus({ ...running, server: "stopped" }).text, "$(error) Quicksilver stopped");
  assert.match(formatStatus({ ...running, lastHadSuggestion: false }).tooltip, /no suggestion/);
});

test("the backend comes from the server's load and reload log lines, the last one winning", () => {
  const log =
    "2025-01-01 INFO quicksilver.lsp initialize: Visual Studio Code\n" +
    "2025-01-01 INFO quicksilver.lsp engine loaded: backend onnxruntime-cpu in 812 ms\n" +
    "2025-01-01 INFO quicksilver.lsp engine reloaded: torch (model bundled)\n";
  assert.equal(backendFromLog(log), "torch");
  assert.equal(backendFromLog("initialize: Visual Studio Code\n"), undefined);
});

test("log lines split across chunks are joined before they are read", () => {
  const reader = new LogLineReader();
  assert.equal(reader.push("INFO engine loaded: back"), undefined);
  assert.equal(reader.push("end onnxruntime-cpu in 8"), undefined);
  assert.equal(reader.push("12 ms\nINFO other line\n"), "onnxruntime-cpu");
  assert.equal(reader.push("INFO completion 40 ms\n"), "onnxruntime-cpu");
});
