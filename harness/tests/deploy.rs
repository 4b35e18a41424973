//! The deployment files: `render.yaml` and the compose topology validate against their schemas
//! (kept in `../shared/schemas` beside the repository), every cross-reference resolves, both files
//! describe the same cluster (service by service, after an explicit normalisation), the deployed
//! workers poll through `chaos-proxy` while the scheduled run talks to the frontend, the scheduled
//! run records into the run store the dashboard reads and the dashboard is never public without a
//! password, PgBouncer's pool fits the Temporal roles behind it in both, and the images the
//! blueprint builds copy files that exist (the cron's scenario folders and the Python example's
//! worker included).

mod common;

use common::repo;
use serde_json::Value;
use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
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
        // Published ports (the frontend, chaos-proxy's admin, the UI) stay on the laptop.
        for port in service["ports"].as_array().into_iter().flatten() {
            let port = port.as_str().unwrap_or_default();
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name}: port `{port}` is published beyond 127.0.0.1"
            );
        }
    }
}

// ---- One model of the cluster, read from either file ------------------------------------------

/// Stands for a value that is not in the file: a secret, or something entered at deploy time
/// (`sync: false`, `generateValue`, `fromDatabase ... password`, `${VAR:-}` in compose). A
/// secret's local-only compose default (`${CHAOS_SERVE_PASSWORD:-dashboard-local-only}`) is the
/// twin of Render's `generateValue`: both are [`SUPPLIED`].
const SUPPLIED: &str = "<supplied at deploy>";

/// Compose service names that are spelled differently in render.yaml (Render names are the
/// canonical ones). `postgresql` is Render's managed database `temporal-db`; `chaos-run` (run on
/// demand) is the twin of the `chaos-scenarios` cron job.
const COMPOSE_TO_RENDER: &[(&str, &str)] = &[
    ("postgresql", "temporal-db"),
    ("pgbouncer", "temporal-pgbouncer"),
    ("elasticsearch", "temporal-elasticsearch"),
    ("chaos-run", "chaos-scenarios"),
];

/// Environment entries allowed to differ (or exist on one side only), each with its reason.
/// Every entry must still be a real difference: a stale one fails the test too.
const KNOWN_ENV_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "temporal-frontend",
        "PORT",
        "Render only: names the port that fromService ... hostport refers to",
    ),
    ("temporal-ui", "PORT", "Render only: public traffic goes to $PORT"),
    ("chaos-dashboard", "PORT", "Render only: public traffic goes to $PORT"),
    (
        "chaos-proxy",
        "PORT",
        "Render only: names the port that fromService ... hostport refers to (the workers' 7233, not the admin's 7240)",
    ),
    (
        "temporal-ui",
        "TEMPORAL_AUTH_ENABLED",
        "compose publishes the UI on 127.0.0.1 only (login optional); on Render it is public (login required)",
    ),
    (
        "temporal-schema-setup",
        "IDLE_AFTER_SETUP",
        "Render has no one-shot job type: the worker idles after setup instead of exiting",
    ),
    (
        "temporal-elasticsearch",
        "ES_JAVA_OPTS",
        "heap sized for a laptop vs the Render standard plan",
    ),
    (
        "temporal-elasticsearch",
        "cluster.routing.allocation.disk.threshold_enabled",
        "compose only: laptop disks are often nearly full",
    ),
    (
        "chaos-scenarios",
        "CHAOS_UI_URL",
        "compose: the local UI; Render: the UI's public URL, entered in the dashboard",
    ),
];

/// Start dependencies only compose has, with the reason.
const KNOWN_COMPOSE_ONLY_DEPENDENCIES: &[(&str, &str, &str)] = &[
    (
        "chaos-scenarios",
        "chaos-worker",
        "`docker compose run chaos-run` starts the worker it needs; on Render chaos-worker is always on",
    ),
    (
        "chaos-scenarios",
        "python-worker",
        "`docker compose run chaos-run` starts the worker its Python scenarios need; on Render python-worker is always on",
    ),
];

/// One service after normalisation.
#[derive(Debug, Default)]
struct Service {
    /// `image <ref>` or `build <dockerfile> in <context>` (paths relative to the repository).
    image: String,
    /// Arguments replacing the image's CMD (empty: the image default).
    command: Vec<String>,
    /// Environment: literal values, `host(<service>)` / `<service>:<port>` for addresses of other
    /// services, [`SUPPLIED`] for secrets and values entered at deploy time.
    env: BTreeMap<String, String>,
    /// Services it talks to / starts after.
    depends: BTreeSet<String>,
}

type Topology = BTreeMap<String, Service>;

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    ["PASSWORD", "PWD", "SECRET"].iter().any(|s| key.contains(s))
}

/// Lexically normalised path relative to the repository (`./compose/../Dockerfile` -> `Dockerfile`).
fn repo_path(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    if parts.is_empty() { ".".into() } else { parts.join("/") }
}

fn build(dockerfile: &Path, context: &Path) -> String {
    format!("build {} in {}", repo_path(dockerfile), repo_path(context))
}

