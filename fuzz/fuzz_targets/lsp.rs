//! The language server in process (`egress_lsp::run` over an in-memory connection): a
//! sequence of JSON-RPC messages built from the input (open, full and ranged changes with
//! arbitrary positions, including ones past line ends and inside UTF-16 surrogate pairs,
//! save, close, hover, definition, references, rename, formatting, completion, symbols,
//! semantic tokens, code actions, cancellation, and raw messages with arbitrary
//! parameters). The server must answer every request exactly once, within the time limit,
//! with a well-formed reply whose ranges lie inside the document; a panic anywhere (even
//! one the server would catch) aborts the run.
#![no_main]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arbitrary::Arbitrary;
use crossbeam_channel::RecvTimeoutError;
use egress_lsp::LineIndex;
use libfuzzer_sys::fuzz_target;
use lsp_server::{Connection, Message, Notification, Request, RequestId, Response};
use lsp_types::{Position, Range};
use serde_json::{json, Value};

/// How long one reply may take before the run counts as a hang.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

const URIS: [&str; 3] = [
    "file:///egc-fuzz-lsp/main.egress",
    "file:///egc-fuzz-lsp/lib.egress",
    "file:///egc-fuzz-lsp/sub/mod.egress",
];

/// Documents to start from, so edits land in real policies.
const SEEDS: [&str; 4] = [
    include_str!("../../examples/gdpr-erasure/main.egress"),
    include_str!("../../examples/gdpr-erasure/approvals.egress"),
    include_str!("../../stdlib/dns.egress"),
    "// ünïcödé 😀 ✓\ndata pii\ndestination d {\n    host \"a.example\" // 😀😀\n    port 443\n}\nagent a {\n    uses c\n}\ncapability c {\n    connect d\n}\n",
];

#[derive(Arbitrary, Debug)]
enum Text {
    Seed(u8),
    Raw(String),
    /// A seed with a piece spliced in at a byte offset (snapped to a character boundary).
    Spliced(u8, u16, String),
}

