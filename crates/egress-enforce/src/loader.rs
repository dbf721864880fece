//! Loading, attaching, pinning, updating and detaching the eBPF program (aya).
//!
//! One *attachment* is one loaded copy of the program with its own maps, attached to one
//! cgroup for one agent. Everything an attachment needs lives pinned under
//! `/sys/fs/bpf/egc/<attachment>/`:
//!
//! | pin | object |
//! | --- | --- |
//! | `rules` | LPM trie of allowed prefixes → port rules |
//! | `counters` | per-CPU array of allowed/denied counters |
//! | `exceptions` | array of exception slots (expiry, use limit, uses) |
//! | `config` | array with the agent id |
//! | `events` | ring buffer of denials |
//! | `link_connect4`, `link_connect6`, `link_sendmsg4`, `link_sendmsg6` | bpf links to the cgroup |
//!
//! The pinned links keep the programs attached after the loading process exits, so
//! `egc enforce apply`, `status` and `detach` work across processes. Removing a link pin
//! after `BPF_LINK_DETACH` detaches the program at once.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray, RingBuf};
use aya::programs::{CgroupSkb, CgroupSock, CgroupSockAddr, CgroupSockopt, SockOps};
use aya::{Ebpf, EbpfLoader};
use serde::Serialize;

use crate::layout::{
    counter, hook, reason, Config, DenyEvent, ExceptionSlot, LearnedKey, LpmAddr, Origin, RuleSet,
    SockState, RULES_MAX_ENTRIES,
};
use crate::rules::{pack, protocol_from_number, unmapped_addr, TrieContents};
use crate::sys;

/// The compiled eBPF object (built from `bpf/egress.bpf.c` by `build.rs`).
pub static BPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/egress.bpf.o"));

/// The bpffs mount point the kernel documents.
pub const BPFFS: &str = "/sys/fs/bpf";

/// Where attachments are pinned: `/sys/fs/bpf/egc`.
pub fn pin_root() -> PathBuf {
    Path::new(BPFFS).join("egc")
}

/// The kind of eBPF program behind a hook (aya loads each kind with its own type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramKind {
    SockAddr,
    Sock,
    Sockopt,
    Skb,
    SockOps,
}

/// The hooks, the program that serves each, the kernel attach type and the program kind.
///
/// - `connect4`/`connect6`/`sendmsg4`/`sendmsg6`: the destination of every connection and
///   unconnected datagram is judged against the rules.
/// - `sock_create`: inet sockets other than TCP and UDP (raw, ping, SCTP, MPTCP) are
///   refused, since they never pass the connect hooks.
/// - `setsockopt`: IPv6 routing headers and IPv4 source routes are refused.
/// - `egress`: every packet is checked again: no IP options or IPv6 routing headers (also
///   when passed per packet), and no packet of a connection whose exception has ended.
/// - `recvmsg4`/`recvmsg6`, `getpeername4`/`getpeername6`: answers from the DNS gateway
///   carry the address the query was sent to, and a connection to the gateway or the
///   name gate shows its original peer (names enforced at run time).
/// - `sockops`: records where a connection redirected to the name gate was going, by its
///   local port, when its SYN leaves.
pub const HOOKS: &[(&str, &str, u32, ProgramKind)] = &[
    (
        "connect4",
        "egc_connect4",
        sys::BPF_CGROUP_INET4_CONNECT,
        ProgramKind::SockAddr,
    ),
    (
        "connect6",
        "egc_connect6",
        sys::BPF_CGROUP_INET6_CONNECT,
        ProgramKind::SockAddr,
    ),
    (
        "sendmsg4",
        "egc_sendmsg4",
        sys::BPF_CGROUP_UDP4_SENDMSG,
        ProgramKind::SockAddr,
    ),
    (
        "sendmsg6",
        "egc_sendmsg6",
        sys::BPF_CGROUP_UDP6_SENDMSG,
        ProgramKind::SockAddr,
    ),
    (
        "sock_create",
        "egc_sock_create",
        sys::BPF_CGROUP_INET_SOCK_CREATE,
        ProgramKind::Sock,
    ),
    (
        "setsockopt",
        "egc_setsockopt",
        sys::BPF_CGROUP_SETSOCKOPT,
        ProgramKind::Sockopt,
    ),
    (
        "egress",
        "egc_egress",
        sys::BPF_CGROUP_INET_EGRESS,
        ProgramKind::Skb,
    ),
    (
        "recvmsg4",
        "egc_recvmsg4",
        sys::BPF_CGROUP_UDP4_RECVMSG,
        ProgramKind::SockAddr,
    ),
    (
        "recvmsg6",
        "egc_recvmsg6",
        sys::BPF_CGROUP_UDP6_RECVMSG,
        ProgramKind::SockAddr,
    ),
    (
        "getpeername4",
        "egc_getpeername4",
        sys::BPF_CGROUP_INET4_GETPEERNAME,
        ProgramKind::SockAddr,
    ),
    (
        "getpeername6",
        "egc_getpeername6",
        sys::BPF_CGROUP_INET6_GETPEERNAME,
        ProgramKind::SockAddr,
    ),
    (
        "sockops",
        "egc_sockops",
        sys::BPF_CGROUP_SOCK_OPS,
        ProgramKind::SockOps,
    ),
];

