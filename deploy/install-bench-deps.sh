#!/usr/bin/env bash
# install-bench-deps.sh: install the Debian 12 packages only the benchmarks need (make bench):
# PostGIS for the nearest-station reference, redis-benchmark (redis-tools) for the XADD
# reference, pgbench (postgresql-contrib). Like install-deps.sh: a fast no-op when all are
# present, apt-get only for what is missing, root directly or through sudo -n.
# Exit 0 when everything is installed; 1 when something could not be (the caller decides
# whether that row is "n/a").
set -euo pipefail

PKGS=(
    postgresql-15-postgis-3  # ORDER BY geom <-> point reference (GiST KNN)
    redis-tools              # redis-benchmark: raw XADD reference
    postgresql-contrib       # pgbench
    procps                   # ps, for RSS figures
)

missing=()
for p in "${PKGS[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ $st == installed ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

echo "install-bench-deps: installing: ${missing[*]}" >&2
if ((EUID == 0)); then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n env DEBIAN_FRONTEND=noninteractive)
else
    echo "install-bench-deps: not root and no sudo; install as root: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
    -o Acquire::Retries=3 --no-install-recommends)
"${SUDO[@]}" apt-get -q -o Acquire::Retries=3 update >&2 || true
"${SUDO[@]}" apt-get "${APT_OPTS[@]}" install "${missing[@]}" >&2 || true

still=()
for p in "${missing[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ $st == installed ]] || still+=("$p")
done
if ((${#still[@]})); then
    echo "install-bench-deps: still missing: ${still[*]}" >&2
    exit 1
fi
echo "install-bench-deps: done" >&2
