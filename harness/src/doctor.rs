//! `chaos doctor`: is this cluster fit to run scenarios? The original project's "how to verify the
//! cluster is working" checklist, automated, each check with the fix to try.

use crate::target::{Endpoint, connect};
use serde::Serialize;
use std::{fmt::Write, time::Duration};
use temporalio_client::{Client, WorkflowCountOptions, tonic::IntoRequest};
use temporalio_common::protos::{
    grpc::health::v1::{HealthCheckRequest, health_check_response::ServingStatus},
    temporal::api::{
        enums::v1::TaskQueueType,
        taskqueue::v1::TaskQueue,
        workflowservice::v1::{DescribeNamespaceRequest, DescribeTaskQueueRequest, GetSystemInfoRequest},
    },
};

/// One line of the doctor's table.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorCheck {
    /// What was checked.
    pub name: &'static str,
    /// Whether it is fine.
    pub passed: bool,
    /// What was seen.
    pub detail: String,
    /// What to try when it is not fine.
    pub fix: &'static str,
}

/// What to check: the endpoint, and optionally a worker task queue and a UI.
pub struct DoctorSettings {
    /// Cluster to examine.
    pub endpoint: Endpoint,
    /// Task queue that should have pollers (the deployed chaos worker's).
    pub task_queue: Option<String>,
    /// Web UI base URL to fetch.
    pub ui_url: Option<String>,
}

/// Runs every check; later checks are marked failed with "skipped" when there is no connection.
pub async fn examine(s: &DoctorSettings) -> Vec<DoctorCheck> {
    let mut checks = Vec::new();
    let client = match connect(&s.endpoint).await {
        Ok((client, _)) => {
            checks.push(pass(
                "connection",
                format!("{} (namespace `{}`)", s.endpoint.address, s.endpoint.namespace),
            ));
            Some(client)
        }
        Err(e) => {
            checks.push(DoctorCheck {
                name: "connection",
                passed: false,
                detail: e.to_string(),
                fix: "check the address, TLS settings (--tls, --tls-ca-path, API key) and that the frontend is up",
            });
            None
        }
    };
    if let Some(client) = &client {
        checks.push(health(client).await);
        checks.push(system_info(client).await);
        checks.push(namespace(client, &s.endpoint.namespace).await);
        checks.push(visibility(client).await);
        if let Some(tq) = &s.task_queue {
            checks.push(pollers(client, &s.endpoint.namespace, tq).await);
        }
    }
    if let Some(ui) = &s.ui_url {
        checks.push(ui_reachable(ui).await);
    }
    checks
}

fn pass(name: &'static str, detail: String) -> DoctorCheck {
    DoctorCheck {
        name,
        passed: true,
        detail,
        fix: "",
    }
}

fn check(name: &'static str, result: Result<String, String>, fix: &'static str) -> DoctorCheck {
    match result {
        Ok(detail) => pass(name, detail),
        Err(detail) => DoctorCheck {
            name,
            passed: false,
            detail,
            fix,
        },
    }
}

async fn health(client: &Client) -> DoctorCheck {
    let mut health = client.connection().health_service();
    let request = HealthCheckRequest {
        service: "temporal.api.workflowservice.v1.WorkflowService".into(),
    };
    let result = match health.check(request.into_request()).await {
        Ok(r) if r.get_ref().status() == ServingStatus::Serving => Ok("frontend is SERVING".into()),
        Ok(r) => Err(format!("frontend reports {:?}", r.get_ref().status())),
        Err(e) => Err(e.message().to_owned()),
    };
    check(
        "frontend health",
        result,
        "look at the frontend's logs; it may still be starting or unable to reach its database",
    )
}

async fn system_info(client: &Client) -> DoctorCheck {
    let mut svc = client.connection().workflow_service();
    let result = svc
        .get_system_info(GetSystemInfoRequest::default().into_request())
        .await
        .map(|r| format!("server {}", r.into_inner().server_version))
        .map_err(|e| e.message().to_owned());
    check(
        "server version",
        result,
        "the frontend answers but not GetSystemInfo; check the server version (>= 1.20)",
    )
}

async fn namespace(client: &Client, namespace: &str) -> DoctorCheck {
    let mut svc = client.connection().workflow_service();
    let request = DescribeNamespaceRequest {
        namespace: namespace.to_owned(),
        ..Default::default()
    };
    let result = svc
        .describe_namespace(request.into_request())
        .await
        .map(|_| format!("`{namespace}` exists"))
        .map_err(|e| e.message().to_owned());
    check(
        "namespace",
        result,
        "create it: `temporal operator namespace create --namespace <name>` (the schema-setup job does this for `default`)",
    )
}

async fn visibility(client: &Client) -> DoctorCheck {
    let counted = tokio::time::timeout(
        Duration::from_secs(10),
        client.count_workflows("", WorkflowCountOptions::default()),
    )
    .await;
    let result = match counted {
        Ok(Ok(c)) => Ok(format!("count query answered: {} workflow(s)", c.count())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("count query did not answer within 10 s".into()),
    };
    check(
        "visibility",
        result,
        "check the visibility store (Elasticsearch up, index and template created by the schema-setup job)",
    )
}

async fn pollers(client: &Client, namespace: &str, task_queue: &str) -> DoctorCheck {
    let mut svc = client.connection().workflow_service();
    let mut seen = Vec::new();
    for (kind, queue_type) in [
        ("workflow", TaskQueueType::Workflow),
        ("activity", TaskQueueType::Activity),
    ] {
        let request = DescribeTaskQueueRequest {
            namespace: namespace.to_owned(),
            task_queue: Some(TaskQueue {
                name: task_queue.to_owned(),
                ..Default::default()
            }),
            task_queue_type: queue_type as i32,
            ..Default::default()
        };
        match svc.describe_task_queue(request.into_request()).await {
            Ok(r) => seen.push((kind, r.into_inner().pollers.len())),
            Err(e) => return check("pollers", Err(e.message().to_owned()), ""),
        }
    }
    let detail = seen
        .iter()
        .map(|(k, n)| format!("{n} {k} poller(s)"))
        .collect::<Vec<_>>()
        .join(", ");
    let result = if seen.iter().all(|(_, n)| *n > 0) {
        Ok(format!("`{task_queue}`: {detail}"))
    } else {
        Err(format!("`{task_queue}`: {detail}"))
    };
    check(
        "pollers",
        result,
        "start the chaos worker on that task queue (`chaos worker --task-queue <queue>`, the Render worker service)",
    )
}

async fn ui_reachable(ui: &str) -> DoctorCheck {
    let result = match reqwest::Client::new()
        .get(ui)
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => Ok(format!("{ui} answered {}", r.status())),
        Ok(r) => Err(format!("{ui} answered {}", r.status())),
        Err(e) => Err(format!("{ui}: {e}")),
    };
    check(
        "web ui",
        result,
        "check the UI service is up and its TEMPORAL_ADDRESS points at the frontend",
    )
}

/// The checks as a Markdown table.
pub fn table(checks: &[DoctorCheck]) -> String {
    let mut out = String::from("| check | status | detail | fix |\n|---|---|---|---|\n");
    for c in checks {
        let status = if c.passed { "ok" } else { "FAIL" };
        let fix = if c.passed { "" } else { c.fix };
        let _ = writeln!(
            out,
            "| {} | {status} | {} | {fix} |",
            c.name,
            c.detail.replace('|', "\\|")
        );
    }
    out
}
