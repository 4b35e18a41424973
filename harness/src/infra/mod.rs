//! Infrastructure faults: the server paused or restarted; the workers crashed, restarted in turn,
//! all stopped, or replaced by another version; the network broken; the workers' calls refused
//! or their workflow tasks failed.
//!
//! One file per kind, each one serde struct behind [`InfraFault`]; adding a kind is one new file
//! plus one line in the [`InfraAction`] list below (see [`crate::kind`]). A kind acts through the
//! control interfaces of this module, which the targets, the workers' owner ([`crate::fleet`])
//! and the wire proxy implement: each scenario with infrastructure faults gets worker processes
//! of its own, behind a wire proxy ([`WireControl`]) and a network [`proxy::FaultProxy`].

mod calls;
mod deploy;
mod network;
pub mod proxy;
mod rpc_error;
mod server_pause;
mod server_restart;
mod sticky_cache_drop;
mod worker_crash;
mod worker_restart;
mod worker_spec;
mod workers_down;
mod workflow_task_failure;
mod workflow_task_timeout;

pub use calls::{CallEffect, CallEvent, CallFault, TaskAction, WireControl, WorkflowTaskSeen};
pub use deploy::Deploy;
pub use network::NetworkFault;
pub use rpc_error::{RpcCode, RpcError, WORKER_METHODS};
pub use server_pause::ServerPause;
pub use server_restart::ServerRestart;
pub use sticky_cache_drop::StickyCacheDrop;
pub use worker_crash::WorkerCrash;
pub use worker_restart::WorkerRestart;
pub use worker_spec::{Dials, PLACEHOLDERS, READY_TIMEOUT, WorkerSpec, WorkerVersion};
pub use workers_down::WorkersDown;
pub use workflow_task_failure::WorkflowTaskFailure;
pub use workflow_task_timeout::WorkflowTaskTimeout;

use crate::kind::{Kinds, kinds};
use futures::future::{BoxFuture, FutureExt};
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
    /// Kill, stop, restart and replace the worker processes (the harness starts them).
    CrashWorker,
    /// Route the worker's connection through the harness's fault proxy.
    NetworkProxy,
    /// Act on the worker's calls in the wire proxy the harness puts in front of the workers it
    /// starts.
    WorkerCalls,
}

impl Capability {
    /// Everything: a server the harness owns and can restart with its state.
    pub const ALL: [Capability; 5] = [
        Capability::PauseServer,
        Capability::RestartServer,
        Capability::CrashWorker,
        Capability::NetworkProxy,
        Capability::WorkerCalls,
    ];
    /// A server the harness owns but whose state would not survive a restart.
    pub const ALL_BUT_RESTART: [Capability; 4] = [
        Capability::PauseServer,
        Capability::CrashWorker,
        Capability::NetworkProxy,
        Capability::WorkerCalls,
    ];

    /// Whether it acts on workers the harness starts (which a worker run elsewhere is not).
    pub fn on_own_workers(self) -> bool {
        matches!(
            self,
            Capability::CrashWorker | Capability::NetworkProxy | Capability::WorkerCalls
        )
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::PauseServer => "pausing the server",
            Capability::RestartServer => "restarting the server with its state",
            Capability::CrashWorker => "killing, stopping, restarting or replacing the workers",
            Capability::NetworkProxy => "network faults",
            Capability::WorkerCalls => "faults on the workers' calls",
        })
    }
}

/// Control over the server process, offered by targets that own it.
pub trait ServerControl: Send + Sync {
    /// Freezes the server (SIGSTOP, `docker pause`).
    fn pause(&self) -> BoxFuture<'_, Result<(), InfraError>>;
    /// Thaws it.
    fn resume(&self) -> BoxFuture<'_, Result<(), InfraError>>;
    /// Stops the server, waits `down`, starts it again with its state, and waits until it is ready.
    fn restart(&self, down: Duration) -> BoxFuture<'_, Result<(), InfraError>>;
    /// What this server can do.
    fn capabilities(&self) -> &'static [Capability];
    /// CPU time the server process has used so far, where it can be read.
    fn cpu_time(&self) -> Option<Duration> {
        None
    }
}

/// How a worker process is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGKILL at once: a crash.
    Kill,
    /// SIGTERM, then SIGKILL if it has not exited within this long: a deploy's shutdown.
    Graceful(Duration),
}

