//! Waiting: for something the server or a process reports (asking again at an interval), or for
//! the signal that stops the harness.

use std::{
    future::Future,
    time::{Duration, Instant},
};

/// Calls `check` every `every` until it answers `Ok(Some(value))` (returned) or an error
/// (returned at once). After `within` (if given) it returns `timed_out()` instead.
pub async fn poll<T, E, Fut>(
    every: Duration,
    within: Option<Duration>,
    timed_out: impl FnOnce() -> E,
    mut check: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<Option<T>, E>>,
{
    let give_up = within.and_then(|w| Instant::now().checked_add(w));
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if give_up.is_some_and(|g| Instant::now() >= g) {
            return Err(timed_out());
        }
        tokio::time::sleep(every).await;
    }
}

/// A signal that stops the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum StopSignal {
    /// SIGINT (Ctrl-C).
    #[serde(rename = "SIGINT")]
    Interrupt,
    /// SIGTERM (how platforms and CI jobs stop a process).
    #[serde(rename = "SIGTERM")]
    Terminate,
}

impl StopSignal {
    /// The conventional exit code: 128 + the signal number.
    pub fn exit_code(self) -> u8 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }
}

impl std::fmt::Display for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        })
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM, saying which.
pub async fn stop_signal() -> StopSignal {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => StopSignal::Interrupt,
            _ = term.recv() => StopSignal::Terminate,
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            StopSignal::Interrupt
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stops_at_the_answer_the_error_or_the_deadline() {
        let mut n = 0;
        let found: Result<u32, &str> = poll(
            Duration::from_millis(1),
            None,
            || "late",
            || {
                n += 1;
                let answer = (n == 3).then_some(n);
                async move { Ok(answer) }
            },
        )
        .await;
        assert_eq!(found, Ok(3));
        let failed: Result<u32, &str> =
            poll(Duration::from_millis(1), None, || "late", || async { Err("broken") }).await;
        assert_eq!(failed, Err("broken"));
        let late: Result<u32, &str> = poll(
            Duration::from_millis(5),
            Some(Duration::from_millis(20)),
            || "late",
            || async { Ok(None) },
        )
        .await;
        assert_eq!(late, Err("late"));
    }
}
