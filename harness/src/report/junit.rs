//! `junit.xml`: one test case per scenario, failed checks as the failure text.

use super::{RunReport, Verdict};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

pub(super) fn render(r: &RunReport) -> String {
    let mut suite = TestSuite::new("temporal-chaos");
    for s in &r.scenarios {
        let status = if s.verdict == Verdict::Passed {
            TestCaseStatus::success()
        } else if s.verdict == Verdict::Interrupted {
            let mut status = TestCaseStatus::skipped();
            status.set_message(format!(
                "interrupted by {}",
                r.interrupted_by.as_deref().unwrap_or("a signal")
            ));
            status
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let mut lines: Vec<String> = s.error.iter().cloned().collect();
            lines.extend(s.checks.iter().filter(|c| !c.check.passed).map(|c| {
                format!(
                    "{}: expected {}, history shows {}",
                    c.check.name, c.check.expected, c.check.observed
                )
            }));
            status.set_message(lines.first().cloned().unwrap_or_default());
            status.set_description(lines.join("\n"));
            status
        };
        let mut case = TestCase::new(s.name.clone(), status);
        case.set_classname(format!("scenarios.{}", s.workflow));
        if let Some(ms) = s.duration_ms {
            case.set_time(Duration::from_millis(ms));
        }
        if let Some(link) = &s.link {
            case.set_system_out(format!(
                "workflow {} run {}\n{link}",
                s.workflow_id,
                s.run_id.as_deref().unwrap_or("-")
            ));
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new(format!("temporal-chaos {}", r.head.run_id));
    report.add_test_suite(suite);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot render junit: {e} -->"))
}
