//! Activities of the demo workflows. Plain business logic: no fault code here.

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// The demo activities, registered under short names (`add`, `risky`, ...).
pub struct DemoActivities;

#[activities]
impl DemoActivities {
    /// Sum of the numbers.
    #[activity(name = "add")]
    pub async fn add(_ctx: ActivityContext, numbers: Vec<f64>) -> Result<f64, ActivityError> {
        Ok(numbers.iter().sum())
    }

    /// Product of the numbers.
    #[activity(name = "multiply")]
    pub async fn multiply(_ctx: ActivityContext, numbers: Vec<f64>) -> Result<f64, ActivityError> {
        Ok(numbers.iter().product())
    }

    /// Sum of the child workflows' results.
    #[activity(name = "sum")]
    pub async fn sum(_ctx: ActivityContext, parts: Vec<f64>) -> Result<f64, ActivityError> {
        Ok(parts.iter().sum())
    }

    /// The primary call of the resilient workflow: doubles its input.
    #[activity(name = "risky")]
    pub async fn risky(_ctx: ActivityContext, value: i64) -> Result<i64, ActivityError> {
        Ok(value * 2)
    }

    /// Fallback A (after a timeout): the input as it was, like a cached answer.
    #[activity(name = "fallback_a")]
    pub async fn fallback_a(_ctx: ActivityContext, value: i64) -> Result<i64, ActivityError> {
        Ok(value)
    }

    /// Fallback B (after a configured application error): a safe default.
    #[activity(name = "fallback_b")]
    pub async fn fallback_b(_ctx: ActivityContext, _value: i64) -> Result<i64, ActivityError> {
        Ok(0)
    }
}
