//! What a dependency bump changes: the destinations it adds and removes, as the smallest
//! change to the imported module, a unified diff.

use crate::{destination_name, import_module, Declared, Format, ImportConfig, Source};

/// The change from the module of the old SBOM to the module of the new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleDiff {
    /// Sources (and destination names) only the new SBOM declares.
    pub added: Vec<(Source, String)>,
    /// Sources (and destination names) only the old SBOM declares.
    pub removed: Vec<(Source, String)>,
    /// Sources both declare, for a different set of components.
    pub rejustified: Vec<(Source, String)>,
    /// The unified diff from `current` to the new module; empty when nothing changes.
    pub unified: String,
    /// The new module.
    pub new_module: String,
}

/// Compares the sources of two SBOMs and writes the change to `current`, the module
/// `egc sbom import` wrote for the old one (at `path`, for the diff's header). Refuses a
/// `current` that is not exactly that module: a hand-edited module has no smallest change.
pub fn diff_module(
    old: (Format, &Declared),
    new: (Format, &Declared),
    current: &str,
    path: &str,
    config: &ImportConfig,
) -> Result<ModuleDiff, String> {
    let old_module = import_module(old.0, old.1, config)?;
    if old_module != current {
        return Err(format!(
            "{path} is not the module `egc sbom import` writes for the old SBOM; regenerate it from the old SBOM first"
        ));
    }
    let new_module = import_module(new.0, new.1, config)?;
    let named = |s: &Source| (s.clone(), destination_name(s));
    let added = new
        .1
        .sources
        .keys()
        .filter(|s| !old.1.sources.contains_key(*s))
        .map(named)
        .collect();
    let removed = old
        .1
        .sources
        .keys()
        .filter(|s| !new.1.sources.contains_key(*s))
        .map(named)
        .collect();
    let rejustified = new
        .1
        .sources
        .iter()
        .filter(|(s, j)| old.1.sources.get(*s).is_some_and(|o| o != *j))
        .map(|(s, _)| named(s))
        .collect();
    let unified = unified_diff(&old_module, &new_module, path);
    Ok(ModuleDiff {
        added,
        removed,
        rejustified,
        unified,
        new_module,
    })
}

/// The unified diff (three lines of context, headers `a/PATH` and `b/PATH`) from `old` to
/// `new`; empty when they are equal. Shared with `egc suggest`.
pub fn unified_diff(old: &str, new: &str, path: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}
