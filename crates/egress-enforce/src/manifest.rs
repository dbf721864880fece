//! The signed intent manifest: what was reviewed, bound to what is enforced.
//!
//! `egc build --sign KEY` writes `intent.json` beside the artifacts: canonical JSON
//! (sorted keys, no insignificant whitespace) of
//!
//! - `policy`: the SHA-256 of every source file of the policy (paths relative to the
//!   policy directory; the standard library as `std/NAME.egress`);
//! - `agents`: per agent, the SHA-256 of its resolved connection set (the eBPF map
//!   contents `egc build --target ebpf` writes, host names kept closed), and its image
//!   digest where it declares one;
//! - `artifacts`: the SHA-256 of every file the build wrote;
//! - `sbom`: the SHA-256 of the SBOM the build was given, if any;
//!
//! and `intent.json.sig`, the base64 ed25519 signature of those exact bytes, with the
//! same key files as exception tokens (`egc exception keygen`).
//! `egc manifest verify DIR --key PUB` checks a build directory against it, and
//! `egc enforce apply` / `egc run` with `--manifest DIR --key PUB` refuse a policy whose
//! sources or an agent whose connection set differ from what was signed.
//!
//! Everything here is pure: the caller reads and writes the files.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The public key type manifests are checked with.
pub use ed25519_dalek::VerifyingKey as PublicKey;

/// The manifest's file name, and its signature's.
pub const INTENT_FILE: &str = "intent.json";
pub const SIGNATURE_FILE: &str = "intent.json.sig";
pub const FORMAT: &str = "egc-intent/1";

/// `sha256:<64 hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in hash {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentIntent {
    /// Digest of the agent's resolved connection set.
    pub connections: String,
    /// The image digest the agent declares (`image "sha256:..."`), if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub image: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub format: String,
    /// Source path → digest.
    pub policy: BTreeMap<String, String>,
    /// Qualified agent name → what it may reach.
    pub agents: BTreeMap<String, AgentIntent>,
    /// Artifact path (relative to the build directory) → digest.
    pub artifacts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sbom: Option<String>,
}

impl Intent {
    /// The canonical text: keys sorted (every map is a `BTreeMap` and struct fields are
    /// declared in sorted order), no whitespace, a final newline.
    pub fn to_canonical_json(&self) -> String {
        // serde_json writes struct fields in declaration order, which is sorted here.
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut text = serde_json::to_string(&sort_keys(value)).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Recursively sorts object keys (serde_json's `Map` keeps insertion order only with
/// the `preserve_order` feature; this makes the order explicit either way).
fn sort_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: BTreeMap<String, serde_json::Value> =
                map.into_iter().map(|(k, v)| (k, sort_keys(v))).collect();
            serde_json::Value::Object(sorted.into_iter().collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sort_keys).collect())
        }
        other => other,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    /// The manifest or its signature cannot be read or parsed.
    Malformed(String),
    /// The signature is not by the given key.
    BadSignature,
    /// What is here differs from what was signed.
    Mismatch(Vec<String>),
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManifestError::Malformed(m) => write!(f, "manifest: {m}"),
            ManifestError::BadSignature => write!(
                f,
                "manifest: the signature of {INTENT_FILE} is not by the given key (tampered or signed by another key)"
            ),
            ManifestError::Mismatch(lines) => {
                write!(f, "differs from the signed manifest: {}", lines.join("; "))
            }
        }
    }
}

impl std::error::Error for ManifestError {}

/// Signs the manifest text: the base64 signature, with a final newline.
pub fn sign(text: &str, key: &SigningKey) -> String {
    let signature = key.sign(text.as_bytes());
    format!("{}\n", STANDARD.encode(signature.to_bytes()))
}

/// Reads a public key: `ed25519:<base64 of 32 bytes>` (what `egc exception keygen`
/// prints and a policy's `authority` holds).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, ManifestError> {
    let body = text
        .trim()
        .strip_prefix("ed25519:")
        .ok_or_else(|| ManifestError::Malformed("the key does not start with `ed25519:`".into()))?;
    let bytes = STANDARD
        .decode(body.trim())
        .map_err(|_| ManifestError::Malformed("the key is not base64".into()))?;
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| ManifestError::Malformed("the key is not 32 bytes".into()))?;
    VerifyingKey::from_bytes(&array)
        .map_err(|_| ManifestError::Malformed("the key is not a valid ed25519 key".into()))
}

