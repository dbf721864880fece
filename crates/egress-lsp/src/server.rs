//! The main loop: lifecycle, document sync, request dispatch, diagnostics.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{select, unbounded, Receiver, Sender};
use egress_ide::{Analysis, AnalysisHost, Vfs};
use lsp_server::{
    Connection, ErrorCode, Message, Notification, Request, RequestId, Response, ResponseError,
};
use lsp_types::notification::{
    DidChangeTextDocument, DidChangeWatchedFiles, DidCloseTextDocument, DidOpenTextDocument,
    DidSaveTextDocument, LogMessage, Notification as _, PublishDiagnostics,
};
use lsp_types::{
    DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams,
    DidSaveTextDocumentParams, InitializeParams, LogMessageParams, MessageType,
    PublishDiagnosticsParams, Url,
};

use crate::convert::{apply_change, path_to_url, url_to_path};
use crate::handlers;

/// Options of the server.
#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    /// Log every request with its duration to stderr.
    pub verbose: bool,
}

/// Runs the server over stdin/stdout until the client says `exit`.
pub fn run_stdio(config: ServerConfig) -> Result<(), String> {
    let (connection, io_threads) = Connection::stdio();
    run(connection, config)?;
    io_threads.join().map_err(|e| e.to_string())?;
    Ok(())
}

/// Runs the server over a connection (stdio, or in-memory in tests and benchmarks).
pub fn run(connection: Connection, config: ServerConfig) -> Result<(), String> {
    let (id, params) = connection.initialize_start().map_err(|e| e.to_string())?;
    let params: InitializeParams = serde_json::from_value(params).unwrap_or_default();
    let result = serde_json::json!({
        "capabilities": handlers::capabilities(),
        "serverInfo": { "name": "egc lsp", "version": env!("CARGO_PKG_VERSION") },
    });
    connection
        .sender
        .send(Message::Response(Response::new_ok(id, result)))
        .map_err(|e| e.to_string())?;
    if let Err(error) = connection.receiver.recv() {
        return Err(error.to_string());
    }
    let roots = workspace_roots(&params);
    let vfs: Arc<dyn Vfs> = Arc::new(OsVfs);
    let mut server = Server::new(connection, AnalysisHost::new(vfs, roots), config);
    server.main_loop()
}

#[allow(deprecated)] // root_uri and root_path are deprecated but still sent by clients.
fn workspace_roots(params: &InitializeParams) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = params
        .workspace_folders
        .iter()
        .flatten()
        .filter_map(|f| url_to_path(&f.uri))
        .collect();
    if roots.is_empty() {
        if let Some(path) = params.root_uri.as_ref().and_then(url_to_path) {
            roots.push(path);
        } else if let Some(path) = &params.root_path {
            roots.push(PathBuf::from(path));
        }
    }
    roots
}

/// The real file system.
struct OsVfs;

impl Vfs for OsVfs {
    fn read_file(&self, path: &Path) -> Option<String> {
        let metadata = std::fs::metadata(path).ok()?;
        if !metadata.is_file() || metadata.len() > 16 * 1024 * 1024 {
            return None;
        }
        std::fs::read_to_string(path).ok()
    }

    fn read_dir(&self, dir: &Path) -> Vec<egress_ide::DirEntry> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out: Vec<egress_ide::DirEntry> = entries
            .filter_map(Result::ok)
            .map(|e| egress_ide::DirEntry {
                path: e.path(),
                is_dir: e.file_type().is_ok_and(|t| t.is_dir()),
            })
            .collect();
        out.sort();
        out
    }
}

/// A finished request, back from its worker thread.
struct Done {
    id: RequestId,
    uri: Option<Url>,
    version: Option<i32>,
    method: String,
    started: Instant,
    result: Result<serde_json::Value, ResponseError>,
}

/// Work for the diagnostics thread.
struct DiagnosticsJob {
    analysis: Analysis,
    /// Files whose policies to check, the edited one first.
    paths: Vec<PathBuf>,
    versions: BTreeMap<PathBuf, i32>,
    generation: u64,
    /// Files whose policies to verify too (saved files).
    verify: Vec<PathBuf>,
}

