"""Version 2 of `PaymentWorkflow`: a `check_fraud` activity runs BEFORE `charge`.

Both variants register under the same workflow type, `PaymentWorkflow`, and reuse version 1
(`app.workflows.PaymentWorkflow`) for everything after the new step; `worker.py` picks one with
`APP_VERSION`.

- `PaymentWorkflowV2Breaking` adds the step unconditionally: a worker running it that replays the
  history of a run version 1 started (its first command was `charge`, now it is `check_fraud`)
  fails the workflow task with a nondeterminism error, again on every retry, until a version 1
  worker (a rollback) or a patched one takes the task.
- `PaymentWorkflowV2Patched` guards the step with `workflow.patched(FRAUD_CHECK_PATCH)`: runs
  started by version 1 replay unchanged (no marker in their history, so no check), new runs
  record the marker and take the new path.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from app.workflows import PaymentWorkflow, payment_request

with workflow.unsafe.imports_passed_through():
    from app.activities_v2 import check_fraud

# The `workflow.patched` id of the change; keep it once deployed (see `workflow.deprecate_patch`).
FRAUD_CHECK_PATCH = "fraud-check-before-charge"

FRAUD_CHECK_ACTIVITY = {
    "start_to_close_timeout": timedelta(seconds=5),
    "retry_policy": RetryPolicy(maximum_attempts=3),
}


def payment_amount(request: object) -> int:
    """The validated amount: bad input fails the workflow before any command, as in version 1."""
    amount, _, _ = payment_request(request)
    return amount


async def run_fraud_check(amount: int) -> None:
    """The step version 2 adds before `charge`."""
    await workflow.execute_activity(check_fraud, amount, **FRAUD_CHECK_ACTIVITY)


@workflow.defn(name="PaymentWorkflow")
class PaymentWorkflowV2Breaking(PaymentWorkflow):
    """Version 2 deployed without a patch: NOT replay-compatible with version 1 histories."""

    @workflow.run
    async def run(self, request: dict) -> dict:
        await run_fraud_check(payment_amount(request))
        return await super().run(request)


@workflow.defn(name="PaymentWorkflow")
class PaymentWorkflowV2Patched(PaymentWorkflow):
    """Version 2 behind `workflow.patched`: replays version 1 histories, new runs check fraud."""

    @workflow.run
    async def run(self, request: dict) -> dict:
        amount = payment_amount(request)
        if workflow.patched(FRAUD_CHECK_PATCH):
            await run_fraud_check(amount)
        return await super().run(request)
