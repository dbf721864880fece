//! Validation of emitted manifests against the vendored official schemas
//! (`tests/schemas/`, in the repository).

use std::sync::OnceLock;

use egress_lower::Target;
use jsonschema::{Draft, Registry, Validator};
use serde_json::{json, Value};

use crate::common::vendored_schemas;

fn read(name: &str) -> Value {
    let path = vendored_schemas().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("vendored schema {} is missing: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

const K8S_URI: &str = "file:///k8s/networking-v1-openapi.json";
const NETWORK_POLICY: &str = "io.k8s.api.networking.v1.NetworkPolicy";

fn k8s_document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| read("k8s-networking-v1-openapi.json"))
}

fn k8s() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        let registry = Registry::new()
            .add(K8S_URI, k8s_document().clone())
            .unwrap()
            .prepare()
            .unwrap();
        jsonschema::options()
            .with_draft(Draft::Draft4)
            .with_registry(&registry)
            .build(&json!({ "$ref": format!("{K8S_URI}#/components/schemas/{NETWORK_POLICY}") }))
            .unwrap()
    })
}

fn cilium() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        jsonschema::options()
            .with_draft(Draft::Draft7)
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(&cilium_schema())
            .unwrap()
    })
}

/// The Cilium schema with `\PC` spelled `\P{C}` (the same Unicode class): the validator
/// checks the schema's own patterns as ECMA-262 regular expressions, where only the
/// braced form is valid. Nothing else changes.
fn cilium_schema() -> Value {
    let text = std::fs::read_to_string(vendored_schemas().join("cilium-networkpolicy-v2.json"))
        .expect("vendored Cilium schema");
    let fixed = text.replace(r#"^\\PC*$"#, r#"^\\P{C}*$"#);
    assert_ne!(
        text, fixed,
        "the Cilium schema no longer has the pattern this works around"
    );
    serde_json::from_str(&fixed).unwrap()
}

const OCI_FILES: &[&str] = &[
    "config-schema.json",
    "config-linux.json",
    "defs.json",
    "defs-linux.json",
    "config-solaris.json",
    "config-windows.json",
    "config-vm.json",
    "config-zos.json",
    "config-freebsd.json",
    "defs-windows.json",
    "defs-vm.json",
    "defs-zos.json",
    "defs-freebsd.json",
];

fn oci() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        let mut builder = Registry::new();
        for name in OCI_FILES {
            builder = builder
                .add(
                    format!("file:///oci/{name}"),
                    read(&format!("oci-runtime-spec/{name}")),
                )
                .unwrap();
        }
        let registry = builder.prepare().unwrap();
        jsonschema::options()
            .with_draft(Draft::Draft4)
            .with_registry(&registry)
            .build(&json!({ "$ref": "file:///oci/config-schema.json" }))
            .unwrap()
    })
}

fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Resolves a local OpenAPI `$ref` (also inside a one-element `allOf`).
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let mut s = schema;
    loop {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/components/schemas/");
            s = &doc["components"]["schemas"][name];
            continue;
        }
        if let Some(Value::Array(all)) = s.get("allOf") {
            if all.len() == 1 && s.get("properties").is_none() {
                s = &all[0];
                continue;
            }
        }
        return s;
    }
}

/// The Kubernetes schema does not forbid unknown fields (the API server prunes them);
/// a field it does not know would be silently dropped, so reject it here.
fn unknown_fields(
    doc: &Value,
    schema: &Value,
    instance: &Value,
    path: &str,
    out: &mut Vec<String>,
) {
    let schema = resolve(doc, schema);
    match instance {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (k, v) in map {
                match (props.and_then(|p| p.get(k)), additional) {
                    (Some(s), _) => unknown_fields(doc, s, v, &format!("{path}/{k}"), out),
                    (None, Some(s)) if s.is_object() => {
                        unknown_fields(doc, s, v, &format!("{path}/{k}"), out)
                    }
                    (None, _) => out.push(format!("unknown field {path}/{k}")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    unknown_fields(doc, s, v, &format!("{path}/{i}"), out);
                }
            }
        }
        _ => {}
    }
}

pub fn validate_artifact(target: Target, file: &str, text: &str) {
    let instance: Value = match target {
        Target::Nftables => return,
        _ => serde_json::from_str(text).unwrap_or_else(|e| panic!("{file}: not JSON: {e}")),
    };
    let problems = match target {
        Target::K8s => {
            let mut problems = errors(k8s(), &instance);
            let doc = k8s_document();
            unknown_fields(
                doc,
                &doc["components"]["schemas"][NETWORK_POLICY],
                &instance,
                "",
                &mut problems,
            );
            problems
        }
        Target::Cilium => errors(cilium(), &instance),
        Target::Seccomp => errors(
            oci(),
            &json!({ "ociVersion": "1.2.0", "linux": { "seccomp": instance } }),
        ),
        Target::Nftables => Vec::new(),
        // egc's own layout (`egc-ebpf-maps/1`, book/src/runtime/maps.md): it must read back.
        Target::Ebpf => match egress_lower::ebpf::maps::from_json(text) {
            Ok(_) => Vec::new(),
            Err(e) => vec![e],
        },
    };
    assert!(
        problems.is_empty(),
        "{file} does not validate:\n{}",
        problems.join("\n")
    );
}

pub fn schemas_reject_what_they_should() {
    // The validators are real: each rejects a broken document.
    let bad_policy = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "x"}, "spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53, "endPort": "x"}]}]}});
    assert!(!errors(k8s(), &bad_policy).is_empty());
    let mut unknown = Vec::new();
    let doc = k8s_document();
    let typo = json!({"spec": {"podSelector": {}, "egres": []}});
    unknown_fields(
        doc,
        &doc["components"]["schemas"][NETWORK_POLICY],
        &typo,
        "",
        &mut unknown,
    );
    assert_eq!(unknown, ["unknown field /spec/egres"]);
    let bad_cnp = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "x"}, "spec": {"endpointSelector": {}, "egress": [{"toPorts": [{"ports": [{"port": "53", "protocol": "ICMP"}]}]}]}});
    assert!(!errors(cilium(), &bad_cnp).is_empty());
    let bad_seccomp =
        json!({"ociVersion": "1.2.0", "linux": {"seccomp": {"defaultAction": "SCMP_ACT_MAYBE"}}});
    assert!(!errors(oci(), &bad_seccomp).is_empty());
    let good_seccomp =
        json!({"ociVersion": "1.2.0", "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}}});
    assert!(errors(oci(), &good_seccomp).is_empty());
}
