//! Activities of the demo workflows. Plain business logic: no fault code here.
//!
//! Numbers stay as written: integers add and multiply as integers (34, not 34.0), and only a
//! float among them (or an integer overflow) makes the result a float.

use serde_json::Number;
use temporalio_macros::activities;
use temporalio_sdk::{
    ApplicationFailure,
    activities::{ActivityContext, ActivityError},
};

/// Folds `numbers` with the integer operation while every one is an integer and nothing
/// overflows, else with the float one.
fn fold(
    numbers: &[Number],
    start: i64,
    int: fn(i64, i64) -> Option<i64>,
    float: fn(f64, f64) -> f64,
) -> Result<Number, ActivityError> {
    let exact = numbers
        .iter()
        .try_fold(start, |acc, n| n.as_i64().and_then(|n| int(acc, n)));
    match exact {
        Some(n) => Ok(n.into()),
        None => {
            let value = numbers.iter().filter_map(Number::as_f64).fold(start as f64, float);
            Number::from_f64(value).ok_or_else(|| {
                ApplicationFailure::builder(format!("the result {value} is not a finite number"))
                    .type_name("Overflow".to_owned())
                    .non_retryable(true)
                    .build()
                    .into()
            })
        }
    }
}

/// The demo activities, registered under short names (`add`, `risky`, ...).
pub struct DemoActivities;

#[activities]
impl DemoActivities {
    /// Sum of the numbers.
    #[activity(name = "add")]
    pub async fn add(_ctx: ActivityContext, numbers: Vec<Number>) -> Result<Number, ActivityError> {
        fold(&numbers, 0, i64::checked_add, |a, b| a + b)
    }

    /// Product of the numbers.
    #[activity(name = "multiply")]
    pub async fn multiply(_ctx: ActivityContext, numbers: Vec<Number>) -> Result<Number, ActivityError> {
        fold(&numbers, 1, i64::checked_mul, |a, b| a * b)
    }

    /// Sum of the child workflows' results.
    #[activity(name = "sum")]
    pub async fn sum(_ctx: ActivityContext, parts: Vec<Number>) -> Result<Number, ActivityError> {
        fold(&parts, 0, i64::checked_add, |a, b| a + b)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(text: &str) -> Vec<Number> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn integers_stay_integers_and_floats_spread() {
        let sum = |t: &str| {
            fold(&numbers(t), 0, i64::checked_add, |a, b| a + b)
                .unwrap()
                .to_string()
        };
        let product = |t: &str| {
            fold(&numbers(t), 1, i64::checked_mul, |a, b| a * b)
                .unwrap()
                .to_string()
        };
        assert_eq!(sum("[1, 2, 3, 4]"), "10");
        assert_eq!(product("[1, 2, 3, 4]"), "24");
        assert_eq!(sum("[1, 2.5]"), "3.5");
        assert_eq!(product("[9223372036854775807, 2]"), "1.8446744073709552e+19");
        assert!(fold(&numbers("[1e308, 10]"), 1, i64::checked_mul, |a, b| a * b).is_err());
    }
}
