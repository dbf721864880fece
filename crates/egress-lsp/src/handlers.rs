//! Request handlers: LSP parameters in, IDE queries, LSP results out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use egress_ide::{
    Analysis, CompletionKind, FileDiagnostic, FileRange, FileRef, HighlightTag, TextRange,
};
use lsp_server::{ErrorCode, ResponseError};
use lsp_types::request::{
    CodeActionRequest, Completion, DocumentSymbolRequest, Formatting, GotoDefinition, HoverRequest,
    PrepareRenameRequest, References, Rename, Request as _, SemanticTokensFullRequest,
    WorkspaceSymbolRequest,
};
use lsp_types::{
    CodeActionKind, CodeActionOptions, CodeActionOrCommand, CodeActionParams,
    CodeActionProviderCapability, CompletionItemKind, CompletionOptions, CompletionParams,
    CompletionResponse, CompletionTextEdit, Diagnostic, DiagnosticRelatedInformation,
    DiagnosticSeverity, DocumentFormattingParams, DocumentSymbolParams, DocumentSymbolResponse,
    GotoDefinitionParams, GotoDefinitionResponse, Hover, HoverContents, HoverParams,
    HoverProviderCapability, Location, MarkupContent, MarkupKind, NumberOrString, OneOf, Position,
    ReferenceParams, RenameOptions, RenameParams, SemanticToken, SemanticTokenModifier,
    SemanticTokenType, SemanticTokens, SemanticTokensFullOptions, SemanticTokensLegend,
    SemanticTokensOptions, SemanticTokensParams, SemanticTokensResult,
    SemanticTokensServerCapabilities, ServerCapabilities, SymbolInformation, SymbolKind,
    TextDocumentPositionParams, TextDocumentSyncCapability, TextDocumentSyncKind,
    TextDocumentSyncOptions, TextDocumentSyncSaveOptions, TextEdit, Url, WorkDoneProgressOptions,
    WorkspaceEdit, WorkspaceSymbolParams, WorkspaceSymbolResponse,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::convert::{path_to_url, url_to_path, LineIndex};

const TOKEN_TYPES: &[SemanticTokenType] = &[
    SemanticTokenType::KEYWORD,     // 0
    SemanticTokenType::COMMENT,     // 1
    SemanticTokenType::STRING,      // 2
    SemanticTokenType::NUMBER,      // 3
    SemanticTokenType::OPERATOR,    // 4
    SemanticTokenType::NAMESPACE,   // 5
    SemanticTokenType::TYPE,        // 6 destination
    SemanticTokenType::CLASS,       // 7 agent
    SemanticTokenType::FUNCTION,    // 8 capability
    SemanticTokenType::EVENT,       // 9 workflow
    SemanticTokenType::INTERFACE,   // 10 exception
    SemanticTokenType::ENUM,        // 11 authority
    SemanticTokenType::STRUCT,      // 12 zone
    SemanticTokenType::MACRO,       // 13 assert
    SemanticTokenType::ENUM_MEMBER, // 14 data class, constants
    SemanticTokenType::PARAMETER,   // 15 syscall group, capability set
    SemanticTokenType::VARIABLE,    // 16 unresolved
];

const TOKEN_MODIFIERS: &[SemanticTokenModifier] = &[
    SemanticTokenModifier::DECLARATION,   // bit 0
    SemanticTokenModifier::DOCUMENTATION, // bit 1
];

pub(crate) fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                will_save: None,
                will_save_wait_until: None,
                save: Some(TextDocumentSyncSaveOptions::Supported(true)),
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".to_string()]),
            ..CompletionOptions::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        rename_provider: Some(OneOf::Right(RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: WorkDoneProgressOptions::default(),
        })),
        document_symbol_provider: Some(OneOf::Left(true)),
        workspace_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
            ..CodeActionOptions::default()
        })),
        semantic_tokens_provider: Some(SemanticTokensServerCapabilities::SemanticTokensOptions(
            SemanticTokensOptions {
                legend: SemanticTokensLegend {
                    token_types: TOKEN_TYPES.to_vec(),
                    token_modifiers: TOKEN_MODIFIERS.to_vec(),
                },
                full: Some(SemanticTokensFullOptions::Bool(true)),
                range: None,
                work_done_progress_options: WorkDoneProgressOptions::default(),
            },
        )),
        ..ServerCapabilities::default()
    }
}

