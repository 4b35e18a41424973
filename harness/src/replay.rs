//! `chaos replay`: every history a run recorded, replayed against the current workflow code with
//! the SDK's replayer. A workflow change that no longer produces the recorded commands (a
//! nondeterminism) fails the replay, naming the workflow and the event where it diverged.
//!
//! `chaos run` writes the raw histories to `<report dir>/histories/<workflow-id>.json`
//! ([`crate::history::HistoryFacts::write_raw`]); this module reads them back.

use crate::{
    history::{RAW_HISTORIES_DIR, USER_HISTORIES_DIR, json},
    worker::register_workflows,
};
use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};
use temporalio_client::WorkflowHistory;
use temporalio_common::protos::temporal::api::{
    enums::v1::EventType,
    history::v1::{History, HistoryEvent, history_event::Attributes},
};
use temporalio_sdk::{
    WorkflowRegistrationError,
    workflow_replayer::{WorkflowReplayError, WorkflowReplayFailure, WorkflowReplayer, WorkflowReplayerOptions},
};

/// Why histories could not be replayed at all. A history that replays differently is not an
/// error here but a [`Divergence`] in the [`ReplaySummary`].
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The folder has no recorded histories of the harness's own workflows.
    #[error(
        "{} holds no recorded histories of the harness's own workflows (no {RAW_HISTORIES_DIR}/*.json in it); give \
         the report folder of one run, such as reports/<run-id> or reports/latest, written by `chaos run`{}",
        dir.display(),
        if dir.join(RAW_HISTORIES_DIR).join(USER_HISTORIES_DIR).is_dir() {
            format!(
                ". The histories of your own workflows are in {}/{USER_HISTORIES_DIR}/, in Temporal's JSON: replay them \
                 with your SDK's replayer, against your workflow code",
                RAW_HISTORIES_DIR
            )
        } else {
            String::new()
        }
    )]
    NoHistories {
        /// The folder given.
        dir: PathBuf,
    },
    /// A folder or history file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A history file is not a workflow history in Temporal's JSON form.
    #[error(
        "{} is not a workflow history in Temporal's JSON form (as `chaos run` and `temporal workflow show --output json` \
         write it): {source}",
        path.display()
    )]
    Decode {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: json::JsonError,
    },
    /// A history file that cannot be replayed as it is.
    #[error("{} cannot be replayed: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The replayer did not finish a history in time.
    #[error(
        "replaying {} did not finish within {}s; the history may be truncated or malformed",
        path.display(),
        REPLAY_LIMIT.as_secs()
    )]
    Stuck {
        /// The file.
        path: PathBuf,
    },
    /// The workflows could not be registered on the replayer.
    #[error("cannot register the workflows to replay against: {0}")]
    Register(#[from] WorkflowRegistrationError),
    /// The replayer could not be set up or stopped before giving a verdict.
    #[error("the replayer failed on {}: {source}", path.display())]
    Replayer {
        /// The history file being replayed (or the folder, when setting up failed).
        path: PathBuf,
        /// The SDK's error.
        #[source]
        source: WorkflowReplayError,
    },
}

/// One event of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRef {
    /// Event id.
    pub id: i64,
    /// Event type, such as `ActivityTaskScheduled`.
    pub event_type: String,
}

impl EventRef {
    fn of(event: &HistoryEvent) -> Self {
        Self {
            id: event.event_id,
            event_type: format!("{:?}", event.event_type()),
        }
    }
}

impl fmt::Display for EventRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event {} ({})", self.id, self.event_type)
    }
}

/// How replaying a history went wrong.
#[derive(Debug, Clone)]
pub struct Divergence {
    /// The SDK's verdict: nondeterminism, a failed workflow task, an invalid history, ...
    pub failure: WorkflowReplayFailure,
    /// The verdict in one line: for a nondeterminism, core's own sentence, without the failure
    /// structure the SDK wraps it in.
    pub detail: String,
    /// The recorded event the workflow code diverged at, when the SDK's message identifies it.
    pub event: Option<EventRef>,
}

/// One history and how it replayed.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// Workflow id (from the history's start event, else the file name).
    pub workflow_id: String,
    /// Workflow type.
    pub workflow_type: String,
    /// The history file.
    pub file: PathBuf,
    /// Number of events.
    pub events: usize,
    /// Workflow tasks the history holds; with none, there was nothing to replay.
    pub tasks: usize,
    /// What went wrong; `None` when the code reproduced the history.
    pub divergence: Option<Divergence>,
}

/// Every history of a report folder and how each replayed.
#[derive(Debug, Clone)]
pub struct ReplaySummary {
    /// The report folder.
    pub dir: PathBuf,
    /// One entry per history file, in file-name order.
    pub histories: Vec<Replayed>,
}

