"""Activities that only version 2 of the app (`APP_VERSION=v2-breaking` / `v2-patched`) adds."""

from temporalio import activity


@activity.defn
async def check_fraud(amount: int) -> dict:
    """Screens the payment before it is charged: quick, and this demo approves every amount."""
    return {"amount": amount, "approved": True}
