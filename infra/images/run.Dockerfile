# The image a tier 3 `script` step runs in, and its credential sidecar: Debian bookworm with
# python3. Built FROM a local debootstrap rootfs because no image registry is reachable.
ARG BASE_IMAGE=appstrate/base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Scripts never run as root inside the container.
RUN useradd --uid 10001 --create-home --shell /bin/sh runner
USER runner
WORKDIR /home/runner
