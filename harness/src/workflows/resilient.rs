//! Resilient call: one risky activity; when it finally fails, the *kind* of failure picks the path.

use super::{DemoActivities, activity_options};
use crate::plan::ResilientInput;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use temporalio_common::error::IncomingError;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityExecutionError, ActivityOptions, WorkflowContext, WorkflowResult};

/// Which path produced the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Path {
    /// The risky call succeeded.
    #[serde(rename = "primary")]
    Primary,
    /// The risky call timed out; fallback A answered.
    #[serde(rename = "fallback-A")]
    FallbackA,
    /// The risky call failed with a configured error type; fallback B answered.
    #[serde(rename = "fallback-B")]
    FallbackB,
}

/// Result of the resilient workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResilientOutput {
    /// Path taken.
    pub path: Path,
    /// The answer.
    pub value: i64,
    /// Why a fallback ran (empty on the primary path).
    pub reason: String,
}

/// Options of the fallback activities: they are local and cheap, so short and few retries.
fn fallback_options() -> ActivityOptions {
    ActivityOptions::start_to_close_timeout(Duration::from_secs(5))
}

/// The error-handling workflow.
#[workflow]
#[derive(Default)]
pub struct ResilientCall;

#[workflow_methods]
impl ResilientCall {
    /// Runs the risky call and picks a fallback by failure kind.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: ResilientInput) -> WorkflowResult<ResilientOutput> {
        let primary = ctx
            .execute_activity(DemoActivities::risky, input.value, activity_options(&input.activity))
            .await;
        let failure = match primary {
            Ok(value) => {
                return Ok(ResilientOutput {
                    path: Path::Primary,
                    value,
                    reason: String::new(),
                });
            }
            Err(ActivityExecutionError::Failed(f)) => f,
            Err(other) => return Err(other.into()),
        };
        // Decide on the cause, not on "any error": a timeout and a rejected input need
        // different answers, and anything unexpected must surface as a failed workflow.
        let (path, reason) = match failure.cause() {
            Some(IncomingError::Timeout(t)) => (Path::FallbackA, format!("{:?} timeout", t.timeout_type())),
            Some(IncomingError::Application(a))
                if a.type_name()
                    .is_some_and(|t| input.fallback_b_error_types.iter().any(|b| b == t)) =>
            {
                (
                    Path::FallbackB,
                    format!("application error {}", a.type_name().unwrap_or_default()),
                )
            }
            _ => return Err(ActivityExecutionError::Failed(failure).into()),
        };
        let value = match path {
            Path::FallbackA => {
                ctx.execute_activity(DemoActivities::fallback_a, input.value, fallback_options())
                    .await?
            }
            _ => {
                ctx.execute_activity(DemoActivities::fallback_b, input.value, fallback_options())
                    .await?
            }
        };
        Ok(ResilientOutput { path, value, reason })
    }
}
