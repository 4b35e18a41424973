"""Workflows of the python-example app.

`OrderTotalWorkflow` orchestrates two child workflows in parallel; `PaymentWorkflow` shows error
handling: the kind of failure of its `charge` activity decides which fallback runs.
"""

import asyncio
import math
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from app.activities import (
        Number,
        add,
        charge,
        charge_backup,
        multiply,
        queue_for_review,
        sum_results,
    )

# Options of the orchestration's activities.
ORCHESTRATION_ACTIVITY = {
    "start_to_close_timeout": timedelta(seconds=5),
    "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5),
}

# Options of the payment fallbacks (`charge_backup`, `queue_for_review`).
FALLBACK_ACTIVITY = {
    "start_to_close_timeout": timedelta(seconds=5),
    "retry_policy": RetryPolicy(maximum_attempts=3),
}

# `PaymentWorkflow` policy keys and their defaults (`*_ms` in milliseconds; `None`: not set).
# A `heartbeat_timeout_ms` of 0 turns the heartbeat timeout off.
PAYMENT_POLICY_DEFAULTS = {
    "start_to_close_ms": 2000,
    "schedule_to_close_ms": None,
    "heartbeat_timeout_ms": 1000,
    "maximum_attempts": 3,
    "initial_interval_ms": 200,
}
PAYMENT_BACKOFF = 2.0
PAYMENT_NON_RETRYABLE_TYPES = ["CardInvalid"]
# How long `charge` "processes" unless the request says otherwise (`processing_ms`).
CHARGE_PROCESSING_MS = 600


def invalid_input(reason: str) -> ApplicationError:
    """The non-retryable error that fails a workflow given bad input."""
    return ApplicationError(f"invalid input: {reason}", type="InvalidInput", non_retryable=True)


def is_number(value: object) -> bool:
    """A finite JSON number (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: object) -> bool:
    """A JSON integer (booleans are not integers here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def order_numbers(order: object) -> list:
    """The `numbers` of an order, validated: a non-empty list of finite numbers."""
    if not isinstance(order, dict) or "numbers" not in order:
        raise invalid_input('expected an object {"numbers": [...]}')
    numbers = order["numbers"]
    if not isinstance(numbers, list) or not numbers:
        raise invalid_input("`numbers` must be a non-empty list")
    for index, value in enumerate(numbers):
        if not is_number(value):
            raise invalid_input(f"`numbers[{index}]` is {value!r}, not a finite number")
    return numbers


@workflow.defn
class AddWorkflow:
    """Child workflow: the sum of the numbers (activity `add`)."""

    @workflow.run
    async def run(self, numbers: list) -> Number:
        return await workflow.execute_activity(add, numbers, **ORCHESTRATION_ACTIVITY)


@workflow.defn
class MultiplyWorkflow:
    """Child workflow: the product of the numbers (activity `multiply`)."""

    @workflow.run
    async def run(self, numbers: list) -> Number:
        return await workflow.execute_activity(multiply, numbers, **ORCHESTRATION_ACTIVITY)


@workflow.defn
class OrderTotalWorkflow:
    """Validates `{"numbers": [...]}`, runs the add and multiply children in parallel, sums them."""

    @workflow.run
    async def run(self, order: dict) -> dict:
        numbers = order_numbers(order)
        parent = workflow.info().workflow_id
        total_sum, product = await asyncio.gather(
            workflow.execute_child_workflow(AddWorkflow.run, numbers, id=f"{parent}-add"),
            workflow.execute_child_workflow(MultiplyWorkflow.run, numbers, id=f"{parent}-multiply"),
        )
        total = await workflow.execute_activity(
            sum_results, [total_sum, product], **ORCHESTRATION_ACTIVITY
        )
        return {"sum": total_sum, "product": product, "total": total}


def payment_request(request: object) -> tuple:
    """The amount, processing time and `charge` activity options of a payment request, validated."""
    if not isinstance(request, dict):
        raise invalid_input(
            'expected an object {"amount": int, "processing_ms": int, "policy": {...}}'
        )
    unknown = sorted(set(request) - {"amount", "processing_ms", "policy"})
    if unknown:
        raise invalid_input(
            f"unknown field(s) {unknown}; expected `amount`, `processing_ms`, `policy`"
        )
    amount = request.get("amount")
    if not is_int(amount):
        raise invalid_input(f"`amount` must be an integer, got {amount!r}")
    processing_ms = request.get("processing_ms", CHARGE_PROCESSING_MS)
    if not is_int(processing_ms) or processing_ms < 0:
        raise invalid_input(f"`processing_ms` must be an integer >= 0, got {processing_ms!r}")
    policy = request.get("policy", {})
    if not isinstance(policy, dict):
        raise invalid_input("`policy` must be an object")
    unknown = sorted(set(policy) - set(PAYMENT_POLICY_DEFAULTS))
    if unknown:
        raise invalid_input(
            f"unknown policy key(s) {unknown}; known: {sorted(PAYMENT_POLICY_DEFAULTS)}"
        )
    settings = {**PAYMENT_POLICY_DEFAULTS, **policy}
    for key, value in settings.items():
        if value is None and PAYMENT_POLICY_DEFAULTS[key] is None:
            continue
        least = 0 if key == "heartbeat_timeout_ms" else 1
        if not is_int(value) or value < least:
            raise invalid_input(f"`policy.{key}` must be an integer >= {least}, got {value!r}")

    def millis(key: str):
        value = settings[key]
        return timedelta(milliseconds=value) if value else None

    options = {
        "start_to_close_timeout": millis("start_to_close_ms"),
        "schedule_to_close_timeout": millis("schedule_to_close_ms"),
        "heartbeat_timeout": millis("heartbeat_timeout_ms"),
        "retry_policy": RetryPolicy(
            initial_interval=millis("initial_interval_ms"),
            backoff_coefficient=PAYMENT_BACKOFF,
            maximum_attempts=settings["maximum_attempts"],
            non_retryable_error_types=PAYMENT_NON_RETRYABLE_TYPES,
        ),
    }
    return amount, processing_ms, options


@workflow.defn
class PaymentWorkflow:
    """Charges a card under a retry policy. When `charge` finally fails, the kind of failure
    decides: a timeout -> `charge_backup`, a `CardDeclined` error -> `queue_for_review`, anything
    else fails the workflow."""

    @workflow.run
    async def run(self, request: dict) -> dict:
        amount, processing_ms, options = payment_request(request)
        try:
            return await workflow.execute_activity(charge, args=[amount, processing_ms], **options)
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, TimeoutError):
                return await workflow.execute_activity(charge_backup, amount, **FALLBACK_ACTIVITY)
            if isinstance(cause, ApplicationError) and cause.type == "CardDeclined":
                return await workflow.execute_activity(
                    queue_for_review, amount, **FALLBACK_ACTIVITY
                )
            kind = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
            message = cause.message if isinstance(cause, FailureError) else str(cause)
            raise ApplicationError(
                f"charge failed ({kind}): {message}", type="PaymentFailed", non_retryable=True
            ) from err
