//! The fields of a CycloneDX 1.5/1.6 JSON BOM that declare where components come from.
//! Unknown fields are ignored; the schema, not this model, says what a valid BOM is.

use serde::Deserialize;

use crate::{Component, Location, LocationKind};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bom {
    #[serde(default)]
    pub components: Vec<BomComponent>,
    #[serde(default)]
    pub services: Vec<Service>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BomComponent {
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<String>,
    #[serde(default)]
    pub external_references: Vec<ExternalReference>,
    /// Sub-components (an assembly).
    #[serde(default)]
    pub components: Vec<BomComponent>,
}

#[derive(Debug, Deserialize)]
pub struct ExternalReference {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub name: String,
    pub version: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub services: Vec<Service>,
}

impl Bom {
    /// Every component and service, depth first in document order. Only external
    /// references of type `distribution` and `vcs`, and service endpoints, are locations.
    pub fn components_and_services(&self) -> Vec<Component> {
        let mut out = Vec::new();
        let mut stack: Vec<&BomComponent> = self.components.iter().rev().collect();
        while let Some(c) = stack.pop() {
            let locations = c
                .external_references
                .iter()
                .filter_map(|r| {
                    let kind = match r.kind.as_str() {
                        "distribution" => LocationKind::Distribution,
                        "vcs" => LocationKind::Vcs,
                        _ => return None,
                    };
                    Some(Location {
                        kind,
                        url: r.url.clone(),
                    })
                })
                .collect();
            out.push(Component {
                name: c.name.clone(),
                version: c.version.clone(),
                purl: c.purl.clone(),
                locations,
            });
            stack.extend(c.components.iter().rev());
        }
        let mut services: Vec<&Service> = self.services.iter().rev().collect();
        while let Some(s) = services.pop() {
            out.push(Component {
                name: s.name.clone(),
                version: s.version.clone(),
                purl: None,
                locations: s
                    .endpoints
                    .iter()
                    .map(|url| Location {
                        kind: LocationKind::Endpoint,
                        url: url.clone(),
                    })
                    .collect(),
            });
            services.extend(s.services.iter().rev());
        }
        out
    }
}
