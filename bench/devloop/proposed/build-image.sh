#!/usr/bin/env bash
# Builds cargohold-devloop/dev-fastrun:latest = the bench's dev image with the proposed cargohold-run (its stop
# waits for the child instead of polling every 0.1 s). Run the bench once first (it builds cargohold/dev:devloop-bench),
# then e.g.:
#   bench/devloop/run --modes shared_builder,shared_builder:fastrun \
#     --variant 'fastrun={"dev_services_image":"cargohold-devloop/dev-fastrun:latest"}'
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
install -m 0755 "$here/cargohold-run" "$ctx/cargohold-run"
printf 'FROM cargohold/dev:devloop-bench\nCOPY cargohold-run /usr/local/bin/cargohold-run\n' >"$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t cargohold-devloop/dev-fastrun:latest "$ctx"
