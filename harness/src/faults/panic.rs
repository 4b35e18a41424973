//! `panic`: the activity panics; the SDK turns the panic into a retryable failure.

use super::{ActivityFault, AttemptContext, WireEffect};
use crate::failure::FailureKind;
use futures::future::{BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use temporalio_sdk::activities::ActivityError;

/// Panics inside the activity: a bug in the activity code. The SDK turns the panic into a
/// retryable failure. Only the harness's own (Rust SDK) worker can do this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PanicFault {
    /// Panic message; the rule's marker `[chaos fault #N]` is put in front.
    #[serde(default = "default_message")]
    pub message: String,
}

fn default_message() -> String {
    "injected panic".into()
}

impl ActivityFault for PanicFault {
    fn inject<'a>(&'a self, at: &'a AttemptContext) -> BoxFuture<'a, Result<(), ActivityError>> {
        let message = format!("{} {}", at.marker, self.message);
        async move { panic!("{message}") }.boxed()
    }

    fn describe(&self) -> String {
        "panic".into()
    }

    /// A panic needs code inside the worker: the harness's own, through its SDK interceptor.
    fn on_the_wire(&self, _marker: &str) -> Option<WireEffect> {
        None
    }

    /// The SDK reports a caught panic as an untyped failure "Activity function panicked: ...".
    fn explains(&self, _kind: &FailureKind, message: &str, marker: &str) -> bool {
        message.contains("panicked") && message.contains(marker)
    }
}

/// Keeps injected panics out of stderr (they are expected, and history records them), while
/// any other panic still reaches the previous hook. Installed once per process by the worker.
pub fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or_default();
            if text.starts_with("[chaos fault #") {
                tracing::debug!("injected panic: {text}");
            } else {
                previous(info);
            }
        }));
    });
}
