#!/usr/bin/env bash
# install-deps.sh: install the Debian 12 packages Careline needs to build, test and run
# its local stack. A fast no-op when all of them are present (dpkg-query only); apt-get
# update and install run only for what is missing. Root runs apt-get directly, anyone
# else through sudo. Non-interactive throughout.
set -euo pipefail

PKGS=(
    build-essential pkg-config                       # compiler, make, pkg-config
    libevent-dev libpq-dev libhiredis-dev            # daemon libraries
    libprotobuf-c-dev protobuf-c-compiler            # wire protocol
    libjansson-dev libinih-dev libssl-dev            # JSON, config, hashing/TLS
    postgresql-15 postgresql-client-15 redis-server  # the real servers (deploy/stack.sh)
    clang-format cppcheck                            # make format-check / lint
    procps iproute2 coreutils util-linux             # ps/kill, ss, timeout, runuser
    curl jq                                          # webhook tests and README examples
    openssl                                          # TLS certificates (deploy/make-tls.sh)
    # make fuzz / fuzz-smoke: Debian's clang and its libFuzzer + sanitizer runtimes
    clang libclang-rt-14-dev llvm-14
)

missing=()
for p in "${PKGS[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ $st == installed ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

echo "install-deps: installing: ${missing[*]}"
if ((EUID == 0)); then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n env DEBIAN_FRONTEND=noninteractive)
else
    echo "install-deps: not root and no sudo; install as root: ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
    -o Acquire::Retries=3 --no-install-recommends)
"${SUDO[@]}" apt-get -q -o Acquire::Retries=3 update
# Installing postgresql-15 may create and start a 'main' cluster on 5432; Careline never
# uses it (deploy/stack.sh runs private clusters), so its start-up is not our concern.
"${SUDO[@]}" apt-get "${APT_OPTS[@]}" install "${missing[@]}"

# Verify, so a half-done install fails here and not later in a confusing place.
still=()
for p in "${missing[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ $st == installed ]] || still+=("$p")
done
if ((${#still[@]})); then
    echo "install-deps: still missing after apt-get: ${still[*]}" >&2
    exit 1
fi
echo "install-deps: done"
