#!/usr/bin/env bash
# Build the tier 3 run image locally (no image registry is reachable; RECIPES.md):
# a debootstrap bookworm minbase rootfs imported as appstrate/base:bookworm (once, cached),
# then run.Dockerfile on top (python3). Safe to run again: both steps are cached.
# Usage: infra/images/build.sh [IMAGE]   (default: $RUN_IMAGE or appstrate/run:latest)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
image="${1:-${RUN_IMAGE:-appstrate/run:latest}}"
base="appstrate/base:bookworm"

if ! docker image inspect "$base" >/dev/null 2>&1; then
  if ! command -v debootstrap >/dev/null; then
    apt-get install -y debootstrap >/dev/null
  fi
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  debootstrap --variant=minbase bookworm "$work/rootfs" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  tar -C "$work/rootfs" -c . | docker import - "$base" >/dev/null
fi
docker build --quiet --build-arg BASE_IMAGE="$base" -t "$image" -f "$here/run.Dockerfile" "$here" >/dev/null
echo "$image"