fn scalar(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// The cluster as render.yaml describes it. Databases become services with the settings the
/// compose `postgres` image takes (`POSTGRES_USER`, `POSTGRES_DB`, `POSTGRES_PASSWORD`).
fn render_topology(doc: &Value) -> Topology {
    let list = |key: &str| doc[key].as_array().cloned().unwrap_or_default();
    let databases = list("databases");
    let services = list("services");
    let groups = list("envVarGroups");
    let find = |items: &[Value], name: &str| items.iter().find(|i| i["name"] == name).cloned();
    let mut topology = Topology::new();
    for db in &databases {
        let name = scalar(&db["name"]);
        let env = [
            ("POSTGRES_USER", scalar(&db["user"])),
            ("POSTGRES_DB", scalar(&db["databaseName"])),
            ("POSTGRES_PASSWORD", SUPPLIED.to_owned()),
        ];
        topology.insert(
            name,
            Service {
                image: format!("image postgres:{}", scalar(&db["postgresMajorVersion"])),
                env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                ..Default::default()
            },
        );
    }
    for service in &services {
        let name = scalar(&service["name"]);
        let mut entries = Vec::new();
        for env in service["envVars"].as_array().into_iter().flatten() {
            match env.get("fromGroup").and_then(Value::as_str) {
                Some(group) => {
                    let group = find(&groups, group).unwrap_or_else(|| panic!("{name}: unknown group {group}"));
                    entries.extend(group["envVars"].as_array().cloned().unwrap_or_default());
                }
                None => entries.push(env.clone()),
            }
        }
        let mut out = Service {
            image: match service["runtime"].as_str() {
                Some("image") => format!("image {}", scalar(&service["image"]["url"])),
                _ => build(
                    Path::new(service["dockerfilePath"].as_str().unwrap_or("Dockerfile")),
                    Path::new(service["dockerContext"].as_str().unwrap_or(".")),
                ),
            },
            command: service["dockerCommand"]
                .as_str()
                .map(|c| c.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            ..Default::default()
        };
        for env in entries {
            let key = scalar(&env["key"]);
            let value = if let Some(v) = env.get("value") {
                scalar(v)
            } else if let Some(from) = env.get("fromDatabase") {
                let db_name = scalar(&from["name"]);
                let db = find(&databases, &db_name).unwrap_or_else(|| panic!("{name}/{key}: unknown database"));
                match from["property"].as_str() {
                    Some("host") => {
                        out.depends.insert(db_name.clone());
                        format!("host({db_name})")
                    }
                    // Render PostgreSQL listens on PostgreSQL's default port.
                    Some("port") => "5432".into(),
                    Some("database") => scalar(&db["databaseName"]),
                    Some("user") => scalar(&db["user"]),
                    Some("password") => SUPPLIED.into(),
                    // The database's URL (its host, user, password and database), which compose
                    // spells out; see `compose_connection_string`.
                    Some("connectionString") => {
                        out.depends.insert(db_name.clone());
                        format!("connectionString({db_name})")
                    }
                    other => panic!("{name}/{key}: fromDatabase property {other:?} has no compose equivalent"),
                }
            } else if let Some(from) = env.get("fromService") {
                let target = scalar(&from["name"]);
                match (from["property"].as_str(), from.get("envVarKey")) {
                    (Some("host"), _) => {
                        out.depends.insert(target.clone());
                        format!("host({target})")
                    }
                    (Some("hostport"), _) => {
                        out.depends.insert(target.clone());
                        // `hostport` is <host>:<the port named by the target's PORT variable>.
                        let port = find(&services, &target)
                            .and_then(|t| {
                                t["envVars"]
                                    .as_array()
                                    .and_then(|e| e.iter().find(|e| e["key"] == "PORT").map(|e| scalar(&e["value"])))
                            })
                            .unwrap_or_else(|| "<no PORT>".into());
                        format!("{target}:{port}")
                    }
                    (None, Some(_)) => SUPPLIED.into(),
                    (other, _) => panic!("{name}/{key}: fromService property {other:?} has no compose equivalent"),
                }
            } else {
                // sync: false or generateValue.
                SUPPLIED.into()
            };
            out.env.insert(key, value);
        }
        topology.insert(name, out);
    }
    topology
}

/// The compose twin of Render's `fromDatabase ... property: connectionString`: Render builds the
/// URL of its managed database, compose has no such reference and spells it out,
/// `postgres[ql]://USER:PASSWORD@HOST[:5432]/DB` (the store takes either scheme). When HOST is a
/// compose service and USER, PASSWORD (the same `${VAR:-default}` text) and DB are exactly those
/// its `postgres` image was started with (`POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`),
/// the URL is that database's connection string: the name of HOST. Anything else (another user,
/// password, database, port, or query parameters) is `None` and stays a literal, so it shows up
/// as a difference.
fn compose_connection_string<'a>(value: &str, services: &'a serde_json::Map<String, Value>) -> Option<&'a str> {
    let rest = value
        .strip_prefix("postgresql://")
        .or_else(|| value.strip_prefix("postgres://"))?;
    let (userinfo, location) = rest.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    let (hostport, database) = location.split_once('/')?;
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    let (name, service) = services.get_key_value(host)?;
    let env = &service["environment"];
    let matches = port == "5432"
        && env["POSTGRES_USER"].as_str() == Some(user)
        && env["POSTGRES_PASSWORD"].as_str() == Some(password)
        && env["POSTGRES_DB"].as_str() == Some(database);
    matches.then_some(name.as_str())
}

/// The cluster as compose/docker-compose.yml describes it, with Render's service names.
fn compose_topology(doc: &Value) -> Topology {
    let services = doc["services"].as_object().expect("compose: services");
    let canonical = |name: &str| {
        COMPOSE_TO_RENDER
            .iter()
            .find(|(c, _)| *c == name)
            .map_or(name, |(_, r)| r)
            .to_owned()
    };
    let compose_dir = Path::new("compose");
    services
        .iter()
        .map(|(name, service)| {
            let image = match service.get("build") {
                Some(b) => {
                    let context = compose_dir.join(b["context"].as_str().unwrap_or("."));
                    build(
                        &context.join(b["dockerfile"].as_str().unwrap_or("Dockerfile")),
                        &context,
                    )
                }
                // Render's database is managed: compare the major version it runs.
                None if name == "postgresql" => {
                    let image = scalar(&service["image"]);
                    let major = image
                        .rsplit_once(':')
                        .map_or("", |(_, tag)| tag.split('.').next().unwrap_or(""));
                    format!("image postgres:{major}")
                }
                None => format!("image {}", scalar(&service["image"])),
            };
            let command = match &service["command"] {
                Value::Array(a) => a.iter().map(scalar).collect(),
                Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
                _ => vec![],
            };
            let env = service["environment"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(key, v)| {
                    let v = scalar(v);
                    let value = if let Some(default) = v.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
                        // ${VAR:-default}: secrets and empty defaults are supplied by the user.
                        let default = default.split_once(":-").map_or("", |(_, d)| d);
                        if is_secret_key(key) || default.is_empty() {
                            SUPPLIED.to_owned()
                        } else {
                            default.to_owned()
                        }
                    } else if is_secret_key(key) {
                        SUPPLIED.to_owned()
                    } else if let Some(database) = compose_connection_string(&v, services) {
                        format!("connectionString({})", canonical(database))
                    } else if services.contains_key(&v) {
                        format!("host({})", canonical(&v))
                    } else if let Some((host, port)) = v
                        .split_once(':')
                        // Not a URL whose scheme is a service's name (`postgresql://...`).
                        .filter(|(h, p)| services.contains_key(*h) && !p.starts_with("//"))
                    {
                        format!("{}:{port}", canonical(host))
                    } else {
                        v
                    };
                    (key.clone(), value)
                })
                .collect();
            let depends = match &service["depends_on"] {
                Value::Object(o) => o.keys().map(|k| canonical(k)).collect(),
                Value::Array(a) => a.iter().map(|d| canonical(&scalar(d))).collect(),
                _ => BTreeSet::new(),
            };
            (
                canonical(name),
                Service {
                    image,
                    command,
                    env,
                    depends,
                },
            )
        })
        .collect()
}

