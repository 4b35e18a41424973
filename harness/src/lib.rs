//! temporal-chaos: chaos and failure-injection tests for Temporal workflows.
//!
//! The flow runs one way: a scenario file ([`scenario`]) becomes a validated [`plan::Plan`]; a
//! [`target::Cluster`] is started or reached; the [`runner`] starts each workflow with its
//! [`faults::FaultPlan`] in a header, which the [`inject`] interceptors apply inside the
//! [`worker`], while [`infra`] faults act on the server, the worker process and its network;
//! [`verify`] checks the expectations against the [`history`]; [`report`] writes HTML, JSON,
//! Markdown and JUnit with links to the Temporal Web UI. Beside that flow: [`load`] (many
//! workflows, every one accounted for) and [`doctor`] (is a cluster fit to run scenarios).

pub mod doctor;
pub mod faults;
pub mod history;
pub mod infra;
pub mod inject;
pub mod load;
pub mod plan;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod target;
pub mod verify;
pub mod wire;
pub mod worker;
pub mod workflows;
