//! Infrastructure faults: the server paused or restarted, the worker crashed, the network broken.
//!
//! One file per kind, each behind [`InfraFault`]. Scenarios with infrastructure faults run one at
//! a time (they hit the whole cluster), each with its own worker process so that the worker can be
//! killed, or its connection to the frontend broken through a [`proxy::FaultProxy`].

mod network;
pub mod proxy;
mod server_pause;
mod server_restart;
mod worker_crash;
mod worker_process;

pub use network::{NetworkFault, NetworkMode};
pub use server_pause::ServerPause;
pub use server_restart::ServerRestart;
pub use worker_crash::WorkerCrash;
pub use worker_process::WorkerProcess;

use crate::{faults::FieldError, verify::Check};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::{fmt, time::Duration};

/// What a target must offer for a fault kind to run on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Freeze and thaw the server process.
    PauseServer,
    /// Stop and start the server with its state kept.
    RestartServer,
    /// Kill and replace the worker process (the harness always owns it).
    CrashWorker,
    /// Route the worker's connection through the harness's fault proxy.
    NetworkProxy,
}

impl Capability {
    /// Everything: a server the harness owns and can restart with its state.
    pub const ALL: [Capability; 4] = [
        Capability::PauseServer,
        Capability::RestartServer,
        Capability::CrashWorker,
        Capability::NetworkProxy,
    ];
    /// A server the harness owns but whose state would not survive a restart.
    pub const ALL_BUT_RESTART: [Capability; 3] = [
        Capability::PauseServer,
        Capability::CrashWorker,
        Capability::NetworkProxy,
    ];
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::PauseServer => "pausing the server",
            Capability::RestartServer => "restarting the server with its state",
            Capability::CrashWorker => "crashing the worker",
            Capability::NetworkProxy => "network faults",
        })
    }
}

/// Control over the server process, offered by targets that own it.
pub trait ServerControl: Send + Sync {
    /// Freezes the server (SIGSTOP, `docker pause`).
    fn pause(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Thaws it.
    fn resume(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Stops the server, waits `down`, starts it again with its state, and waits until it is ready.
    fn restart(&self, down: Duration) -> BoxFuture<'_, Result<(), String>>;
    /// What this server can do.
    fn capabilities(&self) -> &'static [Capability];
    /// CPU time the server process has used so far, where it can be read.
    fn cpu_time(&self) -> Option<Duration> {
        None
    }
}

/// What an infrastructure fault acts on during a scenario.
pub struct InfraControl<'a> {
    /// The server, when the target owns it.
    pub server: Option<&'a dyn ServerControl>,
    /// The scenario's worker process, when the harness runs one (not for `chaos load`, whose
    /// worker is in-process).
    pub worker: Option<&'a WorkerProcess>,
    /// The proxy between that worker and the frontend.
    pub proxy: Option<&'a proxy::FaultProxy>,
}

/// One kind of infrastructure fault.
pub trait InfraFault: Send + Sync {
    /// What the target must offer.
    fn needs(&self) -> Capability;
    /// Applies the fault for `duration` and undoes it; returns what was done, for the report.
    fn apply<'a>(&'a self, ctl: &'a InfraControl<'a>, duration: Duration) -> BoxFuture<'a, Result<String, String>>;
    /// Short description, e.g. `server_pause`.
    fn describe(&self) -> String;
}

impl Trigger {
    /// Parses `KIND after D for D2` (the command-line form of a timed infrastructure fault), e.g.
    /// `server_pause after 5s for 3s`.
    pub fn parse_timed(text: &str, id: usize) -> Result<InfraRule, String> {
        let usage =
            || format!("`{text}`: write KIND after DURATION for DURATION, e.g. \"server_pause after 5s for 3s\"");
        let words: Vec<&str> = text.split_whitespace().collect();
        let [kind, "after", after, "for", duration] = words.as_slice() else {
            return Err(usage());
        };
        let parse = |d: &str| humantime::parse_duration(d).map_err(|e| format!("`{d}`: {e}"));
        let action = InfraAction::from_fields(kind, &InfraFields::default()).map_err(|e| e.message)?;
        Ok(InfraRule {
            id,
            trigger: Trigger::After(parse(after)?),
            duration: parse(duration)?,
            action,
        })
    }
}

/// When an infrastructure fault starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// This long after the workflow started.
    After(#[serde(with = "humantime_serde")] Duration),
    /// As soon as the server reports this attempt of this activity as started.
    AttemptStarted {
        /// Activity type.
        activity: String,
        /// Attempt number.
        attempt: u32,
    },
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::After(d) => write!(f, "{} after start", humantime::format_duration(*d)),
            Trigger::AttemptStarted { activity, attempt } => write!(f, "when {activity} attempt {attempt} starts"),
        }
    }
}

