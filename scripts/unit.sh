#!/usr/bin/env bash
# Run the collection's unit tests (tests/unit) with pytest.
#
# The tests import the collection as ansible_collections.cargohold.devenv, so
# <repo>/.collections/ansible_collections/cargohold/devenv must point at this
# checkout (git-ignored symlink, created here when missing).
# Env: PYTEST (default: pytest on PATH). Extra arguments go to pytest.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pytest_bin="${PYTEST:-pytest}"

read -r namespace name < <(
    awk -F': *' '/^namespace:/ {ns=$2} /^name:/ {n=$2} END {print ns, n}' "$repo/galaxy.yml"
)
link="$repo/.collections/ansible_collections/$namespace/$name"
if [ ! -e "$link" ]; then
    mkdir -p "$(dirname "$link")"
    ln -sfn "$repo" "$link"
fi

# Real-cargo tests look on PATH, then in ~/.cargo/bin (rustup's default).
export PYTHONPATH="$repo/.collections${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
cd "$repo"
exec "$pytest_bin" -p no:cacheprovider tests/unit "$@"
