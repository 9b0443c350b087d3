#!/usr/bin/env bash
# Creates ./.venv with the pinned controller tools and makes this checkout importable as the
# cargohold.devenv collection (a link, so edits take effect without a reinstall).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}

[[ -x "$root/.venv/bin/python" ]] || "$python" -m venv "$root/.venv"
"$root/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/requirements.txt"

# Found by every ansible in the venv, whatever the working directory (e.g. inside a team's workspace).
site=$("$root/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$site/ansible_collections/cargohold" "$root/.collections/ansible_collections/cargohold"
ln -sfn "$root" "$site/ansible_collections/cargohold/devenv"
ln -sfn "$root" "$root/.collections/ansible_collections/cargohold/devenv"
echo "cargohold: tools in $root/.venv; collection cargohold.devenv -> $root"
