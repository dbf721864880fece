//! Drives the server over stdio with real JSON-RPC through a whole editing session.

use serde_json::{json, Value};

use crate::client::{uri, Client, TempDir};

const MAIN: &str = r#"import std.dns
import "../shared/common.egress" as common

data pii

/// The control plane agents report to.
destination control_plane {
    host "cp.corp.internal"
    port 443
}

capability report {
    connect control_plane, dns.kube_dns, common.telemetry
}

agent invoice_bot {
    workload namespace "billing" labels { app = "invoice-bot" }
    uses reprot
    handles pii
}

zone billing {
    owner "security-team"
    agents invoice_bot
    approve control_plane, dns.kube_dns, common.telemetry
    clear pii to control_plane
}
"#;

const COMMON: &str = "/// Where traces go.\ndestination telemetry {\n    host \"otel.example.internal\"\n    port 4317\n}\n";

/// The LSP position (line, UTF-16 column; ASCII here) of the `n`th `needle`, plus `delta`.
fn pos(text: &str, needle: &str, n: usize, delta: usize) -> Value {
    let offset = text.match_indices(needle).nth(n).unwrap().0 + delta;
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let column = offset - before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    json!({ "line": line, "character": column })
}

fn codes(diagnostics: &Value) -> Vec<String> {
    diagnostics["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_whole_editing_session_over_stdio() {
    let dir = TempDir::new("session");
    let main = dir.write("app/main.egress", MAIN);
    let common = dir.write("shared/common.egress", COMMON);
    let main_uri = uri(&main);
    let common_uri = uri(&common);

    let mut client = Client::start(&[]);
    let init = client.initialize(&dir.0);
    let capabilities = &init["capabilities"];
    for capability in [
        "hoverProvider",
        "definitionProvider",
        "referencesProvider",
        "renameProvider",
        "documentFormattingProvider",
        "completionProvider",
        "documentSymbolProvider",
        "workspaceSymbolProvider",
        "semanticTokensProvider",
        "codeActionProvider",
    ] {
        assert!(
            !capabilities[capability].is_null(),
            "{capability} missing: {init}"
        );
    }

    // didOpen with a typo: the diagnostic arrives with its code and a fix.
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": main_uri, "languageId": "egress", "version": 1, "text": MAIN } }),
    );
    let published = client.wait_notification("textDocument/publishDiagnostics", |p| {
        p["uri"] == main_uri.as_str() && p["version"] == 1
    });
    assert_eq!(codes(&published), ["E0010"], "{published}");
    let diagnostic = &published["diagnostics"][0];
    assert_eq!(diagnostic["range"]["start"], pos(MAIN, "reprot", 0, 0));
    assert_eq!(diagnostic["severity"], 1);
    assert_eq!(diagnostic["source"], "egc");

    // The quick fix from "did you mean".
    let actions = client.request(
        "textDocument/codeAction",
        json!({
            "textDocument": { "uri": main_uri },
            "range": diagnostic["range"],
            "context": { "diagnostics": [diagnostic] },
        }),
    );
    let action = &actions[0];
    assert_eq!(action["kind"], "quickfix");
    assert_eq!(
        action["edit"]["changes"][main_uri.as_str()][0]["newText"],
        "report"
    );

    // didChange (incremental): fix the typo; the diagnostics clear.
    let fixed = MAIN.replace("uses reprot", "uses report");
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": { "uri": main_uri, "version": 2 },
            "contentChanges": [{
                "range": { "start": pos(MAIN, "reprot", 0, 0), "end": pos(MAIN, "reprot", 0, 6) },
                "text": "report",
            }],
        }),
    );
    let published = client.wait_notification("textDocument/publishDiagnostics", |p| {
        p["uri"] == main_uri.as_str() && p["version"] == 2
    });
    assert_eq!(codes(&published), Vec::<String>::new(), "{published}");

    // Hover: doc comment, resolution, who reaches it.
    let hover = client.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": main_uri }, "position": pos(&fixed, "control_plane", 1, 3) }),
    );
    let markdown = hover["contents"]["value"].as_str().unwrap();
    assert_eq!(hover["contents"]["kind"], "markdown");
    assert!(
        markdown.contains("The control plane agents report to."),
        "{markdown}"
    );
    assert!(markdown.contains("host `cp.corp.internal`"), "{markdown}");
    assert!(
        markdown.contains("`invoice_bot` via capability `report`"),
        "{markdown}"
    );
    assert_eq!(hover["range"]["start"], pos(&fixed, "control_plane", 1, 0));

    // Definition into another file.
    let definition = client.request(
        "textDocument/definition",
        json!({ "textDocument": { "uri": main_uri }, "position": pos(&fixed, "common.telemetry", 0, 10) }),
    );
    assert_eq!(definition["uri"], common_uri.as_str());
    assert_eq!(definition["range"]["start"], pos(COMMON, "telemetry", 0, 0));

    // Definition into the stdlib: a readable file.
    let definition = client.request(
        "textDocument/definition",
        json!({ "textDocument": { "uri": main_uri }, "position": pos(&fixed, "dns.kube_dns", 0, 5) }),
    );
    let stdlib_uri = definition["uri"].as_str().unwrap();
    assert!(stdlib_uri.ends_with("/dns.egress"), "{definition}");
    let stdlib_text = std::fs::read_to_string(stdlib_uri.trim_start_matches("file://")).unwrap();
    let line = definition["range"]["start"]["line"].as_u64().unwrap() as usize;
    assert!(
        stdlib_text
            .lines()
            .nth(line)
            .unwrap()
            .contains("destination kube_dns"),
        "{definition}"
    );

    // References, with the declaration.
    let references = client.request(
        "textDocument/references",
        json!({
            "textDocument": { "uri": main_uri },
            "position": pos(&fixed, "control_plane", 2, 1),
            "context": { "includeDeclaration": true },
        }),
    );
    let references = references.as_array().unwrap();
    assert_eq!(references.len(), 4, "{references:?}");
    assert!(references.iter().all(|r| r["uri"] == main_uri.as_str()));

    // Rename across files keeps the module prefix.
    let rename = client.request(
        "textDocument/rename",
        json!({
            "textDocument": { "uri": main_uri },
            "position": pos(&fixed, "common.telemetry", 0, 10),
            "newName": "traces",
        }),
    );
    let changes = &rename["changes"];
    let in_main: Vec<&Value> = changes[main_uri.as_str()]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(in_main.len(), 2);
    for edit in in_main {
        assert_eq!(edit["newText"], "traces");
        // Only the name after `common.` is replaced.
        let start = edit["range"]["start"]["character"].as_u64().unwrap();
        let end = edit["range"]["end"]["character"].as_u64().unwrap();
        assert_eq!(end - start, "telemetry".len() as u64);
    }
    assert_eq!(
        changes[common_uri.as_str()][0]["range"]["start"],
        pos(COMMON, "telemetry", 0, 0)
    );

    // A rename that would break the policy is refused with a message.
    let id = client.request_async(
        "textDocument/rename",
        json!({
            "textDocument": { "uri": main_uri },
            "position": pos(&fixed, "dns.kube_dns", 0, 6),
            "newName": "resolver",
        }),
    );
    let refused = client.response(id);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stdlib"),
        "{refused}"
    );

    // Completion after `connect `.
    let completion = client.request(
        "textDocument/completion",
        json!({ "textDocument": { "uri": main_uri }, "position": pos(&fixed, "connect ", 0, 8) }),
    );
    let labels: Vec<&str> = completion
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"control_plane") && labels.contains(&"common.telemetry"),
        "{labels:?}"
    );

    // Symbols.
    let symbols = client.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": main_uri } }),
    );
    let names: Vec<&str> = symbols
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "std.dns",
            "common",
            "pii",
            "control_plane",
            "report",
            "invoice_bot",
            "billing"
        ]
    );
    let found = client.request("workspace/symbol", json!({ "query": "telem" }));
    assert_eq!(found[0]["location"]["uri"], common_uri.as_str());

    // Semantic tokens: five integers per token, a keyword first.
    let tokens = client.request(
        "textDocument/semanticTokens/full",
        json!({ "textDocument": { "uri": main_uri } }),
    );
    let data = tokens["data"].as_array().unwrap();
    assert_eq!(data.len() % 5, 0);
    use egress_syntax::lexer::{tokenize, TokenKind};
    let expected = tokenize(&fixed)
        .iter()
        .filter(|t| {
            !matches!(
                t.kind,
                TokenKind::LBrace | TokenKind::RBrace | TokenKind::Comma
            )
        })
        .count();
    assert_eq!(data.len() / 5, expected);
    assert_eq!(
        &data[..5],
        &[json!(0), json!(0), json!(6), json!(0), json!(0)]
    );

    // Formatting: a messy edit comes back canonical.
    let messy = fixed.replace("data pii", "data   pii");
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": main_uri, "version": 3 }, "contentChanges": [{ "text": messy }] }),
    );
    let edits = client.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": main_uri }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    assert_eq!(edits.as_array().unwrap().len(), 1);
    assert_eq!(
        edits[0]["newText"],
        egress_syntax::format::format_source(&messy).unwrap()
    );
    assert!(edits[0]["newText"]
        .as_str()
        .unwrap()
        .contains("\ndata pii\n"));

    // Bad input never kills the server.
    let id = client.request_async("textDocument/hover", json!({ "textDocument": 42 }));
    assert_eq!(client.response(id)["error"]["code"], -32602);
    let hover = client.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": main_uri }, "position": { "line": 9999, "character": 9999 } }),
    );
    assert!(hover.is_null());
    let id = client.request_async("textDocument/unknownThing", json!({}));
    assert_eq!(client.response(id)["error"]["code"], -32601);

    let status = client.shutdown();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_panicking_handler_is_caught_and_the_server_keeps_serving() {
    let dir = TempDir::new("panic");
    let main = dir.write("main.egress", "data pii\n");
    let mut client = Client::start(&[("EGC_LSP_DEBUG_PANIC", "1")]);
    client.initialize(&dir.0);
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri(&main), "languageId": "egress", "version": 1, "text": "data pii\n" } }),
    );
    let id = client.request_async("egc/debugPanic", json!({}));
    let response = client.response(id);
    assert_eq!(response["error"]["code"], -32603, "{response}");
    assert!(response["error"]["message"]
        .as_str()
        .unwrap()
        .contains("deliberate panic"));
    // The panic was logged to the client.
    let logged = client.wait_notification("window/logMessage", |p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("deliberate panic"))
    });
    assert_eq!(logged["type"], 1);
    // And the server still answers.
    let symbols = client.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": uri(&main) } }),
    );
    assert_eq!(symbols[0]["name"], "pii");
    assert!(client.shutdown().success());
}

