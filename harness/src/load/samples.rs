//! What the load's processes hold while it runs, sampled at an interval: the harness's resident
//! memory, open file descriptors and live tasks, its worker processes' memory, and how many
//! workflows were started and closed by then. The samples stay few whatever the run's length:
//! past [`MAX_SAMPLES`], every other one is dropped and the interval doubles.

use crate::{fleet::Fleet, resources::Proc};
use serde::Serialize;
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// Samples kept at most.
const MAX_SAMPLES: usize = 512;

/// Workflows started and closed so far, counted as the load goes.
#[derive(Debug, Default)]
pub(super) struct Progress {
    pub started: AtomicU64,
    pub closed: AtomicU64,
}

/// One sample.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    /// Seconds since the load began.
    pub at_s: f64,
    /// The harness's resident memory, in bytes.
    pub rss_bytes: Option<u64>,
    /// The harness's open file descriptors.
    pub open_fds: Option<u64>,
    /// Tasks alive on the harness's async runtime.
    pub tasks: usize,
    /// Resident memory of the load's worker processes together, in bytes (`None`: the worker is
    /// in-process, or none was running).
    pub workers_rss_bytes: Option<u64>,
    /// Workflows started by then.
    pub started: u64,
    /// Workflows closed and accounted for by then.
    pub closed: u64,
}

/// The samples of a run so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Samples {
    /// Time between two samples, at the end (it doubles when there are too many).
    pub every_s: f64,
    /// In order.
    pub samples: Vec<Sample>,
}

impl Samples {
    fn push(&mut self, sample: Sample, every: &mut Duration) {
        self.samples.push(sample);
        if self.samples.len() > MAX_SAMPLES {
            let mut i = 0;
            self.samples.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            *every *= 2;
        }
        self.every_s = every.as_secs_f64();
    }

    /// Takes a sample every `every` (doubling past [`MAX_SAMPLES`]) from `began` until
    /// `until` resolves, then one last sample.
    pub(super) async fn take(
        every: Duration,
        began: Instant,
        progress: &Progress,
        workers: Option<&Fleet>,
        until: impl Future<Output = ()>,
    ) -> Self {
        let mut samples = Samples::default();
        let mut every = every.max(Duration::from_millis(100));
        let sample = || Sample {
            at_s: began.elapsed().as_secs_f64(),
            rss_bytes: Proc::Own.resident_bytes(),
            open_fds: Proc::Own.open_fds(),
            tasks: tokio::runtime::Handle::current().metrics().num_alive_tasks(),
            workers_rss_bytes: workers.and_then(|w| {
                let rss: Vec<u64> = w
                    .pids()
                    .into_iter()
                    .filter_map(|p| Proc::Pid(p).resident_bytes())
                    .collect();
                (!rss.is_empty()).then(|| rss.iter().sum())
            }),
            started: progress.started.load(Ordering::Relaxed),
            closed: progress.closed.load(Ordering::Relaxed),
        };
        tokio::pin!(until);
        loop {
            samples.push(sample(), &mut every);
            tokio::select! {
                _ = &mut until => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
        samples.push(sample(), &mut every);
        samples
    }

    /// How the harness's memory moved after warm-up over the first `span` seconds (the time
    /// workflows were being started): the mean of the samples from 20% to 30% of it against the
    /// mean of its last 10%. `None` when either window has no sample.
    pub fn growth_after_warmup(&self, span: f64) -> Option<Growth> {
        let mean = |from: f64, to: f64| {
            let rss: Vec<u64> = self
                .samples
                .iter()
                .filter(|s| s.at_s >= from * span && s.at_s <= to * span)
                .filter_map(|s| s.rss_bytes)
                .collect();
            (!rss.is_empty()).then(|| rss.iter().sum::<u64>() as f64 / rss.len() as f64)
        };
        let (warm, end) = (mean(0.2, 0.3)?, mean(0.9, 1.0)?);
        Some(Growth {
            warm_rss_bytes: warm as u64,
            end_rss_bytes: end as u64,
            percent: (end - warm) / warm * 100.0,
        })
    }
}

/// Resident memory after warm-up against at the end of the load.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Growth {
    /// Mean resident memory from 20% to 30% of the load, in bytes.
    pub warm_rss_bytes: u64,
    /// Mean resident memory over its last 10%, in bytes.
    pub end_rss_bytes: u64,
    /// The change, in percent of the first.
    pub percent: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at_s: f64, rss: u64) -> Sample {
        Sample {
            at_s,
            rss_bytes: Some(rss),
            open_fds: None,
            tasks: 0,
            workers_rss_bytes: None,
            started: 0,
            closed: 0,
        }
    }

    #[test]
    fn too_many_samples_are_thinned_and_the_interval_doubles() {
        let mut samples = Samples::default();
        let mut every = Duration::from_secs(1);
        for i in 0..=MAX_SAMPLES {
            samples.push(at(i as f64, 1), &mut every);
        }
        assert_eq!(samples.samples.len(), MAX_SAMPLES / 2 + 1);
        assert_eq!(every, Duration::from_secs(2));
        assert_eq!(samples.every_s, 2.0);
        assert_eq!(samples.samples[1].at_s, 2.0);
    }

    #[test]
    fn growth_compares_the_warm_window_with_the_last_tenth() {
        let samples = Samples {
            every_s: 1.0,
            samples: (0..=100)
                .map(|i| at(i as f64, if i < 50 { 100 } else { 110 }))
                .collect(),
        };
        let g = samples.growth_after_warmup(100.0).unwrap();
        assert_eq!((g.warm_rss_bytes, g.end_rss_bytes), (100, 110));
        assert!((g.percent - 10.0).abs() < 1e-9);
        assert_eq!(Samples::default().growth_after_warmup(100.0), None);
    }
}