/// Every difference between the two descriptions, each naming the service and the field.
fn differences(render: &Topology, compose: &Topology) -> Vec<String> {
    let mut out = Vec::new();
    for name in render.keys().filter(|n| !compose.contains_key(*n)) {
        out.push(format!("{name}: in render.yaml, missing from compose"));
    }
    for name in compose.keys().filter(|n| !render.contains_key(*n)) {
        out.push(format!("{name}: in compose, missing from render.yaml"));
    }
    for (name, r) in render {
        let Some(c) = compose.get(name) else { continue };
        if r.image != c.image {
            out.push(format!(
                "{name}: image: render.yaml `{}`, compose `{}`",
                r.image, c.image
            ));
        }
        if r.command != c.command {
            out.push(format!(
                "{name}: command: render.yaml {:?}, compose {:?}",
                r.command, c.command
            ));
        }
        let keys: BTreeSet<&String> = r.env.keys().chain(c.env.keys()).collect();
        for key in keys {
            let (rv, cv) = (r.env.get(key), c.env.get(key));
            let known = KNOWN_ENV_DIFFERENCES.iter().any(|(s, k, _)| s == name && k == key);
            if rv != cv && !known {
                let show = |v: Option<&String>| v.map_or("(not set)".to_owned(), |v| format!("`{v}`"));
                out.push(format!(
                    "{name}: env {key}: render.yaml {}, compose {}",
                    show(rv),
                    show(cv)
                ));
            } else if rv == cv && known {
                out.push(format!(
                    "{name}: env {key} is listed in KNOWN_ENV_DIFFERENCES but is the same in both files"
                ));
            }
        }
        let compose_only: BTreeSet<&String> = c
            .depends
            .difference(&r.depends)
            .filter(|d| {
                !KNOWN_COMPOSE_ONLY_DEPENDENCIES
                    .iter()
                    .any(|(s, dep, _)| s == name && dep == *d)
            })
            .collect();
        let render_only: BTreeSet<&String> = r.depends.difference(&c.depends).collect();
        if !compose_only.is_empty() || !render_only.is_empty() {
            out.push(format!(
                "{name}: start dependencies: only render.yaml {render_only:?}, only compose {compose_only:?}"
            ));
        }
    }
    out
}

#[test]
fn compose_and_render_describe_the_same_cluster() {
    let (render, compose) = (
        render_topology(&yaml("render.yaml")),
        compose_topology(&yaml("compose/docker-compose.yml")),
    );
    let diff = differences(&render, &compose);
    assert!(
        diff.is_empty(),
        "compose/docker-compose.yml and render.yaml differ:\n{}",
        diff.join("\n")
    );
    // The comparison really covers the Temporal roles and the schema job.
    for role in [
        "temporal-frontend",
        "temporal-history",
        "temporal-matching",
        "temporal-worker",
    ] {
        assert_eq!(
            render[role].env["TEMPORAL_SERVICES"],
            role.trim_start_matches("temporal-")
        );
        assert!(render[role].env.len() >= 20, "{role}: {:?}", render[role].env);
        assert!(
            render[role].image.contains("server.Dockerfile"),
            "{}",
            render[role].image
        );
    }
    assert_eq!(
        render["temporal-schema-setup"].env["TEMPORAL_SETUP_STEPS"],
        "schema namespace"
    );
    assert_eq!(
        render["temporal-schema-setup"].depends,
        ["temporal-db", "temporal-elasticsearch", "temporal-frontend"]
            .map(String::from)
            .into()
    );
    for (file, topology) in [("render.yaml", &render), ("compose/docker-compose.yml", &compose)] {
        let problems = proxy_topology_problems(topology);
        assert!(problems.is_empty(), "{file}:\n{}", problems.join("\n"));
    }
}

/// The value following `flag` in a command line.
fn flag_value<'a>(command: &'a [String], flag: &str) -> Option<&'a str> {
    command
        .iter()
        .position(|a| a == flag)
        .and_then(|i| command.get(i + 1))
        .map(String::as_str)
}

/// What is wrong with the deployed-workers-behind-the-proxy topology: chaos-proxy forwards to the
/// frontend; the workers (the harness's chaos-worker and the Python example's python-worker)
/// reach the frontend through it; the scheduled run talks to the frontend directly, reads the
/// proxy's admin listener, and runs the Python example's fault scenarios against the deployed
/// workers (`--external-worker`).
fn proxy_topology_problems(topology: &Topology) -> Vec<String> {
    const PROXY: &str = "chaos-proxy";
    let mut problems = Vec::new();
    let mut check = |ok: bool, problem: String| {
        if !ok {
            problems.push(problem);
        }
    };
    let get = |service: &str| topology.get(service);
    let env = |service: &str, key: &str| {
        get(service)
            .and_then(|s| s.env.get(key))
            .map_or("(not set)", String::as_str)
            .to_owned()
    };
    let (Some(proxy), Some(cron)) = (get(PROXY), get("chaos-scenarios")) else {
        return vec![format!("no {PROXY} or chaos-scenarios service")];
    };
    // The proxy: `chaos proxy` from the repository image, forwarding to the frontend.
    check(
        proxy.command.first().map(String::as_str) == Some("proxy"),
        format!("{PROXY}: command {:?} does not run `chaos proxy`", proxy.command),
    );
    let listen_port = flag_value(&proxy.command, "--listen").and_then(|a| a.rsplit_once(':').map(|(_, p)| p));
    check(
        listen_port == Some("7233"),
        format!("{PROXY}: workers' port (--listen) is {listen_port:?}, expected 7233"),
    );
    let admin_port = flag_value(&proxy.command, "--admin").and_then(|a| a.rsplit_once(':').map(|(_, p)| p));
    check(
        admin_port == Some("7240"),
        format!(
            "{PROXY}: admin port (--admin) is {admin_port:?}; the run's CHAOS_PROXY_ADMIN names a host only and \
             relies on the default admin port 7240"
        ),
    );
    check(
        env(PROXY, "TEMPORAL_ADDRESS") == "temporal-frontend:7233",
        format!(
            "{PROXY}: TEMPORAL_ADDRESS (its upstream) is `{}`, expected the frontend",
            env(PROXY, "TEMPORAL_ADDRESS")
        ),
    );
    check(
        get("chaos-worker").is_some_and(|w| w.image == proxy.image),
        format!("{PROXY}: not built like chaos-worker (the repository Dockerfile)"),
    );
    // The workers dial the proxy, never the frontend.
    check(
        env("chaos-worker", "TEMPORAL_ADDRESS") == format!("{PROXY}:7233"),
        format!(
            "chaos-worker: TEMPORAL_ADDRESS is `{}`, expected {PROXY}:7233",
            env("chaos-worker", "TEMPORAL_ADDRESS")
        ),
    );
    check(
        env("python-worker", "TEMPORAL_HOST") == format!("host({PROXY})")
            && env("python-worker", "TEMPORAL_PORT") == "7233",
        format!(
            "python-worker: TEMPORAL_HOST/TEMPORAL_PORT are `{}`/`{}`, expected {PROXY}'s host and 7233",
            env("python-worker", "TEMPORAL_HOST"),
            env("python-worker", "TEMPORAL_PORT")
        ),
    );
    check(
        get("python-worker")
            .is_some_and(|w| w.image == "build examples/python-worker/Dockerfile in examples/python-worker"),
        format!(
            "python-worker: image is {:?}, expected a build of examples/python-worker/Dockerfile",
            get("python-worker").map(|w| &w.image)
        ),
    );
    // The scheduled run: the frontend directly, the proxy's admin for the attempts, the Python
    // fault scenarios against the deployed workers.
    check(
        env("chaos-scenarios", "TEMPORAL_ADDRESS") == "temporal-frontend:7233",
        format!(
            "chaos-scenarios: TEMPORAL_ADDRESS is `{}`; the run starts workflows and reads histories on the \
             frontend directly",
            env("chaos-scenarios", "TEMPORAL_ADDRESS")
        ),
    );
    check(
        env("chaos-scenarios", "CHAOS_PROXY_ADMIN") == format!("host({PROXY})"),
        format!(
            "chaos-scenarios: CHAOS_PROXY_ADMIN is `{}`, expected {PROXY}'s host",
            env("chaos-scenarios", "CHAOS_PROXY_ADMIN")
        ),
    );
    check(
        cron.command.first().map(String::as_str) == Some("run")
            && [
                "scenarios/activity",
                "examples/python-worker/scenarios/activity",
                "--external-worker",
            ]
            .iter()
            .all(|a| cron.command.iter().any(|c| c == a)),
        format!(
            "chaos-scenarios: command {:?} should run scenarios/activity and \
             examples/python-worker/scenarios/activity with --external-worker",
            cron.command
        ),
    );
    check(
        flag_value(&cron.command, "--task-queue") == Some("chaos-remote")
            && env("chaos-worker", "CHAOS_TASK_QUEUE") == "chaos-remote",
        format!(
            "chaos-scenarios: --task-queue {:?} is not the queue chaos-worker polls (`{}`)",
            flag_value(&cron.command, "--task-queue"),
            env("chaos-worker", "CHAOS_TASK_QUEUE")
        ),
    );
    problems
}

