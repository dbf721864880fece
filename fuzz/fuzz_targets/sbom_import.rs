//! SBOM import on arbitrary JSON: CycloneDX or SPDX text is parsed, its declared locations
//! collected, and the `.egress` module written; a module that is written must check
//! without errors and be formatted already (importing is deterministic and its output is
//! what `egc fmt` would write).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sbom) = egress_sbom::parse(text) else {
        return;
    };
    let declared = egress_sbom::declared(&sbom);
    let Ok(module) =
        egress_sbom::import_module(sbom.format, &declared, &egress_sbom::ImportConfig::default())
    else {
        return;
    };
    let again =
        egress_sbom::import_module(sbom.format, &declared, &egress_sbom::ImportConfig::default());
    assert_eq!(again.as_deref(), Ok(module.as_str()), "import is not deterministic");
    let checked = egress_check::check_sources(&[("sbom.egress", module.as_str())]);
    let errors: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == egress_syntax::diagnostic::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "the imported module has errors: {errors:#?}\n{module}");
});
