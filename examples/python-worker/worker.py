"""Entry point of the python-example worker.

Reads its server from TEMPORAL_HOST / TEMPORAL_PORT (defaults 127.0.0.1 / 7233) and its namespace
from TEMPORAL_NAMESPACE (default "default"); polls the fixed task queue `python-example` until
SIGINT or SIGTERM. Side effects only under `__main__`: the workflow sandbox re-imports modules.
"""

import asyncio
import os
import signal
import sys
from datetime import timedelta

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from app.activities import add, charge, charge_backup, multiply, queue_for_review, sum_results
from app.workflows import AddWorkflow, MultiplyWorkflow, OrderTotalWorkflow, PaymentWorkflow

TASK_QUEUE = "python-example"
WORKFLOWS = [OrderTotalWorkflow, PaymentWorkflow, AddWorkflow, MultiplyWorkflow]
ACTIVITIES = [add, multiply, sum_results, charge, charge_backup, queue_for_review]
# After a crash, the next workflow task of a cached workflow waits on the dead worker's sticky
# queue this long before the server hands it to another worker (the SDK default is 10 s).
STICKY_QUEUE_TIMEOUT = timedelta(seconds=2)


def server_address() -> str:
    """`host:port` from TEMPORAL_HOST and TEMPORAL_PORT; exits with a clear message if invalid."""
    host = os.environ.get("TEMPORAL_HOST", "127.0.0.1")
    port = os.environ.get("TEMPORAL_PORT", "7233")
    if not port.isdigit() or not 0 < int(port) < 65536:
        sys.exit(f"worker: TEMPORAL_PORT must be a port number (1-65535), got {port!r}")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def main() -> None:
    """Connects, polls the task queue, and shuts down gracefully on SIGINT / SIGTERM."""
    address = server_address()
    namespace = os.environ.get("TEMPORAL_NAMESPACE", "default")
    try:
        client = await Client.connect(address, namespace=namespace)
    except (RuntimeError, RPCError) as err:
        sys.exit(f"worker: cannot connect to the Temporal server at {address}: {err}")
    try:
        request = DescribeNamespaceRequest(namespace=namespace)
        await client.workflow_service.describe_namespace(request)
    except RPCError as err:
        sys.exit(f"worker: TEMPORAL_NAMESPACE `{namespace}` is not usable on {address}: {err}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=WORKFLOWS,
        activities=ACTIVITIES,
        sticky_queue_schedule_to_start_timeout=STICKY_QUEUE_TIMEOUT,
    ):
        workflow_types = ", ".join(w.__name__ for w in WORKFLOWS)
        activity_types = ", ".join(a.__name__ for a in ACTIVITIES)
        print(
            f"python-example worker polling task queue `{TASK_QUEUE}` at {address} "
            f"(namespace `{namespace}`); workflows: {workflow_types}; activities: {activity_types}",
            flush=True,
        )
        await stop.wait()
    print("python-example worker stopped", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except RuntimeError as err:  # a fatal worker error, e.g. the server went away for good
        sys.exit(f"worker: stopped: {err}")