#[test]
fn the_proxy_topology_check_names_a_worker_that_bypasses_the_proxy() {
    let mut doc = yaml("compose/docker-compose.yml");
    let services = &mut doc["services"];
    services["python-worker"]["environment"]["TEMPORAL_HOST"] = "temporal-frontend".into();
    services["chaos-run"]["environment"]
        .as_object_mut()
        .unwrap()
        .remove("CHAOS_PROXY_ADMIN");
    services["chaos-run"]["command"]
        .as_array_mut()
        .unwrap()
        .retain(|a| a != "--external-worker");
    let problems = proxy_topology_problems(&compose_topology(&doc));
    let expected = [
        "python-worker: TEMPORAL_HOST/TEMPORAL_PORT are `host(temporal-frontend)`/`7233`, expected chaos-proxy's host and 7233",
        "chaos-scenarios: CHAOS_PROXY_ADMIN is `(not set)`, expected chaos-proxy's host",
        "chaos-scenarios: command [\"run\", \"scenarios/activity\", \"examples/python-worker/scenarios/activity\", \
         \"--task-queue\", \"chaos-remote\"] should run scenarios/activity and \
         examples/python-worker/scenarios/activity with --external-worker",
    ];
    assert_eq!(problems, expected);
}

#[test]
fn a_drift_between_compose_and_render_is_named() {
    let render = render_topology(&yaml("render.yaml"));
    let mut doc = yaml("compose/docker-compose.yml");
    let history = &mut doc["services"]["temporal-history"];
    history["environment"]["NUM_HISTORY_SHARDS"] = "8".into();
    history["environment"].as_object_mut().unwrap().remove("ES_VIS_INDEX");
    history["depends_on"].as_object_mut().unwrap().remove("pgbouncer");
    doc["services"]["temporal-ui"]["image"] = "temporalio/ui:2.40.0".into();
    doc["services"]["temporal-frontend"]["environment"]["PORT"] = "7233".into();
    let diff = differences(&render, &compose_topology(&doc));
    let expected = [
        "temporal-history: env NUM_HISTORY_SHARDS: render.yaml `4`, compose `8`",
        "temporal-history: env ES_VIS_INDEX: render.yaml `temporal_visibility_v1`, compose (not set)",
        "temporal-history: start dependencies: only render.yaml {\"temporal-pgbouncer\"}, only compose {}",
        "temporal-ui: image: render.yaml `image temporalio/ui:2.49.1`, compose `image temporalio/ui:2.40.0`",
        "temporal-frontend: env PORT is listed in KNOWN_ENV_DIFFERENCES but is the same in both files",
    ];
    for e in expected {
        assert!(diff.iter().any(|d| d == e), "missing `{e}` in:\n{}", diff.join("\n"));
    }
    assert_eq!(diff.len(), expected.len(), "{}", diff.join("\n"));
}

// ---- The run store and its dashboard ------------------------------------------------------------

/// The scheduled run and the dashboard, by their Render names.
const CRON: &str = "chaos-scenarios";
const DASHBOARD: &str = "chaos-dashboard";