/// The worker processes of a scenario, owned by the harness ([`crate::fleet`]): each can be
/// stopped and started again, as the version in force.
pub trait WorkerControl: Send + Sync {
    /// How many worker processes the scenario runs.
    fn count(&self) -> usize;
    /// Stops worker `index` (0-based); returns its pid.
    fn stop(&self, index: usize, how: Stop) -> BoxFuture<'_, Result<u32, InfraError>>;
    /// Starts worker `index` as the version in force and waits until it polls; returns its pid.
    fn start(&self, index: usize) -> BoxFuture<'_, Result<u32, InfraError>>;
    /// Makes `version` (another command of the app) the one in force for later starts; `None`
    /// goes back to the scenario's `[worker]`.
    fn switch(&self, version: Option<&WorkerVersion>);

    /// Stops every worker `how`; returns their pids.
    fn stop_all(&self, how: Stop) -> BoxFuture<'_, Result<Vec<u32>, InfraError>> {
        let stops = (0..self.count()).map(move |i| self.stop(i, how));
        futures::future::join_all(stops)
            .map(|stopped| stopped.into_iter().collect())
            .boxed()
    }

    /// Starts every worker and waits until each polls; returns their pids.
    fn start_all(&self) -> BoxFuture<'_, Result<Vec<u32>, InfraError>> {
        let starts = (0..self.count()).map(|i| self.start(i));
        futures::future::join_all(starts)
            .map(|started| started.into_iter().collect())
            .boxed()
    }
}

/// Starts more workflows like the scenario's, for a kind that needs a backlog.
pub trait WorkflowStarter: Send + Sync {
    /// Starts one more; returns its workflow id.
    fn start_another(&self) -> BoxFuture<'_, Result<String, InfraError>>;
}

/// What an infrastructure fault acts on during a scenario.
#[derive(Default, Clone, Copy)]
pub struct InfraControl<'a> {
    /// The server, when the target owns it.
    pub server: Option<&'a dyn ServerControl>,
    /// The scenario's worker processes, when the harness runs them (not for `chaos load`, whose
    /// worker is in-process).
    pub workers: Option<&'a dyn WorkerControl>,
    /// The proxy between those workers and the frontend.
    pub proxy: Option<&'a proxy::FaultProxy>,
    /// The wire proxy in front of those workers.
    pub wire: Option<&'a dyn WireControl>,
    /// Starts more workflows like the scenario's.
    pub workflows: Option<&'a dyn WorkflowStarter>,
}

impl InfraControl<'_> {
    /// The workers, or the error of a kind that needs them.
    pub fn workers(&self) -> Result<&dyn WorkerControl, InfraError> {
        self.workers.ok_or(InfraError::Unsupported(Capability::CrashWorker))
    }

    /// The wire proxy, or the error of a kind that needs it.
    pub fn wire(&self) -> Result<&dyn WireControl, InfraError> {
        self.wire.ok_or(InfraError::Unsupported(Capability::WorkerCalls))
    }

    /// Puts `fault` on the workers' calls for `duration`; returns what it did.
    pub async fn with_call_fault(
        &self,
        rule: usize,
        fault: std::sync::Arc<dyn CallFault>,
        duration: Duration,
    ) -> Result<Vec<CallEvent>, InfraError> {
        let wire = self.wire()?;
        wire.install(rule, fault);
        tokio::time::sleep(duration).await;
        Ok(wire.remove(rule))
    }
}

/// A list of pids, e.g. `412, 415`.
pub(crate) fn pids(pids: &[u32]) -> String {
    pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// One kind of infrastructure fault.
pub trait InfraFault: Send + Sync {
    /// What the target must offer.
    fn needs(&self) -> Capability;
    /// Applies the fault for `duration` and undoes it; returns what was done, for the report.
    /// `rule` is the rule's id, which a fault on the workers' calls marks what it does with.
    fn apply<'a>(
        &'a self,
        ctl: &'a InfraControl<'a>,
        rule: usize,
        duration: Duration,
    ) -> BoxFuture<'a, Result<String, InfraError>>;
    /// Short description, e.g. `server_pause`.
    fn describe(&self) -> String;
    /// Checks what the field types alone cannot.
    fn validate(&self) -> Result<(), crate::error::FieldError> {
        Ok(())
    }
}

