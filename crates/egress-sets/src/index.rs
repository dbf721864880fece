//! An index of boxes.

use std::collections::BTreeMap;

use crate::{ConnBox, TargetSet};
use egress_check::{HostLabel, HostPattern};

/// An index over a union of boxes: host boxes in a trie keyed by their constant labels
/// from the right, so the boxes that may meet a given box are found without scanning the
/// whole union. Lookups return a superset of the boxes that intersect (never fewer), so
/// deciding against the candidates is exact.
#[derive(Clone, Debug, Default)]
pub struct BoxIndex {
    boxes: Vec<ConnBox>,
    root: TrieNode,
    /// Workload boxes by namespace (a workload is in one namespace).
    workloads: BTreeMap<String, Vec<usize>>,
    /// Address boxes by their intervals, one index per family.
    v4: IntervalIndex,
    v6: IntervalIndex,
}

#[derive(Clone, Debug, Default)]
struct TrieNode {
    /// Boxes whose constant suffix ends here (next label is a wildcard, or none).
    here: Vec<usize>,
    children: BTreeMap<String, TrieNode>,
}

impl TrieNode {
    fn collect_all(&self, out: &mut Vec<usize>) {
        out.extend(self.here.iter().copied());
        for child in self.children.values() {
            child.collect_all(out);
        }
    }
}

/// Intervals (inclusive, as `u128`) tagged with a box, sorted by start, with a max-end
/// tree over them: the intervals that overlap a query are found in O(log n + found).
#[derive(Clone, Debug, Default)]
struct IntervalIndex {
    /// (start, end, box), sorted.
    entries: Vec<(u128, u128, usize)>,
    /// `max_end[node]` for a segment tree over `entries` (node 1 is the root).
    max_end: Vec<u128>,
}

impl IntervalIndex {
    fn new(mut entries: Vec<(u128, u128, usize)>) -> IntervalIndex {
        entries.sort_unstable();
        let mut max_end = vec![0; 4 * entries.len().max(1)];
        Self::build(&entries, &mut max_end, 1, 0, entries.len());
        IntervalIndex { entries, max_end }
    }

    fn build(
        entries: &[(u128, u128, usize)],
        tree: &mut [u128],
        node: usize,
        lo: usize,
        hi: usize,
    ) {
        if lo >= hi {
            return;
        }
        let value = if hi - lo == 1 {
            entries.get(lo).map_or(0, |e| e.1)
        } else {
            let mid = lo + (hi - lo) / 2;
            Self::build(entries, tree, 2 * node, lo, mid);
            Self::build(entries, tree, 2 * node + 1, mid, hi);
            let left = tree.get(2 * node).copied().unwrap_or(0);
            let right = tree.get(2 * node + 1).copied().unwrap_or(0);
            left.max(right)
        };
        if let Some(slot) = tree.get_mut(node) {
            *slot = value;
        }
    }

    /// Pushes the box of every interval that overlaps `[start, end]`.
    fn overlapping(&self, start: u128, end: u128, out: &mut Vec<usize>) {
        // Only intervals starting at or before `end` can overlap it.
        let k = self.entries.partition_point(|e| e.0 <= end);
        self.visit(1, 0, self.entries.len(), k, start, out);
    }

    fn visit(
        &self,
        node: usize,
        lo: usize,
        hi: usize,
        k: usize,
        start: u128,
        out: &mut Vec<usize>,
    ) {
        if lo >= hi || lo >= k || self.max_end.get(node).is_none_or(|m| *m < start) {
            return;
        }
        if hi - lo == 1 {
            if let Some(e) = self.entries.get(lo) {
                out.push(e.2);
            }
            return;
        }
        let mid = lo + (hi - lo) / 2;
        self.visit(2 * node, lo, mid, k, start, out);
        self.visit(2 * node + 1, mid, hi, k, start, out);
    }
}

impl BoxIndex {
    pub fn new(boxes: Vec<ConnBox>) -> BoxIndex {
        let mut root = TrieNode::default();
        let mut workloads: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, b) in boxes.iter().enumerate() {
            match &b.target {
                TargetSet::Host(p) => {
                    let mut node = &mut root;
                    for label in p.labels.iter().rev() {
                        match label {
                            HostLabel::Exact(s) => {
                                node = node.children.entry(s.clone()).or_default()
                            }
                            _ => break,
                        }
                    }
                    node.here.push(i);
                }
                TargetSet::Workload(sel) => {
                    workloads.entry(sel.namespace.clone()).or_default().push(i)
                }
                TargetSet::Ip(ips) => {
                    v4.extend(
                        ips.v4
                            .intervals()
                            .iter()
                            .map(|&(s, e)| (u128::from(s), u128::from(e), i)),
                    );
                    v6.extend(ips.v6.intervals().iter().map(|&(s, e)| (s, e, i)));
                }
            }
        }
        BoxIndex {
            boxes,
            root,
            workloads,
            v4: IntervalIndex::new(v4),
            v6: IntervalIndex::new(v6),
        }
    }

    pub fn boxes(&self) -> &[ConnBox] {
        &self.boxes
    }

    /// The boxes that may intersect `b` (of its target kind), in the order they were
    /// given: every box that intersects `b` is among them.
    pub fn candidates(&self, b: &ConnBox) -> Vec<&ConnBox> {
        let mut out = Vec::new();
        match &b.target {
            TargetSet::Host(p) => {
                let mut node = &self.root;
                let mut labels = p.labels.iter().rev();
                loop {
                    out.extend(node.here.iter().copied());
                    match labels.next() {
                        Some(HostLabel::Exact(s)) => match node.children.get(s) {
                            Some(child) => node = child,
                            None => break,
                        },
                        Some(_) => {
                            // A wildcard here: any deeper constant may match it.
                            for child in node.children.values() {
                                child.collect_all(&mut out);
                            }
                            break;
                        }
                        None => break,
                    }
                }
            }
            // Only a workload box of the same namespace can meet a workload box.
            TargetSet::Workload(sel) => {
                if let Some(found) = self.workloads.get(&sel.namespace) {
                    out.extend(found.iter().copied());
                }
            }
            // Only an address box with an overlapping interval can meet an address box.
            TargetSet::Ip(ips) => {
                for &(s, e) in ips.v4.intervals() {
                    self.v4.overlapping(u128::from(s), u128::from(e), &mut out);
                }
                for &(s, e) in ips.v6.intervals() {
                    self.v6.overlapping(s, e, &mut out);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out.iter().filter_map(|i| self.boxes.get(*i)).collect()
    }
}

/// Parses a host pattern written as in a policy (`*.example.com`, `**.corp.internal`).
/// For tests and tools; the checker is the authority on valid patterns.
pub fn parse_host_pattern(text: &str) -> HostPattern {
    let text = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    HostPattern {
        labels: text
            .split('.')
            .map(|l| match l {
                "*" => HostLabel::One,
                "**" => HostLabel::OneOrMore,
                other => HostLabel::Exact(other.to_string()),
            })
            .collect(),
    }
}