#[test]
fn a_newer_edit_makes_a_request_in_flight_answer_content_modified() {
    let dir = TempDir::new("cancel");
    // A large policy so that the request takes a while.
    let mut text = String::new();
    for i in 0..2000 {
        text.push_str(&format!(
            "destination d{i} {{\n    host \"h{i}.example.internal\"\n    port 443\n}}\n"
        ));
    }
    let main = dir.write("main.egress", &text);
    let main_uri = uri(&main);
    let mut client = Client::start(&[]);
    client.initialize(&dir.0);
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": main_uri, "languageId": "egress", "version": 1, "text": text } }),
    );
    // Send a burst: request, edit, request, edit, ... The answers to requests that were
    // overtaken by an edit must be ContentModified; none may be a stale answer.
    let mut ids = Vec::new();
    for version in 2..6 {
        let id = client.request_async(
            "textDocument/hover",
            json!({ "textDocument": { "uri": main_uri }, "position": { "line": 0, "character": 13 } }),
        );
        ids.push(id);
        let edited = format!("// edit {version}\n{text}");
        client.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": main_uri, "version": version }, "contentChanges": [{ "text": edited }] }),
        );
    }
    let mut modified = 0;
    for id in ids {
        let response = client.response(id);
        match response.get("error") {
            Some(error) => {
                assert_eq!(error["code"], -32801, "{response}");
                modified += 1;
            }
            // Answered before the edit arrived: position (0, 13) was on `d0`.
            None => assert!(
                response["result"].is_null()
                    || response["result"]["contents"]["value"]
                        .as_str()
                        .unwrap()
                        .contains("d0"),
                "{response}"
            ),
        }
    }
    assert!(
        modified >= 1,
        "no request in flight was overtaken by an edit"
    );
    // Only the newest version's diagnostics matter; they arrive.
    client.wait_notification("textDocument/publishDiagnostics", |p| p["version"] == 5);
    assert!(client.shutdown().success());
}

