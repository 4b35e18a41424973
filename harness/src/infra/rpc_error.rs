//! `rpc_error`: the workers' calls answered with `RESOURCE_EXHAUSTED` or `UNAVAILABLE`.

use super::{CallEffect, CallFault, Capability, InfraControl, InfraError, InfraFault};
use crate::error::FieldError;
use futures::future::{BoxFuture, FutureExt};
use rand::{Rng, SeedableRng, rngs::StdRng};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

/// The calls a worker makes, by gRPC method of the WorkflowService, that `methods` may name.
pub const WORKER_METHODS: [&str; 17] = [
    "PollWorkflowTaskQueue",
    "PollActivityTaskQueue",
    "RespondWorkflowTaskCompleted",
    "RespondWorkflowTaskFailed",
    "RespondActivityTaskCompleted",
    "RespondActivityTaskCompletedById",
    "RespondActivityTaskFailed",
    "RespondActivityTaskFailedById",
    "RespondActivityTaskCanceled",
    "RespondActivityTaskCanceledById",
    "RecordActivityTaskHeartbeat",
    "RecordActivityTaskHeartbeatById",
    "RespondQueryTaskCompleted",
    "PollNexusTaskQueue",
    "DescribeNamespace",
    "GetSystemInfo",
    "ShutdownWorker",
];

/// The status the calls are answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RpcCode {
    /// `RESOURCE_EXHAUSTED` (8): the frontend throttles (a namespace's RPS limit, a busy shard).
    ResourceExhausted,
    /// `UNAVAILABLE` (14): the frontend is going away or cannot be reached.
    Unavailable,
}

impl RpcCode {
    /// The gRPC code.
    pub fn code(self) -> i32 {
        match self {
            RpcCode::ResourceExhausted => 8,
            RpcCode::Unavailable => 14,
        }
    }

    fn name(self) -> &'static str {
        match self {
            RpcCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            RpcCode::Unavailable => "UNAVAILABLE",
        }
    }
}

/// The wire proxy answers the workers' calls (those of `methods`, or all) with `code` instead
/// of forwarding them, each with the chance `probability`, for the duration: throttling, or a
/// frontend going away. The SDK must retry and lose nothing; the report gives the errors by
/// method and how long each cost the worker before the same call went through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RpcError {
    /// "resource_exhausted" or "unavailable".
    pub code: RpcCode,
    /// The calls it answers, by gRPC method (e.g. "PollActivityTaskQueue",
    /// "RespondActivityTaskCompleted"); none given: every call the workers make.
    #[serde(default)]
    pub methods: Vec<String>,
    /// The chance that it answers a call it targets, above 0 and at most 1.
    #[serde(default = "always")]
    pub probability: f64,
}

fn always() -> f64 {
    1.0
}

/// The call fault installed in the proxy.
struct Refuse {
    rule: usize,
    fault: RpcError,
    rng: Mutex<StdRng>,
}

impl CallFault for Refuse {
    fn refuse(&self, method: &str) -> Option<(i32, String)> {
        let fault = &self.fault;
        if !fault.methods.is_empty() && !fault.methods.iter().any(|m| m == method) {
            return None;
        }
        let roll: f64 = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .random();
        (roll < fault.probability).then(|| {
            (
                fault.code.code(),
                format!(
                    "[chaos infra #{}] {} injected by temporal-chaos",
                    self.rule,
                    fault.code.name()
                ),
            )
        })
    }
}

impl InfraFault for RpcError {
    fn needs(&self) -> Capability {
        Capability::WorkerCalls
    }

    fn apply<'a>(
        &'a self,
        ctl: &'a InfraControl<'a>,
        rule: usize,
        duration: Duration,
    ) -> BoxFuture<'a, Result<String, InfraError>> {
        async move {
            let refuse = Arc::new(Refuse {
                rule,
                fault: self.clone(),
                rng: Mutex::new(StdRng::seed_from_u64(rule as u64)),
            });
            let events = ctl.with_call_fault(rule, refuse, duration).await?;
            let mut by_method: BTreeMap<&str, usize> = BTreeMap::new();
            for e in &events {
                if let CallEffect::Refused { method, .. } = &e.what {
                    *by_method.entry(method).or_default() += 1;
                }
            }
            if by_method.is_empty() {
                return Err(InfraError::NoTraffic(format!(
                    "no call it targets crossed the wire proxy within {} (a poll already open when the window began \
                     is not refused, and activities dispatched eagerly with a workflow task's completion need no \
                     PollActivityTaskQueue)",
                    humantime::format_duration(duration)
                )));
            }
            let counts: Vec<String> = by_method.iter().map(|(m, n)| format!("{m} ×{n}")).collect();
            Ok(format!(
                "{} call(s) answered {}: {}",
                events.len(),
                self.code.name(),
                counts.join(", ")
            ))
        }
        .boxed()
    }

    fn describe(&self) -> String {
        let methods = match self.methods.is_empty() {
            true => "every call".to_owned(),
            false => self.methods.join(", "),
        };
        let share = match self.probability < 1.0 {
            true => format!(" ({:.0}%)", self.probability * 100.0),
            false => String::new(),
        };
        format!("rpc_error {} on {methods}{share}", self.code.name())
    }

    fn validate(&self) -> Result<(), FieldError> {
        if !(self.probability > 0.0 && self.probability <= 1.0) {
            return Err(FieldError::new(
                "probability",
                "`probability` is the chance a targeted call is refused: above 0, at most 1",
            ));
        }
        if let Some(unknown) = self.methods.iter().find(|m| !WORKER_METHODS.contains(&m.as_str())) {
            return Err(FieldError::new(
                "methods",
                format!(
                    "`{unknown}` is not a call workers make; use any of: {}",
                    WORKER_METHODS.join(", ")
                ),
            ));
        }
        Ok(())
    }
}
