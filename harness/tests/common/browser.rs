//! Headless Chromium (Debian's `chromium`, or CHAOS_CHROMIUM) for the browser checks of the HTML
//! report, the Temporal UI links and the dashboard.

use super::missing_tool;
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The Chromium binary: CHAOS_CHROMIUM, else `chromium` on PATH.
pub fn chromium(test: &str) -> Option<PathBuf> {
    let bin = std::env::var_os("CHAOS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| "chromium".into());
    if Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        Some(bin)
    } else {
        missing_tool(test, "no Chromium (install Debian's `chromium` or set CHAOS_CHROMIUM)");
        None
    }
}

/// Headless Chromium as the project runs it: no sandbox (root), no network beyond what the page
/// asks for (loopback), a fresh profile.
pub fn headless(bin: &Path, profile: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .stderr(Stdio::null());
    cmd
}

pub fn dump_dom(bin: &Path, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = headless(bin, profile.path())
        .args(["--virtual-time-budget=15000", "--dump-dom", url])
        .output()
        .expect("run chromium");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn screenshot(bin: &Path, url: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let profile = tempfile::tempdir().unwrap();
    let status = headless(bin, profile.path())
        .args(["--window-size=1100,2000", "--virtual-time-budget=15000"])
        .arg(format!("--screenshot={}", path.display()))
        .arg(url)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "chromium screenshot failed");
    path
}