fn invalid_params(message: String) -> ResponseError {
    ResponseError {
        code: ErrorCode::InvalidParams as i32,
        message,
        data: None,
    }
}

fn params<T: DeserializeOwned>(value: Value) -> Result<T, ResponseError> {
    serde_json::from_value(value).map_err(|e| invalid_params(format!("invalid parameters: {e}")))
}

fn to_json<T: serde::Serialize>(value: T) -> Result<Value, ResponseError> {
    serde_json::to_value(value).map_err(|e| ResponseError {
        code: ErrorCode::InternalError as i32,
        message: e.to_string(),
        data: None,
    })
}

/// A document of the request with its text and line index.
struct Document {
    path: PathBuf,
    index: LineIndex,
}

fn document(analysis: &Analysis, uri: &Url) -> Result<Document, ResponseError> {
    let path = url_to_path(uri).ok_or_else(|| invalid_params(format!("not a file: URL: {uri}")))?;
    let text = analysis
        .file_text(&path)
        .ok_or_else(|| invalid_params(format!("unknown document: {uri}")))?;
    Ok(Document {
        path,
        index: LineIndex::new(text),
    })
}

fn position_request(
    analysis: &Analysis,
    params: &TextDocumentPositionParams,
) -> Result<(Document, usize), ResponseError> {
    let document = document(analysis, &params.text_document.uri)?;
    let offset = document.index.offset(params.position);
    Ok((document, offset))
}

