//! What a process holds, as Linux's `/proc` says: resident memory, its peak, open file
//! descriptors. `None` where the system does not say (another OS, a process gone).

/// A process to read: this one, or another by pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    /// The calling process.
    Own,
    /// Another process (e.g. a worker the harness started).
    Pid(u32),
}

impl Proc {
    fn dir(self) -> String {
        match self {
            Proc::Own => "/proc/self".into(),
            Proc::Pid(pid) => format!("/proc/{pid}"),
        }
    }

    /// One `kB` line of `/proc/<pid>/status`, in bytes.
    fn status_bytes(self, key: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("{}/status", self.dir())).ok()?;
        let kb = status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
        let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    }

    /// Resident memory now (`VmRSS`), in bytes.
    pub fn resident_bytes(self) -> Option<u64> {
        self.status_bytes("VmRSS")
    }

    /// The most resident memory it has had (`VmHWM`), in bytes.
    pub fn peak_resident_bytes(self) -> Option<u64> {
        self.status_bytes("VmHWM")
    }

    /// File descriptors open now.
    pub fn open_fds(self) -> Option<u64> {
        Some(std::fs::read_dir(format!("{}/fd", self.dir())).ok()?.count() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::Proc;

    #[test]
    fn this_process_has_memory_and_descriptors() {
        let rss = Proc::Own.resident_bytes().expect("Linux says");
        let peak = Proc::Own.peak_resident_bytes().expect("Linux says");
        assert!(rss > 0 && peak >= rss, "rss {rss}, peak {peak}");
        let before = Proc::Own.open_fds().expect("Linux says");
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(Proc::Own.open_fds(), Some(before + 1));
        drop(file);
        assert_eq!(Proc::Pid(u32::MAX).resident_bytes(), None);
    }
}