/// Errors of infrastructure faults, and of the processes and servers they act on.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// The target (or this use of it) cannot do what the fault needs.
    #[error("this target does not offer {0} here")]
    Unsupported(Capability),
    /// Pausing, resuming or restarting the server failed.
    #[error(transparent)]
    Server(Box<dyn std::error::Error + Send + Sync>),
    /// A network fault saw no traffic to act on.
    #[error("no worker traffic crossed the proxy during the fault ({0})")]
    NoTraffic(String),
    /// The worker process could not be started, or exited.
    #[error("{what} (worker log: {log})")]
    Worker {
        /// What happened.
        what: String,
        /// The worker's log file.
        log: String,
    },
    /// A workflow could not be started.
    #[error("cannot start workflow {workflow_id}: {reason}")]
    Start {
        /// Its id.
        workflow_id: String,
        /// Why.
        reason: String,
    },
    /// The worker process exited before it polled.
    #[error("{what} (worker log: {log}); its last lines:\n{tail}")]
    WorkerExited {
        /// How it exited.
        what: String,
        /// The worker's log file.
        log: String,
        /// The end of that log, indented.
        tail: String,
    },
}

/// A command-line infrastructure fault (`KIND after D for D2`) that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimedRuleError {
    /// Not of the form.
    #[error(
        "`{0}`: write KIND after DURATION for DURATION [{{ FIELD = VALUE, ... }}], e.g. \"server_pause after 5s for \
         3s\" or \"worker_restart after 5s for 20s {{ every = \"5s\", share = 0.5 }}\""
    )]
    Form(String),
    /// A duration that does not parse.
    #[error("`{text}`: {reason}")]
    Duration {
        /// The text.
        text: String,
        /// Why.
        reason: String,
    },
    /// A kind that does not exist.
    #[error("`{kind}` is not an infrastructure fault kind; use one of: {}", InfraAction::NAMES.join(", "))]
    Kind {
        /// The kind given.
        kind: String,
    },
    /// Fields that do not fit the kind (see `chaos kinds` for each kind's fields).
    #[error("`{kind}`: {reason} (see `chaos kinds` for its fields)")]
    Fields {
        /// The kind.
        kind: String,
        /// What is wrong with its fields.
        reason: String,
    },
}

impl Trigger {
    /// Parses `KIND after D for D2 [{ FIELDS }]` (the command-line form of a timed
    /// infrastructure fault), e.g. `server_pause after 5s for 3s`, or `worker_restart after 5s
    /// for 20s { every = "5s" }` with the kind's fields as a TOML inline table.
    pub fn parse_timed(text: &str, id: usize) -> Result<InfraRule, TimedRuleError> {
        let form = || TimedRuleError::Form(text.to_owned());
        let mut words = text.splitn(6, char::is_whitespace).filter(|w| !w.is_empty());
        let (Some(kind), Some("after"), Some(after), Some("for"), Some(duration)) =
            (words.next(), words.next(), words.next(), words.next(), words.next())
        else {
            return Err(form());
        };
        let fields = match words.next().map(str::trim) {
            None => "{}",
            Some(fields) if fields.starts_with('{') && fields.ends_with('}') => fields,
            Some(_) => return Err(form()),
        };
        let parse = |d: &str| {
            humantime::parse_duration(d).map_err(|e| TimedRuleError::Duration {
                text: d.to_owned(),
                reason: e.to_string(),
            })
        };
        let bad_fields = |reason: String| TimedRuleError::Fields {
            kind: kind.to_owned(),
            reason,
        };
        let fields = toml::de::ValueDeserializer::parse(fields).map_err(|e| bad_fields(e.message().to_owned()))?;
        let action = InfraAction::parse(kind, fields)
            .ok_or_else(|| TimedRuleError::Kind { kind: kind.to_owned() })?
            .map_err(|e| bad_fields(e.message().to_owned()))?;
        action.validate().map_err(|e| bad_fields(e.message))?;
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

kinds! {
    /// The infrastructure fault kinds, tagged by `kind` in scenario files.
    pub enum InfraAction: dyn InfraFault {
        /// Freeze the server.
        "server_pause" => ServerPause(ServerPause),
        /// Restart the server with its state.
        "server_restart" => ServerRestart(ServerRestart),
        /// Kill the worker mid-activity and start a fresh one.
        "worker_crash" => WorkerCrash(WorkerCrash),
        /// Break the worker's connection to the frontend.
        "network" => Network(NetworkFault),
        /// Restart a share of the workers in turn, every interval.
        "worker_restart" => WorkerRestart(WorkerRestart),
        /// Stop every worker while workflows keep arriving, then start them again.
        "workers_down" => WorkersDown(WorkersDown),
        /// Replace the workers by another version of the app, and roll back.
        "deploy" => Deploy(Deploy),
        /// Fail workflow tasks as if the workflow code had raised.
        "workflow_task_failure" => WorkflowTaskFailure(WorkflowTaskFailure),
        /// Keep workflow tasks from the worker until they time out.
        "workflow_task_timeout" => WorkflowTaskTimeout(WorkflowTaskTimeout),
        /// Drop the worker's sticky cache: the next task replays the whole history.
        "sticky_cache_drop" => StickyCacheDrop(StickyCacheDrop),
        /// Answer the workers' calls with RESOURCE_EXHAUSTED or UNAVAILABLE.
        "rpc_error" => RpcError(RpcError),
    }
}

/// What happened when a rule was applied; verification turns it into an "infra #N applied" check.
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
    /// When the fault started, in unix milliseconds by the harness's clock (the clock of the
    /// wire proxies it starts, whose attempt logs it is compared with).
    pub at_unix_ms: Option<u64>,
    /// What was done, or why it was not.
    pub outcome: InfraOutcome,
}

/// What became of an infrastructure fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum InfraOutcome {
    /// Applied and undone; what was done.
    Applied(String),
    /// Its trigger never fired (e.g. the workflow closed first).
    NotTriggered(String),
    /// Applying or undoing it failed.
    Failed(String),
}

