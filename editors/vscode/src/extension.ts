/**
 * Quicksilver for VS Code: starts `python -m lsp_server` over stdio and shows its inline completions as ghost text.
 *
 * vscode-languageclient 9 registers the inline completion provider from the server's `inlineCompletionProvider`
 * capability (a proposed feature there, hence `registerProposedFeatures`); the middleware below only times the
 * requests for the status bar and honours the on/off switch. Accepting a suggestion runs the item's
 * `quicksilver.accept` command, which the client forwards to the server (workspace/executeCommand).
 */
import * as fs from "fs";
import { performance } from "perf_hooks";
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  Executable,
  LanguageClient,
  LanguageClientOptions,
  ResponseError,
  State,
  TransportKind,
} from "vscode-languageclient/node";
import {
  ExtensionSettings,
  languageEnabled,
  needsRestart,
  readSettings,
  resolveServerLaunch,
  toServerOptions,
} from "./settings";
import { LogLineReader, StatusState, formatStatus } from "./status";

const SECTION = "quicksilver";

let session: Session | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  session = new Session(context);
  context.subscriptions.push(
    session,
    vscode.commands.registerCommand("quicksilver.toggle", () => session?.toggle()),
    vscode.commands.registerCommand("quicksilver.restartServer", () => session?.restart()),
    vscode.commands.registerCommand("quicksilver.showLog", () => session?.channel.show(true)),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(SECTION)) {
        void session?.settingsChanged();
      }
    }),
  );
  await session.start();
}

export async function deactivate(): Promise<void> {
  await session?.stop();
  session = undefined;
}

function currentSettings(): ExtensionSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  return readSettings((key) => config.get(key));
}

function inlineCount(result: vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined): number {
  if (!result) {
    return 0;
  }
  return Array.isArray(result) ? result.length : result.items.length;
}

/** One language client at a time, its log channel and the status bar item. */
class Session implements vscode.Disposable {
  readonly channel: vscode.OutputChannel;
  private readonly statusItem: vscode.StatusBarItem;
  private readonly log = new LogLineReader();
  private client: LanguageClient | undefined;
  private settings: ExtensionSettings;
  private readonly state: StatusState;

  constructor(private readonly context: vscode.ExtensionContext) {
    this.channel = vscode.window.createOutputChannel("Quicksilver");
    this.statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
    this.statusItem.command = "quicksilver.toggle";
    this.settings = currentSettings();
    this.state = {
      enabled: this.settings.enabled,
      server: "stopped",
      backend: undefined,
      configuredBackend: this.settings.backend,
      lastLatencyMs: undefined,
      lastHadSuggestion: undefined,
    };
    this.render();
    this.statusItem.show();
  }