const MAPS: &[&str] = &[
    "rules",
    "counters",
    "exceptions",
    "config",
    "events",
    "sockets",
    "learned",
    "origins",
    "gate_clients",
];

#[derive(Debug)]
pub enum EnforceError {
    Io(String, io::Error),
    Bpf(String),
    AlreadyAttached(String),
    NotAttached(String),
    InvalidName(String),
}

impl std::fmt::Display for EnforceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnforceError::Io(what, e) => write!(f, "{what}: {e}"),
            EnforceError::Bpf(what) => write!(f, "{what}"),
            EnforceError::AlreadyAttached(name) => write!(
                f,
                "attachment `{name}` already exists under {}; detach it first",
                pin_root().display()
            ),
            EnforceError::NotAttached(name) => write!(f, "no attachment named `{name}`"),
            EnforceError::InvalidName(name) => write!(
                f,
                "invalid attachment name {name:?}: use letters, digits, `_` and `-`"
            ),
        }
    }
}

impl std::error::Error for EnforceError {}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> EnforceError {
    let what = what.into();
    move |e| EnforceError::Io(what, e)
}

fn bpf_err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> EnforceError + '_ {
    move |e| EnforceError::Bpf(format!("{what}: {e}"))
}

/// Checks an attachment name (it becomes a directory name on bpffs, which refuses
/// names containing `.`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// Mounts bpffs at `/sys/fs/bpf` if it is not mounted, and creates `/sys/fs/bpf/egc`.
pub fn ensure_bpffs() -> Result<(), EnforceError> {
    let bpffs = Path::new(BPFFS);
    if !sys::is_bpffs(bpffs).map_err(io_err(format!("statfs {BPFFS}")))? {
        sys::mount_bpffs(bpffs).map_err(io_err(format!("mount bpffs at {BPFFS}")))?;
    }
    fs::create_dir_all(pin_root()).map_err(io_err(format!("create {}", pin_root().display())))
}

/// The slot of sockets whose exception has ended (never a live slot).
pub const ENDED_SLOT: u16 = 0xffff;

/// `config.flags`: the agent holds an approved `CAP_NET_RAW`, so raw and ping sockets
/// may be created (they bypass the connect hooks; the verifier requires the approval).
pub const FLAG_ALLOW_RAW: u32 = 1;
/// `config.flags`: egc's DNS gateway and name gate serve this attachment (DNS goes to
/// the gateway, connections to learned addresses to the gate).
pub const FLAG_NAMES: u32 = 2;
/// `config.flags`: audit mode: would-be denials are reported and let through.
pub const FLAG_AUDIT: u32 = 4;

