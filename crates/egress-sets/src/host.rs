//! Host patterns.

use std::collections::BTreeSet;

use crate::Budget;
use egress_check::{HostLabel, HostPattern};

// ---------------------------------------------------------------------------------------
// Host patterns

/// A host pattern aligned from the right: `suffix[0]` is the top-level label.
#[derive(Clone, Debug)]
struct Aligned<'a> {
    /// `None` stands for `*`.
    suffix: Vec<Option<&'a str>>,
    /// The pattern starts with `**`: it matches `suffix.len() + 1` labels or more.
    open: bool,
}

impl<'a> Aligned<'a> {
    fn new(p: &'a HostPattern) -> Aligned<'a> {
        let mut suffix = Vec::with_capacity(p.labels.len());
        let mut open = false;
        for label in p.labels.iter().rev() {
            match label {
                HostLabel::Exact(s) => suffix.push(Some(s.as_str())),
                HostLabel::One => suffix.push(None),
                // Only the leftmost label may be `**`; treat one elsewhere the same way,
                // as "one or more labels here and everything to its left".
                HostLabel::OneOrMore => {
                    open = true;
                    break;
                }
            }
        }
        Aligned { suffix, open }
    }
    fn fixed(&self) -> usize {
        self.suffix.len()
    }
    /// Does a host with exactly `len` labels fit the pattern's length?
    fn allows_len(&self, len: usize) -> bool {
        if self.open {
            len > self.fixed()
        } else {
            len == self.fixed()
        }
    }
    /// Does the pattern accept `label` at position `pos` from the right (for a host
    /// long enough to have that position)?
    fn accepts(&self, pos: usize, label: &str) -> bool {
        match self.suffix.get(pos) {
            Some(Some(want)) => *want == label,
            Some(None) => true,
            None => self.open,
        }
    }
}

/// A cheap necessary condition for two patterns to share a host: no position from the
/// right where both have different constants, and compatible lengths. Allocation-free,
/// so filtering a large union by it is fast.
pub fn may_intersect(a: &HostPattern, b: &HostPattern) -> bool {
    let open = |p: &HostPattern| matches!(p.labels.first(), Some(HostLabel::OneOrMore));
    let (a_open, b_open) = (open(a), open(b));
    let (a_fixed, b_fixed) = (
        a.labels.len() - usize::from(a_open),
        b.labels.len() - usize::from(b_open),
    );
    let lengths = match (a_open, b_open) {
        (false, false) => a_fixed == b_fixed,
        (true, false) => b_fixed > a_fixed,
        (false, true) => a_fixed > b_fixed,
        (true, true) => true,
    };
    lengths
        && a.labels
            .iter()
            .rev()
            .zip(b.labels.iter().rev())
            .all(|pair| match pair {
                (HostLabel::Exact(x), HostLabel::Exact(y)) => x == y,
                _ => true,
            })
}

/// Does pattern `outer` match every host `inner` matches? Exact, by structure.
pub fn pattern_subsumes(outer: &HostPattern, inner: &HostPattern) -> bool {
    let o = Aligned::new(outer);
    let i = Aligned::new(inner);
    // Lengths: inner's lengths must all be allowed by outer.
    let lengths_ok = match (o.open, i.open) {
        (false, false) => o.fixed() == i.fixed(),
        (false, true) => false,
        (true, false) => i.fixed() > o.fixed(),
        (true, true) => i.fixed() >= o.fixed(),
    };
    if !lengths_ok {
        return false;
    }
    // Position by position: where outer has a constant, inner must have the same constant.
    o.suffix.iter().enumerate().all(|(pos, want)| match want {
        None => true,
        Some(w) => matches!(i.suffix.get(pos), Some(Some(got)) if got == w),
    })
}

/// A label no pattern in `patterns` uses as a constant.
pub fn fresh_label<'a>(constants: impl IntoIterator<Item = &'a str>) -> String {
    let used: BTreeSet<&str> = constants.into_iter().collect();
    let mut n = 0u32;
    loop {
        let candidate = if n == 0 {
            "unlisted".to_string()
        } else {
            format!("unlisted{n}")
        };
        if !used.contains(candidate.as_str()) {
            return candidate;
        }
        n += 1;
    }
}

