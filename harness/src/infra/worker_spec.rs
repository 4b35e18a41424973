//! A user's worker as a scenario describes it: its `[worker]` table ([`WorkerSpec`]), the fixed
//! address it may dial ([`Dials`]), and another version of it that a deploy brings
//! ([`WorkerVersion`]). The processes themselves are [`crate::fleet`]'s.

use serde::Serialize;
use std::{path::PathBuf, time::Duration};

/// How long a fresh worker may take to start polling, unless its `[worker]` says otherwise.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start a worker of the user's own. `command`, `cwd` and `env` values may hold the
/// placeholders of [`PLACEHOLDERS`], filled in by [`WorkerSpec::expand`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerSpec {
    /// Program and arguments; a relative program path is relative to `cwd`.
    pub command: Vec<String>,
    /// Working directory (relative paths in the scenario are relative to the scenario file).
    pub cwd: PathBuf,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// How long the worker may take to poll its task queue once started.
    #[serde(with = "humantime_serde")]
    pub ready_timeout: Duration,
    /// The fixed address the worker dials (its code names it), where the harness puts its proxy
    /// instead of on a free port.
    pub dials: Option<Dials>,
}

/// A loopback `host:port` a worker dials whatever it is told, e.g. `localhost:7233` in the
/// official samples: the harness listens there, so the worker needs no change.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
#[serde(into = "String")]
pub struct Dials {
    /// `localhost`, or a loopback address (`127.0.0.1`, `::1`).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl Dials {
    /// Parses `host:port` (`[::1]:port` for IPv6) on this machine's loopback; the error says
    /// what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let form = "write HOST:PORT on this machine's loopback, e.g. \"localhost:7233\" or \"127.0.0.1:7233\"";
        let (host, port) = text.rsplit_once(':').ok_or_else(|| format!("`{text}`: {form}"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{text}`: `{port}` is not a port number (1-65535)"))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback =
            bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(format!(
                "`{text}`: the harness can only listen on this machine's loopback (localhost, 127.0.0.1, [::1]), \
                 where it puts the worker's proxy"
            ));
        }
        Ok(Self {
            host: bare.to_owned(),
            port,
        })
    }

    /// The socket addresses it names: each address of `localhost`, or the one given.
    pub async fn addresses(&self) -> std::io::Result<Vec<std::net::SocketAddr>> {
        let mut found: Vec<std::net::SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .filter(|a| a.ip().is_loopback())
            .collect();
        found.sort();
        found.dedup();
        Ok(found)
    }
}

impl std::fmt::Display for Dials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl From<Dials> for String {
    fn from(dials: Dials) -> String {
        dials.to_string()
    }
}

/// What a `[worker]` may refer to, each written `{name}`: the address the worker must connect to
/// (the harness's proxy in front of the server), its host and port, the namespace, the task queue.
pub const PLACEHOLDERS: [&str; 5] = ["address", "host", "port", "namespace", "task_queue"];

impl WorkerSpec {
    /// The spec with every `{placeholder}` replaced by its value from `values` (pairs of a
    /// [`PLACEHOLDERS`] name and its value).
    pub fn expand(&self, values: &[(&str, &str)]) -> WorkerSpec {
        let fill = |text: &str| {
            values.iter().fold(text.to_owned(), |t, (name, value)| {
                t.replace(&format!("{{{name}}}"), value)
            })
        };
        WorkerSpec {
            command: self.command.iter().map(|a| fill(a)).collect(),
            cwd: self.cwd.clone(),
            env: self.env.iter().map(|(k, v)| (k.clone(), fill(v))).collect(),
            ready_timeout: self.ready_timeout,
            dials: self.dials.clone(),
        }
    }

    /// Whether its command or environment refers to the placeholder `name`.
    pub fn uses_placeholder(&self, name: &str) -> bool {
        let written = format!("{{{name}}}");
        self.command
            .iter()
            .chain(self.env.iter().map(|(_, v)| v))
            .any(|t| t.contains(&written))
    }

    /// Placeholder names used in `text` that are not in [`PLACEHOLDERS`].
    pub fn unknown_placeholders(text: &str) -> Vec<String> {
        text.split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .filter(|name| !PLACEHOLDERS.contains(name))
            .map(str::to_owned)
            .collect()
    }
}

/// Another version of the user's worker (a deploy's `command` and `env`): run in the
/// `[worker]`'s directory, with its environment and this one's on top, placeholders filled in
/// the same way.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WorkerVersion {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Variables set on top of the `[worker]`'s.
    pub env: Vec<(String, String)>,
}

impl std::fmt::Display for WorkerVersion {
    /// Its environment and command, e.g. `APP_VERSION=v2 python worker.py`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, value) in &self.env {
            write!(f, "{name}={value} ")?;
        }
        f.write_str(&self.command.join(" "))
    }
}

impl WorkerSpec {
    /// This spec run as `version`: its command, and its environment on top of this one's.
    pub fn as_version(&self, version: &WorkerVersion) -> WorkerSpec {
        WorkerSpec {
            command: version.command.clone(),
            env: self.env.iter().chain(&version.env).cloned().collect(),
            ..self.clone()
        }
    }
}
