//! Real-browser checks with headless Chromium (Debian's `chromium`): the HTML report renders every
//! scenario card, verdict and timeline, and a report link opens the workflow in the Temporal UI.
//! They say clearly when they skip because no browser exists; CI installs one, so CI runs them.

mod common;

use common::{
    browser::{chromium, dump_dom, screenshot},
    repo,
};
use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

#[test]
fn the_html_report_renders_every_card_verdict_and_timeline() {
    let Some(bin) = chromium("the_html_report_renders_every_card_verdict_and_timeline") else {
        return;
    };
    let reports = tempfile::tempdir().unwrap();
    let wrong = repo().join("harness/tests/fixtures/wrong-expectation.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args([
            "run",
            "scenarios/activity/02-retries-exhausted-fallback.toml",
            "scenarios/activity/08-orchestration-child-fault.toml",
        ])
        .arg(&wrong)
        .arg("--reports")
        .arg(reports.path())
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the wrong expectation fails the run");
    let page = reports.path().join("latest/index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch.
    assert!(
        !html.contains("<script src") && !html.contains("<link rel=\"stylesheet\""),
        "no external assets"
    );

    let dom = dump_dom(&bin, &format!("file://{}", page.display()));
    assert!(dom.contains("id=\"run-verdict\">FAILED"), "run verdict shown");
    let cards: Vec<&str> = dom.split("<section class=\"card").skip(1).collect();
    assert_eq!(cards.len(), 3, "one card per scenario");
    let verdicts: Vec<bool> = cards.iter().map(|c| c.contains("data-verdict=\"passed\"")).collect();
    assert_eq!(verdicts, [true, true, false]);
    for card in &cards {
        assert!(card.contains("<svg class=\"timeline\""), "every card has a timeline");
        assert!(
            card.matches("<rect class=\"bar ").count() >= 1,
            "timeline has attempt bars"
        );
    }
    assert!(
        cards[0].contains("class=\"bar retry-failed\""),
        "retries before the last attempt are drawn"
    );
    assert!(cards[0].contains("fallback-label"), "the fallback step stands out");
    assert!(cards[0].contains("class=\"fault\""), "the injected fault is marked");
    assert!(
        cards[2].contains("<tr class=\"bad\"><td>✘ attempts[risky]"),
        "the failed expectation stands out"
    );
    assert!(cards[2].contains("/history/events/"), "and links to its event");

    let shot = screenshot(&bin, &format!("file://{}", page.display()), "report.png");
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real screenshot at {}",
        shot.display()
    );
    let _ = writeln!(std::io::stderr(), "report screenshot: {}", shot.display());
}

#[test]
fn a_report_link_opens_the_workflow_in_the_temporal_ui() {
    let Some(bin) = chromium("a_report_link_opens_the_workflow_in_the_temporal_ui") else {
        return;
    };
    let reports = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args([
            "run",
            "scenarios/activity/03-plain-success.toml",
            "--keep-server",
            "--reports",
        ])
        .arg(reports.path())
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(reports.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let began = Instant::now();
    let mut link = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(start) = line.find("](http") {
            let rest = &line[start + 2..];
            link = Some(rest[..rest.find(')').unwrap()].to_owned());
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(60), "no link printed");
    }
    let link = link.unwrap_or_else(|| {
        let stderr = std::fs::read_to_string(reports.path().join("stderr.log")).unwrap_or_default();
        panic!("the summary printed no link; chaos said:\n{stderr}")
    });
    let workflow_id = link
        .split("/workflows/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let dom = dump_dom(&bin, &link);
    let shot = screenshot(&bin, &link, "temporal-ui.png");
    // Ctrl-C ends --keep-server, which stops the embedded server.
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert!(dom.contains(&workflow_id), "the UI page shows the workflow id");
    assert!(dom.contains("Completed"), "and its status");
    assert!(status.success(), "the run itself passed and stopped cleanly on Ctrl-C");
    let _ = writeln!(std::io::stderr(), "temporal ui screenshot: {}", shot.display());
}