impl Text {
    fn render(&self) -> String {
        let seed = |i: &u8| SEEDS[*i as usize % SEEDS.len()];
        match self {
            Text::Seed(i) => seed(i).to_string(),
            Text::Raw(s) => s.clone(),
            Text::Spliced(i, at, piece) => {
                let base = seed(i);
                let mut at = (*at as usize).min(base.len());
                while !base.is_char_boundary(at) {
                    at -= 1;
                }
                format!("{}{piece}{}", &base[..at], &base[at..])
            }
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Pos {
    Small(u8, u8),
    Any(u32, u32),
}

impl Pos {
    fn json(self) -> Value {
        let (line, character) = match self {
            Pos::Small(l, c) => (l as u32, c as u32),
            Pos::Any(l, c) => (l, c),
        };
        json!({ "line": line, "character": character })
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Open(u8, Text),
    ChangeFull(u8, Text),
    ChangeRange(u8, Pos, Pos, String),
    Save(u8, Option<Text>),
    Close(u8),
    Hover(u8, Pos),
    Definition(u8, Pos),
    References(u8, Pos, bool),
    PrepareRename(u8, Pos),
    Rename(u8, Pos, String),
    Formatting(u8),
    Completion(u8, Pos),
    DocumentSymbols(u8),
    WorkspaceSymbols(String),
    SemanticTokens(u8),
    CodeAction(u8, Pos, Pos),
    /// A request, then `$/cancelRequest` for it before waiting.
    Cancelled(Box<Op>),
    /// A request, then an edit of its document before waiting (a stale answer is
    /// `ContentModified`).
    Overtaken(Box<Op>, String),
    Raw(u8, String),
}

const RAW_METHODS: [&str; 8] = [
    "textDocument/hover",
    "textDocument/completion",
    "textDocument/rename",
    "textDocument/didChange",
    "textDocument/didOpen",
    "workspace/didChangeWatchedFiles",
    "$/cancelRequest",
    "egc/unknown",
];

struct Client {
    connection: Connection,
    next_id: i32,
    /// Documents as the server should see them, by URI.
    texts: BTreeMap<&'static str, String>,
    versions: BTreeMap<&'static str, i32>,
    /// (URI, version) → text, for checking published diagnostics.
    history: BTreeMap<(String, i32), Vec<Arc<str>>>,
    answered: HashSet<i32>,
}

fn uri(doc: u8) -> &'static str {
    URIS[doc as usize % URIS.len()]
}

fn text_document(doc: u8) -> Value {
    json!({ "uri": uri(doc) })
}

fn position_params(doc: u8, pos: Pos) -> Value {
    json!({ "textDocument": text_document(doc), "position": pos.json() })
}

/// Asserts that every range in `value` under `doc` (not under another `uri`) lies in
/// `text`, with start before end.
fn check_ranges(value: &Value, current: Option<&str>, doc: &str, index: &LineIndex) {
    match value {
        Value::Object(map) => {
            let here = map.get("uri").and_then(Value::as_str).or(current);
            for (key, v) in map {
                if key == "changes" {
                    if let Value::Object(per_uri) = v {
                        for (u, edits) in per_uri {
                            check_ranges(edits, Some(u), doc, index);
                        }
                    }
                    continue;
                }
                if key == "range" || key == "selectionRange" {
                    if let Ok(range) = serde_json::from_value::<Range>(v.clone()) {
                        assert!(
                            (range.start.line, range.start.character)
                                <= (range.end.line, range.end.character),
                            "range ends before it starts: {range:?}"
                        );
                        if here.is_none_or(|u| u == doc) {
                            for p in [range.start, range.end] {
                                assert_eq!(
                                    index.position(index.offset(p)),
                                    p,
                                    "position {p:?} is not in the document"
                                );
                            }
                        }
                    }
                }
                check_ranges(v, here, doc, index);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| check_ranges(v, current, doc, index)),
        _ => {}
    }
}

impl Client {
    fn notify(&self, method: &str, params: Value) {
        let _ = self
            .connection
            .sender
            .send(Message::Notification(Notification::new(
                method.to_string(),
                params,
            )));
    }

    fn request(&mut self, method: &str, params: Value) -> i32 {
        self.next_id += 1;
        let _ = self.connection.sender.send(Message::Request(Request::new(
            RequestId::from(self.next_id),
            method.to_string(),
            params,
        )));
        self.next_id
    }

    /// Reads messages until the response to `id` arrives; checks every message on the way.
    fn wait(&mut self, id: i32) -> Response {
        loop {
            match self.connection.receiver.recv_timeout(REPLY_TIMEOUT) {
                Ok(Message::Response(response)) => {
                    let got: i32 =
                        response.id.to_string().parse().unwrap_or_else(|_| {
                            panic!("response to an id never sent: {response:?}")
                        });
                    assert!(
                        got <= self.next_id && got > 0,
                        "response to an id never sent: {got}"
                    );
                    assert!(self.answered.insert(got), "request {got} answered twice");
                    assert!(
                        response.result.is_some() != response.error.is_some(),
                        "a response needs exactly one of result and error: {response:?}"
                    );
                    if got == id {
                        return response;
                    }
                }
                Ok(Message::Notification(notification)) => self.on_notification(&notification),
                Ok(Message::Request(request)) => panic!("unexpected server request {request:?}"),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no answer to request {id} in time (hang)")
                }
                Err(RecvTimeoutError::Disconnected) => panic!("the server stopped"),
            }
        }
    }

    fn on_notification(&self, notification: &Notification) {
        match notification.method.as_str() {
            "textDocument/publishDiagnostics" => {
                let params: lsp_types::PublishDiagnosticsParams =
                    serde_json::from_value(notification.params.clone()).unwrap_or_else(|e| {
                        panic!("malformed diagnostics ({e}): {notification:?}")
                    });
                let Some(version) = params.version else {
                    return;
                };
                let Some(texts) = self.history.get(&(params.uri.to_string(), version)) else {
                    panic!(
                        "diagnostics for a version never sent: {} {version}",
                        params.uri
                    )
                };
                // A save may replace the text without a new version: any text of that
                // version will do.
                let fits = |text: &Arc<str>| {
                    let index = LineIndex::new(text.clone());
                    params.diagnostics.iter().all(|d| {
                        d.range.start <= d.range.end
                            && [d.range.start, d.range.end]
                                .iter()
                                .all(|p| index.position(index.offset(*p)) == *p)
                    })
                };
                assert!(
                    texts.iter().any(fits),
                    "diagnostic ranges outside version {version} of {}: {:?}",
                    params.uri,
                    params
                        .diagnostics
                        .iter()
                        .map(|d| d.range)
                        .collect::<Vec<_>>()
                );
            }
            "window/logMessage" => {
                let params: lsp_types::LogMessageParams =
                    serde_json::from_value(notification.params.clone())
                        .unwrap_or_else(|e| panic!("malformed log message ({e})"));
                assert!(
                    !params.message.contains("internal error"),
                    "the server caught an internal error: {}",
                    params.message
                );
            }
            other => panic!("unexpected notification {other}"),
        }
    }

    fn set_text(&mut self, doc: u8, text: String) -> i32 {
        let u = uri(doc);
        let version = self.versions.get(u).copied().unwrap_or(0) + 1;
        self.versions.insert(u, version);
        self.history
            .entry((u.to_string(), version))
            .or_default()
            .push(Arc::from(text.as_str()));
        self.texts.insert(u, text);
        version
    }

    /// Sends a request for `op` without waiting; returns its id and document.
    fn send(&mut self, op: &Op) -> Option<(i32, Option<u8>)> {
        let (method, params, doc) = match op {
            Op::Hover(d, p) => ("textDocument/hover", position_params(*d, *p), Some(*d)),
            Op::Definition(d, p) => ("textDocument/definition", position_params(*d, *p), Some(*d)),
            Op::References(d, p, decl) => {
                let mut params = position_params(*d, *p);
                params["context"] = json!({ "includeDeclaration": decl });
                ("textDocument/references", params, Some(*d))
            }
            Op::PrepareRename(d, p) => (
                "textDocument/prepareRename",
                position_params(*d, *p),
                Some(*d),
            ),
            Op::Rename(d, p, name) => {
                let mut params = position_params(*d, *p);
                params["newName"] = json!(name);
                ("textDocument/rename", params, Some(*d))
            }
            Op::Formatting(d) => (
                "textDocument/formatting",
                json!({ "textDocument": text_document(*d), "options": { "tabSize": 4, "insertSpaces": true } }),
                Some(*d),
            ),
            Op::Completion(d, p) => ("textDocument/completion", position_params(*d, *p), Some(*d)),
            Op::DocumentSymbols(d) => (
                "textDocument/documentSymbol",
                json!({ "textDocument": text_document(*d) }),
                Some(*d),
            ),
            Op::WorkspaceSymbols(query) => ("workspace/symbol", json!({ "query": query }), None),
            Op::SemanticTokens(d) => (
                "textDocument/semanticTokens/full",
                json!({ "textDocument": text_document(*d) }),
                Some(*d),
            ),
            Op::CodeAction(d, a, b) => (
                "textDocument/codeAction",
                json!({
                    "textDocument": text_document(*d),
                    "range": { "start": a.json(), "end": b.json() },
                    "context": { "diagnostics": [] }
                }),
                Some(*d),
            ),
            _ => return None,
        };
        Some((self.request(method, params), doc))
    }

    fn check_reply(&self, response: &Response, doc: Option<u8>) {
        let (Some(result), Some(doc)) = (&response.result, doc) else {
            return;
        };
        let u = uri(doc);
        let text = self.texts.get(u).cloned().unwrap_or_default();
        check_ranges(result, None, u, &LineIndex::new(Arc::from(text.as_str())));
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Open(d, text) => {
                let text = text.render();
                let version = self.set_text(*d, text.clone());
                self.notify(
                    "textDocument/didOpen",
                    json!({ "textDocument": { "uri": uri(*d), "languageId": "egress", "version": version, "text": text } }),
                );
            }
            Op::ChangeFull(d, text) => {
                let text = text.render();
                let version = self.set_text(*d, text.clone());
                self.notify(
                    "textDocument/didChange",
                    json!({ "textDocument": { "uri": uri(*d), "version": version }, "contentChanges": [{ "text": text }] }),
                );
            }
            Op::ChangeRange(d, a, b, piece) => {
                let old = self.texts.get(uri(*d)).cloned().unwrap_or_default();
                let range = json!({ "start": a.json(), "end": b.json() });
                let lsp_range: Range = serde_json::from_value(range.clone()).unwrap_or(Range {
                    start: Position::new(0, 0),
                    end: Position::new(0, 0),
                });
                let index = LineIndex::new(Arc::from(old.as_str()));
                let r = index.text_range(lsp_range);
                let new = format!("{}{piece}{}", &old[..r.start], &old[r.end..]);
                let version = self.set_text(*d, new);
                self.notify(
                    "textDocument/didChange",
                    json!({ "textDocument": { "uri": uri(*d), "version": version }, "contentChanges": [{ "range": range, "text": piece }] }),
                );
            }
            Op::Save(d, text) => {
                let mut params = json!({ "textDocument": text_document(*d) });
                if let Some(text) = text {
                    // The server takes the saved text without a new version.
                    let text = text.render();
                    let u = uri(*d);
                    if let Some(version) = self.versions.get(u).copied() {
                        self.history
                            .entry((u.to_string(), version))
                            .or_default()
                            .push(Arc::from(text.as_str()));
                    }
                    self.texts.insert(u, text.clone());
                    params["text"] = json!(text);
                }
                self.notify("textDocument/didSave", params);
            }
            Op::Close(d) => {
                let u = uri(*d);
                self.texts.remove(u);
                self.notify(
                    "textDocument/didClose",
                    json!({ "textDocument": { "uri": u } }),
                );
            }
            Op::Cancelled(inner) => {
                if let Some((id, _)) = self.send(inner) {
                    self.notify("$/cancelRequest", json!({ "id": id }));
                    let _ = self.wait(id);
                }
            }
            Op::Overtaken(inner, piece) => {
                if let Some((id, doc)) = self.send(inner) {
                    let d = doc.unwrap_or(0);
                    let mut text = self.texts.get(uri(d)).cloned().unwrap_or_default();
                    text.push_str(piece);
                    let version = self.set_text(d, text.clone());
                    self.notify(
                        "textDocument/didChange",
                        json!({ "textDocument": { "uri": uri(d), "version": version }, "contentChanges": [{ "text": text }] }),
                    );
                    let _ = self.wait(id);
                }
            }
            Op::Raw(m, params) => {
                let method = RAW_METHODS[*m as usize % RAW_METHODS.len()];
                let params = serde_json::from_str(params).unwrap_or_else(|_| json!(params));
                if m % 2 == 0 {
                    let id = self.request(method, params);
                    let _ = self.wait(id);
                } else if !matches!(method, "textDocument/didChange" | "textDocument/didOpen") {
                    // Raw edits would desynchronise the documents this harness tracks.
                    self.notify(method, params);
                }
            }
            request => {
                if let Some((id, doc)) = self.send(request) {
                    let response = self.wait(id);
                    self.check_reply(&response, doc);
                }
            }
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    if ops.len() > 64 {
        return;
    }
    let (server, client) = Connection::memory();
    let (done_sender, done_receiver) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let outcome = egress_lsp::run(server, egress_lsp::ServerConfig::default());
        let _ = done_sender.send(outcome);
    });
    let mut client = Client {
        connection: client,
        next_id: 0,
        texts: BTreeMap::new(),
        versions: BTreeMap::new(),
        history: BTreeMap::new(),
        answered: HashSet::new(),
    };
    let id = client.request("initialize", json!({ "capabilities": {} }));
    let response = client.wait(id);
    assert!(response.result.is_some(), "initialize failed: {response:?}");
    client.notify("initialized", json!({}));
    for op in &ops {
        client.apply(op);
    }
    let id = client.request("shutdown", Value::Null);
    let _ = client.wait(id);
    client.notify("exit", Value::Null);
    match done_receiver.recv_timeout(REPLY_TIMEOUT) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("the server ended with an error: {e}"),
        Err(_) => panic!("the server did not stop after exit"),
    }
});