pub(crate) fn handle_request(
    analysis: &Analysis,
    method: &str,
    value: Value,
) -> Result<Value, ResponseError> {
    match method {
        HoverRequest::METHOD => {
            let p: HoverParams = params(value)?;
            let (document, offset) = position_request(analysis, &p.text_document_position_params)?;
            let hover = analysis.hover(&document.path, offset).map(|h| Hover {
                contents: HoverContents::Markup(MarkupContent {
                    kind: MarkupKind::Markdown,
                    value: h.markdown,
                }),
                range: Some(document.index.range(h.range)),
            });
            to_json(hover)
        }
        GotoDefinition::METHOD => {
            let p: GotoDefinitionParams = params(value)?;
            let (document, offset) = position_request(analysis, &p.text_document_position_params)?;
            let location = analysis
                .definition(&document.path, offset)
                .and_then(|l| location(analysis, &l));
            to_json(location.map(GotoDefinitionResponse::Scalar))
        }
        References::METHOD => {
            let p: ReferenceParams = params(value)?;
            let (document, offset) = position_request(analysis, &p.text_document_position)?;
            let locations: Vec<Location> = analysis
                .references(&document.path, offset, p.context.include_declaration)
                .iter()
                .filter_map(|l| location(analysis, l))
                .collect();
            to_json(locations)
        }
        PrepareRenameRequest::METHOD => {
            let p: TextDocumentPositionParams = params(value)?;
            let (document, offset) = position_request(analysis, &p)?;
            match analysis.prepare_rename(&document.path, offset) {
                Ok((range, placeholder)) => to_json(serde_json::json!({
                    "range": document.index.range(range),
                    "placeholder": placeholder,
                })),
                Err(error) => Err(ResponseError {
                    code: ErrorCode::RequestFailed as i32,
                    message: error.0,
                    data: None,
                }),
            }
        }
        Rename::METHOD => {
            let p: RenameParams = params(value)?;
            let (document, offset) = position_request(analysis, &p.text_document_position)?;
            let edit = analysis
                .rename(&document.path, offset, &p.new_name)
                .map_err(|e| ResponseError {
                    code: ErrorCode::RequestFailed as i32,
                    message: e.0,
                    data: None,
                })?;
            to_json(workspace_edit(analysis, &edit))
        }
        Formatting::METHOD => {
            let p: DocumentFormattingParams = params(value)?;
            let document = document(analysis, &p.text_document.uri)?;
            let edits: Vec<TextEdit> = match analysis.format(&document.path) {
                Some(formatted) => vec![TextEdit {
                    range: document
                        .index
                        .range(TextRange::new(0, document.index.text().len())),
                    new_text: formatted,
                }],
                None => Vec::new(),
            };
            to_json(edits)
        }
        Completion::METHOD => {
            let p: CompletionParams = params(value)?;
            let (document, offset) = position_request(analysis, &p.text_document_position)?;
            let items: Vec<lsp_types::CompletionItem> = analysis
                .completions(&document.path, offset)
                .into_iter()
                .map(|item| lsp_types::CompletionItem {
                    kind: Some(match item.kind {
                        CompletionKind::Keyword => CompletionItemKind::KEYWORD,
                        CompletionKind::Module => CompletionItemKind::MODULE,
                        CompletionKind::Value => CompletionItemKind::CONSTANT,
                        CompletionKind::Name(kind) => completion_kind(kind),
                    }),
                    detail: item.detail.clone(),
                    text_edit: Some(CompletionTextEdit::Edit(TextEdit {
                        range: document.index.range(item.replace),
                        new_text: item.insert_text.clone(),
                    })),
                    filter_text: Some(item.label.clone()),
                    label: item.label,
                    ..lsp_types::CompletionItem::default()
                })
                .collect();
            to_json(CompletionResponse::Array(items))
        }
        DocumentSymbolRequest::METHOD => {
            let p: DocumentSymbolParams = params(value)?;
            let document = document(analysis, &p.text_document.uri)?;
            #[allow(deprecated)] // `deprecated` is a required field of the type.
            let symbols: Vec<lsp_types::DocumentSymbol> = analysis
                .document_symbols(&document.path)
                .into_iter()
                .map(|s| lsp_types::DocumentSymbol {
                    name: s.name,
                    detail: s.detail,
                    kind: symbol_kind(s.kind),
                    tags: None,
                    deprecated: None,
                    range: document.index.range(s.range),
                    selection_range: document.index.range(s.selection_range),
                    children: None,
                })
                .collect();
            to_json(DocumentSymbolResponse::Nested(symbols))
        }
        WorkspaceSymbolRequest::METHOD => {
            let p: WorkspaceSymbolParams = params(value)?;
            let mut indexes: HashMap<PathBuf, LineIndex> = HashMap::new();
            let mut out = Vec::new();
            for symbol in analysis.workspace_symbols(&p.query, 256) {
                let Some(uri) = path_to_url(&symbol.path) else {
                    continue;
                };
                let index = indexes.entry(symbol.path.clone()).or_insert_with(|| {
                    LineIndex::new(
                        analysis
                            .file_text(&symbol.path)
                            .unwrap_or_else(|| Arc::from("")),
                    )
                });
                #[allow(deprecated)] // `deprecated` is a required field of the type.
                out.push(SymbolInformation {
                    name: symbol.name,
                    kind: symbol_kind(symbol.kind),
                    tags: None,
                    deprecated: None,
                    location: Location {
                        uri,
                        range: index.range(symbol.range),
                    },
                    container_name: Some(symbol.container),
                });
            }
            to_json(WorkspaceSymbolResponse::Flat(out))
        }
        SemanticTokensFullRequest::METHOD => {
            let p: SemanticTokensParams = params(value)?;
            let document = document(analysis, &p.text_document.uri)?;
            let data = semantic_tokens(&document.index, &analysis.highlight(&document.path));
            to_json(SemanticTokensResult::Tokens(SemanticTokens {
                result_id: None,
                data,
            }))
        }
        CodeActionRequest::METHOD => {
            let p: CodeActionParams = params(value)?;
            let document = document(analysis, &p.text_document.uri)?;
            let range = document.index.text_range(p.range);
            let actions: Vec<CodeActionOrCommand> = analysis
                .code_actions(&document.path, range)
                .into_iter()
                .map(|action| {
                    CodeActionOrCommand::CodeAction(lsp_types::CodeAction {
                        title: action.title,
                        kind: Some(CodeActionKind::QUICKFIX),
                        diagnostics: None,
                        edit: Some(workspace_edit(analysis, &action.edit)),
                        command: None,
                        is_preferred: Some(action.is_preferred),
                        disabled: None,
                        data: None,
                    })
                })
                .collect();
            to_json(actions)
        }
        "egc/debugPanic" if std::env::var_os("EGC_LSP_DEBUG_PANIC").is_some() => {
            // A deliberate crash, enabled only by the environment, so tests can prove a
            // panicking handler does not take the server down.
            #[allow(clippy::panic)]
            {
                panic!("deliberate panic requested by egc/debugPanic")
            }
        }
        _ => Err(ResponseError {
            code: ErrorCode::MethodNotFound as i32,
            message: format!("unsupported request: {method}"),
            data: None,
        }),
    }
}

