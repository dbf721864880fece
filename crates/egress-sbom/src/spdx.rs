//! The fields of an SPDX 2.3 JSON document that declare where packages come from.
//! Unknown fields are ignored; the schema, not this model, says what a valid document is.

use serde::Deserialize;

use crate::{Component, Location, LocationKind};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    #[serde(default)]
    pub packages: Vec<Package>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    pub name: String,
    pub version_info: Option<String>,
    /// A URL or VCS locator, `NONE` or `NOASSERTION`.
    pub download_location: String,
    #[serde(default)]
    pub external_refs: Vec<ExternalRef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRef {
    pub reference_category: String,
    pub reference_type: String,
    pub reference_locator: String,
}

impl Document {
    /// Every package. Its locations are its `downloadLocation` (unless `NONE` or
    /// `NOASSERTION`) and the package-manager and other external references whose
    /// locator is a URL; a purl names the package, it does not locate it.
    pub fn components(&self) -> Vec<Component> {
        self.packages
            .iter()
            .map(|p| {
                let mut locations = Vec::new();
                if !matches!(p.download_location.as_str(), "NONE" | "NOASSERTION") {
                    locations.push(Location {
                        kind: LocationKind::DownloadLocation,
                        url: p.download_location.clone(),
                    });
                }
                for r in &p.external_refs {
                    // Security advisories and persistent ids are not where a package
                    // comes from; only package-manager and other references locate it.
                    let locating = matches!(
                        r.reference_category.as_str(),
                        "PACKAGE-MANAGER" | "PACKAGE_MANAGER" | "OTHER"
                    );
                    if locating && r.reference_locator.contains("://") {
                        locations.push(Location {
                            kind: LocationKind::ExternalRef,
                            url: r.reference_locator.clone(),
                        });
                    }
                }
                let purl = p
                    .external_refs
                    .iter()
                    .find(|r| {
                        r.reference_type == "purl"
                            && matches!(
                                r.reference_category.as_str(),
                                "PACKAGE-MANAGER" | "PACKAGE_MANAGER"
                            )
                    })
                    .map(|r| r.reference_locator.clone());
                Component {
                    name: p.name.clone(),
                    version: p.version_info.clone(),
                    purl,
                    locations,
                }
            })
            .collect()
    }
}
