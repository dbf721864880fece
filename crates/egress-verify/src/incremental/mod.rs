//! Incremental verification: what an earlier run proved, keyed by the content it was
//! proved from, so an edit re-verifies only what it touches.
//!
//! A proof is remembered only when it found nothing (no violation, no unknown): a
//! remembered key says "checking this agent, on these inputs, finds nothing". Findings
//! carry spans, which move when an earlier line changes, so they are always recomputed.
//!
//! **The key of an agent** is a BLAKE3 hash over everything its per-agent check reads
//! (`Ctx::check_agent`):
//!
//! - the verifier's own identity: a schema string, this crate's version, the engine, the
//!   search budget and Z3's time limit;
//! - the agent's *deep* fingerprint: its canonical form (every field of the model, spans
//!   left out; see [`canon`]) folded with the deep fingerprints of every item it names,
//!   transitively — its capabilities, their destinations, syscall groups, capability sets
//!   and workflows, the data classes it handles, the agents it invokes (strongly
//!   connected items are fingerprinted together, so cycles are covered);
//! - the deep fingerprints of every workflow with a step of the agent and of every
//!   exception naming it (the routes they open);
//! - its zones, in order, each by its deep fingerprint (approvals, clearances, approved
//!   Linux capabilities and local sockets, and the destinations and classes they name);
//! - the data classes it holds (the delegation fixpoint, computed afresh every run), each
//!   by its deep fingerprint.
//!
//! A zone's fingerprint does not fold in its member agents' fingerprints (membership is
//! in the agent's key as its zone list), so editing one agent of a large zone does not
//! invalidate the others.
//!
//! **The key of a zone's unused-approval warning** (W0103) folds in the zone's deep
//! fingerprint and the keys of all its members (their routes decide what is used).
//!
//! Everything else — exceptions' own checks, assertions, `within-boundary`, W0101 and
//! W0102 — is recomputed on every run.
//!
//! A differential test (`tests/incremental.rs`) checks, over generated policies and every
//! one-line deletion of them, that a run with the earlier run's memo reports exactly what a
//! run without one does.

pub(crate) mod canon;

use std::collections::BTreeSet;

use blake3::Hasher;
use egress_check::{AgentId, CheckedPolicy, ZoneAgents};
use petgraph::graph::{DiGraph, NodeIndex};
use rayon::prelude::*;
use serde::Serialize;

use crate::decide::Engine;
use crate::graph::ReachGraph;
use canon::{canonical_into, Canonical, Kind};

/// A fingerprint.
pub type Key = [u8; 32];

/// What earlier runs proved: the keys of agent checks and zone warnings that found nothing.
/// Plain data; the CLI keeps it in a file, the editor in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memo {
    keys: BTreeSet<Key>,
}

/// The first bytes of a memo's file form.
const MAGIC: &[u8; 8] = b"egcmemo1";

impl Memo {
    pub fn new() -> Memo {
        Memo::default()
    }
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    pub(crate) fn contains(&self, key: &Key) -> bool {
        self.keys.contains(key)
    }
    #[cfg(test)]
    pub(crate) fn insert(&mut self, key: Key) {
        self.keys.insert(key);
    }
    /// The memo of `keys` (in any order, repeats allowed), built at once.
    pub(crate) fn from_keys(mut keys: Vec<Key>) -> Memo {
        keys.sort_unstable();
        keys.dedup();
        Memo {
            keys: keys.into_iter().collect(),
        }
    }
    /// The file form: a magic string, then the keys in order. A key depends on this
    /// crate's version but not on its build: whoever keeps the bytes must scope them to
    /// one build of the verifier (the CLI ties its memo files to its binary, and
    /// authenticates them).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + self.keys.len() * 32);
        out.extend_from_slice(MAGIC);
        for k in &self.keys {
            out.extend_from_slice(k);
        }
        out
    }
    /// Reads the file form; `None` for anything else (a memo that cannot be read is
    /// treated as empty by its users: it can only cost time).
    pub fn from_bytes(bytes: &[u8]) -> Option<Memo> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        if rest.len() % 32 != 0 {
            return None;
        }
        let keys = rest
            .chunks_exact(32)
            .map(|c| {
                let mut k = [0u8; 32];
                k.copy_from_slice(c);
                k
            })
            .collect();
        Some(Memo { keys })
    }
}

/// The keys of one run.
pub(crate) struct Fingerprints {
    /// Per agent (by index).
    pub agents: Vec<Key>,
    /// Per zone (by index): the key of its unused-approval warning.
    pub zone_warnings: Vec<Key>,
}

