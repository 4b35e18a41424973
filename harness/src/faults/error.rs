//! `error`: the attempt fails with an application error of a chosen type.

use super::{ActivityFault, AttemptContext, WireEffect};
use crate::failure::FailureKind;
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_sdk::{ApplicationFailure, activities::ActivityError};

/// Fails the attempt with an application error (`ApplicationFailure`) of a chosen type, as a
/// failing downstream service would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorFault {
    /// Message of the failure; the rule's marker `[chaos fault #N]` is put in front.
    #[serde(default = "default_message")]
    pub message: String,
    /// Application error type, matched by retry policies (`non_retryable_types`) and fallbacks.
    #[serde(rename = "type")]
    pub error_type: String,
    /// Marks the failure itself non-retryable, whatever the retry policy says.
    #[serde(default)]
    pub non_retryable: bool,
}

fn default_message() -> String {
    "injected error".into()
}

impl ActivityFault for ErrorFault {
    fn inject<'a>(&'a self, at: &'a AttemptContext) -> BoxFuture<'a, Result<(), ActivityError>> {
        let failure = ApplicationFailure::builder(format!("{} {}", at.marker, self.message))
            .type_name(self.error_type.clone())
            .non_retryable(self.non_retryable)
            .build();
        futures::future::ready(Err(failure.into())).boxed()
    }

    fn describe(&self) -> String {
        let retry = if self.non_retryable { " (non-retryable)" } else { "" };
        format!("error {}{retry}", self.error_type)
    }

    fn explains(&self, kind: &FailureKind, message: &str, marker: &str) -> bool {
        *kind == FailureKind::Error(self.error_type.clone()) && message.contains(marker)
    }

    fn on_the_wire(&self, marker: &str) -> Option<WireEffect> {
        Some(WireEffect::Fail {
            error_type: self.error_type.clone(),
            message: format!("{marker} {}", self.message),
            non_retryable: self.non_retryable,
        })
    }

    fn stops_retries(&self, non_retryable_types: &[String]) -> bool {
        self.non_retryable || non_retryable_types.contains(&self.error_type)
    }
}
