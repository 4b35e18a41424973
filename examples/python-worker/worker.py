"""Entry point of the python-example worker.

Reads its server from TEMPORAL_HOST / TEMPORAL_PORT (defaults 127.0.0.1 / 7233) and its namespace
from TEMPORAL_NAMESPACE (default "default"); polls the fixed task queue `python-example` until
SIGINT or SIGTERM. Side effects only under `__main__`: the workflow sandbox re-imports modules.

TEMPORAL_CONNECT_WAIT_SECONDS (default 0) bounds how long it waits for the server and the namespace
at start, retrying with a backoff from 1 s doubling up to 30 s and logging one line per attempt.
With 0 it fails at once with the reason (what `chaos run` expects of a worker it starts); a
deployed worker, which may start before its server (Render has no start order), sets it (the
Dockerfile: 600).

APP_VERSION (default v1) picks the version of the app the worker runs, to deploy a change mid-run:
`v1`, `v2-breaking` or `v2-patched` (app/workflows_v2.py: `PaymentWorkflow` with a `check_fraud`
activity before `charge`, without and with `workflow.patched`). Any other value exits at once.
"""

import asyncio
import math
import os
import signal
import sys
from datetime import timedelta

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from app.activities import add, charge, charge_backup, multiply, queue_for_review, sum_results
from app.activities_v2 import check_fraud
from app.workflows import AddWorkflow, MultiplyWorkflow, OrderTotalWorkflow, PaymentWorkflow
from app.workflows_v2 import PaymentWorkflowV2Breaking, PaymentWorkflowV2Patched

TASK_QUEUE = "python-example"
WORKFLOWS = [OrderTotalWorkflow, PaymentWorkflow, AddWorkflow, MultiplyWorkflow]
ACTIVITIES = [add, multiply, sum_results, charge, charge_backup, queue_for_review]
# After a crash, the next workflow task of a cached workflow waits on the dead worker's sticky
# queue this long before the server hands it to another worker (the SDK default is 10 s).
STICKY_QUEUE_TIMEOUT = timedelta(seconds=2)
# APP_VERSION -> the class registered as the `PaymentWorkflow` type, and the activities it adds.
APP_VERSIONS = {
    "v1": (PaymentWorkflow, []),
    "v2-breaking": (PaymentWorkflowV2Breaking, [check_fraud]),
    "v2-patched": (PaymentWorkflowV2Patched, [check_fraud]),
}
DEFAULT_APP_VERSION = "v1"


def server_address() -> str:
    """`host:port` from TEMPORAL_HOST and TEMPORAL_PORT; exits with a clear message if invalid."""
    host = os.environ.get("TEMPORAL_HOST", "127.0.0.1")
    port = os.environ.get("TEMPORAL_PORT", "7233")
    if not port.isdigit() or not 0 < int(port) < 65536:
        sys.exit(f"worker: TEMPORAL_PORT must be a port number (1-65535), got {port!r}")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect_wait_seconds() -> int:
    """TEMPORAL_CONNECT_WAIT_SECONDS: how long to wait for the server at start (0: not at all)."""
    raw = os.environ.get("TEMPORAL_CONNECT_WAIT_SECONDS", "0").strip() or "0"
    if not raw.isdigit():
        sys.exit(
            "worker: TEMPORAL_CONNECT_WAIT_SECONDS must be a whole number of seconds "
            f"(0: do not wait), got {raw!r}"
        )
    return int(raw)


def app_version() -> str:
    """APP_VERSION (default v1); exits with a clear message if it names no version."""
    version = os.environ.get("APP_VERSION", "").strip() or DEFAULT_APP_VERSION
    if version not in APP_VERSIONS:
        sys.exit(
            f"worker: APP_VERSION must be one of {', '.join(APP_VERSIONS)} "
            f"(default {DEFAULT_APP_VERSION}), got {version!r}"
        )
    return version


def app_registrations(version: str) -> tuple:
    """The workflows and activities a worker of that version registers."""
    payment, extra_activities = APP_VERSIONS[version]
    workflows = [payment if w is PaymentWorkflow else w for w in WORKFLOWS]
    return workflows, ACTIVITIES + extra_activities


class NotReady(Exception):
    """The server cannot be used (yet): `str()` is the message to exit with, `reason` the short
    form for the log line of a retry."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


async def connect(address: str, namespace: str) -> Client:
    """One attempt: connects and checks that the namespace exists."""
    try:
        client = await Client.connect(address, namespace=namespace)
    except (RuntimeError, RPCError) as err:
        message = f"cannot connect to the Temporal server at {address}: {err}"
        raise NotReady(message, str(err)) from err
    try:
        request = DescribeNamespaceRequest(namespace=namespace)
        await client.workflow_service.describe_namespace(request)
    except RPCError as err:
        raise NotReady(
            f"TEMPORAL_NAMESPACE `{namespace}` is not usable on {address}: {err}",
            f"namespace `{namespace}`: {err}",
        ) from err
    return client


async def wait_for_server(address: str, namespace: str, max_wait: int) -> Client:
    """Connects, retrying for up to `max_wait` seconds (backoff from 1 s doubling up to 30 s, one
    log line per attempt); exits with the last reason once the time is up (at once when 0)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait
    delay = 1.0
    while True:
        try:
            return await connect(address, namespace)
        except NotReady as err:
            left = deadline - loop.time()
            if left <= 0:
                waited = f" (gave up after waiting {max_wait} s)" if max_wait > 0 else ""
                sys.exit(f"worker: {err}{waited}")
            pause = min(delay, left)
            next_try, give_up = math.ceil(pause), math.ceil(left)
            print(
                f"worker: waiting for the Temporal server at {address} "
                f"(next try in {next_try} s, giving up in {give_up} s): {err.reason}",
                file=sys.stderr,
                flush=True,
            )
            await asyncio.sleep(pause)
            delay = min(delay * 2, 30.0)


async def main() -> None:
    """Connects, polls the task queue, and shuts down gracefully on SIGINT / SIGTERM."""
    version = app_version()
    workflows, activities = app_registrations(version)
    address = server_address()
    namespace = os.environ.get("TEMPORAL_NAMESPACE", "default")
    client = await wait_for_server(address, namespace, connect_wait_seconds())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=workflows,
        activities=activities,
        sticky_queue_schedule_to_start_timeout=STICKY_QUEUE_TIMEOUT,
    ):
        # Every version registers its PaymentWorkflow class under the type name of version 1's.
        workflow_types = ", ".join(w.__name__ for w in WORKFLOWS)
        activity_types = ", ".join(a.__name__ for a in activities)
        deployed = "" if version == DEFAULT_APP_VERSION else f"; app version {version}"
        print(
            f"python-example worker polling task queue `{TASK_QUEUE}` at {address} "
            f"(namespace `{namespace}`); workflows: {workflow_types}; activities: {activity_types}"
            f"{deployed}",
            flush=True,
        )
        await stop.wait()
    print("python-example worker stopped", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except RuntimeError as err:  # a fatal worker error, e.g. the server went away for good
        sys.exit(f"worker: stopped: {err}")
