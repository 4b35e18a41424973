//! Activity fault kinds and the plan that carries them to the worker.
//!
//! Each fault kind lives in its own file: one serde struct (its fields are its configuration, its
//! doc comments its documentation) implementing [`ActivityFault`], Toxiproxy-style. Adding a kind
//! means one new file plus one line in the [`FaultAction`] list below; the scenario parser and the
//! scenario reference are derived from the declaration ([`crate::kind`]).
//!
//! A [`FaultPlan`] is serialised into a workflow header ([`HEADER_KEY`]) when the runner starts a
//! workflow, so any worker process that executes the activities (in-process or deployed
//! elsewhere) sees the same plan; see [`crate::inject`].

mod delay;
mod drop_heartbeats;
mod error;
mod hang;
mod panic;

pub use delay::DelayFault;
pub use drop_heartbeats::DropHeartbeatsFault;
pub use error::ErrorFault;
pub use hang::HangFault;
pub use panic::{PanicFault, quiet_injected_panics};

use crate::{error::FieldError, failure::FailureKind, kind::kinds};
use futures::future::BoxFuture;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};
use temporalio_sdk::activities::ActivityError;
use tokio_util::sync::CancellationToken;

/// Header under which the fault plan travels with a workflow and its activities.
pub const HEADER_KEY: &str = "temporal-chaos-faults";

/// All faults of one scenario, with the seed that drives probabilistic ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    /// Seed for `probability`; the same seed fires the same faults on the same attempts.
    pub seed: u64,
    /// Rules in file order; every matching rule applies, in this order.
    pub rules: Vec<FaultRule>,
    /// The run's id, which workflow ids contain. It is left out of fault decisions so that the
    /// same seed replays the same fault schedule in every run.
    #[serde(default)]
    pub run_tag: String,
}

impl FaultPlan {
    /// Rules that fire for this attempt of this activity.
    pub fn firing<'a>(&'a self, at: &'a AttemptKey<'a>) -> impl Iterator<Item = &'a FaultRule> {
        self.rules.iter().filter(move |r| self.fires(r, at))
    }

    /// Whether `rule` fires on this attempt, the run tag left out of the workflow id.
    pub fn fires(&self, rule: &FaultRule, at: &AttemptKey<'_>) -> bool {
        if self.run_tag.is_empty() {
            return rule.fires(self.seed, at);
        }
        let stable = at.workflow_id.replace(&self.run_tag, "");
        rule.fires(
            self.seed,
            &AttemptKey {
                workflow_id: &stable,
                ..*at
            },
        )
    }
}

/// Identifies one activity attempt, which is all a fault decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct AttemptKey<'a> {
    /// Workflow that scheduled the activity.
    pub workflow_id: &'a str,
    /// Activity id within that workflow.
    pub activity_id: &'a str,
    /// Registered activity type name.
    pub activity_type: &'a str,
    /// Attempt number, starting at 1.
    pub attempt: u32,
}

/// One `[[fault]]` entry of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// 1-based position in the scenario file; shown in injected messages as `#id`.
    pub id: usize,
    /// Activity type the rule targets, or `*` for any.
    pub activity: String,
    /// Which attempts it targets.
    pub attempts: AttemptSelector,
    /// Chance to fire on a targeted attempt; `None` means always.
    pub probability: Option<f64>,
    /// What happens when it fires.
    pub action: FaultAction,
}

impl FaultRule {
    /// Whether this rule targets the activity type at all.
    pub fn targets(&self, activity_type: &str) -> bool {
        self.activity == "*" || self.activity == activity_type
    }

    /// Whether the rule fires on this attempt. Deterministic in (seed, attempt key), so the
    /// worker that injects and the verifier that reads the history agree without talking.
    pub fn fires(&self, seed: u64, at: &AttemptKey<'_>) -> bool {
        if !self.targets(at.activity_type) || !self.attempts.matches(at.attempt) {
            return false;
        }
        match self.probability {
            None => true,
            Some(p) => {
                let mut rng = StdRng::seed_from_u64(attempt_seed(seed, self.id, at));
                rng.random::<f64>() < p
            }
        }
    }