impl ReplaySummary {
    /// Whether every history replayed without divergence.
    pub fn passed(&self) -> bool {
        self.histories.iter().all(|h| h.divergence.is_none())
    }

    /// The last line of the summary: `replayed N histories from DIR: N deterministic, N diverged`.
    pub fn totals(&self) -> String {
        let failed = self.diverged().count();
        format!(
            "replayed {} histories from {}: {} deterministic, {failed} diverged",
            self.histories.len(),
            self.dir.display(),
            self.histories.len() - failed
        )
    }

    /// The histories that diverged.
    pub fn diverged(&self) -> impl Iterator<Item = &Replayed> {
        self.histories.iter().filter(|h| h.divergence.is_some())
    }
}

impl fmt::Display for ReplaySummary {
    /// One line per history, then a total line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for h in &self.histories {
            match &h.divergence {
                None => writeln!(
                    f,
                    "ok   {} ({}, {} events, {} workflow tasks)",
                    h.workflow_id, h.workflow_type, h.events, h.tasks
                )?,
                Some(d) => {
                    let at = match (&d.event, &d.failure) {
                        (Some(event), _) => format!(" at {event}"),
                        (None, WorkflowReplayFailure::Nondeterminism { .. }) => {
                            " at an event the SDK did not name".to_owned()
                        }
                        (None, _) => String::new(),
                    };
                    writeln!(f, "FAIL {} ({}){at}: {}", h.workflow_id, h.workflow_type, d.detail)?;
                }
            }
        }
        writeln!(f, "{}", self.totals())
    }
}

/// Replays every history under `<dir>/histories/` against the demo workflows, registered exactly
/// as the chaos worker registers them.
pub async fn check_report(dir: &Path) -> Result<ReplaySummary, ReplayError> {
    check_report_with(dir, register_workflows).await
}

/// [`check_report`] against the workflows `register` puts on the replayer (a changed version of
/// a workflow, for instance).
pub async fn check_report_with(
    dir: &Path,
    register: impl FnOnce(&mut WorkflowReplayerOptions) -> Result<(), WorkflowRegistrationError>,
) -> Result<ReplaySummary, ReplayError> {
    let files = history_files(dir)?;
    let mut options = WorkflowReplayerOptions::new().build();
    register(&mut options)?;
    let replayer = WorkflowReplayer::new(options).map_err(|source| ReplayError::Replayer {
        path: dir.to_owned(),
        source,
    })?;
    let mut histories = Vec::with_capacity(files.len());
    for file in files {
        histories.push(replay_file(&replayer, file).await?);
    }
    Ok(ReplaySummary {
        dir: dir.to_owned(),
        histories,
    })
}

/// The `*.json` files of `<dir>/histories/`, sorted; an error when there are none.
fn history_files(dir: &Path) -> Result<Vec<PathBuf>, ReplayError> {
    let folder = dir.join(RAW_HISTORIES_DIR);
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ReplayError::NoHistories { dir: dir.to_owned() });
        }
        Err(source) => return Err(ReplayError::Read { path: folder, source }),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| ReplayError::Read {
                path: folder.clone(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(ReplayError::NoHistories { dir: dir.to_owned() });
    }
    files.sort();
    Ok(files)
}

/// How long one history may take to replay before it counts as stuck: the SDK waits forever on
/// some malformed histories. (The 22 histories of the shipped suite replay in well under a second
/// in all.)
const REPLAY_LIMIT: Duration = Duration::from_secs(60);

async fn replay_file(replayer: &WorkflowReplayer, file: PathBuf) -> Result<Replayed, ReplayError> {
    let bytes = std::fs::read(&file).map_err(|source| ReplayError::Read {
        path: file.clone(),
        source,
    })?;
    // Temporal's JSON (`chaos run` writes it; so do the `temporal` CLI and the SDKs); reports of
    // earlier versions hold the Rust SDK's own serde form.
    let events = json::from_json(&bytes).or_else(|standard| {
        serde_json::from_slice::<History>(&bytes)
            .map(|h| h.events)
            .map_err(|_| ReplayError::Decode {
                path: file.clone(),
                source: standard,
            })
    })?;
    let mut history = History { events };
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (workflow_id, workflow_type) = identify(&mut history, stem).map_err(|reason| ReplayError::Invalid {
        path: file.clone(),
        reason,
    })?;
    let events = history.events.clone();
    let tasks = events
        .iter()
        .filter(|e| e.event_type() == EventType::WorkflowTaskStarted)
        .count();
    let mut replayed = Replayed {
        workflow_id,
        workflow_type,
        file,
        events: events.len(),
        tasks,
        divergence: None,
    };
    // No workflow task ran, so the code produced no command to compare (and the SDK would wait
    // for a task forever).
    if tasks == 0 {
        return Ok(replayed);
    }
    // One history per replay: the SDK matches verdicts to histories by the order its workflows
    // are evicted, which is only certain for a single history.
    let results = tokio::time::timeout(
        REPLAY_LIMIT,
        replayer.replay_workflows([WorkflowHistory::from(history)]),
    )
    .await
    .map_err(|_| ReplayError::Stuck {
        path: replayed.file.clone(),
    })?
    .map_err(|source| ReplayError::Replayer {
        path: replayed.file.clone(),
        source,
    })?;
    replayed.divergence = results.into_iter().find_map(|r| r.replay_failure).map(|failure| {
        let reason = core_reason(&failure);
        let (detail, event) = match &failure {
            WorkflowReplayFailure::Nondeterminism { .. } => {
                (format!("nondeterministic: {reason}"), divergent_event(reason, &events))
            }
            WorkflowReplayFailure::WorkflowTaskFailure { .. } => (format!("workflow task failed: {reason}"), None),
            other => (other.to_string(), None),
        };
        Divergence { failure, detail, event }
    });
    Ok(replayed)
}