/// What is wrong with the run store in one file's topology: the scheduled run records every run
/// into the PostgreSQL store on temporal-db (its reports vanish with the cron container, and so
/// would the default SQLite file), in a database of its own (not Temporal's), with a retention;
/// the dashboard (`chaos serve`) reads that very store: the same URL source and database.
fn store_problems(topology: &Topology) -> Vec<String> {
    const SERVER: &str = "connectionString(temporal-db)";
    let mut problems = Vec::new();
    let env = |service: &str, key: &str| {
        topology
            .get(service)
            .and_then(|s| s.env.get(key))
            .map_or("(not set)", String::as_str)
            .to_owned()
    };
    let (Some(_), Some(dashboard)) = (topology.get(CRON), topology.get(DASHBOARD)) else {
        return vec![format!("no {CRON} or {DASHBOARD} service")];
    };
    let (url, database) = (env(CRON, "CHAOS_STORE_URL"), env(CRON, "CHAOS_STORE_DATABASE"));
    if url != SERVER {
        problems.push(format!(
            "{CRON}: CHAOS_STORE_URL is `{url}`, expected {SERVER}: the run's reports vanish with its container, \
             so every run is recorded on the cluster's PostgreSQL"
        ));
    }
    let temporal = env("temporal-db", "POSTGRES_DB");
    if database == "(not set)" || database.is_empty() || database == temporal {
        problems.push(format!(
            "{CRON}: CHAOS_STORE_DATABASE is `{database}`; the runs go to a database of their own, not Temporal's \
             `{temporal}`"
        ));
    }
    if env(CRON, "CHAOS_STORE_KEEP") == "(not set)" {
        problems.push(format!("{CRON}: no CHAOS_STORE_KEEP: every run would be kept forever"));
    }
    if dashboard.command.first().map(String::as_str) != Some("serve") {
        problems.push(format!(
            "{DASHBOARD}: command {:?} does not run `chaos serve`",
            dashboard.command
        ));
    }
    for key in ["CHAOS_STORE_URL", "CHAOS_STORE_DATABASE"] {
        let (theirs, ours) = (env(CRON, key), env(DASHBOARD, key));
        if theirs != ours {
            problems.push(format!(
                "{DASHBOARD}: {key} is `{ours}`, but {CRON} records into `{theirs}`: the dashboard would not \
                 show the scheduled runs"
            ));
        }
    }
    problems
}

/// The port of a `HOST:PORT` listen address.
fn listen_port(command: &[String]) -> Option<&str> {
    flag_value(command, "--listen").and_then(|a| a.rsplit_once(':').map(|(_, p)| p))
}

/// What is wrong with how render.yaml exposes the dashboard: besides temporal-ui it is the only
/// public (`web`) service; it listens on all interfaces on the port Render routes public traffic
/// to (`PORT`), is health-checked on `/health` (the one path served without a login), and its
/// password is never in the file nor missing: generated by Render or entered at deploy time.
fn render_dashboard_exposure_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let services = doc["services"].as_array().cloned().unwrap_or_default();
    let public: BTreeSet<String> = services
        .iter()
        .filter(|s| s["type"] == "web")
        .map(|s| scalar(&s["name"]))
        .collect();
    let expected: BTreeSet<String> = [DASHBOARD, "temporal-ui"].map(String::from).into();
    if public != expected {
        problems.push(format!("public (web) services are {public:?}, expected {expected:?}"));
    }
    let Some(dashboard) = services.iter().find(|s| s["name"] == DASHBOARD) else {
        return vec![format!("no {DASHBOARD} service")];
    };
    let entry = |key: &str| {
        dashboard["envVars"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["key"] == key)
            .cloned()
    };
    let command: Vec<String> = dashboard["dockerCommand"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let listen = flag_value(&command, "--listen");
    let port = entry("PORT").map(|e| scalar(&e["value"]));
    if listen.and_then(|l| l.rsplit_once(':')).map(|(host, _)| host) != Some("0.0.0.0") {
        problems.push(format!(
            "{DASHBOARD}: --listen is {listen:?}; Render's router reaches it on 0.0.0.0"
        ));
    }
    if listen_port(&command) != port.as_deref() {
        problems.push(format!(
            "{DASHBOARD}: listens on port {:?}, but Render routes public traffic to PORT {port:?}",
            listen_port(&command)
        ));
    }
    if dashboard["healthCheckPath"] != "/health" {
        problems.push(format!(
            "{DASHBOARD}: healthCheckPath is {}, expected \"/health\" (the one path served without a login)",
            dashboard["healthCheckPath"]
        ));
    }
    match entry("CHAOS_SERVE_PASSWORD") {
        Some(e) if e.get("value").is_none() && (e["generateValue"] == true || e["sync"] == false) => {}
        other => problems.push(format!(
            "{DASHBOARD}: CHAOS_SERVE_PASSWORD is {}; it must be generated (generateValue: true) or entered \
             at deploy time (sync: false), never missing or in the file",
            other.map_or("not set".to_owned(), |e| e.to_string())
        )),
    }
    problems
}

/// Whether a compose environment value can never be empty: a non-empty literal, a
/// `${VAR:-default}` with a non-empty default, or a `${VAR:?message}` (compose refuses to start
/// without VAR). Not `${VAR-default}`: VAR set to an empty string wins.
fn never_empty(value: &str) -> bool {
    match value.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        Some(inner) => inner.contains(":?") || inner.split_once(":-").is_some_and(|(_, d)| !d.is_empty()),
        None => !value.is_empty(),
    }
}

