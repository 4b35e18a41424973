#!/usr/bin/env bash
# Creates examples/python-worker/.venv with the app's requirements. Idempotent: does nothing when
# the venv exists and imports the pinned temporalio.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"
wanted="$(sed -n 's/^temporalio==//p' "$here/requirements.txt")"

if [ -x "$venv/bin/python" ] \
  && [ "$("$venv/bin/python" -c 'import temporalio; print(temporalio.__version__)' 2>/dev/null)" = "$wanted" ]; then
  echo "setup: $venv already has temporalio $wanted; nothing to do"
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    found="$("$python" --version 2>&1 | head -n1)" || true
    echo "setup: temporalio $wanted needs Python 3.10 or newer; '$python' gives: ${found:-nothing} (set PYTHON=/path/to/python3.x)" >&2
    exit 1
  fi
  echo "setup: creating the virtualenv $venv"
  if ! "$python" -m venv "$venv"; then
    rm -rf "$venv"
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      echo "setup: '$python -m venv' failed; installing python3-venv with apt-get"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
      "$python" -m venv "$venv"
    else
      echo "setup: '$python -m venv' failed; install your distribution's python3-venv package" >&2
      exit 1
    fi
  fi
fi

echo "setup: installing $here/requirements.txt into $venv"
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$here/requirements.txt"
echo "setup: done: $("$venv/bin/python" -c 'import temporalio; print("temporalio", temporalio.__version__)')"