/// What to attach.
#[derive(Clone, Debug)]
pub struct AttachConfig {
    /// The attachment name (directory under `/sys/fs/bpf/egc`).
    pub name: String,
    /// Agent id written to the `config` map and to every denial event.
    pub agent_id: u32,
    /// The cgroup v2 directory to attach to.
    pub cgroup: PathBuf,
    /// `FLAG_*` bits for the program's `config` map.
    pub flags: u32,
}

/// An open attachment: its maps, opened from their pins.
pub struct Attachment {
    pub name: String,
    pub dir: PathBuf,
    rules: LpmTrie<MapData, LpmAddr, RuleSet>,
    counters: PerCpuArray<MapData, u64>,
    exceptions: Array<MapData, ExceptionSlot>,
    /// Sockets connected through exceptions (absent in attachments made by older egc).
    sockets: Option<HashMap<MapData, u64, SockState>>,
    config: Array<MapData, Config>,
    /// Addresses learned by the DNS gateway (absent in attachments made by older egc).
    learned: Option<HashMap<MapData, LearnedKey, RuleSet>>,
    /// Original destinations of connections to the name gate, by local port.
    gate_clients: Option<HashMap<MapData, u32, Origin>>,
}

/// Loads the program, fills its maps with `contents`, attaches it to the cgroup at all
/// four hooks and pins everything. Fails (and leaves nothing behind) if any step fails.
pub fn attach(config: &AttachConfig, contents: &TrieContents) -> Result<Attachment, EnforceError> {
    if !valid_name(&config.name) {
        return Err(EnforceError::InvalidName(config.name.clone()));
    }
    ensure_bpffs()?;
    let dir = pin_root().join(&config.name);
    if dir.exists() {
        return Err(EnforceError::AlreadyAttached(config.name.clone()));
    }
    fs::create_dir(&dir).map_err(io_err(format!("create {}", dir.display())))?;
    match attach_into(&dir, config, contents) {
        Ok(()) => open(&config.name),
        Err(error) => {
            let _ = remove_pins(&dir);
            Err(error)
        }
    }
}