/// What is wrong with how compose exposes the dashboard: besides the frontend, chaos-proxy's
/// admin and the UI, it is the only published service; no host port is published twice (the UI
/// has 8080); it publishes the port it listens on; its health check asks `/health` there; and its
/// password can never be empty (it listens on 0.0.0.0 in its container, where `chaos serve`
/// refuses to start without one).
fn compose_dashboard_exposure_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let services = doc["services"].as_object().cloned().unwrap_or_default();
    // (service, host port, container port) of every `127.0.0.1:HOST:CONTAINER` entry.
    let published: Vec<(String, String, String)> = services
        .iter()
        .flat_map(|(name, s)| {
            s["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let parts: Vec<&str> = p.as_str()?.split(':').collect();
                    let &[.., host, container] = parts.as_slice() else {
                        return None;
                    };
                    Some((name.clone(), host.to_owned(), container.to_owned()))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let public: BTreeSet<String> = published.iter().map(|(s, _, _)| s.clone()).collect();
    let expected: BTreeSet<String> = [DASHBOARD, "chaos-proxy", "temporal-frontend", "temporal-ui"]
        .map(String::from)
        .into();
    if public != expected {
        problems.push(format!("published services are {public:?}, expected {expected:?}"));
    }
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (service, host, _) in &published {
        if let Some(other) = seen.insert(host.as_str(), service.as_str()) {
            problems.push(format!("host port {host} is published by both {other} and {service}"));
        }
    }
    let Some(dashboard) = services.get(DASHBOARD) else {
        return vec![format!("no {DASHBOARD} service")];
    };
    let command: Vec<String> = dashboard["command"]
        .as_array()
        .into_iter()
        .flatten()
        .map(scalar)
        .collect();
    let listen = listen_port(&command);
    let containers: Vec<&str> = published
        .iter()
        .filter(|(s, _, _)| s == DASHBOARD)
        .map(|(_, _, c)| c.as_str())
        .collect();
    if listen.is_none_or(|l| containers != [l]) {
        problems.push(format!(
            "{DASHBOARD}: publishes container port(s) {containers:?}, but listens on {listen:?}"
        ));
    }
    let health = dashboard["healthcheck"]["test"]
        .as_array()
        .into_iter()
        .flatten()
        .map(scalar)
        .collect::<Vec<_>>()
        .join(" ");
    if !listen.is_some_and(|p| health.contains(&format!("127.0.0.1:{p}/health"))) {
        problems.push(format!(
            "{DASHBOARD}: health check `{health}` does not ask /health on the port it listens on"
        ));
    }
    let password = dashboard["environment"]["CHAOS_SERVE_PASSWORD"]
        .as_str()
        .unwrap_or_default();
    if !never_empty(password) {
        problems.push(format!(
            "{DASHBOARD}: CHAOS_SERVE_PASSWORD `{password}` can be empty; `chaos serve` refuses to listen on \
             0.0.0.0 without a password"
        ));
    }
    problems
}

#[test]
fn the_dashboard_reads_the_scheduled_runs_store_and_is_never_open_in_both_files() {
    let (render_doc, compose_doc) = (yaml("render.yaml"), yaml("compose/docker-compose.yml"));
    for (file, topology) in [
        ("render.yaml", render_topology(&render_doc)),
        ("compose/docker-compose.yml", compose_topology(&compose_doc)),
    ] {
        let problems = store_problems(&topology);
        assert!(problems.is_empty(), "{file}:\n{}", problems.join("\n"));
        // Both files' store is the database `chaos` on temporal-db.
        assert_eq!(topology[DASHBOARD].env["CHAOS_STORE_DATABASE"], "chaos", "{file}");
        assert!(topology[DASHBOARD].depends.contains("temporal-db"), "{file}");
    }
    let problems = render_dashboard_exposure_problems(&render_doc);
    assert!(problems.is_empty(), "render.yaml:\n{}", problems.join("\n"));
    let problems = compose_dashboard_exposure_problems(&compose_doc);
    assert!(
        problems.is_empty(),
        "compose/docker-compose.yml:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_store_and_dashboard_checks_name_a_second_store_and_an_open_dashboard() {
    let mut doc = yaml("render.yaml");
    for service in doc["services"].as_array_mut().unwrap() {
        match service["name"].as_str() {
            Some(DASHBOARD) => {
                let env = service["envVars"].as_array_mut().unwrap();
                env.retain(|e| e["key"] != "CHAOS_SERVE_PASSWORD");
                for e in env.iter_mut() {
                    if e["key"] == "PORT" {
                        e["value"] = "10000".into();
                    }
                }
                service["healthCheckPath"] = "/".into();
            }
            Some("chaos-proxy") => service["type"] = "web".into(),
            Some(CRON) => service["envVars"]
                .as_array_mut()
                .unwrap()
                .retain(|e| e["key"] != "CHAOS_STORE_URL" && e["key"] != "CHAOS_STORE_KEEP"),
            _ => {}
        }
    }
    assert_eq!(
        render_dashboard_exposure_problems(&doc),
        [
            "public (web) services are {\"chaos-dashboard\", \"chaos-proxy\", \"temporal-ui\"}, expected \
             {\"chaos-dashboard\", \"temporal-ui\"}",
            "chaos-dashboard: listens on port Some(\"8080\"), but Render routes public traffic to PORT Some(\"10000\")",
            "chaos-dashboard: healthCheckPath is \"/\", expected \"/health\" (the one path served without a login)",
            "chaos-dashboard: CHAOS_SERVE_PASSWORD is not set; it must be generated (generateValue: true) or \
             entered at deploy time (sync: false), never missing or in the file",
        ]
    );
    assert_eq!(
        store_problems(&render_topology(&doc)),
        [
            "chaos-scenarios: CHAOS_STORE_URL is `(not set)`, expected connectionString(temporal-db): the run's \
             reports vanish with its container, so every run is recorded on the cluster's PostgreSQL",
            "chaos-scenarios: no CHAOS_STORE_KEEP: every run would be kept forever",
            "chaos-dashboard: CHAOS_STORE_URL is `connectionString(temporal-db)`, but chaos-scenarios records into \
             `(not set)`: the dashboard would not show the scheduled runs",
        ]
    );

    let mut doc = yaml("compose/docker-compose.yml");
    let dashboard = &mut doc["services"][DASHBOARD];
    dashboard["environment"]["CHAOS_SERVE_PASSWORD"] = "${CHAOS_SERVE_PASSWORD:-}".into();
    dashboard["environment"]["CHAOS_STORE_DATABASE"] = "temporal".into();
    dashboard["ports"] = serde_json::json!(["127.0.0.1:8080:8081"]);
    // The run's user is not the database's: a literal URL, not its connection string.
    let url = doc["services"]["chaos-run"]["environment"]["CHAOS_STORE_URL"]
        .as_str()
        .unwrap()
        .replacen("temporal:", "chaos:", 1);
    doc["services"]["chaos-run"]["environment"]["CHAOS_STORE_URL"] = url.clone().into();
    assert_eq!(
        compose_dashboard_exposure_problems(&doc),
        [
            "host port 8080 is published by both chaos-dashboard and temporal-ui",
            "chaos-dashboard: publishes container port(s) [\"8081\"], but listens on Some(\"8080\")",
            "chaos-dashboard: CHAOS_SERVE_PASSWORD `${CHAOS_SERVE_PASSWORD:-}` can be empty; `chaos serve` refuses \
             to listen on 0.0.0.0 without a password",
        ]
    );
    assert_eq!(
        store_problems(&compose_topology(&doc)),
        [
            format!(
                "chaos-scenarios: CHAOS_STORE_URL is `{url}`, expected connectionString(temporal-db): the run's \
                 reports vanish with its container, so every run is recorded on the cluster's PostgreSQL"
            ),
            format!(
                "chaos-dashboard: CHAOS_STORE_URL is `connectionString(temporal-db)`, but chaos-scenarios records \
                 into `{url}`: the dashboard would not show the scheduled runs"
            ),
            "chaos-dashboard: CHAOS_STORE_DATABASE is `temporal`, but chaos-scenarios records into `chaos`: the \
             dashboard would not show the scheduled runs"
                .to_owned(),
        ]
    );
    assert!(never_empty("${CHAOS_SERVE_PASSWORD:?set a password}") && !never_empty("${CHAOS_SERVE_PASSWORD-x}"));
}

// ---- PgBouncer and the roles' connection pools ------------------------------------------------

/// What is wrong with PgBouncer's settings for the Temporal roles behind it: Temporal's postgres12
/// plugin (lib/pq) needs session pooling, and in session mode every client connection a role holds
/// pins a server connection, so the pool must hold every role's `SQL_MAX_CONNS`.
fn pool_problems(topology: &Topology) -> Vec<String> {
    const PGBOUNCER: &str = "temporal-pgbouncer";
    let mut problems = Vec::new();
    let Some(bouncer) = topology.get(PGBOUNCER) else {
        return vec![format!("no {PGBOUNCER} service")];
    };
    // Defaults: PgBouncer's (pool_mode session, default_pool_size 20, max_client_conn 100) and the
    // server's embedded config template (SQL_MAX_CONNS / SQL_MAX_IDLE_CONNS 20).
    let number = |service: &str, env: &BTreeMap<String, String>, key: &str, default: u32| -> u32 {
        env.get(key).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{service}: {key} = `{v}` is not a number"))
        })
    };
    let mode = bouncer.env.get("POOL_MODE").map_or("session", String::as_str);
    if mode != "session" {
        problems.push(format!(
            "{PGBOUNCER}: POOL_MODE is `{mode}`; Temporal's postgres12 plugin (lib/pq) needs `session` \
             (unnamed prepared statements break across server connections in transaction mode)"
        ));
    }
    let behind = format!("host({PGBOUNCER})");
    let mut total = 0;
    let mut roles = Vec::new();
    for (name, service) in topology {
        if service.env.get("POSTGRES_SEEDS") != Some(&behind) {
            continue;
        }
        let max = number(name, &service.env, "SQL_MAX_CONNS", 20);
        let idle = number(name, &service.env, "SQL_MAX_IDLE_CONNS", 20);
        if idle > max {
            problems.push(format!("{name}: SQL_MAX_IDLE_CONNS {idle} > SQL_MAX_CONNS {max}"));
        }
        total += max;
        roles.push(name.clone());
    }
    let expected = [
        "temporal-frontend",
        "temporal-history",
        "temporal-matching",
        "temporal-worker",
    ];
    if roles != expected {
        problems.push(format!("roles behind {PGBOUNCER}: {roles:?}, expected {expected:?}"));
    }
    let pool = number(PGBOUNCER, &bouncer.env, "DEFAULT_POOL_SIZE", 20);
    if pool < total {
        problems.push(format!(
            "{PGBOUNCER}: DEFAULT_POOL_SIZE {pool} < {total}, the sum of the roles' SQL_MAX_CONNS"
        ));
    }
    let max_db = number(PGBOUNCER, &bouncer.env, "MAX_DB_CONNECTIONS", 0);
    if max_db != 0 && max_db < total {
        problems.push(format!("{PGBOUNCER}: MAX_DB_CONNECTIONS {max_db} < {total}"));
    }
    let clients = number(PGBOUNCER, &bouncer.env, "MAX_CLIENT_CONN", 100);
    if clients < total {
        problems.push(format!("{PGBOUNCER}: MAX_CLIENT_CONN {clients} < {total}"));
    }
    problems
}

#[test]
fn pgbouncer_pools_in_session_mode_with_room_for_every_role_in_both_files() {
    for (file, topology) in [
        ("render.yaml", render_topology(&yaml("render.yaml"))),
        (
            "compose/docker-compose.yml",
            compose_topology(&yaml("compose/docker-compose.yml")),
        ),
    ] {
        let problems = pool_problems(&topology);
        assert!(problems.is_empty(), "{file}:\n{}", problems.join("\n"));
    }
}

#[test]
fn the_pool_check_rejects_transaction_mode_and_a_small_pool() {
    let mut doc = yaml("render.yaml");
    for service in doc["services"].as_array_mut().unwrap() {
        if service["name"] == "temporal-pgbouncer" {
            for env in service["envVars"].as_array_mut().unwrap() {
                match env["key"].as_str() {
                    Some("POOL_MODE") => env["value"] = "transaction".into(),
                    Some("DEFAULT_POOL_SIZE") => env["value"] = "30".into(),
                    _ => {}
                }
            }
        }
    }
    // Without SQL_MAX_CONNS each role takes the template default (20): 80 in all.
    let group = &mut doc["envVarGroups"][0]["envVars"];
    group
        .as_array_mut()
        .unwrap()
        .retain(|e| e["key"] != "SQL_MAX_CONNS" && e["key"] != "SQL_MAX_IDLE_CONNS");
    let problems = pool_problems(&render_topology(&doc));
    let expected = [
        "temporal-pgbouncer: POOL_MODE is `transaction`; Temporal's postgres12 plugin (lib/pq) needs `session` \
         (unnamed prepared statements break across server connections in transaction mode)",
        "temporal-pgbouncer: DEFAULT_POOL_SIZE 30 < 80, the sum of the roles' SQL_MAX_CONNS",
        "temporal-pgbouncer: MAX_DB_CONNECTIONS 50 < 80",
        "temporal-pgbouncer: MAX_CLIENT_CONN 100 < 80",
    ];
    for e in &expected[..3] {
        assert!(
            problems.iter().any(|p| p == e),
            "missing `{e}` in:\n{}",
            problems.join("\n")
        );
    }
    assert!(!problems.contains(&expected[3].to_owned()), "{}", problems.join("\n"));
    assert_eq!(problems.len(), 3, "{}", problems.join("\n"));
}

// ---- The images the blueprint builds --------------------------------------------------------

/// A Dockerfile's instructions: keyword (upper case) and its whitespace-separated arguments, with
/// continuation lines joined and comment lines (and parser directives) dropped.
fn dockerfile_instructions(path: &str) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let mut words = current.split_whitespace().map(str::to_owned);
        if let Some(keyword) = words.next() {
            out.push((keyword.to_ascii_uppercase(), words.collect()));
        }
        current.clear();
    }
    out
}

