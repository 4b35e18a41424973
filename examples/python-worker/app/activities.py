"""Activities of the python-example app.

They hold no chaos code: faults are injected on the wire by `chaos proxy`.
"""

import asyncio
import math
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

# How often `charge` heartbeats while it "processes".
CHARGE_HEARTBEAT_EVERY_SECONDS = 0.2

# An int or a float, kept as JSON decoded it: a `float` hint would turn 24 into 24.0 and
# `int | float` would turn 2.5 into 2.
Number = Any


@activity.defn
async def add(numbers: list) -> Number:
    """Sum of the numbers."""
    return sum(numbers)


@activity.defn
async def multiply(numbers: list) -> Number:
    """Product of the numbers."""
    return math.prod(numbers)


@activity.defn
async def sum_results(values: list) -> Number:
    """Adds the results of the two child workflows."""
    return sum(values)


@activity.defn
async def charge(amount: int, processing_ms: int) -> dict:
    """Charges the card: "processes" for `processing_ms`, heartbeating every 200 ms meanwhile."""
    if amount <= 0:
        raise ApplicationError(
            f"card invalid: cannot charge {amount}", type="CardInvalid", non_retryable=True
        )
    loop = asyncio.get_running_loop()
    done_at = loop.time() + processing_ms / 1000
    while (left := done_at - loop.time()) > 0:
        activity.heartbeat()
        await asyncio.sleep(min(left, CHARGE_HEARTBEAT_EVERY_SECONDS))
    return {"charged": amount, "via": "card"}


@activity.defn
async def charge_backup(amount: int) -> dict:
    """Charges through the second provider: quick, no heartbeat."""
    return {"charged": amount, "via": "backup"}


@activity.defn
async def queue_for_review(amount: int) -> dict:
    """Puts a declined payment in the manual review queue; nothing is charged."""
    activity.logger.info("payment of %s queued for review", amount)
    return {"charged": 0, "via": "review"}
