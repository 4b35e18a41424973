//! Publishing a run: POST the JSON report to a webhook (the scheduled Render run uses this).

use super::RunReport;
use std::time::Duration;

/// A report the webhook did not take. Webhook URLs often carry a token, so errors name only the host.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No answer.
    #[error("cannot POST the report to {host}: {source}")]
    Send {
        /// The webhook's host.
        host: String,
        /// Why (with the URL removed).
        #[source]
        source: reqwest::Error,
    },
    /// An answer other than 2xx.
    #[error("{host} answered {status} to the report POST")]
    Refused {
        /// The webhook's host.
        host: String,
        /// Its answer.
        status: reqwest::StatusCode,
    },
}

/// POSTs `report.json` to `url`.
pub async fn post(url: &str, report: &RunReport) -> Result<(), WebhookError> {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "the webhook".into());
    let response = reqwest::Client::new()
        .post(url)
        .timeout(Duration::from_secs(30))
        .json(report)
        .send()
        .await
        .map_err(|e| WebhookError::Send {
            host: host.clone(),
            source: e.without_url(),
        })?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(WebhookError::Refused {
            host,
            status: response.status(),
        })
    }
}
