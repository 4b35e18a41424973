//! `chaos proxy` as a process, with its admin listener: started, asked, and waited on.

use super::{Guard, chaos_command, http_get};
use serde_json::Value;
use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

/// `chaos proxy` on `listen` and `admin`, once its admin answers.
pub fn proxy_on(upstream: &str, listen: &str, admin: &str, extra: &[&str], log: &Path) -> Guard {
    let mut cmd = chaos_command(&["proxy", "--listen", listen, "--admin", admin, "--upstream", upstream]);
    cmd.args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    let proxy = Guard(cmd.spawn().unwrap());
    let began = Instant::now();
    while get(admin, "/health").is_none() {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "the proxy's admin does not answer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    proxy
}

/// `GET path` on the admin listener at `address`: the body of a 200 answer.
pub fn get(address: &str, path: &str) -> Option<String> {
    http_get(address, path, None).and_then(|(status, body)| (status == 200).then_some(body))
}

/// Waits until the proxy lists a worker polling `task_queue` through it.
pub fn wait_polling(admin: &str, task_queue: &str) {
    let began = Instant::now();
    loop {
        let pollers: Value = serde_json::from_str(&get(admin, "/pollers").unwrap_or_default()).unwrap_or_default();
        let polling = pollers
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["task_queue"] == task_queue && p["open"].as_u64() > Some(0));
        if polling {
            return;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "no worker polls `{task_queue}` through the proxy: {pollers}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