    /// Text every failure injected by this rule carries, so history can prove it fired.
    pub fn marker(&self) -> String {
        format!("[chaos fault #{}]", self.id)
    }

    /// Human summary, e.g. `error InvalidInput on risky attempts 1,2`.
    pub fn describe(&self) -> String {
        let chance = self
            .probability
            .map(|p| format!(" with probability {p}"))
            .unwrap_or_default();
        format!(
            "#{} {} on {} attempts {}{chance}",
            self.id,
            self.action.fault().describe(),
            self.activity,
            self.attempts
        )
    }
}

/// FNV-1a over the attempt key: a stable per-attempt seed, unlike `std`'s hasher.
fn attempt_seed(seed: u64, rule: usize, at: &AttemptKey<'_>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    let parts = [
        at.workflow_id.as_bytes(),
        at.activity_id.as_bytes(),
        &at.attempt.to_le_bytes(),
        &rule.to_le_bytes(),
    ];
    for byte in parts.into_iter().flat_map(|p| p.iter().chain([&0xffu8])) {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Attempts a rule targets: `"all"`, `[1, 3]`, `"2..4"` (inclusive) or `"from 2"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptSelector {
    /// Every attempt.
    All,
    /// Exactly these attempts.
    List(Vec<u32>),
    /// From `from` up to `to` (inclusive; open-ended when `None`).
    Range {
        /// First attempt targeted.
        from: u32,
        /// Last attempt targeted, if any.
        to: Option<u32>,
    },
}

impl AttemptSelector {
    /// Parses the text forms `all`, `N`, `N..M` and `from N`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let t = text.trim();
        let number = |s: &str| -> Result<u32, SelectorError> {
            match s.trim().parse::<u32>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(SelectorError::NotAnAttempt(s.trim().to_owned())),
            }
        };
        if t == "all" {
            Ok(Self::All)
        } else if let Some(rest) = t.strip_prefix("from ") {
            Ok(Self::Range {
                from: number(rest)?,
                to: None,
            })
        } else if let Some((a, b)) = t.split_once("..") {
            let (from, to) = (number(a)?, number(b.trim_start_matches('='))?);
            if to < from {
                return Err(SelectorError::Empty(t.to_owned()));
            }
            Ok(Self::Range { from, to: Some(to) })
        } else {
            number(t)
                .map(|n| Self::List(vec![n]))
                .map_err(|_| SelectorError::Unrecognised(t.to_owned()))
        }
    }

    /// Whether attempt `n` is targeted.
    pub fn matches(&self, n: u32) -> bool {
        match self {
            Self::All => true,
            Self::List(l) => l.contains(&n),
            Self::Range { from, to } => n >= *from && to.is_none_or(|t| n <= t),
        }
    }

    /// The first attempt targeted.
    pub fn first(&self) -> u32 {
        match self {
            Self::All => 1,
            Self::List(l) => l.iter().copied().min().unwrap_or(1),
            Self::Range { from, .. } => *from,
        }
    }
}

impl std::fmt::Display for AttemptSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::List(l) => {
                let s: Vec<String> = l.iter().map(u32::to_string).collect();
                f.write_str(&s.join(","))
            }
            Self::Range { from, to: Some(to) } => write!(f, "{from}..{to}"),
            Self::Range { from, to: None } => write!(f, "from {from}"),
        }
    }
}

/// Everything a fault needs to know about the attempt it runs in.
#[derive(Debug, Clone)]
pub struct AttemptContext {
    /// The rule's marker, to put into injected failure messages.
    pub marker: String,
    /// Attempt number, starting at 1.
    pub attempt: u32,
    /// When the server gives up on this attempt (the first of its close and heartbeat
    /// deadlines), if known.
    pub deadline: Option<SystemTime>,
    /// Cancelled when the worker shuts down.
    pub shutdown: CancellationToken,
}

/// How long past the attempt's deadline a held attempt is released. By then the server has timed
/// the attempt out and discards whatever it returns.
const RELEASE_AFTER_DEADLINE: Duration = Duration::from_secs(1);

/// Upper bound of a held attempt whose deadline could not be learned.
const UNKNOWN_DEADLINE_BOUND: Duration = Duration::from_secs(600);

/// The failure a held attempt ends with once it is over (the server has discarded it already, or
/// the worker is shutting down).
fn released(marker: &str, what: &str) -> ActivityError {
    temporalio_sdk::ApplicationFailure::new(anyhow::anyhow!("{}", released_message(marker, what))).into()
}

/// The message of [`released`]: history shows it when the worker shut down (a restart, a deploy)
/// while the fault held the attempt, which is the fault's own trace.
fn released_message(marker: &str, what: &str) -> String {
    format!("{marker} {what} released: the attempt is over")
}

impl AttemptContext {
    /// Resolves once nothing this attempt does can matter any more: just after its deadline, or
    /// at once when the worker shuts down. A fault that holds an attempt must end by then, so
    /// that no fault outlives the attempt the server has already given up on.
    pub async fn over(&self) {
        let left = self.deadline.map_or(UNKNOWN_DEADLINE_BOUND, |d| {
            d.duration_since(SystemTime::now()).unwrap_or_default() + RELEASE_AFTER_DEADLINE
        });
        tokio::select! {
            () = tokio::time::sleep(left) => {}
            () = self.shutdown.cancelled() => {}
        }
    }
}

/// One kind of activity fault.
pub trait ActivityFault: Send + Sync {
    /// Runs inside the attempt, before the activity. `Ok(())` lets the activity run afterwards;
    /// an error ends the attempt with it.
    fn inject<'a>(&'a self, attempt: &'a AttemptContext) -> BoxFuture<'a, Result<(), ActivityError>>;

    /// Short description for reports, e.g. `delay 2s`.
    fn describe(&self) -> String;

    /// Whether a failure of `kind` with `message`, recorded in history for an attempt this fault
    /// fired on, is what this fault produces. `marker` is the rule's marker.
    fn explains(&self, kind: &FailureKind, message: &str, marker: &str) -> bool;

    /// Whether a last attempt that this fault fired on may still have completed, having taken
    /// `took` from start to close. Only faults that slow an attempt down allow that.
    fn explains_completed_attempt(&self, _took: std::time::Duration) -> bool {
        false
    }

    /// Whether, firing on an attempt, this fault ends all retries (given the retry policy's
    /// non-retryable error types).
    fn stops_retries(&self, _non_retryable_types: &[String]) -> bool {
        false
    }

    /// Whether the harness worker's SDK interceptors can inject it (`false`: only the wire proxy
    /// can, as it needs a hold on calls the activity makes itself, e.g. heartbeats).
    fn in_the_sdk(&self) -> bool {
        true
    }

    /// What this fault does when the wire proxy injects it (into a worker in any language);
    /// `None` when only the harness worker's SDK interceptors can (it needs code in the worker).
    /// `marker` is the rule's marker.
    fn on_the_wire(&self, marker: &str) -> Option<WireEffect>;

    /// Checks what the field types alone cannot (e.g. a duration above zero).
    fn validate(&self) -> Result<(), FieldError> {
        Ok(())
    }
}

kinds! {
    /// The fault kinds a scenario can use, tagged by `kind` in files and headers.
    pub enum FaultAction: dyn ActivityFault {
        /// Fail the attempt with an application error.
        "error" => Error(ErrorFault),
        /// Sleep before running the activity.
        "delay" => Delay(DelayFault),
        /// Never finish and never heartbeat, until the server has timed the attempt out.
        "hang" => Hang(HangFault),
        /// Panic inside the activity.
        "panic" => Panic(PanicFault),
        "drop_heartbeats" => DropHeartbeats(DropHeartbeatsFault),
    }
}

/// A fault as the wire proxy applies it to one activity attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireEffect {
    /// The proxy fails the attempt upstream itself; the worker never sees the task.
    Fail {
        /// Application failure type.
        error_type: String,
        /// Failure message, the rule's marker in front.
        message: String,
        /// Whether the failure is non-retryable.
        non_retryable: bool,
    },
    /// The worker's answer is held this long, then forwarded.
    Delay {
        /// How long.
        #[serde(with = "humantime_serde")]
        duration: Duration,
    },
    /// The worker's answer and heartbeats are swallowed; the server times the attempt out.
    Hang,
    /// The worker's heartbeats are swallowed; its answer passes.
    DropHeartbeats,
}

impl WireEffect {
    /// Short description, e.g. `fail CardDeclined` or `delay 2s`.
    pub fn describe(&self) -> String {
        match self {
            WireEffect::Fail { error_type, .. } => format!("fail {error_type}"),
            WireEffect::Delay { duration } => format!("delay {}", humantime::format_duration(*duration)),
            WireEffect::Hang => "hang".into(),
            WireEffect::DropHeartbeats => "drop heartbeats".into(),
        }
    }
}

/// An attempt selector that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Not a whole number of 1 or more.
    #[error("`{0}` is not an attempt number (1 or more)")]
    NotAnAttempt(String),
    /// A range whose end is before its start.
    #[error("range `{0}` is empty")]
    Empty(String),
    /// Not one of the forms.
    #[error("`{0}` is not an attempt selector: use \"all\", [1, 2], \"2..4\" or \"from 3\"")]
    Unrecognised(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(attempt: u32) -> AttemptKey<'static> {
        AttemptKey {
            workflow_id: "wf",
            activity_id: "1",
            activity_type: "risky",
            attempt,
        }
    }

    #[test]
    fn selectors_parse_and_match() {
        assert_eq!(AttemptSelector::parse("all"), Ok(AttemptSelector::All));
        let r = AttemptSelector::parse("2..3").unwrap();
        assert!(!r.matches(1) && r.matches(2) && r.matches(3) && !r.matches(4));
        let from = AttemptSelector::parse("from 2").unwrap();
        assert!(!from.matches(1) && from.matches(200));
        assert_eq!(AttemptSelector::parse("4"), Ok(AttemptSelector::List(vec![4])));
        assert!(
            AttemptSelector::parse("3..1")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(AttemptSelector::parse("0").is_err());
        assert!(
            AttemptSelector::parse("sometimes")
                .unwrap_err()
                .to_string()
                .contains("\"all\"")
        );
    }

    #[test]
    fn probability_is_reproducible_and_roughly_right() {
        let rule = FaultRule {
            id: 1,
            activity: "risky".into(),
            attempts: AttemptSelector::All,
            probability: Some(0.3),
            action: FaultAction::Panic(PanicFault { message: "boom".into() }),
        };
        let fired: Vec<bool> = (1..=1000).map(|n| rule.fires(7, &key(n))).collect();
        let again: Vec<bool> = (1..=1000).map(|n| rule.fires(7, &key(n))).collect();
        assert_eq!(fired, again, "same seed, same schedule");
        let count = fired.iter().filter(|f| **f).count();
        assert!((230..370).contains(&count), "fired {count} of 1000 at p=0.3");
        let other: Vec<bool> = (1..=1000).map(|n| rule.fires(8, &key(n))).collect();
        assert_ne!(fired, other, "another seed, another schedule");
        // Two runs differ only in the run tag inside workflow ids: same schedule.
        let plan = |tag: &str| FaultPlan {
            seed: 7,
            rules: vec![rule.clone()],
            run_tag: tag.into(),
        };
        let in_run = |tag: &str| -> Vec<bool> {
            let id = format!("wf-{tag}-child");
            (1..=200)
                .map(|n| {
                    plan(tag).fires(
                        &rule,
                        &AttemptKey {
                            workflow_id: &id,
                            ..key(n)
                        },
                    )
                })
                .collect()
        };
        assert_eq!(in_run("run-a"), in_run("run-b"));
    }

    #[test]
    fn rules_target_their_activity_only() {
        let rule = FaultRule {
            id: 2,
            activity: "add".into(),
            attempts: AttemptSelector::List(vec![1]),
            probability: None,
            action: FaultAction::Hang(HangFault {}),
        };
        assert!(!rule.fires(0, &key(1)));
        let plan = FaultPlan {
            seed: 0,
            rules: vec![rule],
            run_tag: String::new(),
        };
        let add = AttemptKey {
            activity_type: "add",
            ..key(1)
        };
        assert_eq!(plan.firing(&add).count(), 1);
    }
}
