//! The workers polling through the proxy: which task queues they poll, as whom, and when they last
//! did, so that a run (and `chaos doctor`) can tell a worker behind the proxy from one that
//! reaches the frontend some other way, where no fault reaches it.

use super::{attempts::now_ms, grpc};
use bytes::Bytes;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use temporalio_common::protos::temporal::api::{
    enums::v1::TaskQueueKind,
    workflowservice::v1::{PollActivityTaskQueueRequest, PollWorkflowTaskQueueRequest},
};

/// How long a worker that stopped polling stays listed.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Which tasks a poll asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollKind {
    /// `PollWorkflowTaskQueue`.
    Workflow,
    /// `PollActivityTaskQueue`.
    Activity,
}

/// A worker polling one task queue through the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollerSeen {
    /// Namespace it polls in.
    pub namespace: String,
    /// The task queue (for a poll of a worker's sticky queue, the queue it stands for).
    pub task_queue: String,
    /// Which tasks.
    pub kind: PollKind,
    /// The worker's identity, as it sends it.
    pub identity: String,
    /// When its last poll came in (unix ms).
    pub last_poll_ms: u64,
    /// Its polls open now.
    pub open: u32,
}

impl PollerSeen {
    /// Whether it polls through the proxy now: a poll open, or one within [`POLLING`] (a live
    /// worker holds a long poll open nearly all the time, and one busy with its tasks polls
    /// again within moments; a stopped one stays listed for minutes).
    pub fn polling(&self) -> bool {
        self.open > 0 || now_ms().saturating_sub(self.last_poll_ms) <= POLLING.as_millis() as u64
    }
}

/// How recently a worker with no poll open must have polled to count as polling.
const POLLING: Duration = Duration::from_secs(10);

type Key = (String, String, PollKind, String);

/// Every worker seen polling in the last [`FORGET_AFTER`].
#[derive(Default)]
pub(super) struct Pollers {
    seen: Mutex<HashMap<Key, PollerSeen>>,
}

/// An open poll; closes when dropped.
pub(super) struct OpenPoll {
    pollers: Arc<Pollers>,
    key: Key,
}

impl Drop for OpenPoll {
    fn drop(&mut self) {
        if let Some(p) = self.pollers.lock().get_mut(&self.key) {
            p.open = p.open.saturating_sub(1);
        }
    }
}

impl Pollers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, PollerSeen>> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes a poll (the request `data` of `method`), open until the guard drops; `None` for a
    /// call that is not a workflow or activity poll, or whose request does not decode.
    pub(super) fn poll(self: &Arc<Self>, method: &str, data: &Bytes, headers: &HeaderMap) -> Option<OpenPoll> {
        let (kind, namespace, queue, identity) = match method {
            "PollWorkflowTaskQueue" => {
                let r: PollWorkflowTaskQueueRequest = grpc::decode(data, headers).ok()?;
                (PollKind::Workflow, r.namespace, r.task_queue?, r.identity)
            }
            "PollActivityTaskQueue" => {
                let r: PollActivityTaskQueueRequest = grpc::decode(data, headers).ok()?;
                (PollKind::Activity, r.namespace, r.task_queue?, r.identity)
            }
            _ => return None,
        };
        let task_queue = match queue.kind() {
            TaskQueueKind::Sticky if !queue.normal_name.is_empty() => queue.normal_name,
            _ => queue.name,
        };
        let key = (namespace.clone(), task_queue.clone(), kind, identity.clone());
        let now = now_ms();
        let mut seen = self.lock();
        seen.retain(|_, p| p.open > 0 || now.saturating_sub(p.last_poll_ms) <= FORGET_AFTER.as_millis() as u64);
        let entry = seen.entry(key.clone()).or_insert(PollerSeen {
            namespace,
            task_queue,
            kind,
            identity,
            last_poll_ms: now,
            open: 0,
        });
        entry.last_poll_ms = now;
        entry.open += 1;
        Some(OpenPoll {
            pollers: Arc::clone(self),
            key,
        })
    }

    /// Every worker seen polling lately, by namespace, task queue, kind and identity.
    pub(super) fn list(&self) -> Vec<PollerSeen> {
        let now = now_ms();
        let mut list: Vec<PollerSeen> = self
            .lock()
            .values()
            .filter(|p| p.open > 0 || now.saturating_sub(p.last_poll_ms) <= FORGET_AFTER.as_millis() as u64)
            .cloned()
            .collect();
        list.sort_by(|a, b| {
            (&a.namespace, &a.task_queue, a.kind as u8, &a.identity).cmp(&(
                &b.namespace,
                &b.task_queue,
                b.kind as u8,
                &b.identity,
            ))
        });
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::protos::temporal::api::taskqueue::v1::TaskQueue;

    #[test]
    fn polls_are_listed_by_queue_and_identity_with_sticky_queues_under_their_own_name() {
        let pollers = Arc::new(Pollers::default());
        let poll = |name: &str, kind: TaskQueueKind, normal: &str| PollWorkflowTaskQueueRequest {
            namespace: "default".into(),
            task_queue: Some(TaskQueue {
                name: name.into(),
                kind: kind as i32,
                normal_name: normal.into(),
            }),
            identity: "1@host".into(),
            ..Default::default()
        };
        let headers = HeaderMap::new();
        let normal = grpc::frame(&poll("orders", TaskQueueKind::Normal, ""));
        let sticky = grpc::frame(&poll("1@host-sticky-abc", TaskQueueKind::Sticky, "orders"));
        let first = pollers.poll("PollWorkflowTaskQueue", &normal, &headers).unwrap();
        let second = pollers.poll("PollWorkflowTaskQueue", &sticky, &headers).unwrap();
        let listed = pollers.list();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!((listed[0].task_queue.as_str(), listed[0].open), ("orders", 2));
        drop((first, second));
        let listed = pollers.list();
        assert_eq!(listed[0].open, 0);
        assert!(listed[0].polling(), "it polled a moment ago");
        assert!(pollers.poll("GetSystemInfo", &normal, &headers).is_none());
        assert!(
            pollers
                .poll(
                    "PollWorkflowTaskQueue",
                    &Bytes::from_static(b"\0\0\0\0\x09garbage"),
                    &headers
                )
                .is_none()
        );
    }
}