fn completion_kind(kind: &str) -> CompletionItemKind {
    match kind {
        "destination" => CompletionItemKind::STRUCT,
        "agent" => CompletionItemKind::CLASS,
        "capability" => CompletionItemKind::FUNCTION,
        "workflow" => CompletionItemKind::EVENT,
        "exception" => CompletionItemKind::INTERFACE,
        "authority" => CompletionItemKind::ENUM,
        "zone" => CompletionItemKind::MODULE,
        "data" => CompletionItemKind::ENUM_MEMBER,
        "syscalls" | "capset" => CompletionItemKind::CONSTANT,
        _ => CompletionItemKind::REFERENCE,
    }
}

fn symbol_kind(kind: &str) -> SymbolKind {
    match kind {
        "destination" => SymbolKind::STRUCT,
        "agent" => SymbolKind::CLASS,
        "capability" => SymbolKind::FUNCTION,
        "workflow" => SymbolKind::EVENT,
        "exception" => SymbolKind::INTERFACE,
        "authority" => SymbolKind::KEY,
        "zone" => SymbolKind::NAMESPACE,
        "assert" => SymbolKind::BOOLEAN,
        "data" => SymbolKind::ENUM_MEMBER,
        "syscalls" | "capset" => SymbolKind::ARRAY,
        "import" => SymbolKind::MODULE,
        _ => SymbolKind::OBJECT,
    }
}

/// An LSP location; a stdlib module with no workspace copy is written to a read-only
/// file in the temporary directory so the editor can open it.
fn location(analysis: &Analysis, range: &FileRange) -> Option<Location> {
    let (path, text) = match &range.file {
        FileRef::Path(path) => (path.clone(), analysis.file_text(path)?),
        FileRef::Stdlib { name, text } => (materialize_stdlib(name, text)?, text.clone()),
    };
    let index = LineIndex::new(text);
    Some(Location {
        uri: path_to_url(&path)?,
        range: index.range(range.range),
    })
}

fn materialize_stdlib(name: &str, text: &str) -> Option<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    let dir = std::env::temp_dir().join(format!("egc-stdlib-{:016x}", hasher.finish()));
    let path = dir.join(format!("{name}.egress"));
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
        std::fs::create_dir_all(&dir).ok()?;
        let temporary = dir.join(format!(".{name}.egress.{}", std::process::id()));
        std::fs::write(&temporary, text).ok()?;
        if let Ok(metadata) = std::fs::metadata(&temporary) {
            let mut permissions = metadata.permissions();
            permissions.set_readonly(true);
            let _ = std::fs::set_permissions(&temporary, permissions);
        }
        std::fs::rename(&temporary, &path).ok()?;
    }
    Some(path)
}

