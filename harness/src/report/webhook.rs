//! Publishing a run: POST the JSON report to a webhook (the scheduled Render run uses this).

use super::RunReport;
use std::time::Duration;

/// POSTs `report.json` to `url`. Webhook URLs often carry a token, so errors name only the host.
pub async fn post(url: &str, report: &RunReport) -> Result<(), String> {
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
        .map_err(|e| format!("cannot POST the report to {host}: {}", e.without_url()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("{host} answered {} to the report POST", response.status()))
    }
}
