//! A `chaos worker` child process: a worker the harness can kill for real.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};
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
        }
    }

    /// Starts the process and waits until it polls the task queue; returns its pid.
    pub async fn start(&self) -> Result<u32, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find the chaos binary: {e}"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = tokio::process::Command::new(exe)
            .args(["worker", "--address", &self.address, "--namespace", &self.namespace])
            .args(["--task-queue", &self.task_queue])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start a worker process: {e}"))?;
        let pid = child.id().unwrap_or_default();
        *self.child.lock().await = Some(child);
        self.wait_polling(pid).await?;
        Ok(pid)
    }

    /// Kills the process with SIGKILL (no graceful shutdown: a crash); returns its pid.
    pub async fn kill(&self) -> Result<u32, String> {
        let mut slot = self.child.lock().await;
        let mut child = slot.take().ok_or("no worker process is running")?;
        let pid = child.id().unwrap_or_default();
        child
            .kill()
            .await
            .map_err(|e| format!("cannot kill worker {pid}: {e}"))?;
        Ok(pid)
    }

    async fn wait_polling(&self, pid: u32) -> Result<(), String> {
        let identity_suffix = format!(":{pid}");
        let began = Instant::now();
        let mut svc = self.client.connection().workflow_service();
        loop {
            if let Some(child) = self.child.lock().await.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("worker {pid} exited with {status}; see {}", self.log.display()));
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
            if let Ok(resp) = svc.describe_task_queue(request.into_request()).await
                && resp
                    .into_inner()
                    .pollers
                    .iter()
                    .any(|p| p.identity.ends_with(&identity_suffix))
            {
                return Ok(());
            }
            if began.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "worker {pid} did not poll within {} s; see {}",
                    READY_TIMEOUT.as_secs(),
                    self.log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