/// Applies a rule whose trigger has just fired and records what happened; `began` is when the
/// workflow (or load run) started. Runs to the end even if the caller stops caring, so that a
/// paused server is always resumed.
pub async fn apply(rule: &InfraRule, ctl: &InfraControl<'_>, began: std::time::Instant) -> InfraEvent {
    let started_ms = Some(began.elapsed().as_millis() as u64);
    let at_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64);
    let outcome = match rule.action.fault().apply(ctl, rule.id, rule.duration).await {
        Ok(what) => InfraOutcome::Applied(what),
        Err(e) => InfraOutcome::Failed(e.to_string()),
    };
    InfraEvent {
        id: rule.id,
        rule: rule.describe(),
        started_ms,
        ended_ms: Some(began.elapsed().as_millis() as u64),
        at_unix_ms,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timed_rule_takes_the_kinds_fields_as_an_inline_table() {
        let rule = Trigger::parse_timed(r#"worker_restart after 5s for 20s { every = "4s", share = 0.5 }"#, 2).unwrap();
        assert_eq!(rule.id, 2);
        assert_eq!(rule.trigger, Trigger::After(Duration::from_secs(5)));
        assert_eq!(rule.duration, Duration::from_secs(20));
        let InfraAction::WorkerRestart(restart) = rule.action else {
            panic!("{:?}", rule.action)
        };
        assert_eq!((restart.every, restart.share), (Duration::from_secs(4), 0.5));
        assert!(Trigger::parse_timed("worker_crash after 1s for 2s", 1).is_ok());
    }

    #[test]
    fn a_timed_rule_names_what_is_wrong() {
        let error = |text: &str| Trigger::parse_timed(text, 1).unwrap_err().to_string();
        assert!(error("server_pause after 5s").contains("write KIND after DURATION"));
        assert!(error("server_pause after 5s for 3s every=1s").contains("write KIND after DURATION"));
        assert!(error("server_nap after 5s for 3s").contains("use one of: server_pause, server_restart"));
        let missing = error("worker_restart after 5s for 20s");
        assert!(missing.contains("`worker_restart`: missing field `every`"), "{missing}");
        let unknown = error(r#"worker_restart after 5s for 20s { every = "1s", shares = 1 }"#);
        assert!(unknown.contains("unknown field `shares`"), "{unknown}");
        let range = error(r#"worker_restart after 5s for 20s { every = "1s", share = 2.0 }"#);
        assert!(range.contains("`share`"), "{range}");
        assert!(error("server_pause after soon for 3s").contains("`soon`"));
        let none = error("workflow_task_failure after 1s for 2s { tasks = 0 }");
        assert!(none.contains("nonzero"), "{none}");
    }
}
