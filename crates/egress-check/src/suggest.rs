//! "Did you mean" suggestions.

/// The candidate closest to `name` by edit distance, if it is close enough to be a typo.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    let lowered = name.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        let distance = levenshtein(&lowered, &candidate.to_ascii_lowercase());
        if distance <= limit && best.is_none_or(|(d, c)| (distance, candidate) < (d, c)) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c.to_string())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        if let Some(first) = current.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let deletion = previous.get(j + 1).copied().unwrap_or(usize::MAX) + 1;
            let insertion = current.get(j).copied().unwrap_or(usize::MAX) + 1;
            let substitution = previous.get(j).copied().unwrap_or(usize::MAX) + cost;
            if let Some(cell) = current.get_mut(j + 1) {
                *cell = deletion.min(insertion).min(substitution);
            }
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn suggests_typos() {
        assert_eq!(super::levenshtein("kitten", "sitting"), 3);
        assert_eq!(
            super::closest("contol_plane", ["control_plane", "vault"].into_iter()),
            Some("control_plane".to_string())
        );
        assert_eq!(super::closest("zzz", ["control_plane"].into_iter()), None);
    }
}