  async start(): Promise<void> {
    const folders = (vscode.workspace.workspaceFolders ?? []).map((folder) => folder.uri.fsPath);
    const launch = resolveServerLaunch(this.settings, folders, this.context.extensionPath, fs.existsSync);
    const server: Executable = {
      command: launch.command,
      args: launch.args,
      transport: TransportKind.stdio,
      options: { cwd: launch.cwd, env: { ...process.env, PYTHONUNBUFFERED: "1" } },
    };
    this.channel.appendLine(`[quicksilver] starting ${launch.command} ${launch.args.join(" ")} in ${launch.cwd ?? "(current folder)"}`);
    if (this.settings.recordTraceDirectory.trim()) {
      this.channel.appendLine(
        `[quicksilver] recording this session (your edits and code) in ${this.settings.recordTraceDirectory.trim()}; ` +
          "clear quicksilver.recordTraceDirectory to stop",
      );
    }
    const client = new LanguageClient(SECTION, "Quicksilver", server, this.clientOptions());
    client.registerProposedFeatures(); // the inline completion feature of vscode-languageclient 9
    client.onDidChangeState((event) => {
      this.state.server = event.newState === State.Running ? "running" : event.newState === State.Starting ? "starting" : "stopped";
      this.render();
    });
    this.client = client;
    this.state.backend = undefined;
    try {
      await client.start();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.channel.appendLine(`[quicksilver] the server did not start: ${message}`);
      const choice = await vscode.window.showErrorMessage(
        `Quicksilver: the server did not start (${launch.command}). Set quicksilver.pythonPath or quicksilver.serverDirectory.`,
        "Open Settings",
        "Show Log",
      );
      if (choice === "Open Settings") {
        await vscode.commands.executeCommand("workbench.action.openSettings", SECTION);
      } else if (choice === "Show Log") {
        this.channel.show(true);
      }
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) {
      try {
        await client.dispose(); // stops the server (shutdown + exit) and unregisters its commands
      } catch (error) {
        this.channel.appendLine(`[quicksilver] stopping the server: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    this.state.server = "stopped";
    this.render();
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async toggle(): Promise<void> {
    // Persisted like any setting; the configuration event updates the state and the status bar.
    await vscode.workspace.getConfiguration(SECTION).update("enabled", !this.settings.enabled, vscode.ConfigurationTarget.Global);
  }

  async settingsChanged(): Promise<void> {
    const before = this.settings;
    this.settings = currentSettings();
    this.state.enabled = this.settings.enabled;
    this.state.configuredBackend = this.settings.backend;
    this.render();
    if (needsRestart(before, this.settings)) {
      await this.restart();
      return;
    }
    if (this.client?.isRunning()) {
      await this.client.sendNotification(DidChangeConfigurationNotification.type, {
        settings: { [SECTION]: toServerOptions(this.settings) },
      });
    }
  }

  dispose(): void {
    void this.stop();
    this.statusItem.dispose();
    this.channel.dispose();
  }

  private render(): void {
    const view = formatStatus(this.state);
    this.statusItem.text = view.text;
    this.statusItem.tooltip = view.tooltip;
  }

  private clientOptions(): LanguageClientOptions {
    return {
      documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
      outputChannel: this.teeChannel(),
      initializationOptions: () => toServerOptions(this.settings),
      middleware: {
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          if (!this.settings.enabled || !languageEnabled(document.languageId, this.settings.enabledLanguages)) {
            return null;
          }
          const t0 = performance.now();
          const result = await next(document, position, context, token);
          if (!token.isCancellationRequested) {
            this.state.lastLatencyMs = performance.now() - t0;
            this.state.lastHadSuggestion = inlineCount(result) > 0;
            this.render();
          }
          return result;
        },
        // Ghost text is the interface; the suggest widget only when asked for (it would run the model again).
        provideCompletionItem: (document, position, context, token, next) =>
          this.settings.enabled && this.settings.completionItems ? next(document, position, context, token) : null,
        workspace: {
          // The server pulls its section on start: answer with the server's keys, not the raw VS Code settings.
          configuration: async (params, token, next): Promise<unknown[] | ResponseError<void>> => {
            const values = (await next(params, token)) as unknown[] | ResponseError<void>;
            if (values instanceof ResponseError) {
              return values;
            }
            return values.map((value, i) => (params.items[i]?.section === SECTION ? toServerOptions(this.settings) : value));
          },
        },
      },
    };
  }

  /** The client writes the server's stderr here; reading it along the way tells the status bar the backend. */
  private teeChannel(): vscode.OutputChannel {
    const channel = this.channel;
    const seen = (text: string): void => {
      const backend = this.log.push(text);
      if (backend !== undefined && backend !== this.state.backend) {
        this.state.backend = backend;
        this.render();
      }
    };
    return {
      name: channel.name,
      append: (value: string) => {
        channel.append(value);
        seen(value);
      },
      appendLine: (value: string) => {
        channel.appendLine(value);
        seen(`${value}\n`);
      },
      replace: (value: string) => channel.replace(value),
      clear: () => channel.clear(),
      show: (columnOrPreserveFocus?: vscode.ViewColumn | boolean, preserveFocus?: boolean) => {
        if (typeof columnOrPreserveFocus === "boolean" || columnOrPreserveFocus === undefined) {
          channel.show(columnOrPreserveFocus);
        } else {
          channel.show(columnOrPreserveFocus, preserveFocus);
        }
      },
      hide: () => channel.hide(),
      dispose: () => undefined, // the session owns the real channel; a restarted client reuses it
    };
  }
}