/// One `[[infra]]` entry of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfraRule {
    /// 1-based position in the file.
    pub id: usize,
    /// When it starts.
    pub trigger: Trigger,
    /// How long it lasts.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// What it does.
    pub action: InfraAction,
}

impl InfraRule {
    /// Human summary, e.g. `#1 worker_crash when risky attempt 1 starts, for 2s`.
    pub fn describe(&self) -> String {
        format!(
            "#{} {} {}, for {}",
            self.id,
            self.action.fault().describe(),
            self.trigger,
            humantime::format_duration(self.duration)
        )
    }
}

/// The infrastructure fault kinds, tagged by `kind` in scenario files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InfraAction {
    /// Freeze the server.
    ServerPause(ServerPause),
    /// Restart the server with its state.
    ServerRestart(ServerRestart),
    /// Kill the worker mid-activity and start a fresh one.
    WorkerCrash(WorkerCrash),
    /// Break the worker's connection to the frontend.
    Network(NetworkFault),
}

impl InfraAction {
    /// Names of the kinds, as written in scenario files.
    pub const KINDS: &'static [&'static str] = &["server_pause", "server_restart", "worker_crash", "network"];

    /// Builds the action of kind `kind` from its fields, rejecting fields the kind does not use.
    pub fn from_fields(kind: &str, f: &InfraFields) -> Result<Self, FieldError> {
        let network = kind == "network";
        if !network && let Some(field) = f.network_field() {
            return Err(FieldError::new(
                field,
                format!("`{field}` applies to kind `network` only"),
            ));
        }
        Ok(match kind {
            "server_pause" => Self::ServerPause(ServerPause {}),
            "server_restart" => Self::ServerRestart(ServerRestart {}),
            "worker_crash" => Self::WorkerCrash(WorkerCrash {}),
            "network" => Self::Network(NetworkFault::from_fields(f)?),
            other => {
                return Err(FieldError::new(
                    "kind",
                    format!(
                        "unknown infrastructure fault kind `{other}`, expected one of: {}",
                        Self::KINDS.join(", ")
                    ),
                ));
            }
        })
    }

    /// The kind's implementation.
    pub fn fault(&self) -> &dyn InfraFault {
        match self {
            InfraAction::ServerPause(f) => f,
            InfraAction::ServerRestart(f) => f,
            InfraAction::WorkerCrash(f) => f,
            InfraAction::Network(f) => f,
        }
    }
}

/// Kind-specific fields of an `[[infra]]` entry, already type-checked by the scenario parser.
#[derive(Debug, Default, Clone)]
pub struct InfraFields {
    /// `mode` (network)
    pub mode: Option<String>,
    /// `latency` (network latency)
    pub latency: Option<Duration>,
    /// `jitter` (network latency)
    pub jitter: Option<Duration>,
}

impl InfraFields {
    fn network_field(&self) -> Option<&'static str> {
        [
            ("mode", self.mode.is_some()),
            ("latency", self.latency.is_some()),
            ("jitter", self.jitter.is_some()),
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    }
}

/// What happened when a rule was applied; becomes an "infra #N applied" check.
#[derive(Debug, Clone, Serialize)]
pub struct InfraEvent {
    /// Rule id.
    pub id: usize,
    /// The rule, described.
    pub rule: String,
    /// Milliseconds from workflow start to the fault's start, if it started.
    pub started_ms: Option<u64>,
    /// Milliseconds from workflow start to the fault's end.
    pub ended_ms: Option<u64>,
    /// What was done, or why it could not be.
    pub outcome: Result<String, String>,
}

impl InfraEvent {
    /// The event as a check: it passes when the fault was applied and undone without error.
    pub fn check(&self) -> Check {
        Check {
            name: format!("infra #{} applied", self.id),
            passed: self.outcome.is_ok(),
            expected: self.rule.clone(),
            observed: match (&self.outcome, self.started_ms, self.ended_ms) {
                (Ok(what), Some(from), Some(to)) => format!("{what} (from {from} ms to {to} ms after start)"),
                (Ok(what), ..) => what.clone(),
                (Err(why), ..) => why.clone(),
            },
            evidence: None,
        }
    }
}

/// Applies a rule whose trigger has just fired and records what happened; `began` is when the
/// workflow (or load run) started. Runs to the end even if the caller stops caring, so that a
/// paused server is always resumed.
pub async fn apply(rule: &InfraRule, ctl: &InfraControl<'_>, began: std::time::Instant) -> InfraEvent {
    let started_ms = Some(began.elapsed().as_millis() as u64);
    let outcome = rule.action.fault().apply(ctl, rule.duration).await;
    InfraEvent {
        id: rule.id,
        rule: rule.describe(),
        started_ms,
        ended_ms: Some(began.elapsed().as_millis() as u64),
        outcome,
    }
}
