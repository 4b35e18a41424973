//! The deployment files: `render.yaml` and the compose topology validate against their schemas
//! (kept in `../shared/schemas` beside the repository), and every cross-reference resolves.

mod common;

use common::repo;
use serde_json::Value;
use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut value: serde_norway::Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
    // Resolve `<<: *anchor` merge keys as Compose does.
    value
        .apply_merge()
        .unwrap_or_else(|e| panic!("{path}: bad merge key: {e}"));
    serde_json::to_value(value).unwrap()
}

/// The schema `name`: from CHAOS_SCHEMA_DIR, else the workplace's `../shared/schemas` beside the
/// repository (the reference), else the copy kept in `tests/schemas` for checkouts without it.
fn schema(name: &str) -> Value {
    let candidates = [
        std::env::var_os("CHAOS_SCHEMA_DIR").map(PathBuf::from),
        Some(repo().join("../shared/schemas")),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas")),
    ];
    let path = candidates
        .into_iter()
        .flatten()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("schema {name} not found in CHAOS_SCHEMA_DIR, ../shared/schemas or harness/tests/schemas")
        });
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn assert_valid(document: &Value, schema: &Value, what: &str) {
    let validator = jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("bad schema for {what}: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what} does not validate:\n{}", errors.join("\n"));
}

#[test]
fn render_blueprint_validates_against_its_schema() {
    assert_valid(
        &yaml("render.yaml"),
        &schema("render-blueprint.schema.json"),
        "render.yaml",
    );
}

#[test]
fn render_references_name_existing_services_databases_and_groups() {
    let doc = yaml("render.yaml");
    let names = |key: &str| -> HashSet<String> {
        doc[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect()
    };
    let (services, databases, groups) = (names("services"), names("databases"), names("envVarGroups"));
    let service_type = |name: &str| {
        doc["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["type"].as_str().unwrap().to_owned())
    };
    let mut checked = 0;
    for service in doc["services"].as_array().unwrap() {
        for env in service["envVars"].as_array().into_iter().flatten() {
            let at = format!("{} / {}", service["name"], env["key"]);
            if let Some(from) = env.get("fromService") {
                let name = from["name"].as_str().unwrap();
                assert!(
                    services.contains(name),
                    "{at}: fromService names unknown service {name}"
                );
                assert_eq!(
                    service_type(name).as_deref(),
                    from["type"].as_str(),
                    "{at}: fromService type of {name}"
                );
                checked += 1;
            }
            if let Some(from) = env.get("fromDatabase") {
                let name = from["name"].as_str().unwrap();
                assert!(
                    databases.contains(name),
                    "{at}: fromDatabase names unknown database {name}"
                );
                checked += 1;
            }
            if let Some(group) = env.get("fromGroup").and_then(Value::as_str) {
                assert!(groups.contains(group), "{at}: fromGroup names unknown group {group}");
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 10,
        "expected the blueprint to wire services together, saw {checked} references"
    );
    // Secrets are generated or come from the platform, never written in the file.
    for service in doc["services"].as_array().unwrap() {
        for env in service["envVars"].as_array().into_iter().flatten() {
            let key = env["key"].as_str().unwrap_or_default().to_lowercase();
            if key.contains("password") || key.contains("pwd") || key.contains("api_key") || key.contains("secret") {
                assert!(
                    env.get("value").is_none(),
                    "{} / {key} has a plaintext value",
                    service["name"]
                );
            }
        }
    }
}

#[test]
fn compose_validates_and_depends_on_existing_services() {
    let doc = yaml("compose/docker-compose.yml");
    assert_valid(&doc, &schema("compose-spec.schema.json"), "compose/docker-compose.yml");
    let services = doc["services"].as_object().unwrap();
    for (name, service) in services {
        let deps: Vec<String> = match &service["depends_on"] {
            Value::Array(a) => a.iter().filter_map(|d| d.as_str().map(str::to_owned)).collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => vec![],
        };
        for dep in deps {
            assert!(services.contains_key(&dep), "{name} depends on unknown service {dep}");
        }
        if let Some(net) = service.get("network_mode") {
            assert_ne!(net, "bridge", "{name}: no bridge networks");
        }
    }
}