/// What a key depends on besides the policy: the verifier itself and how it is asked.
fn environment(engine: Engine, budget: usize, timeout_ms: u64) -> Key {
    let mut h = Hasher::new();
    h.update(b"egc-verify-memo/1\0");
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(&[0]);
    h.update(format!("{engine:?}").as_bytes());
    h.update(&[0]);
    h.update(&(budget as u64).to_le_bytes());
    // A proof found with a longer time limit is still a proof, but a run must report what
    // it would report without a memo: with a shorter limit that may be `unknown`.
    h.update(&timeout_ms.to_le_bytes());
    h.finalize().into()
}

/// The kinds, in the order their items are numbered.
const KINDS: [Kind; 10] = [
    Kind::DataClass,
    Kind::Dest,
    Kind::Cap,
    Kind::Agent,
    Kind::Workflow,
    Kind::Exception,
    Kind::Authority,
    Kind::Zone,
    Kind::SyscallGroup,
    Kind::CapSet,
];

/// Deep fingerprints of every item: its canonical form folded with the deep
/// fingerprints of what it names; the items of a cycle are fingerprinted together.
pub(crate) struct Deep {
    /// Where each kind's items start in `keys` (in [`KINDS`] order).
    offsets: [usize; 10],
    counts: [usize; 10],
    keys: Vec<Key>,
}

/// An item's own fingerprint and the items it names.
type Own = (Key, Vec<(Kind, u32)>);

/// An item's own fingerprint (its kind, index and canonical form) and what it names;
/// `buffer` is scratch space.
fn own<T: Serialize>(kind: Kind, index: usize, item: &T, buffer: &mut Canonical) -> Own {
    canonical_into(item, buffer);
    let mut h = Hasher::new();
    h.update(&[kind as u8]);
    h.update(&(index as u64).to_le_bytes());
    h.update(&buffer.bytes);
    (h.finalize().into(), buffer.refs.clone())
}

fn all<T: Serialize + Sync>(kind: Kind, v: &[T]) -> Vec<Own> {
    v.par_iter()
        .enumerate()
        .map_init(Canonical::default, |buffer, (i, x)| own(kind, i, x, buffer))
        .collect()
}

/// The keys of one component's members, from their own fingerprints and the keys of
/// what they name outside it (already final). `named` is scratch space.
fn component_keys(
    component: &[NodeIndex],
    items: &[Own],
    graph: &DiGraph<(), ()>,
    keys: &[Key],
    named: &mut Vec<Key>,
) -> Keyed {
    let own_key = |m: usize| items.get(m).map(|(k, _)| k);
    // Most components are one item: no member list to build.
    if let [single] = component {
        let m = single.index();
        named.clear();
        named.extend(
            graph
                .neighbors(*single)
                .filter(|next| next.index() != m)
                .filter_map(|next| keys.get(next.index()).copied()),
        );
        let key = fold_component(own_key(m).into_iter(), named);
        return Keyed::One(std::iter::once((m, key)));
    }
    let mut members: Vec<usize> = component.iter().map(|n| n.index()).collect();
    members.sort_unstable();
    named.clear();
    for m in &members {
        for next in graph.neighbors(NodeIndex::new(*m)) {
            let next = next.index();
            if members.binary_search(&next).is_err() {
                if let Some(k) = keys.get(next) {
                    named.push(*k);
                }
            }
        }
    }
    let component_key = fold_component(members.iter().filter_map(|m| own_key(*m)), named);
    let keyed: Vec<(usize, Key)> = members
        .iter()
        .map(|m| {
            let mut h = Hasher::new();
            h.update(&component_key);
            if let Some(k) = own_key(*m) {
                h.update(k);
            }
            (*m, h.finalize().into())
        })
        .collect();
    Keyed::Many(keyed.into_iter())
}

/// A component's key: its members' own fingerprints (in index order) and the keys of
/// what they name outside it, sorted and without repeats (`named` is sorted here).
fn fold_component<'k>(members: impl Iterator<Item = &'k Key>, named: &mut [Key]) -> Key {
    let mut h = Hasher::new();
    h.update(b"component");
    for k in members {
        h.update(k);
    }
    named.sort_unstable();
    let mut last: Option<&Key> = None;
    for k in named.iter() {
        if last != Some(k) {
            h.update(k);
        }
        last = Some(k);
    }
    h.finalize().into()
}

