//! `report.json`: the [`RunReport`](super::RunReport) model, serialised as is.

use super::RunReport;

pub(super) fn render(report: &RunReport) -> String {
    serde_json::to_string_pretty(report).expect("reports always serialise")
}