fn workspace_edit(analysis: &Analysis, edit: &egress_ide::WorkspaceEdit) -> WorkspaceEdit {
    let mut changes: HashMap<Url, Vec<TextEdit>> = HashMap::new();
    for (path, edits) in edit {
        let Some(uri) = path_to_url(path) else {
            continue;
        };
        let index = LineIndex::new(analysis.file_text(path).unwrap_or_else(|| Arc::from("")));
        changes.insert(
            uri,
            edits
                .iter()
                .map(|e| TextEdit {
                    range: index.range(e.range),
                    new_text: e.new_text.clone(),
                })
                .collect(),
        );
    }
    WorkspaceEdit {
        changes: Some(changes),
        document_changes: None,
        change_annotations: None,
    }
}

fn token_type(tag: HighlightTag) -> Option<u32> {
    Some(match tag {
        HighlightTag::Keyword => 0,
        HighlightTag::Comment | HighlightTag::DocComment => 1,
        HighlightTag::String => 2,
        HighlightTag::Number | HighlightTag::Address | HighlightTag::Duration => 3,
        HighlightTag::Operator => 4,
        HighlightTag::Module => 5,
        HighlightTag::Name(kind) => match kind {
            "destination" => 6,
            "agent" => 7,
            "capability" => 8,
            "workflow" => 9,
            "exception" => 10,
            "authority" => 11,
            "zone" => 12,
            "assert" => 13,
            "data" => 14,
            "syscalls" | "capset" => 15,
            "import" => 5,
            _ => 16,
        },
        HighlightTag::Constant => 14,
        HighlightTag::Unresolved => 16,
        HighlightTag::Invalid => return None,
    })
}

fn semantic_tokens(
    index: &LineIndex,
    highlights: &[egress_ide::HighlightedRange],
) -> Vec<SemanticToken> {
    let mut out = Vec::with_capacity(highlights.len());
    let mut previous = Position::new(0, 0);
    for highlight in highlights {
        let Some(token_type) = token_type(highlight.tag) else {
            continue;
        };
        let start = index.position(highlight.range.start);
        let end = index.position(highlight.range.end);
        if end.line != start.line || end.character <= start.character {
            continue; // tokens never span lines; skip anything odd rather than mis-encode
        }
        let mut modifiers = 0;
        if highlight.declaration {
            modifiers |= 1;
        }
        if highlight.tag == HighlightTag::DocComment {
            modifiers |= 2;
        }
        let delta_line = start.line - previous.line;
        let delta_start = if delta_line == 0 {
            start.character - previous.character
        } else {
            start.character
        };
        out.push(SemanticToken {
            delta_line,
            delta_start,
            length: end.character - start.character,
            token_type,
            token_modifiers_bitset: modifiers,
        });
        previous = start;
    }
    out
}

pub(crate) fn to_lsp_diagnostics(
    analysis: &Analysis,
    path: &Path,
    diagnostics: &[FileDiagnostic],
) -> Vec<Diagnostic> {
    let index = LineIndex::new(analysis.file_text(path).unwrap_or_else(|| Arc::from("")));
    diagnostics
        .iter()
        .map(|d| {
            let related: Vec<DiagnosticRelatedInformation> = d
                .related
                .iter()
                .filter_map(|r| {
                    Some(DiagnosticRelatedInformation {
                        location: location(analysis, &r.location)?,
                        message: r.message.clone(),
                    })
                })
                .collect();
            Diagnostic {
                range: index.range(d.range),
                severity: Some(match d.severity {
                    egress_ide::Severity::Error => DiagnosticSeverity::ERROR,
                    egress_ide::Severity::Warning => DiagnosticSeverity::WARNING,
                }),
                code: Some(NumberOrString::String(d.code.clone())),
                code_description: None,
                source: Some("egc".to_string()),
                message: d.message.clone(),
                related_information: if related.is_empty() {
                    None
                } else {
                    Some(related)
                },
                tags: None,
                data: None,
            }
        })
        .collect()
}
