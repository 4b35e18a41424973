//! `error`: the attempt fails with an application error of a chosen type.

use super::{ActivityFault, AttemptContext, FaultFields, FieldError};
use crate::{history::ObservedFailure, plan::FailureKind};
use futures::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use temporalio_sdk::{ApplicationFailure, activities::ActivityError};

/// Fails the attempt with `ApplicationFailure { type: error_type, non_retryable }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFault {
    /// Message of the failure (the rule's marker is put in front).
    pub message: String,
    /// Application error type, matched by retry policies and fallbacks.
    pub error_type: String,
    /// Marks the failure itself non-retryable, whatever the retry policy says.
    pub non_retryable: bool,
}

impl ErrorFault {
    pub(super) const FIELDS: &'static [&'static str] = &["message", "type", "non_retryable"];

    pub(super) fn from_fields(f: &FaultFields) -> Result<Self, FieldError> {
        Ok(Self {
            message: f.message.clone().unwrap_or_else(|| "injected error".into()),
            error_type: f
                .error_type
                .clone()
                .ok_or_else(|| FieldError::new("kind", "kind `error` needs a `type` (the application error type)"))?,
            non_retryable: f.non_retryable.unwrap_or(false),
        })
    }
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

    fn explains(&self, failure: &ObservedFailure, marker: &str) -> bool {
        failure.kind == FailureKind::Error(self.error_type.clone()) && failure.message.contains(marker)
    }
}
