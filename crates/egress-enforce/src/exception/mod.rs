//! Run-time exceptions: ed25519-signed tokens, their verification against the policy,
//! installation into an agent's eBPF maps, expiry, and the audit log.
//!
//! A token is `base64url(claims JSON) "." base64url(ed25519 signature over those bytes)`.
//! Its claims name the exception, the agents, an optional single destination, the
//! issue and expiry instants and the use limit. Only the policy decides which key may
//! sign for an exception (its `approver` authority's `key`): the token carries no key.
//!
//! `apply` installs the token's destination as rules gated by an exception slot. The
//! program itself refuses the slot's rules from the expiry instant on (it compares
//! `CLOCK_BOOTTIME`) and counts every connection through the slot, refusing those past
//! `max_uses`; user space removes the rules at expiry and records the count. So an
//! exception closes on time even if the applying process is killed.
//!
//! Every grant, use (installation), refusal, expiry and revocation appends one JSON line
//! to the audit log, opened with `O_APPEND` and `fsync`ed before the command returns.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use egress_check::{CheckedPolicy, EndpointKind, Exception, Protocol};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::layout::ExceptionSlot;
use crate::loader;
use crate::state::{self, ActiveException, ExceptionRule, NameException};

mod audit;
mod expiry;
mod install;
mod token;

pub use audit::*;
pub use expiry::*;
pub use install::*;
pub use token::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExceptionError {
    /// The token or request is refused; the message says why.
    Refused(String),
    /// Something outside the token went wrong (I/O, kernel).
    Failed(String),
}

impl std::fmt::Display for ExceptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExceptionError::Refused(m) => write!(f, "refused: {m}"),
            ExceptionError::Failed(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ExceptionError {}

pub(crate) fn refused(message: impl Into<String>) -> ExceptionError {
    ExceptionError::Refused(message.into())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_durations_parse() {
        assert_eq!(parse_target("127.0.0.9:443").unwrap().port, 443);
        assert_eq!(
            parse_target("[::1]:53/udp").unwrap().protocol,
            Some(Protocol::Udp)
        );
        assert_eq!(
            parse_target("Api.Example.COM.:8443").unwrap().host,
            "api.example.com"
        );
        assert!(parse_target("api.example.com").is_err());
        assert!(parse_target("127.0.0.1:0").is_err());
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("2s"), Some(2));
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("10"), Some(10));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("5w"), None);
    }

    #[test]
    fn keys_round_trip() {
        let (secret, public) = keygen().unwrap();
        let key = parse_secret_key(&secret).unwrap();
        assert_eq!(public_key_text(&key.verifying_key()), public);
        assert!(parse_secret_key("ed25519-secret:AAAA").is_err());
    }
}