fn attach_into(
    dir: &Path,
    config: &AttachConfig,
    contents: &TrieContents,
) -> Result<(), EnforceError> {
    let cgroup = fs::File::open(&config.cgroup)
        .map_err(io_err(format!("open cgroup {}", config.cgroup.display())))?;
    let mut ebpf: Ebpf = EbpfLoader::new()
        .set_max_entries("rules", RULES_MAX_ENTRIES)
        .load(BPF_OBJECT)
        .map_err(bpf_err("load the eBPF object"))?;
    {
        let map = ebpf
            .map_mut("config")
            .ok_or_else(|| EnforceError::Bpf("map `config` missing".into()))?;
        let mut array: Array<&mut MapData, Config> =
            Array::try_from(map).map_err(bpf_err("map `config`"))?;
        let value = Config {
            agent_id: config.agent_id,
            flags: config.flags,
            dns_port: 0,
            gate_port: 0,
            pad: 0,
        };
        array.set(0, value, 0).map_err(bpf_err("write `config`"))?;
    }
    {
        let map = ebpf
            .map_mut("rules")
            .ok_or_else(|| EnforceError::Bpf("map `rules` missing".into()))?;
        let mut trie: LpmTrie<&mut MapData, LpmAddr, RuleSet> =
            LpmTrie::try_from(map).map_err(bpf_err("map `rules`"))?;
        for (prefix, set) in pack(contents) {
            let key = Key::new(u32::from(prefix.prefix_len), LpmAddr { addr: prefix.addr });
            trie.insert(&key, set, 0)
                .map_err(bpf_err("insert into `rules`"))?;
        }
    }
    for name in MAPS {
        let map = ebpf
            .map(name)
            .ok_or_else(|| EnforceError::Bpf(format!("map `{name}` missing")))?;
        map.pin(dir.join(name))
            .map_err(|e| EnforceError::Bpf(format!("pin map `{name}`: {e}")))?;
    }
    for (hook_name, program, attach_type, kind) in HOOKS {
        let prog = ebpf
            .program_mut(program)
            .ok_or_else(|| EnforceError::Bpf(format!("program `{program}` missing")))?;
        let load_error = |e: aya::programs::ProgramError| {
            EnforceError::Bpf(format!("load `{program}`: {}", verifier_log(&e)))
        };
        let prog_fd = match kind {
            ProgramKind::SockAddr => {
                let prog: &mut CgroupSockAddr = prog.try_into().map_err(bpf_err("program type"))?;
                prog.load().map_err(load_error)?;
                prog.fd().map_err(bpf_err("program fd"))?.try_clone()
            }
            ProgramKind::Sock => {
                let prog: &mut CgroupSock = prog.try_into().map_err(bpf_err("program type"))?;
                prog.load().map_err(load_error)?;
                prog.fd().map_err(bpf_err("program fd"))?.try_clone()
            }
            ProgramKind::Sockopt => {
                let prog: &mut CgroupSockopt = prog.try_into().map_err(bpf_err("program type"))?;
                prog.load().map_err(load_error)?;
                prog.fd().map_err(bpf_err("program fd"))?.try_clone()
            }
            ProgramKind::Skb => {
                let prog: &mut CgroupSkb = prog.try_into().map_err(bpf_err("program type"))?;
                prog.load().map_err(load_error)?;
                prog.fd().map_err(bpf_err("program fd"))?.try_clone()
            }
            ProgramKind::SockOps => {
                let prog: &mut SockOps = prog.try_into().map_err(bpf_err("program type"))?;
                prog.load().map_err(load_error)?;
                prog.fd().map_err(bpf_err("program fd"))?.try_clone()
            }
        }
        .map_err(bpf_err("program fd"))?;
        let link = sys::link_create_cgroup(prog_fd.as_fd(), cgroup.as_fd(), *attach_type).map_err(
            io_err(format!("attach `{program}` to {}", config.cgroup.display())),
        )?;
        sys::obj_pin(link.as_fd(), &dir.join(format!("link_{hook_name}")))
            .map_err(io_err(format!("pin link {hook_name}")))?;
    }
    Ok(())
}

fn verifier_log(error: &aya::programs::ProgramError) -> String {
    format!("{error:?}")
}

/// Opens an existing attachment from its pins.
pub fn open(name: &str) -> Result<Attachment, EnforceError> {
    if !valid_name(name) {
        return Err(EnforceError::InvalidName(name.to_string()));
    }
    let dir = pin_root().join(name);
    if !dir.join("rules").exists() {
        return Err(EnforceError::NotAttached(name.to_string()));
    }
    let pinned = |map: &str| -> Result<MapData, EnforceError> {
        MapData::from_pin(dir.join(map))
            .map_err(|e| EnforceError::Bpf(format!("open pinned map `{map}`: {e}")))
    };
    let rules =
        LpmTrie::try_from(Map::LpmTrie(pinned("rules")?)).map_err(bpf_err("map `rules`"))?;
    let counters = PerCpuArray::try_from(Map::PerCpuArray(pinned("counters")?))
        .map_err(bpf_err("map `counters`"))?;
    let exceptions =
        Array::try_from(Map::Array(pinned("exceptions")?)).map_err(bpf_err("map `exceptions`"))?;
    let sockets = match pinned("sockets") {
        Ok(data) => Some(HashMap::try_from(Map::HashMap(data)).map_err(bpf_err("map `sockets`"))?),
        Err(_) => None,
    };
    let config = Array::try_from(Map::Array(pinned("config")?)).map_err(bpf_err("map `config`"))?;
    let learned = match pinned("learned") {
        Ok(data) => Some(HashMap::try_from(Map::HashMap(data)).map_err(bpf_err("map `learned`"))?),
        Err(_) => None,
    };
    let gate_clients = match pinned("gate_clients") {
        Ok(data) => {
            Some(HashMap::try_from(Map::LruHashMap(data)).map_err(bpf_err("map `gate_clients`"))?)
        }
        Err(_) => None,
    };
    Ok(Attachment {
        name: name.to_string(),
        dir,
        rules,
        counters,
        exceptions,
        sockets,
        config,
        learned,
        gate_clients,
    })
}

