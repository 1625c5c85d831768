#!/usr/bin/env bash
# Build the sandbox image. Uses the Dockerfile's slim Python base when a registry answers; otherwise builds
# the base offline from a Debian debootstrap root (no registry needed) and builds the same Dockerfile on it.
# Usage: sandbox_image/build.sh [IMAGE_TAG]   (default selfchallenge-sandbox:1; no-op if it already exists)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tag=${1:-selfchallenge-sandbox:1}
base_tag=selfchallenge-sandbox-base:bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "sandbox image $tag already present"; exit 0
fi
if [ "${SANDBOX_OFFLINE:-auto}" != "1" ] && timeout 20 docker pull -q python:3.11-slim >/dev/null 2>&1; then
  docker build -q -t "$tag" "$here"; exit 0
fi
if ! docker image inspect "$base_tag" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { echo "debootstrap missing: apt-get install -y debootstrap" >&2; exit 1; }
  rootfs=$(mktemp -d /tmp/sc-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  echo "building offline base image $base_tag from debootstrap (about a minute)"
  debootstrap --variant=minbase --include=python3-minimal,libpython3.11-stdlib bookworm "$rootfs" "$mirror" >/tmp/sc-debootstrap.log 2>&1 \
    || { echo "debootstrap failed, see /tmp/sc-debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import - "$base_tag" >/dev/null
fi
docker build -q --build-arg BASE="$base_tag" -t "$tag" "$here" >/dev/null
echo "built sandbox image $tag (offline base $base_tag)"