struct Server {
    connection: Connection,
    host: AnalysisHost,
    config: ServerConfig,
    versions: HashMap<Url, i32>,
    /// The same versions, for worker threads to notice that their document changed.
    shared_versions: Arc<std::sync::RwLock<HashMap<Url, i32>>>,
    /// Requests in flight, and those the client cancelled.
    in_flight: HashSet<RequestId>,
    cancelled: HashSet<RequestId>,
    done_sender: Sender<Done>,
    done_receiver: Receiver<Done>,
    diagnostics_sender: Sender<DiagnosticsJob>,
    generation: Arc<AtomicU64>,
}

impl Server {
    fn new(connection: Connection, host: AnalysisHost, config: ServerConfig) -> Server {
        let (done_sender, done_receiver) = unbounded();
        let (diagnostics_sender, diagnostics_receiver) = unbounded();
        let generation = Arc::new(AtomicU64::new(0));
        let thread_sender = connection.sender.clone();
        let thread_generation = generation.clone();
        std::thread::Builder::new()
            .name("egc-lsp-diagnostics".to_string())
            .spawn(move || diagnostics_loop(diagnostics_receiver, thread_sender, thread_generation))
            .ok();
        Server {
            connection,
            host,
            config,
            versions: HashMap::new(),
            shared_versions: Arc::new(std::sync::RwLock::new(HashMap::new())),
            in_flight: HashSet::new(),
            cancelled: HashSet::new(),
            done_sender,
            done_receiver,
            diagnostics_sender,
            generation,
        }
    }

    fn main_loop(&mut self) -> Result<(), String> {
        loop {
            let receiver = self.connection.receiver.clone();
            let done = self.done_receiver.clone();
            select! {
                recv(receiver) -> message => {
                    let Ok(message) = message else { return Ok(()) };
                    match message {
                        Message::Request(request) => {
                            if self.connection.handle_shutdown(&request).map_err(|e| e.to_string())? {
                                return Ok(());
                            }
                            self.on_request(request);
                        }
                        Message::Notification(notification) => {
                            if notification.method == "exit" {
                                return Ok(());
                            }
                            self.on_notification(notification);
                        }
                        Message::Response(_) => {}
                    }
                }
                recv(done) -> finished => {
                    if let Ok(finished) = finished {
                        self.on_done(finished);
                    }
                }
            }
        }
    }

    fn send(&self, message: Message) {
        // The client went away: the main loop ends when the receiver closes.
        let _ = self.connection.sender.send(message);
    }

    fn log(&self, kind: MessageType, message: String) {
        eprintln!("egc lsp: {message}");
        let params = LogMessageParams { typ: kind, message };
        self.send(Message::Notification(Notification::new(
            LogMessage::METHOD.to_string(),
            params,
        )));
    }

