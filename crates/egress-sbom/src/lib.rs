//! SBOMs to egress destinations, with no I/O.
//!
//! - [`parse`]: a CycloneDX 1.5/1.6 or SPDX 2.3 JSON document into [`Sbom`], through typed
//!   serde models of the fields egc reads ([`cyclonedx`], [`spdx`]).
//! - [`declared`]: the hosts and ports an SBOM declares ([`Declared`]), each with the
//!   components that justify it, and a [`Finding`] for every component that declares
//!   no usable location. Nothing is guessed: only declared locations count.
//! - [`module`]: the declared hosts as a formatted `.egress` module ([`import_module`]).
//! - [`diff`]: what a dependency bump changes in that module ([`diff_module`]).
//!
//! **API boundary:** [`parse`], [`declared`], [`import_module`], [`diff_module`] and the
//! types they return. The CLI (`egc sbom`) reads and writes the files.

pub mod cyclonedx;
pub mod declared;
pub mod diff;
pub mod module;
pub mod spdx;

pub use declared::{
    declared, source_of, Declared, Finding, FindingKind, Justification, LocationKind, Source,
    SourceHost,
};
pub use diff::{diff_module, unified_diff, ModuleDiff};
pub use module::{destination_name, import_module, ImportConfig};

use serde::Deserialize;

/// The SBOM formats egc reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    CycloneDx15,
    CycloneDx16,
    Spdx23,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::CycloneDx15 => "CycloneDX 1.5",
            Format::CycloneDx16 => "CycloneDX 1.6",
            Format::Spdx23 => "SPDX 2.3",
        }
    }
}

/// One component (a CycloneDX component or service, an SPDX package) with the
/// locations it declares, in document order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<String>,
    pub locations: Vec<Location>,
}

impl Component {
    /// How the component is named to people: its purl, or `name@version`, or its name.
    pub fn label(&self) -> String {
        match (&self.purl, &self.version) {
            (Some(purl), _) => purl.clone(),
            (None, Some(version)) => format!("{}@{version}", self.name),
            (None, None) => self.name.clone(),
        }
    }
}

/// A location a component declares, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub kind: LocationKind,
    pub url: String,
}

/// A parsed SBOM: its format and its components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sbom {
    pub format: Format,
    pub components: Vec<Component>,
}

/// Why a document is not an SBOM egc reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// The fields that tell the formats apart.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    bom_format: Option<String>,
    spec_version: Option<String>,
    spdx_version: Option<String>,
}

/// Parses a CycloneDX 1.5/1.6 or SPDX 2.3 JSON document.
pub fn parse(text: &str) -> Result<Sbom, ParseError> {
    let error = |message: String| ParseError { message };
    let probe: Probe =
        serde_json::from_str(text).map_err(|e| error(format!("not a JSON SBOM: {e}")))?;
    match (probe.bom_format.as_deref(), probe.spdx_version.as_deref()) {
        (Some("CycloneDX"), None) => {
            let format = match probe.spec_version.as_deref() {
                Some("1.5") => Format::CycloneDx15,
                Some("1.6") => Format::CycloneDx16,
                Some(other) => {
                    return Err(error(format!(
                        "CycloneDX {other} is not supported; egc reads CycloneDX 1.5 and 1.6"
                    )))
                }
                None => return Err(error("a CycloneDX BOM without `specVersion`".into())),
            };
            let bom: cyclonedx::Bom = serde_json::from_str(text)
                .map_err(|e| error(format!("not a valid {} BOM: {e}", format.as_str())))?;
            Ok(Sbom {
                format,
                components: bom.components_and_services(),
            })
        }
        (None, Some("SPDX-2.3")) => {
            let doc: spdx::Document = serde_json::from_str(text)
                .map_err(|e| error(format!("not a valid SPDX 2.3 document: {e}")))?;
            Ok(Sbom {
                format: Format::Spdx23,
                components: doc.components(),
            })
        }
        (None, Some(other)) => Err(error(format!(
            "{other} is not supported; egc reads SPDX 2.3 JSON"
        ))),
        _ => Err(error(
            "neither a CycloneDX BOM (`bomFormat`) nor an SPDX document (`spdxVersion`)".into(),
        )),
    }
}
