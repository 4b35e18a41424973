//! The demo workflows under test and their activities.
//!
//! They hold no fault logic: faults reach them only through [`crate::inject`], the same way they
//! would reach a user's own workflows.

mod activities;
mod orchestration;
mod resilient;

pub use activities::DemoActivities;
pub use orchestration::{Addition, Multiplication, Orchestration, validate_numbers};
pub use resilient::{Path, ResilientCall, ResilientOutput};

use crate::plan::ActivitySettings;
use std::time::Duration;
use temporalio_common::RetryPolicy;
use temporalio_sdk::{ActivityCloseTimeouts, ActivityOptions};

/// Start-to-close used when a scenario gives no close timeout at all (Temporal needs one).
const DEFAULT_START_TO_CLOSE: Duration = Duration::from_secs(10);

/// Turns a scenario's activity settings into SDK activity options.
pub fn activity_options(s: &ActivitySettings) -> ActivityOptions {
    let timeouts = match (s.start_to_close, s.schedule_to_close) {
        (Some(start_to_close), Some(schedule_to_close)) => ActivityCloseTimeouts::ScheduleAndStartToClose {
            schedule_to_close,
            start_to_close,
        },
        (Some(start), None) => ActivityCloseTimeouts::StartToClose(start),
        (None, Some(schedule)) => ActivityCloseTimeouts::ScheduleToClose(schedule),
        (None, None) => ActivityCloseTimeouts::StartToClose(DEFAULT_START_TO_CLOSE),
    };
    let mut options = ActivityOptions::with_close_timeouts(timeouts).build();
    options.heartbeat_timeout = s.heartbeat_timeout;
    options.retry_policy = s.retry.as_ref().map(|r| {
        RetryPolicy::builder()
            .initial_interval(r.initial_interval)
            .backoff_coefficient(r.backoff)
            .maybe_maximum_interval(r.maximum_interval)
            .maximum_attempts(r.maximum_attempts)
            .non_retryable_error_types(r.non_retryable_types.clone())
            .build()
    });
    options
}
