#!/usr/bin/env bash
# Installs the Debian packages the build and tests need, only those missing.
# Safe to run repeatedly; runs `apt-get update` once when something must be installed.
set -euo pipefail
PKGS=(build-essential cmake pkg-config libcbor-dev check libjansson-dev zlib1g-dev clang libclang-rt-14-dev liblmdb-dev lmdb-utils libjwt-dev libssl-dev libwebsockets-dev)
# the server's and tandem-bench-load's event loop: libev (ev.h, -lev) under lws's evlib-ev
# plugin; both come with libwebsockets-dev on Debian 12, listed so the build's needs are explicit
PKGS+=(libev-dev libwebsockets-evlib-ev)
# the demo page's end-to-end tests (server/web/demo/e2e) drive Debian's Chromium through playwright-core
PKGS+=(chromium)
# Web Push (issue 7): libcurl sends the notifications; tests/push runs on node (npm ci)
PKGS+=(libcurl4-openssl-dev)
# several nodes through Redis (issue 9, docs/SCALING.md): hiredis; tests/test_cluster runs redis-server
PKGS+=(libhiredis-dev redis-server)
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
