#!/usr/bin/env bash
# Make this machine able to run sandboxes: a Docker daemon that answers, plus bubblewrap and debootstrap.
# Installs Debian packages and starts dockerd only when running as root and something is missing.
set -euo pipefail
need_pkgs=()
command -v bwrap >/dev/null || need_pkgs+=(bubblewrap)
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
command -v dockerd >/dev/null || docker info >/dev/null 2>&1 || need_pkgs+=(docker.io)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing ${need_pkgs[*]}; install them (as root: apt-get install -y ${need_pkgs[*]})" >&2; exit 1
  fi
  echo ">> installing ${need_pkgs[*]}"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "no Docker daemon answers and we are not root: start one, or use sandbox.backend=bwrap" >&2; exit 1
  fi
  echo ">> starting dockerd (log: /var/log/selfchallenge-dockerd.log)"
  nohup dockerd >/var/log/selfchallenge-dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/selfchallenge-dockerd.log" >&2; exit 1; }
fi