/// Searches the hosts matched by `pattern` for one whose set of matching `others`
/// (given as indices into `others`) satisfies `leaf`. Returns that host.
///
/// Exact: hosts are enumerated up to equivalence. Position by position from the right,
/// a label is either a constant some live pattern uses at that position, or one fresh
/// label (which behaves like every other non-constant label). Beyond the longest fixed
/// suffix, every longer host behaves like the shortest one, so lengths are bounded.
pub fn host_search(
    pattern: &HostPattern,
    others: &[&HostPattern],
    budget: usize,
    leaf: &mut dyn FnMut(&[usize]) -> bool,
) -> Result<Option<String>, Budget> {
    let b = Aligned::new(pattern);
    let aligned: Vec<Aligned<'_>> = others.iter().map(|p| Aligned::new(p)).collect();
    let constants = pattern
        .labels
        .iter()
        .chain(others.iter().flat_map(|p| p.labels.iter()))
        .filter_map(|l| match l {
            HostLabel::Exact(s) => Some(s.as_str()),
            _ => None,
        });
    let fresh = fresh_label(constants);
    let live: Vec<usize> = (0..aligned.len()).collect();
    let mut chosen: Vec<String> = Vec::new();
    let mut steps = 0usize;
    let found = search_rec(
        &b,
        &aligned,
        &fresh,
        live,
        &mut chosen,
        &mut steps,
        budget,
        leaf,
    )?;
    Ok(found.then(|| {
        let mut labels = chosen.clone();
        labels.reverse();
        labels.join(".")
    }))
}

#[allow(clippy::too_many_arguments)]
fn search_rec(
    b: &Aligned<'_>,
    others: &[Aligned<'_>],
    fresh: &str,
    live: Vec<usize>,
    chosen: &mut Vec<String>,
    steps: &mut usize,
    budget: usize,
    leaf: &mut dyn FnMut(&[usize]) -> bool,
) -> Result<bool, Budget> {
    *steps += 1;
    if *steps > budget {
        return Err(Budget);
    }
    let pos = chosen.len();
    // Option 1: the host ends here (has `pos` labels).
    if pos > 0 && b.allows_len(pos) {
        let matching: Vec<usize> = live
            .iter()
            .copied()
            .filter(|i| others.get(*i).is_some_and(|o| o.allows_len(pos)))
            .collect();
        if leaf(&matching) {
            return Ok(true);
        }
    }
    // Option 2: the host has more labels. Stop when longer hosts behave like this one.
    let b_can_grow = b.open || pos < b.fixed();
    if !b_can_grow {
        return Ok(false);
    }
    let horizon = live
        .iter()
        .filter_map(|i| others.get(*i))
        .map(|o| o.fixed() + 1)
        .max()
        .unwrap_or(0)
        .max(b.fixed() + 1);
    if pos >= horizon {
        return Ok(false);
    }
    // Candidate labels at this position.
    let mut candidates: BTreeSet<&str> = BTreeSet::new();
    match b.suffix.get(pos) {
        Some(Some(c)) => {
            candidates.insert(c);
        }
        _ => {
            for i in &live {
                if let Some(Some(Some(c))) = others.get(*i).map(|o| o.suffix.get(pos)) {
                    candidates.insert(c);
                }
            }
            candidates.insert(fresh);
        }
    }
    for label in candidates {
        let next_live: Vec<usize> = live
            .iter()
            .copied()
            .filter(|i| others.get(*i).is_some_and(|o| o.accepts(pos, label)))
            .collect();
        chosen.push(label.to_string());
        if search_rec(b, others, fresh, next_live, chosen, steps, budget, leaf)? {
            return Ok(true);
        }
        chosen.pop();
    }
    Ok(false)
}