/// `COPY`/`ADD` of an instruction list: (flags, sources, destination).
fn copies(instructions: &[(String, Vec<String>)]) -> Vec<(Vec<String>, Vec<String>, String)> {
    instructions
        .iter()
        .filter(|(k, _)| k == "COPY" || k == "ADD")
        .map(|(_, args)| {
            let (flags, rest): (Vec<String>, Vec<String>) = args.iter().cloned().partition(|a| a.starts_with("--"));
            let (destination, sources) = rest.split_last().expect("COPY needs a source and a destination");
            (flags, sources.to_vec(), destination.clone())
        })
        .collect()
}

/// The Dockerfiles render.yaml builds, as (Dockerfile, build context), relative to the repository.
fn blueprint_builds() -> BTreeSet<(String, String)> {
    yaml("render.yaml")["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["runtime"] == "docker")
        .map(|s| {
            (
                repo_path(Path::new(s["dockerfilePath"].as_str().unwrap_or("Dockerfile"))),
                repo_path(Path::new(s["dockerContext"].as_str().unwrap_or("."))),
            )
        })
        .collect()
}

#[test]
fn every_file_a_deployed_dockerfile_copies_from_its_context_exists() {
    let builds = blueprint_builds();
    for (dockerfile, context) in &builds {
        let context_dir = repo().join(context);
        let ignored: Vec<String> = std::fs::read_to_string(context_dir.join(".dockerignore"))
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.trim_end_matches('/').to_owned())
            .collect();
        for (flags, sources, _) in copies(&dockerfile_instructions(dockerfile)) {
            if flags.iter().any(|f| f.starts_with("--from=")) {
                continue;
            }
            for source in sources {
                assert!(
                    context_dir.join(&source).exists(),
                    "{dockerfile}: COPY {source}: no such file in the build context {context}"
                );
                let plain = source.trim_start_matches("./").trim_end_matches('/');
                assert!(
                    plain == "." || !ignored.iter().any(|i| i == plain),
                    "{dockerfile}: COPY {source}, which {context}/.dockerignore excludes"
                );
            }
        }
    }
    // The repository image, the Python example's, and the Temporal server and admin-tools wrappers.
    for expected in [
        "Dockerfile",
        "examples/python-worker/Dockerfile",
        "compose/temporal/server.Dockerfile",
        "compose/temporal/admin-tools.Dockerfile",
    ] {
        assert!(
            builds.iter().any(|(d, _)| d == expected),
            "{expected} not built: {builds:?}"
        );
    }
}

