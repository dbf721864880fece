//! The append-only audit log: one JSON line per grant, use, refusal, expiry and
//! revocation.

use super::*;

/// The append-only audit log.
#[derive(Clone, Debug)]
pub struct AuditLog {
    pub path: PathBuf,
}

impl AuditLog {
    pub fn default_path() -> PathBuf {
        PathBuf::from("/var/log/egc/exceptions.jsonl")
    }

    /// Appends one JSON line and fsyncs it.
    pub fn append(&self, record: &Value) -> Result<(), ExceptionError> {
        let fail = |e: std::io::Error| {
            ExceptionError::Failed(format!("audit log {}: {e}", self.path.display()))
        };
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() {
                fs::create_dir_all(dir).map_err(fail)?;
            }
        }
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(fail)?;
        let mut line = serde_json::to_string(record)
            .map_err(|e| ExceptionError::Failed(format!("audit record: {e}")))?;
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)
    }

    /// Every record (for tests and `egc exception log`).
    pub fn read(&self) -> Vec<Value> {
        fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

pub(crate) fn record(event: &str, claims: Option<&Claims>, extra: Value) -> Value {
    let mut out = BTreeMap::new();
    out.insert("time".to_string(), json!(state::now_unix()));
    out.insert("event".to_string(), json!(event));
    if let Some(c) = claims {
        out.insert("token_id".to_string(), json!(c.id));
        out.insert("exception".to_string(), json!(c.exception));
        out.insert("agents".to_string(), json!(c.agents));
        out.insert("approver".to_string(), json!(c.approver));
        out.insert(
            "destination".to_string(),
            json!(c.to.as_ref().map(|t| t.to_string())),
        );
        out.insert("issued_at".to_string(), json!(c.issued_at));
        out.insert("expires_at".to_string(), json!(c.expires_at));
        out.insert("max_uses".to_string(), json!(c.max_uses));
    }
    if let Value::Object(map) = extra {
        for (k, v) in map {
            out.insert(k, v);
        }
    }
    json!(out)
}

/// Audits a grant.
pub fn audit_grant(
    audit: &AuditLog,
    claims: &Claims,
    policy: &CheckedPolicy,
) -> Result<(), ExceptionError> {
    let exception = find_exception(policy, &claims.exception)?;
    audit.append(&record(
        "grant",
        Some(claims),
        json!({ "legal_basis": exception.legal_basis }),
    ))
}

/// Audits a refused grant.
pub fn audit_refused_grant(
    audit: &AuditLog,
    exception: &str,
    reason: &str,
) -> Result<(), ExceptionError> {
    audit.append(&record(
        "refuse",
        None,
        json!({ "exception": exception, "reason": reason, "stage": "grant" }),
    ))
}
