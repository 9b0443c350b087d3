#!/usr/bin/env bash
# Runs every check CI runs: ansible-lint (production profile), ansible-test sanity, unit tests, and the
# Molecule scenarios on the real Docker engine, then the release smoke test. Run scripts/setup.sh --test once first.
# MOLECULE_SCENARIOS narrows the scenarios (space-separated); CARGOHOLD_SKIP="lint sanity" skips checks.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
export PATH="$root/.venv/bin:$PATH"
[[ -x $root/.venv/bin/molecule ]] || { echo "test.sh: the test tools are missing; run ./scripts/setup.sh --test" >&2; exit 2; }
scenarios=${MOLECULE_SCENARIOS:-default shared_builder watchexec shapes faults docker release}
skip=" ${CARGOHOLD_SKIP:-} "
passed=0 failed=0 failures=()
# Each check's output is kept, so that the end of the run (all a CI log may show) repeats why a check failed.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

check() {
    local name=$1; shift
    if [[ $skip == *" $name "* ]]; then echo "== $name: skipped"; return; fi
    echo "== $name: $*"
    local start=$SECONDS
    if "$@" 2>&1 | tee "$logs/$name.log"; then
        passed=$((passed + 1)); echo "== $name: passed in $((SECONDS - start)) s"
    else
        failed=$((failed + 1)); failures+=("$name"); echo "== $name: FAILED in $((SECONDS - start)) s"
    fi
}

check lint ansible-lint --profile production
check changelog antsibull-changelog lint
check unit env PYTEST="$root/.venv/bin/pytest" scripts/unit.sh -q -rfE
# The in-container supervisor against real processes on this host (no Docker needed).
check runner "$root/.venv/bin/pytest" -q -rfE -p no:cacheprovider tests/runner
check sanity env ANSIBLE_TEST="$root/.venv/bin/ansible-test" scripts/sanity.sh
for scenario in $scenarios; do
    [[ -d molecule/$scenario ]] || { echo "== molecule-$scenario: no such scenario"; failed=$((failed + 1)); failures+=("molecule-$scenario"); continue; }
    check "molecule-$scenario" molecule test -s "$scenario"
done
# The release tarball installed into an empty collections path brings a workspace up (reuses the scenarios' images).
check smoke scripts/smoke.sh

for name in "${failures[@]}"; do
    [[ -f $logs/$name.log ]] || continue
    echo "== $name: the last 40 lines of its output"
    tail -n 40 "$logs/$name.log"
done
(( failed == 0 )) || echo "failed checks: ${failures[*]}"
echo "checks: $passed passed, $failed failed"
(( failed == 0 ))
