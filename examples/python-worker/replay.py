"""Replays recorded workflow histories against this app's workflows with the Python SDK's
`Replayer`: a code change that is not deterministic fails here, not on a running worker.

Usage: .venv/bin/python replay.py PATH...  (history files in Temporal's JSON, or folders of them,
e.g. the `histories/user/` folder of a `chaos run` report, or `temporal workflow show --output json`)
Exit code: 0 if every history replays, 1 if one does not, 2 if no history was given.
"""

import asyncio
import os
import pathlib
import sys

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from app.workflows import AddWorkflow, MultiplyWorkflow, OrderTotalWorkflow, PaymentWorkflow

WORKFLOWS = [OrderTotalWorkflow, PaymentWorkflow, AddWorkflow, MultiplyWorkflow]
# How long one history may take to replay: the SDK can wait forever on a malformed one.
REPLAY_LIMIT_SECONDS = 60


def history_files(paths: list) -> list:
    """The `.json` files named, and those in the folders named, in order."""
    files = []
    for path in map(pathlib.Path, paths):
        files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    return files


async def main(paths: list) -> int:
    files = history_files(paths)
    if not files:
        print(f"replay: no history files in {' '.join(paths) or '(nothing given)'}", file=sys.stderr)
        return 2
    replayer = Replayer(workflows=WORKFLOWS)
    failed = 0
    for file in files:
        try:
            history = WorkflowHistory.from_json(file.stem, file.read_text())
            replaying = replayer.replay_workflow(history, raise_on_replay_failure=False)
            result = await asyncio.wait_for(replaying, REPLAY_LIMIT_SECONDS)
        except asyncio.TimeoutError:
            failed += 1
            print(f"{file.name}: FAILED: no verdict within {REPLAY_LIMIT_SECONDS} s (a malformed history?)")
            continue
        except Exception as err:  # not a history: say which file and go on
            failed += 1
            print(f"{file.name}: FAILED: cannot read it as a workflow history: {err}")
            continue
        if result.replay_failure:
            failed += 1
            print(f"{file.name}: FAILED: {result.replay_failure}")
        else:
            print(f"{file.name}: replays ({len(history.events)} events)")
    return 1 if failed else 0


if __name__ == "__main__":
    code = asyncio.run(main(sys.argv[1:]))
    sys.stdout.flush()
    # A replay that never finished may leave the SDK's threads running: do not wait for them.
    os._exit(code)
