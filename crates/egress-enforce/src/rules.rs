//! Allow rules and their compilation into LPM trie entries: the pure part lives in
//! `egress-lower` (`egress_lower::ebpf::rules`, re-exported here); packing them into the
//! kernel's values is here, beside the byte layout.

pub use egress_lower::ebpf::rules::*;

use crate::layout::RuleSet;

/// Packs trie contents into kernel values.
pub fn pack(contents: &TrieContents) -> Vec<(TriePrefix, RuleSet)> {
    contents
        .iter()
        .filter_map(|(prefix, rules)| RuleSet::from_rules(rules).map(|set| (*prefix, set)))
        .collect()
}