/// Checks the signature and parses the manifest.
pub fn open(text: &str, signature: &str, key: &VerifyingKey) -> Result<Intent, ManifestError> {
    let bytes = STANDARD
        .decode(signature.trim())
        .map_err(|_| ManifestError::Malformed(format!("{SIGNATURE_FILE} is not base64")))?;
    let array: [u8; 64] = bytes
        .try_into()
        .map_err(|_| ManifestError::Malformed(format!("{SIGNATURE_FILE} is not 64 bytes")))?;
    key.verify(text.as_bytes(), &Signature::from_bytes(&array))
        .map_err(|_| ManifestError::BadSignature)?;
    let intent: Intent = serde_json::from_str(text)
        .map_err(|e| ManifestError::Malformed(format!("{INTENT_FILE}: {e}")))?;
    if intent.format != FORMAT {
        return Err(ManifestError::Malformed(format!(
            "unknown manifest format `{}` (this egc reads `{FORMAT}`)",
            intent.format
        )));
    }
    Ok(intent)
}

/// Compares two path → digest maps; each difference is one line.
pub fn compare(
    what: &str,
    signed: &BTreeMap<String, String>,
    here: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, digest) in signed {
        match here.get(path) {
            None => out.push(format!("{what} `{path}` is missing")),
            Some(d) if d != digest => out.push(format!("{what} `{path}` changed")),
            Some(_) => {}
        }
    }
    for path in here.keys() {
        if !signed.contains_key(path) {
            out.push(format!("{what} `{path}` was not signed"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn sample() -> Intent {
        let mut intent = Intent {
            format: FORMAT.into(),
            ..Intent::default()
        };
        intent
            .policy
            .insert("main.egress".into(), digest(b"agent a {}"));
        intent.agents.insert(
            "main.a".into(),
            AgentIntent {
                connections: digest(b"{}"),
                image: None,
            },
        );
        intent.artifacts.insert("k8s/a.yaml".into(), digest(b"x"));
        intent
    }

    #[test]
    fn canonical_text_is_sorted_and_compact() {
        let text = sample().to_canonical_json();
        assert!(!text.trim_end().contains(' ') && !text.trim_end().contains('\n'));
        let agents = text.find("\"agents\"").unwrap();
        let artifacts = text.find("\"artifacts\"").unwrap();
        let format = text.find("\"format\"").unwrap();
        let policy = text.find("\"policy\"").unwrap();
        assert!(agents < artifacts && artifacts < format && format < policy);
        assert_eq!(text, sample().to_canonical_json());
    }

    #[test]
    fn a_signature_binds_every_byte() {
        let (secret, public) = crate::exception::keygen().unwrap();
        let key = crate::exception::parse_secret_key(&secret).unwrap();
        let public = parse_public_key(&public).unwrap();
        let text = sample().to_canonical_json();
        let signature = sign(&text, &key);
        assert_eq!(open(&text, &signature, &public).unwrap(), sample());
        let tampered = text.replacen("main.egress", "main.egresz", 1);
        assert_eq!(
            open(&tampered, &signature, &public).unwrap_err(),
            ManifestError::BadSignature
        );
        let (_, other) = crate::exception::keygen().unwrap();
        let other = parse_public_key(&other).unwrap();
        assert_eq!(
            open(&text, &signature, &other).unwrap_err(),
            ManifestError::BadSignature
        );
    }

    #[test]
    fn comparison_names_every_difference() {
        let mut signed = BTreeMap::new();
        signed.insert("a".to_string(), "1".to_string());
        signed.insert("b".to_string(), "2".to_string());
        let mut here = BTreeMap::new();
        here.insert("a".to_string(), "1".to_string());
        here.insert("b".to_string(), "3".to_string());
        here.insert("c".to_string(), "4".to_string());
        assert_eq!(
            compare("file", &signed, &here),
            vec!["file `b` changed", "file `c` was not signed"]
        );
    }
}
