//! Orchestration: validated input, Addition and Multiplication children in parallel, results summed.

use super::{DemoActivities, activity_options};
use crate::plan::OrchestrationInput;
use serde_json::{Number, Value};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ApplicationFailure, ChildWorkflowOptions, WorkflowContext, WorkflowResult, workflows::join};

/// Longest list of numbers the workflow accepts.
pub const MAX_NUMBERS: usize = 1000;

/// Checks the orchestration input and returns the numbers; the error names the offending field.
pub fn validate_numbers(numbers: &[Value]) -> Result<Vec<Number>, String> {
    if numbers.is_empty() {
        return Err("numbers: must not be empty".into());
    }
    if numbers.len() > MAX_NUMBERS {
        return Err(format!(
            "numbers: {} values, at most {MAX_NUMBERS} allowed",
            numbers.len()
        ));
    }
    numbers
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => Ok(n.clone()),
            _ => Err(format!("numbers[{i}]: {v} is not a finite number")),
        })
        .collect()
}

/// Validates the input or fails the workflow at once: bad input never gets better on retry.
fn validated(input: &OrchestrationInput) -> WorkflowResult<Vec<Number>> {
    validate_numbers(&input.numbers).map_err(|problem| {
        ApplicationFailure::builder(format!("invalid input: {problem}"))
            .type_name("InvalidInput".to_owned())
            .non_retryable(true)
            .build()
            .into()
    })
}

/// Parent workflow: sum(numbers) + product(numbers), computed by two children in parallel.
#[workflow]
#[derive(Default)]
pub struct Orchestration;

#[workflow_methods]
impl Orchestration {
    /// Runs the orchestration.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: OrchestrationInput) -> WorkflowResult<Number> {
        validated(&input)?;
        let id = ctx.workflow_id().to_owned();
        let child = |suffix: &str| ChildWorkflowOptions::workflow_id(format!("{id}-{suffix}"));
        let (addition, multiplication) = join!(
            ctx.start_child_workflow(Addition::run, input.clone(), child("addition")),
            ctx.start_child_workflow(Multiplication::run, input.clone(), child("multiplication"))
        );
        let (sum, product) = join!(addition?.result(), multiplication?.result());
        let total = ctx
            .execute_activity(
                DemoActivities::sum,
                vec![sum?, product?],
                activity_options(&input.activity),
            )
            .await?;
        Ok(total)
    }
}

/// Child workflow: adds the numbers in an activity.
#[workflow]
#[derive(Default)]
pub struct Addition;

#[workflow_methods]
impl Addition {
    /// Runs the addition.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: OrchestrationInput) -> WorkflowResult<Number> {
        let numbers = validated(&input)?;
        Ok(ctx
            .execute_activity(DemoActivities::add, numbers, activity_options(&input.activity))
            .await?)
    }
}

/// Child workflow: multiplies the numbers in an activity.
#[workflow]
#[derive(Default)]
pub struct Multiplication;

#[workflow_methods]
impl Multiplication {
    /// Runs the multiplication.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: OrchestrationInput) -> WorkflowResult<Number> {
        let numbers = validated(&input)?;
        Ok(ctx
            .execute_activity(DemoActivities::multiply, numbers, activity_options(&input.activity))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::validate_numbers;
    use serde_json::json;

    #[test]
    fn validation_names_the_bad_field() {
        assert_eq!(
            validate_numbers(&[json!(1), json!(2.5)]),
            Ok(vec![1.into(), serde_json::Number::from_f64(2.5).unwrap()])
        );
        assert_eq!(validate_numbers(&[]).unwrap_err(), "numbers: must not be empty");
        // NaN has no JSON form: serde turns it into null on the way to the workflow.
        let nan = serde_json::to_value(f64::NAN).unwrap();
        assert_eq!(
            validate_numbers(&[json!(1), nan]).unwrap_err(),
            "numbers[1]: null is not a finite number"
        );
        assert!(
            validate_numbers(&[json!("2")])
                .unwrap_err()
                .starts_with("numbers[0]: \"2\"")
        );
        assert!(
            validate_numbers(&vec![json!(1); 1001])
                .unwrap_err()
                .contains("at most 1000")
        );
    }
}