#[test]
fn the_image_holds_the_scenario_folders_the_cron_runs() {
    let render = render_topology(&yaml("render.yaml"));
    let cron = &render["chaos-scenarios"];
    let dockerfile = cron
        .image
        .strip_prefix("build ")
        .and_then(|b| b.split_once(" in "))
        .unwrap()
        .0;
    let text = std::fs::read_to_string(repo().join(dockerfile)).unwrap();
    let instructions = dockerfile_instructions(dockerfile);
    let workdir = instructions
        .iter()
        .rev()
        .find(|(k, _)| k == "WORKDIR")
        .map(|(_, a)| a[0].clone())
        .unwrap();
    let folders: Vec<&String> = cron.command[1..].iter().take_while(|a| !a.starts_with("--")).collect();
    assert!(folders.len() >= 2, "{:?}", cron.command);
    // The builder copies the context to /src and `mkdir -p`s the folders it hands over, so a
    // checkout without them still builds; the runtime stage puts them at the same path under the
    // working directory, where the cron's relative paths point.
    let copied: Vec<String> = copies(&instructions)
        .into_iter()
        .filter(|(flags, _, _)| flags.iter().any(|f| f == "--from=builder"))
        .filter_map(|(_, sources, destination)| {
            let relative = sources.first()?.strip_prefix("/src/")?.to_owned();
            (destination.trim_end_matches('/') == format!("{workdir}/{relative}")).then_some(relative)
        })
        .collect();
    for folder in folders {
        let Some(copy) = copied
            .iter()
            .find(|c| folder == *c || folder.starts_with(&format!("{c}/")))
        else {
            panic!("{dockerfile}: the cron runs {folder}, which no COPY puts under {workdir} (copied: {copied:?})");
        };
        assert!(
            text.lines()
                .any(|l| l.contains("mkdir -p") && l.split_whitespace().any(|w| w == format!("/src/{copy}"))),
            "{dockerfile}: the builder does not `mkdir -p /src/{copy}`"
        );
        assert!(repo().join(copy).is_dir(), "{copy} is not a folder of the repository");
    }
}

#[test]
fn the_python_worker_image_runs_worker_py_and_waits_for_its_server() {
    let render = render_topology(&yaml("render.yaml"));
    let (dockerfile, context) = render["python-worker"]
        .image
        .strip_prefix("build ")
        .and_then(|b| b.split_once(" in "))
        .unwrap();
    let instructions = dockerfile_instructions(dockerfile);
    let args = |keyword: &str| -> Vec<String> {
        instructions
            .iter()
            .filter(|(k, _)| k == keyword)
            .flat_map(|(_, a)| a.clone())
            .collect()
    };
    // A pinned Python 3.12 slim base (a patch version, not a moving tag).
    let from = args("FROM");
    assert!(
        from.len() == 1 && from[0].starts_with("python:3.12.") && from[0].contains("-slim"),
        "{dockerfile}: FROM {from:?}"
    );
    let copied: Vec<String> = copies(&instructions)
        .into_iter()
        .flat_map(|(_, sources, _)| sources)
        .map(|s| s.trim_end_matches('/').to_owned())
        .collect();
    for file in ["requirements.txt", "app", "worker.py"] {
        assert!(
            copied.iter().any(|c| c == file),
            "{dockerfile} does not copy {file}: {copied:?}"
        );
    }
    let run = args("RUN").join(" ");
    assert!(
        run.contains("pip install") && run.contains("-r requirements.txt"),
        "{dockerfile}: requirements.txt is not installed: RUN {run}"
    );
    let requirements = std::fs::read_to_string(repo().join(context).join("requirements.txt")).unwrap();
    assert!(
        requirements.lines().any(|l| l.starts_with("temporalio==")),
        "temporalio is not pinned: {requirements}"
    );
    // Render has no start order: the deployed worker waits for its server instead of exiting.
    let wait = args("ENV")
        .iter()
        .find_map(|e| e.strip_prefix("TEMPORAL_CONNECT_WAIT_SECONDS=").map(str::to_owned));
    assert!(
        wait.as_deref()
            .and_then(|w| w.parse::<u32>().ok())
            .is_some_and(|w| w > 0),
        "{dockerfile}: ENV TEMPORAL_CONNECT_WAIT_SECONDS is {wait:?}, expected a positive number of seconds"
    );
    let worker = std::fs::read_to_string(repo().join(context).join("worker.py")).unwrap();
    assert!(
        worker.contains("TEMPORAL_CONNECT_WAIT_SECONDS"),
        "worker.py does not read it"
    );
    // An unprivileged fixed uid, and the worker as the command.
    let user = args("USER");
    assert!(
        user.last()
            .and_then(|u| u.split(':').next())
            .and_then(|u| u.parse::<u32>().ok())
            .is_some_and(|uid| uid > 0),
        "{dockerfile}: USER {user:?}"
    );
    assert_eq!(args("CMD").join(" "), r#"["python", "worker.py"]"#, "{dockerfile}");
    let ignore = std::fs::read_to_string(repo().join(context).join(".dockerignore")).unwrap_or_default();
    assert!(
        ignore.lines().any(|l| l.trim().trim_end_matches('/') == ".venv"),
        "{context}/.dockerignore does not exclude .venv"
    );
}
