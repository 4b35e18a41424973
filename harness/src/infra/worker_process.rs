//! A `chaos worker` child process: a worker the harness can kill for real.

use super::InfraError;
use crate::wait::poll;
use std::{path::PathBuf, process::Stdio, time::Duration};
use temporalio_client::{Client, tonic::IntoRequest};
use temporalio_common::protos::temporal::api::{
    enums::v1::TaskQueueType, taskqueue::v1::TaskQueue, workflowservice::v1::DescribeTaskQueueRequest,
};
use tokio::{process::Child, sync::Mutex};

/// How long a fresh worker may take to start polling.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The worker process of one scenario; killed when dropped.
pub struct WorkerProcess {
    child: Mutex<Option<Child>>,
    /// Address the worker connects to (the fault proxy).
    address: String,
    namespace: String,
    task_queue: String,
    log: PathBuf,
    /// Used to see the worker's pollers arrive.
    client: Client,
    /// Connect without TLS whatever the environment and profile say (behind a wire proxy).
    plaintext: bool,
}

impl WorkerProcess {
    /// Prepares (does not start) a worker on `task_queue` that connects to `address`.
    pub fn new(client: Client, address: String, namespace: String, task_queue: String, log: PathBuf) -> Self {
        Self {
            child: Mutex::new(None),
            address,
            namespace,
            task_queue,
            log,
            client,
            plaintext: false,
        }
    }

    /// With `on`, the worker connects without TLS whatever the environment and profile it inherits
    /// turn on: a wire proxy on loopback listens in plaintext and does the TLS to the frontend.
    pub fn plaintext(mut self, on: bool) -> Self {
        self.plaintext = on;
        self
    }

    /// Starts the process and waits until it polls the task queue; returns its pid.
    pub async fn start(&self) -> Result<u32, InfraError> {
        let exe = std::env::current_exe().map_err(|e| self.error(format!("cannot find the chaos binary: {e}")))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| self.error(format!("cannot open the worker log: {e}")))?;
        let err = log
            .try_clone()
            .map_err(|e| self.error(format!("cannot open the worker log: {e}")))?;
        let child = tokio::process::Command::new(exe)
            .args(["worker", "--address", &self.address, "--namespace", &self.namespace])
            .args(["--task-queue", &self.task_queue])
            .args(if self.plaintext { &["--tls", "false"][..] } else { &[] })
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.error(format!("cannot start a worker process: {e}")))?;
        let pid = child.id().unwrap_or_default();
        *self.child.lock().await = Some(child);
        self.wait_polling(pid).await?;
        Ok(pid)
    }

    /// Kills the process with SIGKILL (no graceful shutdown: a crash); returns its pid.
    pub async fn kill(&self) -> Result<u32, InfraError> {
        let mut slot = self.child.lock().await;
        let mut child = slot
            .take()
            .ok_or_else(|| self.error("no worker process is running".into()))?;
        let pid = child.id().unwrap_or_default();
        child
            .kill()
            .await
            .map_err(|e| self.error(format!("cannot kill worker {pid}: {e}")))?;
        Ok(pid)
    }

    fn error(&self, what: String) -> InfraError {
        InfraError::Worker {
            what,
            log: self.log.display().to_string(),
        }
    }

    async fn wait_polling(&self, pid: u32) -> Result<(), InfraError> {
        let identity_suffix = format!(":{pid}");
        let svc = self.client.connection().workflow_service();
        let timed_out = || {
            self.error(format!(
                "worker {pid} did not poll task queue `{}` within {} s",
                self.task_queue,
                READY_TIMEOUT.as_secs()
            ))
        };
        poll(Duration::from_millis(100), Some(READY_TIMEOUT), timed_out, || {
            let (mut svc, identity_suffix) = (svc.clone(), &identity_suffix);
            async move {
                if let Some(child) = self.child.lock().await.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    return Err(self.error(format!("worker {pid} exited with {status}")));
                }
                let request = DescribeTaskQueueRequest {
                    namespace: self.namespace.clone(),
                    task_queue: Some(TaskQueue {
                        name: self.task_queue.clone(),
                        ..Default::default()
                    }),
                    task_queue_type: TaskQueueType::Activity as i32,
                    ..Default::default()
                };
                let polling = svc.describe_task_queue(request.into_request()).await.is_ok_and(|r| {
                    r.into_inner()
                        .pollers
                        .iter()
                        .any(|p| p.identity.ends_with(identity_suffix))
                });
                Ok(polling.then_some(()))
            }
        })
        .await
    }
}
