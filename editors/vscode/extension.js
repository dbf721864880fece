// The VS Code client of the egc language server: starts `egc lsp` over stdio for
// `.egress` files. Everything the editor shows comes from the server.
'use strict';

const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

let client;

function serverOptions() {
  const config = vscode.workspace.getConfiguration('egress');
  const command = config.get('server.path', 'egc') || 'egc';
  const args = ['lsp', ...config.get('server.extraArgs', [])];
  const executable = { command, args, transport: TransportKind.stdio };
  return { run: executable, debug: executable };
}

async function start(context) {
  const clientOptions = {
    documentSelector: [{ scheme: 'file', language: 'egress' }],
    synchronize: {
      fileEvents: vscode.workspace.createFileSystemWatcher('**/*.egress'),
    },
    outputChannelName: 'egc',
  };
  client = new LanguageClient('egress', 'egc language server', serverOptions(), clientOptions);
  try {
    await client.start();
  } catch (error) {
    vscode.window.showErrorMessage(
      `egc: could not start the language server (${error.message}). ` +
        'Install egc (cargo install --path crates/egc) or set "egress.server.path".'
    );
  }
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('egress.restartServer', async () => {
      if (client) {
        await client.stop();
      }
      await start(context);
    })
  );
  await start(context);
}

async function deactivate() {
  if (client) {
    await client.stop();
  }
}

module.exports = { activate, deactivate };