/// The workflow id and type from the start event, which must come first and carry the run id
/// (the SDK's replayer panics and waits forever otherwise). A start event without the workflow
/// id (older servers leave it out) gets `fallback_id`, so workflow code that reads its own id
/// (the orchestration names its children after it) replays as it ran.
fn identify(history: &mut History, fallback_id: String) -> Result<(String, String), String> {
    let first = history.events.first_mut().ok_or("it has no events")?;
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) = first.attributes.as_mut() else {
        return Err(format!(
            "its first event is {:?}, not WorkflowExecutionStarted",
            first.event_type()
        ));
    };
    if a.original_execution_run_id.is_empty() {
        return Err("its WorkflowExecutionStarted event has no original_execution_run_id".into());
    }
    if a.workflow_id.is_empty() {
        a.workflow_id = fallback_id;
    }
    let workflow_type = a.workflow_type.as_ref().map(|t| t.name.clone()).unwrap_or_default();
    Ok((a.workflow_id.clone(), workflow_type))
}

/// Core's own sentence inside an SDK replay failure, which wraps it in the Debug form of the
/// workflow task failure (`... message: "[TMPRL1100] Nondeterminism error: <reason>", ...`).
fn core_reason(failure: &WorkflowReplayFailure) -> &str {
    let message = match failure {
        WorkflowReplayFailure::Nondeterminism { message }
        | WorkflowReplayFailure::WorkflowTaskFailure { message }
        | WorkflowReplayFailure::InvalidHistory { message }
        | WorkflowReplayFailure::Internal { message, .. } => message.as_str(),
        _ => return "",
    };
    let inner = message.split_once("message: \"").map_or(message, |(_, rest)| {
        rest.split_once("\", source: ").map_or(rest, |(m, _)| m)
    });
    inner
        .split_once("Nondeterminism error: ")
        .map_or(inner, |(_, reason)| reason)
}

/// The recorded event a nondeterminism is about. Core names it as `HistoryEvent(id: N, Type)`
/// when a machine is fed an event it does not expect; an activity or child workflow whose id or
/// type changed is named by the recorded id or type (`<Kind> id|type of scheduled event 'x' ...`),
/// which identifies the event when only one scheduled event carries it.
fn divergent_event(message: &str, events: &[HistoryEvent]) -> Option<EventRef> {
    let by_id = |id: i64| events.iter().find(|e| e.event_id == id).map(EventRef::of);
    for marker in ["HistoryEvent(id: ", "event_id: "] {
        if let Some(id) = message
            .split_once(marker)
            .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse().ok())
        {
            return by_id(id);
        }
    }
    let (_, rest) = message.split_once(" of scheduled event '")?;
    let (recorded, _) = rest.split_once('\'')?;
    let field = |e: &HistoryEvent| -> Option<String> {
        match e.attributes.as_ref()? {
            Attributes::ActivityTaskScheduledEventAttributes(a) if message.starts_with("Activity id") => {
                Some(a.activity_id.clone())
            }
            Attributes::ActivityTaskScheduledEventAttributes(a) if message.starts_with("Activity type") => {
                a.activity_type.as_ref().map(|t| t.name.clone())
            }
            Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(a)
                if message.starts_with("Child workflow id") =>
            {
                Some(a.workflow_id.clone())
            }
            Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(a)
                if message.starts_with("Child workflow type") =>
            {
                a.workflow_type.as_ref().map(|t| t.name.clone())
            }
            _ => None,
        }
    };
    let mut matching = events.iter().filter(|e| field(e).as_deref() == Some(recorded));
    match (matching.next(), matching.next()) {
        (Some(only), None) => Some(EventRef::of(only)),
        _ => None,
    }
}