/// The keys of one component's members: one for most.
enum Keyed {
    One(std::iter::Once<(usize, Key)>),
    Many(std::vec::IntoIter<(usize, Key)>),
}

impl Iterator for Keyed {
    type Item = (usize, Key);
    fn next(&mut self) -> Option<(usize, Key)> {
        match self {
            Keyed::One(it) => it.next(),
            Keyed::Many(it) => it.next(),
        }
    }
}

impl Deep {
    /// The deep fingerprints of every item of `policy`.
    pub(crate) fn new(policy: &CheckedPolicy) -> Deep {
        let per_kind: Vec<Vec<Own>> = KINDS
            .par_iter()
            .map(|kind| match kind {
                Kind::DataClass => all(*kind, &policy.data_classes),
                Kind::Dest => all(*kind, &policy.destinations),
                Kind::Cap => all(*kind, &policy.capabilities),
                Kind::Agent => all(*kind, &policy.agents),
                Kind::Workflow => all(*kind, &policy.workflows),
                Kind::Exception => all(*kind, &policy.exceptions),
                Kind::Authority => all(*kind, &policy.authorities),
                Kind::Zone => all(*kind, &policy.zones),
                Kind::SyscallGroup => all(*kind, &policy.syscall_groups),
                Kind::CapSet => all(*kind, &policy.cap_sets),
                Kind::Assert => Vec::new(),
            })
            .collect();
        let mut offsets = [0usize; 10];
        let mut counts = [0usize; 10];
        let mut total = 0;
        for (k, items) in per_kind.iter().enumerate() {
            if let (Some(o), Some(c)) = (offsets.get_mut(k), counts.get_mut(k)) {
                *o = total;
                *c = items.len();
            }
            total += items.len();
        }
        let mut deep = Deep {
            offsets,
            counts,
            keys: vec![[0; 32]; total],
        };
        let items: Vec<Own> = per_kind.into_iter().flatten().collect();
        // The edges: what each item names, but not its own id, nor a zone's members
        // (the agent's key carries its zone list instead).
        let mut graph: DiGraph<(), ()> = DiGraph::with_capacity(total, total * 2);
        for _ in 0..total {
            graph.add_node(());
        }
        let mut kind_of = vec![Kind::Assert; total];
        for (k, kind) in KINDS.iter().enumerate() {
            let (o, c) = (
                deep.offsets.get(k).copied().unwrap_or(0),
                deep.counts.get(k).copied().unwrap_or(0),
            );
            for slot in kind_of.iter_mut().skip(o).take(c) {
                *slot = *kind;
            }
        }
        for (n, (_, refs)) in items.iter().enumerate() {
            let kind = kind_of.get(n).copied().unwrap_or(Kind::Assert);
            for (rk, ri) in refs {
                if kind == Kind::Zone && *rk == Kind::Agent {
                    continue;
                }
                if let Some(m) = deep.position(*rk, *ri as usize) {
                    if m != n {
                        graph.add_edge(NodeIndex::new(n), NodeIndex::new(m), ());
                    }
                }
            }
        }
        // Successors first, so what a component names is fingerprinted before it: each
        // component gets a level one above the highest it names, and the components of a
        // level are fingerprinted at once.
        let components = petgraph::algo::tarjan_scc(&graph);
        let mut component_of = vec![0usize; total];
        for (c, component) in components.iter().enumerate() {
            for n in component {
                if let Some(slot) = component_of.get_mut(n.index()) {
                    *slot = c;
                }
            }
        }
        let mut level = vec![0usize; components.len()];
        for (c, component) in components.iter().enumerate() {
            let mut l = 0;
            for n in component {
                for next in graph.neighbors(*n) {
                    let d = component_of.get(next.index()).copied().unwrap_or(c);
                    if d != c {
                        l = l.max(level.get(d).copied().unwrap_or(0) + 1);
                    }
                }
            }
            if let Some(slot) = level.get_mut(c) {
                *slot = l;
            }
        }
        let mut by_level: Vec<Vec<usize>> = Vec::new();
        for (c, l) in level.iter().enumerate() {
            if by_level.len() <= *l {
                by_level.resize_with(l + 1, Vec::new);
            }
            if let Some(list) = by_level.get_mut(*l) {
                list.push(c);
            }
        }
        for comps in by_level {
            let keyed: Vec<(usize, Key)> = comps
                .par_iter()
                .map_init(Vec::new, |named, c| {
                    let component = components.get(*c).map(Vec::as_slice).unwrap_or(&[]);
                    component_keys(component, &items, &graph, &deep.keys, named)
                })
                .flat_map_iter(|keyed| keyed)
                .collect();
            for (m, key) in keyed {
                if let Some(slot) = deep.keys.get_mut(m) {
                    *slot = key;
                }
            }
        }
        deep
    }