const SMTP: &str = r#"import std.dns
import std.sys

destination mail_relays {
    host "*.mail.internal"
    port 1-1024
}

capability send_mail {
    connect mail_relays, dns.kube_dns
    syscalls sys.process_base, sys.network_client
}

agent mailer {
    workload namespace "mail" labels { app = "mailer" }
    uses send_mail
}

zone mail {
    owner "security-team"
    agents mailer
    approve mail_relays, dns.kube_dns
}

assert no_smtp {
    agent mailer cannot reach { host "**.mail.internal" port 25 }
}
"#;

#[test]
fn verifier_results_on_save_with_the_counterexample_path() {
    let dir = TempDir::new("verify");
    let main = dir.write("mail/main.egress", SMTP);
    let main_uri = uri(&main);
    let mut client = Client::start(&[]);
    client.initialize(&dir.0);
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": main_uri, "languageId": "egress", "version": 1, "text": SMTP } }),
    );
    // As you type: the policy checks; the verifier has not run.
    let published = client.wait_notification("textDocument/publishDiagnostics", |p| {
        p["uri"] == main_uri.as_str()
    });
    assert_eq!(codes(&published), Vec::<String>::new(), "{published}");

    client.notify(
        "textDocument/didSave",
        json!({ "textDocument": { "uri": main_uri } }),
    );
    let published = client.wait_notification("textDocument/publishDiagnostics", |p| {
        p["uri"] == main_uri.as_str() && !p["diagnostics"].as_array().unwrap().is_empty()
    });
    assert_eq!(codes(&published), ["assert:no_smtp"], "{published}");
    let violation = &published["diagnostics"][0];
    // Shown where it happens: the claim the witness contradicts.
    assert_eq!(
        violation["range"]["start"],
        pos(SMTP, "agent mailer cannot", 0, 0),
        "{violation}"
    );
    let message = violation["message"].as_str().unwrap();
    assert!(message.contains("witness"), "{message}");
    let steps: Vec<&str> = violation["relatedInformation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert!(steps.len() >= 3, "{steps:?}");
    assert!(steps[0].starts_with("1. agent `mailer`"), "{steps:?}");
    assert!(
        steps.iter().any(|s| s.contains("uses `send_mail`")),
        "{steps:?}"
    );
    let first = &violation["relatedInformation"][0]["location"];
    assert_eq!(first["uri"], main_uri.as_str());
    assert_eq!(first["range"]["start"], pos(SMTP, "mailer {", 0, 0));

    // An edit that fixes the policy clears the finding on the next save.
    let fixed = SMTP.replace("port 1-1024", "port 443");
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": main_uri, "version": 2 }, "contentChanges": [{ "text": fixed }] }),
    );
    client.notify(
        "textDocument/didSave",
        json!({ "textDocument": { "uri": main_uri } }),
    );
    let published = client.wait_notification("textDocument/publishDiagnostics", |p| {
        p["uri"] == main_uri.as_str()
            && p["version"] == 2
            && p["diagnostics"].as_array().unwrap().is_empty()
    });
    assert_eq!(codes(&published), Vec::<String>::new());
    assert!(client.shutdown().success());
}