    fn on_request(&mut self, request: Request) {
        let Request { id, method, params } = request;
        let uri = params
            .get("textDocument")
            .and_then(|d| d.get("uri"))
            .and_then(|u| u.as_str())
            .and_then(|u| Url::parse(u).ok());
        let version = uri.as_ref().and_then(|u| self.versions.get(u).copied());
        let mut analysis = self.host.snapshot();
        if let Some(uri) = uri.clone() {
            let shared = self.shared_versions.clone();
            analysis = analysis.with_cancellation(Arc::new(move || {
                let versions = shared.read().unwrap_or_else(|e| e.into_inner());
                versions.get(&uri).copied() != version
            }));
        }
        let sender = self.done_sender.clone();
        self.in_flight.insert(id.clone());
        let started = Instant::now();
        let thread_id = id.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("egc-lsp-{method}"))
            .spawn(move || {
                let result = catch_unwind(AssertUnwindSafe(|| {
                    if analysis.is_cancelled() {
                        // Overtaken by an edit before it started: the main loop answers
                        // ContentModified.
                        return Ok(serde_json::Value::Null);
                    }
                    handlers::handle_request(&analysis, &method, params)
                }))
                .unwrap_or_else(|panic| {
                    Err(ResponseError {
                        code: ErrorCode::InternalError as i32,
                        message: format!(
                            "internal error in {method}: {}; the server keeps running",
                            panic_message(&panic)
                        ),
                        data: None,
                    })
                });
                let _ = sender.send(Done {
                    id: thread_id,
                    uri,
                    version,
                    method,
                    started,
                    result,
                });
            });
        if spawned.is_err() {
            self.in_flight.remove(&id);
            self.send(Message::Response(Response::new_err(
                id,
                ErrorCode::InternalError as i32,
                "could not start a worker thread".to_string(),
            )));
        }
    }

    fn on_done(&mut self, done: Done) {
        self.in_flight.remove(&done.id);
        if self.config.verbose {
            eprintln!(
                "egc lsp: {} took {:.1} ms",
                done.method,
                done.started.elapsed().as_secs_f64() * 1000.0
            );
        }
        if let Err(error) = &done.result {
            if error.code == ErrorCode::InternalError as i32 {
                self.log(MessageType::ERROR, error.message.clone());
            }
        }
        let response = if self.cancelled.remove(&done.id) {
            Response::new_err(
                done.id,
                ErrorCode::RequestCanceled as i32,
                "cancelled".to_string(),
            )
        } else if done
            .uri
            .as_ref()
            .and_then(|u| self.versions.get(u).copied())
            != done.version
        {
            // A newer edit arrived while this request ran: its answer is stale.
            Response::new_err(
                done.id,
                ErrorCode::ContentModified as i32,
                "the document changed while the request ran".to_string(),
            )
        } else {
            match done.result {
                Ok(value) => Response::new_ok(done.id, value),
                Err(error) => Response {
                    id: done.id,
                    result: None,
                    error: Some(error),
                },
            }
        };
        self.send(Message::Response(response));
    }

    fn sync_versions(&self) {
        let mut shared = self
            .shared_versions
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *shared = self.versions.clone();
    }

    fn on_notification(&mut self, notification: Notification) {
        let method = notification.method.clone();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.dispatch_notification(notification)
        }));
        self.sync_versions();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(message)) => self.log(MessageType::WARNING, format!("{method}: {message}")),
            Err(panic) => self.log(
                MessageType::ERROR,
                format!(
                    "internal error in {method}: {}; the server keeps running",
                    panic_message(&panic)
                ),
            ),
        }
    }

    fn dispatch_notification(&mut self, notification: Notification) -> Result<(), String> {
        match notification.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let params: DidOpenTextDocumentParams = parse(notification.params)?;
                let document = params.text_document;
                let path = url_to_path(&document.uri).ok_or("not a file: URL")?;
                self.versions.insert(document.uri, document.version);
                self.host.set_file_text(&path, document.text);
                self.schedule_diagnostics(&path);
            }
            DidChangeTextDocument::METHOD => {
                let params: DidChangeTextDocumentParams = parse(notification.params)?;
                let uri = params.text_document.uri;
                let path = url_to_path(&uri).ok_or("not a file: URL")?;
                let mut text = self
                    .host
                    .file_text(&path)
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                for change in params.content_changes {
                    text = apply_change(&text, change.range, &change.text);
                }
                self.versions.insert(uri, params.text_document.version);
                self.host.set_file_text(&path, text);
                self.schedule_diagnostics(&path);
            }
            DidSaveTextDocument::METHOD => {
                let params: DidSaveTextDocumentParams = parse(notification.params)?;
                let path = url_to_path(&params.text_document.uri).ok_or("not a file: URL")?;
                if let Some(text) = params.text {
                    self.host.set_file_text(&path, text);
                }
                self.schedule(&path, true);
            }
            DidCloseTextDocument::METHOD => {
                let params: DidCloseTextDocumentParams = parse(notification.params)?;
                let uri = params.text_document.uri;
                let path = url_to_path(&uri).ok_or("not a file: URL")?;
                self.versions.remove(&uri);
                self.host.close_file(&path);
                self.schedule_diagnostics(&path);
            }
            DidChangeWatchedFiles::METHOD => {
                let open: Vec<PathBuf> = self
                    .host
                    .snapshot()
                    .open_files()
                    .map(Path::to_path_buf)
                    .collect();
                if let Some(first) = open.first() {
                    self.schedule_diagnostics(&first.clone());
                }
            }
            "$/cancelRequest" => {
                let id = notification
                    .params
                    .get("id")
                    .and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok());
                if let Some(id) = id {
                    if self.in_flight.contains(&id) {
                        self.cancelled.insert(id);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Re-checks the policy of `path`, then those of the other open files (a policy that
    /// imports the edited file changes too; unchanged ones come from the cache).
    fn schedule_diagnostics(&mut self, path: &Path) {
        self.schedule(path, false);
    }

    fn schedule(&mut self, path: &Path, verify: bool) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let analysis = self.host.snapshot();
        let mut paths = vec![path.to_path_buf()];
        paths.extend(
            analysis
                .open_files()
                .map(Path::to_path_buf)
                .filter(|p| p != path),
        );
        let versions = self
            .versions
            .iter()
            .filter_map(|(uri, version)| Some((url_to_path(uri)?, *version)))
            .collect();
        let _ = self.diagnostics_sender.send(DiagnosticsJob {
            analysis,
            paths,
            versions,
            generation,
            verify: if verify {
                vec![path.to_path_buf()]
            } else {
                Vec::new()
            },
        });
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| format!("invalid parameters: {e}"))
}

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

/// Runs diagnostics jobs: the newest job wins, and a job stops publishing as soon as a
/// newer one is queued.
fn diagnostics_loop(
    receiver: Receiver<DiagnosticsJob>,
    sender: Sender<Message>,
    generation: Arc<AtomicU64>,
) {
    while let Ok(mut job) = receiver.recv() {
        // Coalesce: take the newest snapshot, keep every file asked for.
        while let Ok(newer) = receiver.try_recv() {
            let mut paths = newer.paths.clone();
            for path in job.paths {
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
            let mut verify = newer.verify.clone();
            for path in job.verify {
                if !verify.contains(&path) {
                    verify.push(path);
                }
            }
            job = DiagnosticsJob {
                paths,
                verify,
                ..newer
            };
        }
        let job_generation = job.generation;
        let current = generation.clone();
        job.analysis = job.analysis.clone().with_cancellation(Arc::new(move || {
            current.load(Ordering::SeqCst) != job_generation
        }));
        let mut done: BTreeSet<PathBuf> = BTreeSet::new();
        for path in &job.paths {
            if generation.load(Ordering::SeqCst) != job.generation {
                break; // a newer edit is queued: its job redoes this work
            }
            if done.contains(path) {
                continue;
            }
            let analysis = &job.analysis;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                merge(
                    analysis.policy_diagnostics(path),
                    analysis.cached_verification(path),
                )
            }));
            let Some(per_file) = caught(outcome, path, &sender) else {
                continue;
            };
            if generation.load(Ordering::SeqCst) != job.generation {
                break;
            }
            publish(analysis, &sender, &job.versions, &per_file);
            done.extend(per_file.keys().cloned());
            if job.verify.contains(path) {
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    merge(
                        analysis.policy_diagnostics(path),
                        analysis.verify_policy(path),
                    )
                }));
                let Some(per_file) = caught(outcome, path, &sender) else {
                    continue;
                };
                if generation.load(Ordering::SeqCst) != job.generation {
                    break;
                }
                publish(analysis, &sender, &job.versions, &per_file);
            }
            done.insert(path.clone());
        }
    }
}