/// Names of every attachment pinned under `/sys/fs/bpf/egc`, sorted.
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(pin_root())
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn remove_pins(dir: &Path) -> io::Result<()> {
    // Detach links explicitly first: someone may hold a descriptor to one.
    for (hook_name, _, _, _) in HOOKS {
        let link = dir.join(format!("link_{hook_name}"));
        if let Ok(fd) = sys::obj_get(&link) {
            let _ = sys::link_detach(fd.as_fd());
        }
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            fs::remove_file(entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Detaches an attachment's programs and removes its pins.
pub fn detach(name: &str) -> Result<(), EnforceError> {
    if !valid_name(name) {
        return Err(EnforceError::InvalidName(name.to_string()));
    }
    let dir = pin_root().join(name);
    if !dir.exists() {
        return Err(EnforceError::NotAttached(name.to_string()));
    }
    remove_pins(&dir).map_err(io_err(format!("remove {}", dir.display())))
}

/// The `gate_clients` key: the connection's family (`AF_INET` 2, `AF_INET6` 10) over the
/// client's local port.
fn gate_key(port: u16, v4: bool) -> u32 {
    let family: u32 = if v4 { 2 } else { 10 };
    (family << 16) | u32::from(port)
}

/// A link as the kernel reports it.
#[derive(Clone, Debug, Serialize)]
pub struct LinkStatus {
    pub hook: String,
    pub link_id: u32,
    pub prog_id: u32,
    pub cgroup_id: u64,
    /// False when the link exists but no longer holds a cgroup (detached or cgroup removed).
    pub attached: bool,
}

impl Attachment {
    /// Replaces the trie contents with `contents`: inserts and updates first, then
    /// removes entries no longer wanted.
    pub fn sync_rules(&mut self, contents: &TrieContents) -> Result<(), EnforceError> {
        let wanted: BTreeMap<(u32, [u8; 16]), RuleSet> = pack(contents)
            .into_iter()
            .map(|(p, set)| ((u32::from(p.prefix_len), p.addr), set))
            .collect();
        let mut present: Vec<(u32, [u8; 16])> = Vec::new();
        for key in self.rules.keys() {
            let key = key.map_err(bpf_err("iterate `rules`"))?;
            present.push((key.prefix_len(), key.data().addr));
        }
        for ((len, addr), set) in &wanted {
            let key = Key::new(*len, LpmAddr { addr: *addr });
            let current = self.rules.get(&key, 0).ok();
            if current.as_ref() != Some(set) {
                self.rules
                    .insert(&key, *set, 0)
                    .map_err(bpf_err("update `rules`"))?;
            }
        }
        for (len, addr) in present {
            if !wanted.contains_key(&(len, addr)) {
                let key = Key::new(len, LpmAddr { addr });
                self.rules
                    .remove(&key)
                    .map_err(bpf_err("remove from `rules`"))?;
            }
        }
        Ok(())
    }

    /// Number of entries in the rules trie.
    pub fn rule_entries(&self) -> usize {
        self.rules.keys().filter(|k| k.is_ok()).count()
    }

    /// Counters summed over CPUs, by name.
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for (index, name) in counter::NAMES {
            let total = self
                .counters
                .get(index, 0)
                .map(|values| values.iter().sum())
                .unwrap_or(0);
            out.insert(*name, total);
        }
        out
    }

    pub fn exception_slot(&self, slot: u32) -> Result<ExceptionSlot, EnforceError> {
        self.exceptions
            .get(&slot, 0)
            .map_err(bpf_err("read `exceptions`"))
    }

    pub fn set_exception_slot(
        &mut self,
        slot: u32,
        value: ExceptionSlot,
    ) -> Result<(), EnforceError> {
        self.exceptions
            .set(slot, value, 0)
            .map_err(bpf_err("write `exceptions`"))
    }

    /// Marks the sockets connected through exception slot `slot` as ended (when the
    /// slot is freed): the egress gate keeps dropping their packets, and a later
    /// exception in the same slot does not revive them. Returns how many there were.
    pub fn forget_exception_sockets(&mut self, slot: u16) -> Result<usize, EnforceError> {
        let Some(sockets) = self.sockets.as_mut() else {
            return Ok(0);
        };
        let mut ended = Vec::new();
        for item in sockets.iter() {
            let (cookie, state) = item.map_err(bpf_err("iterate `sockets`"))?;
            if state.exception_slot == slot {
                ended.push((cookie, state));
            }
        }
        for (cookie, mut state) in ended.iter().copied() {
            state.exception_slot = ENDED_SLOT;
            sockets
                .insert(cookie, state, 0)
                .map_err(bpf_err("update `sockets`"))?;
        }
        Ok(ended.len())
    }

    /// The program's configuration (agent id, flags, gateway ports).
    pub fn config(&self) -> Result<Config, EnforceError> {
        self.config.get(&0, 0).map_err(bpf_err("read `config`"))
    }

    /// Turns run-time name enforcement on (DNS to `dns_port`, learned addresses to
    /// `gate_port`, both at 127.0.0.1 and ::1) or off (ports 0), and audit mode.
    pub fn set_names(
        &mut self,
        dns_port: u16,
        gate_port: u16,
        audit: bool,
    ) -> Result<(), EnforceError> {
        let mut value = self.config()?;
        value.dns_port = dns_port;
        value.gate_port = gate_port;
        if dns_port != 0 && gate_port != 0 {
            value.flags |= FLAG_NAMES;
        } else {
            value.flags &= !FLAG_NAMES;
        }
        if audit {
            value.flags |= FLAG_AUDIT;
        } else {
            value.flags &= !FLAG_AUDIT;
        }
        self.config
            .set(0, value, 0)
            .map_err(bpf_err("write `config`"))
    }

    /// Sets what a learned address may be reached on through the gate; an empty rule
    /// list removes it.
    pub fn set_learned(
        &mut self,
        addr: [u8; 16],
        rules: &[crate::layout::PortRule],
    ) -> Result<(), EnforceError> {
        let Some(learned) = self.learned.as_mut() else {
            return Err(EnforceError::Bpf(
                "this attachment has no `learned` map (made by an older egc): reattach it".into(),
            ));
        };
        let key = LearnedKey { addr };
        if rules.is_empty() {
            return match learned.remove(&key) {
                Ok(()) => Ok(()),
                Err(aya::maps::MapError::KeyNotFound) => Ok(()),
                Err(e) => Err(EnforceError::Bpf(format!("remove from `learned`: {e}"))),
            };
        }
        let set = RuleSet::from_rules(rules).ok_or_else(|| {
            EnforceError::Bpf(format!(
                "more than {} port rules for one learned address",
                crate::layout::MAX_RULES
            ))
        })?;
        learned
            .insert(key, set, 0)
            .map_err(bpf_err("insert into `learned`"))
    }

    /// The addresses the DNS gateway has learned, with their rules.
    pub fn learned(&self) -> Vec<([u8; 16], RuleSet)> {
        let Some(learned) = self.learned.as_ref() else {
            return Vec::new();
        };
        let mut out: Vec<([u8; 16], RuleSet)> = learned
            .iter()
            .filter_map(|item| item.ok())
            .map(|(k, v)| (k.addr, v))
            .collect();
        out.sort_by_key(|a| a.0);
        out
    }

    /// Where the connection from local port `port` (of an IPv4 connection when `v4`) to
    /// the name gate was going.
    pub fn gate_origin(&self, port: u16, v4: bool) -> Option<Origin> {
        self.gate_clients.as_ref()?.get(&gate_key(port, v4), 0).ok()
    }

    /// [`Attachment::gate_origin`], removing the record: each connection is looked up once,
    /// so a later connection from the same port never finds a stale destination.
    pub fn take_gate_origin(&mut self, port: u16, v4: bool) -> Option<Origin> {
        let key = gate_key(port, v4);
        let map = self.gate_clients.as_mut()?;
        let origin = map.get(&key, 0).ok()?;
        let _ = map.remove(&key);
        Some(origin)
    }

    /// Opens the pinned links; the program stays attached while they are held.
    pub fn hold_links(&self) -> Result<Vec<std::os::fd::OwnedFd>, EnforceError> {
        HOOKS
            .iter()
            .map(|(hook_name, _, _, _)| {
                sys::obj_get(&self.dir.join(format!("link_{hook_name}")))
                    .map_err(io_err(format!("open link {hook_name}")))
            })
            .collect()
    }

    /// The kernel's view of the links.
    pub fn links(&self) -> Vec<LinkStatus> {
        HOOKS
            .iter()
            .map(|(hook_name, _, _, _)| {
                let info = sys::obj_get(&self.dir.join(format!("link_{hook_name}")))
                    .and_then(|fd| sys::cgroup_link_info(fd.as_fd()));
                match info {
                    Ok(info) => LinkStatus {
                        hook: hook_name.to_string(),
                        link_id: info.link_id,
                        prog_id: info.prog_id,
                        cgroup_id: info.cgroup_id,
                        attached: info.cgroup_id != 0,
                    },
                    Err(_) => LinkStatus {
                        hook: hook_name.to_string(),
                        link_id: 0,
                        prog_id: 0,
                        cgroup_id: 0,
                        attached: false,
                    },
                }
            })
            .collect()
    }

    /// Opens the denial ring buffer. Only one reader should consume it at a time.
    pub fn events(&self) -> Result<DenialReader, EnforceError> {
        let data = MapData::from_pin(self.dir.join("events"))
            .map_err(|e| EnforceError::Bpf(format!("open pinned map `events`: {e}")))?;
        let ring = RingBuf::try_from(Map::RingBuf(data)).map_err(bpf_err("map `events`"))?;
        Ok(DenialReader {
            attachment: self.name.clone(),
            ring,
        })
    }
}

/// A denial, decoded for people and logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Denial {
    pub attachment: String,
    pub agent_id: u32,
    pub pid: u32,
    pub uid: u32,
    pub comm: String,
    pub hook: &'static str,
    pub destination: String,
    pub port: u16,
    pub protocol: String,
    pub reason: &'static str,
    pub boot_ns: u64,
}

impl Denial {
    fn from_event(attachment: &str, event: &DenyEvent) -> Denial {
        let comm_len = event
            .comm
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(event.comm.len());
        Denial {
            attachment: attachment.to_string(),
            agent_id: event.agent_id,
            pid: event.pid,
            uid: event.uid,
            comm: String::from_utf8_lossy(event.comm.get(..comm_len).unwrap_or(&[])).into_owned(),
            hook: hook::name(event.hook),
            destination: unmapped_addr(event.addr).to_string(),
            port: event.port,
            protocol: protocol_from_number(event.protocol)
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| format!("ipproto-{}", event.protocol)),
            reason: reason::name(event.reason),
            boot_ns: event.boot_ns,
        }
    }
}

pub struct DenialReader {
    attachment: String,
    ring: RingBuf<MapData>,
}

impl DenialReader {
    /// Every denial already in the buffer.
    pub fn drain(&mut self) -> Vec<Denial> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            if let Some(event) = DenyEvent::from_bytes(&item) {
                out.push(Denial::from_event(&self.attachment, &event));
            }
        }
        out
    }

    /// Waits up to `timeout_ms` for denials, then drains.
    pub fn wait(&mut self, timeout_ms: i32) -> Vec<Denial> {
        let ready = {
            use std::os::fd::{AsRawFd, BorrowedFd};
            let raw = self.ring.as_raw_fd();
            // SAFETY: the ring buffer map owns `raw` and outlives this borrow.
            let fd = unsafe { BorrowedFd::borrow_raw(raw) };
            sys::poll_readable(fd, timeout_ms).unwrap_or(false)
        };
        let _ = ready;
        self.drain()
    }
}