#[test]
fn positions_are_utf16_on_lines_with_wide_characters() {
    let dir = TempDir::new("utf16");
    // `😀` is 4 bytes in UTF-8 and 2 code units in UTF-16; `é` is 2 bytes and 1 unit.
    let text = "/// Café 😀 service.\ndestination cp { host \"cp.example.internal\" port 443 }\ncapability c { connect cp } // 😀 x\n";
    let main = dir.write("main.egress", text);
    let main_uri = uri(&main);
    let mut client = Client::start(&[]);
    client.initialize(&dir.0);
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": main_uri, "languageId": "egress", "version": 1, "text": text } }),
    );
    client.wait_notification("textDocument/publishDiagnostics", |p| {
        p["uri"] == main_uri.as_str()
    });
    // `cp` in `connect cp` is at UTF-16 column 23 of line 2.
    let hover = client.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": main_uri }, "position": { "line": 2, "character": 24 } }),
    );
    assert!(
        hover["contents"]["value"]
            .as_str()
            .unwrap()
            .contains("Café 😀 service."),
        "{hover}"
    );
    assert_eq!(
        hover["range"]["start"],
        json!({ "line": 2, "character": 23 })
    );
    // The doc comment token spans the whole first line in UTF-16 units: 20.
    let tokens = client.request(
        "textDocument/semanticTokens/full",
        json!({ "textDocument": { "uri": main_uri } }),
    );
    assert_eq!(
        &tokens["data"].as_array().unwrap()[..5],
        &[json!(0), json!(0), json!(20), json!(1), json!(2)]
    );
    // An edit after the emoji lands where the client meant it: replacing the `x` (UTF-16
    // column 34) with a new item leaves a clean file; one column off would not.
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": { "uri": main_uri, "version": 2 },
            "contentChanges": [{ "range": { "start": { "line": 2, "character": 34 }, "end": { "line": 2, "character": 35 } }, "text": "\ncapability d { connect cp }" }],
        }),
    );
    let published = client.wait_notification("textDocument/publishDiagnostics", |p| {
        p["uri"] == main_uri.as_str() && p["version"] == 2
    });
    assert_eq!(codes(&published), Vec::<String>::new(), "{published}");
    let definition = client.request(
        "textDocument/definition",
        json!({ "textDocument": { "uri": main_uri }, "position": { "line": 2, "character": 23 } }),
    );
    assert_eq!(
        definition["range"]["start"],
        json!({ "line": 1, "character": 12 })
    );
    let symbols = client.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": main_uri } }),
    );
    assert_eq!(symbols.as_array().unwrap().len(), 3, "{symbols}");
    assert!(client.shutdown().success());
}

