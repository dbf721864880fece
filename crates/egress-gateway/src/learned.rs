//! The learned table: which rule admitted which answered address, for which grant, until
//! when. The DNS gateway writes it, the gate reads it, a ticker expires it, and every
//! change of an address's grant set is pushed to the kernel.
//!
//! Guarantees:
//! - The grant set the kernel was last told for an address is the union of the grants of
//!   the address's unexpired admissions, except while a `set_learned` call for it is
//!   failing: such an address is kept in `dirty` and retried on every tick.
//! - An admission never outlives its rule's `until` (the expiry is capped at it).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use egress_check::Protocol;

use crate::names::NameRule;
use crate::server::{Kernel, LearnedGrant};

/// One rule admitting one address for one grant.
#[derive(Clone, Debug)]
pub(crate) struct Admission {
    pub rule: NameRule,
    pub grant: LearnedGrant,
    /// Milliseconds since the Unix epoch (exclusive).
    pub expires_ms: u64,
}

#[derive(Debug, Default)]
pub(crate) struct LearnedTable {
    by_addr: BTreeMap<IpAddr, Vec<Admission>>,
    /// Addresses whose last `set_learned` failed: the kernel may hold a stale set.
    dirty: BTreeSet<IpAddr>,
}

impl LearnedTable {
    /// The grants of `addr`'s admissions live at `now_ms`, sorted, without duplicates.
    pub fn grants(&self, addr: IpAddr, now_ms: u64) -> Vec<LearnedGrant> {
        let mut out: Vec<LearnedGrant> = self
            .by_addr
            .get(&addr)
            .map(|adms| {
                adms.iter()
                    .filter(|a| a.expires_ms > now_ms)
                    .map(|a| a.grant)
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out.dedup();
        out
    }

    /// Admits `addrs` by `rules` until `expires_ms` (each capped at its rule's `until`)
    /// and tells the kernel about every address whose grant set changed. On a kernel
    /// error the address's earlier admissions are restored and the error returned.
    pub fn learn(
        &mut self,
        kernel: &dyn Kernel,
        addrs: &[(IpAddr, u64)],
        rules: &[NameRule],
        now_ms: u64,
    ) -> Result<(), String> {
        let mut first_error = None;
        for &(addr, expires_ms) in addrs {
            let before_grants = self.grants(addr, now_ms);
            let before = self.by_addr.get(&addr).cloned();
            let entry = self.by_addr.entry(addr).or_default();
            for rule in rules {
                let cap = rule.until.map_or(u64::MAX, |u| u.saturating_mul(1000));
                let expires = expires_ms.min(cap);
                if expires <= now_ms {
                    continue;
                }
                for grant in rule.grants() {
                    match entry
                        .iter_mut()
                        .find(|a| a.grant == grant && a.rule == *rule)
                    {
                        Some(a) => a.expires_ms = a.expires_ms.max(expires),
                        None => entry.push(Admission {
                            rule: rule.clone(),
                            grant,
                            expires_ms: expires,
                        }),
                    }
                }
            }
            let after = self.grants(addr, now_ms);
            if after != before_grants || self.dirty.contains(&addr) {
                match kernel.set_learned(addr, &after) {
                    Ok(()) => {
                        self.dirty.remove(&addr);
                    }
                    Err(e) => {
                        match before {
                            Some(b) => {
                                self.by_addr.insert(addr, b);
                            }
                            None => {
                                self.by_addr.remove(&addr);
                            }
                        }
                        // The kernel may hold part of the new set: make it right later.
                        self.dirty.insert(addr);
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Drops admissions expired at `now_ms` or whose rule `keep` rejects, and pushes every
    /// changed (or still dirty) address to the kernel.
    pub fn sweep(&mut self, kernel: &dyn Kernel, now_ms: u64, keep: impl Fn(&NameRule) -> bool) {
        let mut changed: BTreeSet<IpAddr> = std::mem::take(&mut self.dirty);
        for (addr, adms) in self.by_addr.iter_mut() {
            let before = adms.len();
            adms.retain(|a| a.expires_ms > now_ms && keep(&a.rule));
            if adms.len() != before {
                changed.insert(*addr);
            }
        }
        self.by_addr.retain(|_, adms| !adms.is_empty());
        for addr in changed {
            let grants = self.grants(addr, now_ms);
            if kernel.set_learned(addr, &grants).is_err() {
                self.dirty.insert(addr);
            }
        }
    }

    /// The live admissions of `addr` for TCP to `port`.
    pub fn admitting(&self, addr: IpAddr, port: u16, now_ms: u64) -> Vec<&Admission> {
        self.by_addr
            .get(&addr)
            .map(|adms| {
                adms.iter()
                    .filter(|a| {
                        a.expires_ms > now_ms
                            && a.grant.protocol == Protocol::Tcp
                            && a.grant.port_lo <= port
                            && port <= a.grant.port_hi
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every address with a live grant set, and its grants.
    pub fn snapshot(&self, now_ms: u64) -> Vec<(IpAddr, Vec<LearnedGrant>)> {
        self.by_addr
            .keys()
            .map(|&a| (a, self.grants(a, now_ms)))
            .filter(|(_, g)| !g.is_empty())
            .collect()
    }

    /// Removes every address from the kernel and the table (shutdown).
    pub fn clear(&mut self, kernel: &dyn Kernel) {
        let addrs: BTreeSet<IpAddr> = self
            .by_addr
            .keys()
            .copied()
            .chain(std::mem::take(&mut self.dirty))
            .collect();
        self.by_addr.clear();
        for addr in addrs {
            // Nothing more can be done at shutdown; the attachment's maps go with it.
            let _ = kernel.set_learned(addr, &[]);
        }
    }
}
