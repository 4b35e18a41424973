//! The chaos worker: the demo workflows and activities with the fault interceptors installed, and
//! the one list of workflows that both the worker and the replayer ([`crate::replay`]) register.

use crate::{
    faults::quiet_injected_panics,
    inject::{FaultInjector, PlanPropagator},
    workflows::{Addition, DemoActivities, Multiplication, Orchestration, ResilientCall},
};
use std::{future::Future, time::Duration};
use temporalio_client::Client;
use temporalio_common::WorkflowDefinition;
use temporalio_sdk::{
    Runtime, Worker, WorkerOptions, WorkflowRegistrationError, workflow_interceptors::WorkflowInterceptorConstructor,
    workflow_replayer::WorkflowReplayerOptions, workflows::WorkflowImplementation,
};
use tokio_util::sync::CancellationToken;

/// How long in-flight activities get to finish when the worker stops; past it they are
/// abandoned and the server retries them elsewhere.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long a workflow task waits on this worker's sticky queue before any worker may take it: a
/// crashed worker's workflows move on after this (the SDK's default is 10 s).
const STICKY_TIMEOUT: Duration = Duration::from_secs(1);

/// Where workflows are registered: the worker's options and the replayer's, so that both get the
/// same workflows and workflow interceptors from [`register_workflows`].
pub trait WorkflowRegistry {
    /// Registers the workflow type `W`.
    fn workflow<W>(&mut self) -> Result<(), WorkflowRegistrationError>
    where
        W: WorkflowImplementation,
        <W::Run as WorkflowDefinition>::Input: Send;

    /// Appends a workflow interceptor.
    fn interceptor(&mut self, constructor: WorkflowInterceptorConstructor);
}

/// The worker's and the replayer's options register workflows the same way (inherent methods of
/// the same names, not a trait of the SDK's).
macro_rules! registry {
    ($($options:ty),*) => {$(
        impl WorkflowRegistry for $options {
            fn workflow<W>(&mut self) -> Result<(), WorkflowRegistrationError>
            where
                W: WorkflowImplementation,
                <W::Run as WorkflowDefinition>::Input: Send,
            {
                self.register_workflow::<W>().map(drop)
            }

            fn interceptor(&mut self, constructor: WorkflowInterceptorConstructor) {
                self.workflow_interceptor(constructor);
            }
        }
    )*};
}

registry!(WorkerOptions, WorkflowReplayerOptions);

/// Registers the demo workflows and the plan propagator: what the chaos worker runs, and so what
/// `chaos replay` replays recorded histories against.
pub fn register_workflows(registry: &mut impl WorkflowRegistry) -> Result<(), WorkflowRegistrationError> {
    registry.workflow::<Orchestration>()?;
    registry.workflow::<Addition>()?;
    registry.workflow::<Multiplication>()?;
    registry.workflow::<ResilientCall>()?;
    registry.interceptor(PlanPropagator::constructor());
    Ok(())
}

/// Errors creating or running the worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The SDK refused the worker configuration or could not start it.
    #[error("cannot start the chaos worker on task queue `{task_queue}`: {reason}")]
    Start {
        /// Task queue.
        task_queue: String,
        /// Why.
        reason: String,
    },
    /// The worker stopped while it was still needed.
    #[error("the chaos worker on task queue `{task_queue}` stopped unexpectedly: {reason}")]
    Died {
        /// Task queue.
        task_queue: String,
        /// Why.
        reason: String,
    },
}

/// Runs the chaos worker on `task_queue` until `until` completes, then shuts it down gracefully.
///
/// The worker future is not `Send`, so it is driven on the caller's task next to `until`.
pub async fn run_worker_until<F: Future>(client: Client, task_queue: &str, until: F) -> Result<F::Output, WorkerError> {
    let start_error = |reason: String| WorkerError::Start {
        task_queue: task_queue.to_owned(),
        reason,
    };
    quiet_injected_panics();
    let runtime = Runtime::from_current_tokio(Default::default()).map_err(|e| start_error(e.to_string()))?;
    let shutting_down = CancellationToken::new();
    let mut options = WorkerOptions::new(task_queue)
        .register_activities(DemoActivities)
        .activity_inbound_interceptor(FaultInjector::new(shutting_down.clone()))
        .graceful_shutdown_period(SHUTDOWN_GRACE)
        .sticky_queue_schedule_to_start_timeout(STICKY_TIMEOUT)
        .build();
    register_workflows(&mut options).map_err(|e| start_error(e.to_string()))?;
    let mut worker = Worker::new(&runtime, client, options).map_err(|e| start_error(e.to_string()))?;
    let shutdown = worker.shutdown_handle();
    let run = worker.run();
    tokio::pin!(run);
    let output = tokio::select! {
        result = &mut run => {
            return Err(WorkerError::Died {
                task_queue: task_queue.to_owned(),
                reason: match result { Ok(()) => "it returned early".into(), Err(e) => e.to_string() },
            });
        }
        output = until => output,
    };
    // Held faults end now, so that shutdown does not wait for attempts the server has given up on.
    shutting_down.cancel();
    shutdown();
    run.await.map_err(|e| WorkerError::Died {
        task_queue: task_queue.to_owned(),
        reason: format!("during shutdown: {e}"),
    })?;
    Ok(output)
}

/// Why `chaos worker` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The cluster could not be reached.
    #[error(transparent)]
    Target(#[from] crate::target::TargetError),
    /// The worker could not start or died.
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

/// How long `chaos worker` waits for its cluster to come up before giving up.
const CLUSTER_WAIT: Duration = Duration::from_secs(600);

/// `chaos worker`: connects (waiting up to ten minutes for a cluster that is still starting, as
/// on a first deploy) and runs the chaos worker on `task_queue` until SIGINT or SIGTERM.
pub async fn serve(conn: &crate::target::ConnectionSettings, task_queue: &str) -> Result<(), ServeError> {
    let endpoint = conn.resolve()?;
    let (client, _) = crate::target::wait_for_cluster(&endpoint, CLUSTER_WAIT).await?;
    eprintln!(
        "chaos worker polling task queue `{task_queue}` on {}; Ctrl-C to stop",
        endpoint.address
    );
    run_worker_until(client, task_queue, crate::wait::stop_signal()).await?;
    Ok(())
}
