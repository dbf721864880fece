// Tokenizes a policy with the TextMate grammar through the same engine VS Code uses
// (vscode-textmate with Oniguruma), so a regular expression Oniguruma rejects or a
// wrong scope fails here instead of silently in the editor. Run: `npm test`.
'use strict';

const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const oniguruma = require('vscode-oniguruma');
const textmate = require('vscode-textmate');

async function loadGrammar() {
  const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm'));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async () => {
      const file = path.join(__dirname, '..', 'syntaxes', 'egress.tmLanguage.json');
      return textmate.parseRawGrammar(fs.readFileSync(file, 'utf8'), file);
    },
  });
  return registry.loadGrammar('source.egress');
}

function scopesOf(grammar, text) {
  const out = [];
  let state = textmate.INITIAL;
  for (const line of text.split('\n')) {
    const result = grammar.tokenizeLine(line, state);
    for (const token of result.tokens) {
      out.push([line.slice(token.startIndex, token.endIndex), token.scopes[token.scopes.length - 1]]);
    }
    state = result.ruleStack;
  }
  return out;
}

function scopeOf(tokens, text) {
  const found = tokens.find(([t]) => t === text);
  assert.ok(found, `no token ${JSON.stringify(text)} in ${JSON.stringify(tokens)}`);
  return found[1];
}

test('the grammar scopes every kind of token', async () => {
  const grammar = await loadGrammar();
  const tokens = scopesOf(
    grammar,
    [
      'import std.dns',
      '/// The control plane.',
      'destination control_plane {',
      '    host "cp.corp.internal" // trailing',
      '    cidr 198.51.100.0/24 except 198.51.100.128/25',
      '    cidr 2001:db8:1::/48',
      '    port 443, 8000-8080',
      '    protocol tcp',
      '}',
      'capability report { grant CAP_NET_BIND_SERVICE }',
      'authority dpo { max_ttl 15m }',
      'assert a { agent * cannot reach control_plane }',
    ].join('\n')
  );
  assert.strictEqual(scopeOf(tokens, 'import'), 'keyword.control.import.egress');
  assert.strictEqual(scopeOf(tokens, 'std.dns'), 'entity.name.namespace.egress');
  assert.strictEqual(scopeOf(tokens, '/// The control plane.'), 'comment.line.documentation.egress');
  assert.strictEqual(scopeOf(tokens, 'destination'), 'keyword.declaration.egress');
  assert.strictEqual(scopeOf(tokens, 'control_plane'), 'entity.name.type.egress');
  assert.strictEqual(scopeOf(tokens, 'host'), 'keyword.other.egress');
  assert.strictEqual(scopeOf(tokens, '// trailing'), 'comment.line.double-slash.egress');
  assert.strictEqual(scopeOf(tokens, '198.51.100.0/24'), 'constant.numeric.address.egress');
  assert.strictEqual(scopeOf(tokens, '2001:db8:1::/48'), 'constant.numeric.address.egress');
  assert.strictEqual(scopeOf(tokens, '8000-8080'), 'constant.numeric.egress');
  assert.strictEqual(scopeOf(tokens, 'tcp'), 'constant.language.protocol.egress');
  assert.strictEqual(scopeOf(tokens, 'CAP_NET_BIND_SERVICE'), 'constant.language.capability.egress');
  assert.strictEqual(scopeOf(tokens, '15m'), 'constant.numeric.duration.egress');
  assert.strictEqual(scopeOf(tokens, 'cannot'), 'keyword.control.egress');
  assert.strictEqual(scopeOf(tokens, '*'), 'keyword.operator.egress');
  const string = tokens.filter(([, scope]) => scope.startsWith('string.')).map(([t]) => t).join('');
  assert.strictEqual(string, '"cp.corp.internal"');
});

test('the manifest declares the language, grammar and configuration', () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
  assert.deepStrictEqual(manifest.contributes.languages[0].extensions, ['.egress']);
  assert.strictEqual(manifest.contributes.grammars[0].scopeName, 'source.egress');
  for (const file of ['language-configuration.json', 'syntaxes/egress.tmLanguage.json', 'extension.js']) {
    assert.ok(fs.existsSync(path.join(__dirname, '..', file)), file);
  }
  JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'language-configuration.json'), 'utf8'));
});
