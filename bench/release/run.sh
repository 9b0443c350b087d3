#!/usr/bin/env bash
# Release benchmark, in one run on the local engine (classic builder): the cargohold release playbook vs a
# naive per-service `COPY . . && cargo build --release --bin SVC` Dockerfile, after
#   1. a source-only change to the shared crate (all service images rebuilt),
#   2. a source-only change to one service (one service image rebuilt),
# and the size of a runtime image vs the builder image. Prints the three ratios against their targets
# (<= 0.25x, <= 0.5x, <= 0.1x) and the load average; quote them with `uptime` from before the run.
# Both sides start warm (cold builds done first, not compared) and use the same Rust base image.
# Env: BENCH_DIR (scratch dir, default /tmp/cargohold-bench), RESULTS (default bench/release/results).
set -euo pipefail
export DOCKER_BUILDKIT=0
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$repo/bench/release"
dir="${BENCH_DIR:-/tmp/cargohold-bench}"
results="${RESULTS:-$here/results}"
ws="$dir/workspace"
project=cargohold-bench
services=(api auth billing notify)
PATH="$repo/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$repo/ansible.cfg"

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.1f}')"; }

rm -rf "$dir" && mkdir -p "$ws" "$results"
tar -C "$repo/examples/workspace" --exclude=target -cf - . | tar -C "$ws" -xf -
git -C "$ws" init -q && git -C "$ws" add -A && git -C "$ws" -c user.name=bench -c user.email=bench@localhost commit -q -m bench

# A source-only edit that must have changed the file, or the measurement after it means nothing.
edit() {
  sed -i "$2" "$1"
  if ! grep -qF "$3" "$1"; then log "edit of $1 did not apply"; exit 1; fi
}
# profile_tasks puts each task's seconds in the logs: where the release playbook's time goes.
release() {
  ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks \
  ansible-playbook "$repo/playbooks/release.yml" -e cargohold_workspace="$ws" -e release_image_project=$project \
    -e release_image_stage_dir="$dir/stage" -e release_image_build_dir="$dir/build" >"$dir/release-$1.log" 2>&1 \
    || { tail -40 "$dir/release-$1.log" >&2; exit 1; }
}
naive() {
  docker build -q -f "$here/Dockerfile.naive" --build-arg BASE=$project-naive-base --build-arg SVC="$1" \
    -t "$project-naive/$1" "$ws" >/dev/null
}

log "cold: release playbook (builds the Rust base, cargo-chef and runtime base images if missing)"
t0=$(now); release cold; cold_release=$(secs "$t0" "$(now)")
base_ref=$(docker image ls --format '{{.Repository}}:{{.Tag}}' cargohold/rust-base | head -n1)
ctx="$dir/naive-base" && mkdir -p "$ctx" && cp /etc/ssl/certs/ca-certificates.crt "$ctx/extra-ca.crt"
docker build -q -f "$here/Dockerfile.naive-base" --build-arg BASE="$base_ref" -t $project-naive-base "$ctx" >/dev/null
log "cold: naive images"
t0=$(now); for s in "${services[@]}"; do naive "$s"; done; cold_naive=$(secs "$t0" "$(now)")
t0=$(now); release warm; noop_release=$(secs "$t0" "$(now)")

log "edit the shared crate: every service changes"
edit "$ws/crates/common/src/lib.rs" 's/VERSION_TAG: &str = "v1"/VERSION_TAG: \&str = "v2"/' 'VERSION_TAG: &str = "v2"'
t0=$(now); for s in "${services[@]}"; do naive "$s"; done; all_naive=$(secs "$t0" "$(now)")
t0=$(now); release all; all_release=$(secs "$t0" "$(now)")

log "edit one service"
edit "$ws/services/api/src/main.rs" 's/"api-1"/"api-2"/' '"api-2"'
t0=$(now); naive api; one_naive=$(secs "$t0" "$(now)")
t0=$(now); release one; one_release=$(secs "$t0" "$(now)")

size() { docker image inspect --format '{{.Size}}' "$1"; }
runtime_size=$(size $project/api:0.1.0)
builder_size=$(size cargohold/release-build:$project)
naive_size=$(size $project-naive/api)
rebuilt_one=$(grep -o '[0-9]* rebuilt: [a-z, ]*' "$dir/release-one.log" | head -n1)

python3 - "$results/latest.json" <<PY
import json, sys
r = dict(cold_release=$cold_release, cold_naive=$cold_naive, noop_release=$noop_release,
         all_naive=$all_naive, all_release=$all_release, one_naive=$one_naive, one_release=$one_release,
         runtime_size=$runtime_size, builder_size=$builder_size, naive_size=$naive_size,
         rebuilt_one="$rebuilt_one")
r["ratio_all"] = round(r["all_release"] / r["all_naive"], 3)
r["ratio_one"] = round(r["one_release"] / r["one_naive"], 3)
r["ratio_size_builder"] = round(r["runtime_size"] / r["builder_size"], 3)
r["ratio_size_naive"] = round(r["runtime_size"] / r["naive_size"], 3)
r["load_average"] = open("/proc/loadavg").read().split()[:3]
json.dump(r, open(sys.argv[1], "w"), indent=2)
print(json.dumps(r, indent=2))
rows = [("all images after a shared-crate edit", r["all_release"], r["all_naive"], r["ratio_all"], 0.25, "s"),
        ("one image after an edit to it", r["one_release"], r["one_naive"], r["ratio_one"], 0.5, "s"),
        ("runtime image size vs the builder", r["runtime_size"] / 1e6, r["builder_size"] / 1e6,
         r["ratio_size_builder"], 0.1, "MB")]
print(f"{'measure':<40} {'cargohold':>10} {'naive':>10} {'ratio':>7} {'target':>7}")
for name, ours, theirs, ratio, target, unit in rows:
    print(f"{name:<40} {ours:>8.1f}{unit:>2} {theirs:>8.1f}{unit:>2} {ratio:>6.3f}x {'<=':>3}{target}x "
          f"{'met' if ratio <= target else 'MISSED'}")
print("load average at the end:", " ".join(r["load_average"]))
PY