type PerFile = BTreeMap<PathBuf, Vec<egress_ide::FileDiagnostic>>;

fn merge(mut checked: PerFile, verified: PerFile) -> PerFile {
    for (file, diagnostics) in verified {
        checked.entry(file).or_default().extend(diagnostics);
    }
    checked
}

/// The value of a diagnostics computation, or `None` after logging its panic.
fn caught(
    outcome: Result<PerFile, Box<dyn std::any::Any + Send>>,
    path: &Path,
    sender: &Sender<Message>,
) -> Option<PerFile> {
    match outcome {
        Ok(per_file) => Some(per_file),
        Err(panic) => {
            let message = format!(
                "internal error while checking {}: {}; the server keeps running",
                path.display(),
                panic_message(&panic)
            );
            eprintln!("egc lsp: {message}");
            let _ = sender.send(Message::Notification(Notification::new(
                LogMessage::METHOD.to_string(),
                LogMessageParams {
                    typ: MessageType::ERROR,
                    message,
                },
            )));
            None
        }
    }
}

fn publish(
    analysis: &Analysis,
    sender: &Sender<Message>,
    versions: &BTreeMap<PathBuf, i32>,
    per_file: &PerFile,
) {
    for (file, diagnostics) in per_file {
        let Some(uri) = path_to_url(file) else {
            continue;
        };
        let params = PublishDiagnosticsParams {
            uri,
            diagnostics: handlers::to_lsp_diagnostics(analysis, file, diagnostics),
            version: versions.get(file).copied(),
        };
        let _ = sender.send(Message::Notification(Notification::new(
            PublishDiagnostics::METHOD.to_string(),
            params,
        )));
    }
}
