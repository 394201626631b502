// A VS Code-style client: plain Node.js driving the server through vscode-languageserver-protocol,
// the library under vscode-languageclient (which itself needs VS Code to run).
//
// Usage: QS_CMD='["python", "-m", "lsp_server"]' QS_FILE=path QS_LINE=n QS_CHARACTER=n node client.mjs
// Prints one JSON object with what the server answered; exits non-zero on any protocol failure.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import {
  CancellationTokenSource,
  CompletionRequest,
  createProtocolConnection,
  DidChangeTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExecuteCommandRequest,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
} from "vscode-languageserver-protocol/node";

const [command, ...args] = JSON.parse(process.env.QS_CMD);
const file = process.env.QS_FILE;
const line = Number(process.env.QS_LINE);
const character = Number(process.env.QS_CHARACTER);
const uri = pathToFileURL(file).href;
const text = readFileSync(file, "utf8");

const server = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] });
const exited = new Promise((resolve) => server.on("exit", (code) => resolve(code)));
const connection = createProtocolConnection(new StreamMessageReader(server.stdout), new StreamMessageWriter(server.stdin));
connection.listen();

const report = {};
const position = { line, character };
const inlineParams = (at, triggerKind = InlineCompletionTriggerKind.Invoked) => ({
  textDocument: { uri }, position: at, context: { triggerKind },
});

const init = await connection.sendRequest(InitializeRequest.type, {
  processId: process.pid,
  rootUri: pathToFileURL(process.cwd()).href,
  clientInfo: { name: "node vscode-languageserver-protocol" },
  capabilities: {
    general: { positionEncodings: ["utf-16"] },
    textDocument: {
      synchronization: { dynamicRegistration: false },
      completion: { completionItem: { snippetSupport: false } },
      inlineCompletion: { dynamicRegistration: false },
    },
  },
  initializationOptions: { logLevel: "info" },
});
report.positionEncoding = init.capabilities.positionEncoding;
report.inlineProvider = Boolean(init.capabilities.inlineCompletionProvider);
await connection.sendNotification(InitializedNotification.type, {});
await connection.sendNotification(DidOpenTextDocumentNotification.type, {
  textDocument: { uri, languageId: "python", version: 1, text },
});

// A completion request with a partial-result token: the drafts stream in as $/progress.
// (First, so the model runs: a second request at this cursor is answered from the cache.)
const token = "node-drafts";
report.partials = [];
const progress = connection.onProgress(CompletionRequest.type, token, (value) => report.partials.push(value));
const streamed = await connection.sendRequest(CompletionRequest.type, {
  textDocument: { uri }, position, partialResultToken: token,
});
progress.dispose();
report.streamedResponse = streamed;

// Ghost text, as VS Code asks for it (from the cache now).
const inline = await connection.sendRequest(InlineCompletionRequest.type, inlineParams(position));
report.inline = inline.items.map((item) => ({ insertText: item.insertText, range: item.range, command: item.command }));

// Type a word at the cursor (an incremental change); then a request there that is cancelled at once
// through a CancellationToken (which sends $/cancelRequest), and one that is answered.
await connection.sendNotification(DidChangeTextDocumentNotification.type, {
  textDocument: { uri, version: 2 },
  contentChanges: [{ range: { start: position, end: position }, text: " and" }],
});
const after = { line, character: character + 4 };
const source = new CancellationTokenSource();
const pending = connection.sendRequest(InlineCompletionRequest.type, inlineParams(after), source.token);
source.cancel();
try {
  await pending;
  report.cancel = "answered";
} catch (error) {
  report.cancel = error.code;
}

const typed = await connection.sendRequest(InlineCompletionRequest.type, inlineParams(after));
report.afterTyping = typed.items.map((item) => ({ insertText: item.insertText, range: item.range }));

// Accepting runs the item's command.
const accept = report.inline[0]?.command ?? typed.items[0]?.command;
if (accept) {
  report.accept = await connection.sendRequest(ExecuteCommandRequest.type, {
    command: accept.command, arguments: accept.arguments,
  });
}

await connection.sendRequest(ShutdownRequest.type);
await connection.sendNotification(ExitNotification.type);
report.exitCode = await exited;
connection.dispose();
console.log(JSON.stringify(report));