#[test]
fn cancel_request_answers_request_cancelled() {
    let dir = TempDir::new("cancel-request");
    // A policy large enough that the hover is still waiting for its check (hundreds of
    // milliseconds) when the cancellation arrives (microseconds later).
    let mut text = String::new();
    for i in 0..2000 {
        text.push_str(&format!(
            "destination d{i} {{\n    host \"h{i}.example.internal\"\n    port 443\n}}\n"
        ));
    }
    let main = dir.write("main.egress", &text);
    let main_uri = uri(&main);
    let mut client = Client::start(&[]);
    client.initialize(&dir.0);
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": main_uri, "languageId": "egress", "version": 1, "text": text } }),
    );
    let id = client.request_async(
        "textDocument/hover",
        json!({ "textDocument": { "uri": main_uri }, "position": { "line": 0, "character": 13 } }),
    );
    client.notify("$/cancelRequest", json!({ "id": id }));
    let response = client.response(id);
    assert_eq!(response["error"]["code"], -32800, "{response}");
    // The server goes on serving.
    let hover = client.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": main_uri }, "position": { "line": 0, "character": 13 } }),
    );
    assert!(
        hover["contents"]["value"]
            .as_str()
            .unwrap()
            .contains("destination main.d0"),
        "{hover}"
    );
    assert!(client.shutdown().success());
}