    fn position(&self, kind: Kind, index: usize) -> Option<usize> {
        let k = KINDS.iter().position(|x| *x == kind)?;
        if index < *self.counts.get(k)? {
            Some(self.offsets.get(k)? + index)
        } else {
            None
        }
    }

    fn of(&self, kind: Kind, index: usize) -> Key {
        self.position(kind, index)
            .and_then(|n| self.keys.get(n))
            .copied()
            .unwrap_or([0; 32])
    }
}

/// The keys of every agent check and zone warning of `policy`, from the deep
/// fingerprints of its items ([`Deep::new`]).
pub(crate) fn fingerprints(
    policy: &CheckedPolicy,
    deep: &Deep,
    graph: &ReachGraph,
    zone_lists: &[&[egress_check::ZoneId]],
    config: &crate::VerifyConfig,
) -> Fingerprints {
    let env = environment(config.engine, config.budget, config.timeout_ms);
    // The workflows with a step of each agent, and the exceptions naming it, as sorted
    // (agent, item) pairs.
    let pairs = |it: &mut dyn Iterator<Item = (u32, u32)>| {
        let mut v: Vec<(u32, u32)> = it.collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let workflows_of = pairs(
        &mut policy
            .workflows
            .iter()
            .enumerate()
            .flat_map(|(wi, w)| w.steps.iter().map(move |s| (s.agent.0, wi as u32))),
    );
    let exceptions_of = pairs(
        &mut policy
            .exceptions
            .iter()
            .enumerate()
            .flat_map(|(ei, e)| e.agents.iter().map(move |a| (a.id.0, ei as u32))),
    );
    let of = |list: &[(u32, u32)], a: usize| -> Vec<u32> {
        let start = list.partition_point(|(x, _)| (*x as usize) < a);
        let end = list.partition_point(|(x, _)| (*x as usize) <= a);
        list.get(start..end)
            .unwrap_or(&[])
            .iter()
            .map(|(_, i)| *i)
            .collect()
    };
    let agents: Vec<Key> = (0..policy.agents.len())
        .into_par_iter()
        .map(|a| {
            let mut h = Hasher::new();
            h.update(b"agent\0");
            h.update(&env);
            h.update(&deep.of(Kind::Agent, a));
            h.update(b"workflows\0");
            for w in of(&workflows_of, a) {
                h.update(&deep.of(Kind::Workflow, w as usize));
            }
            h.update(b"exceptions\0");
            for e in of(&exceptions_of, a) {
                h.update(&deep.of(Kind::Exception, e as usize));
            }
            h.update(b"zones\0");
            for z in zone_lists.get(a).copied().unwrap_or(&[]) {
                h.update(&deep.of(Kind::Zone, z.index()));
            }
            h.update(b"holds\0");
            for class in graph.held.get(a).into_iter().flat_map(|m| m.keys()) {
                h.update(&deep.of(Kind::DataClass, class.index()));
            }
            h.finalize().into()
        })
        .collect();
    let zone_warnings = policy
        .zones
        .par_iter()
        .enumerate()
        .map(|(zi, zone)| {
            let mut h = Hasher::new();
            h.update(b"zone-warnings\0");
            h.update(&env);
            h.update(&deep.of(Kind::Zone, zi));
            let members: Vec<AgentId> = match &zone.agents {
                ZoneAgents::All(_) => policy.agents.iter().map(|a| a.id).collect(),
                ZoneAgents::Listed(list) => list.iter().map(|r| r.id).collect(),
            };
            h.update(&(members.len() as u64).to_le_bytes());
            for m in members {
                h.update(&(m.0 as u64).to_le_bytes());
                h.update(&agents.get(m.index()).copied().unwrap_or([0; 32]));
            }
            h.finalize().into()
        })
        .collect();
    Fingerprints {
        agents,
        zone_warnings,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn memo_round_trips_and_refuses_other_bytes() {
        let mut m = Memo::new();
        m.insert([7; 32]);
        m.insert([1; 32]);
        let bytes = m.to_bytes();
        assert_eq!(Memo::from_bytes(&bytes).unwrap(), m);
        assert!(Memo::from_bytes(&bytes[..bytes.len() - 1]).is_none());
        assert!(Memo::from_bytes(b"something else").is_none());
    }
}
