//! temporal-chaos: chaos and failure-injection tests for Temporal workflows.
//!
//! The flow runs one way (see `ARCHITECTURE.md`): a scenario file ([`scenario`]) becomes a
//! validated [`plan::Plan`] of [`faults`] and [`infra`] faults; a [`session::Session`] opens a
//! [`target::Cluster`] and runs the harness's [`worker`] (whose [`inject`] interceptors apply fault
//! plans); the [`runner`] starts each workflow and observes it; [`history`] reads what the server
//! recorded; [`verify`] checks the expectations against it; [`report`] writes HTML, JSON, Markdown
//! and JUnit with links to the Temporal Web UI, and keeps the raw histories, which [`replay`]
//! (`chaos replay`) replays against the current workflow code. [`suite`] (`chaos run`) and
//! [`load`] (`chaos load`) own whole runs; [`wire`] injects faults on the wire, into a worker in
//! any language; [`doctor`] checks a cluster. Shared below every stage:
//! [`error`], [`failure`], [`kind`] (declaring a fault kind once) and [`wait`].

pub mod doctor;
pub mod error;
pub mod failure;
pub mod faults;
pub mod fleet;
pub mod history;
pub mod infra;
pub mod inject;
pub mod kind;
pub mod load;
pub mod plan;
pub mod replay;
pub mod report;
pub mod resources;
pub mod runner;
pub mod scenario;
pub mod serve;
pub mod session;
pub mod store;
pub mod suite;
pub mod target;
pub mod verify;
pub mod wait;
pub mod wire;
pub mod worker;
pub mod workflows;
