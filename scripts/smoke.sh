#!/usr/bin/env bash
# Release smoke test: what a user of the release tarball gets.
#  1. Builds the collection tarball from a copy of the checkout as git sees it, with the caches the tools leave
#     behind planted in it, and checks the tarball ships what users run and none of the dev-only content.
#  2. Installs it into an empty collections path (plus community.docker, the one dependency, as Galaxy would),
#     for a fresh venv that holds only requirements.txt. That Ansible sees no other collection path and does not
#     scan sys.path, so neither the checkout nor the dev venv's links nor ~/.ansible/collections are visible.
#  3. Brings up tests/smoke/workspace (one std-only service on port 18500) with its dev.yml, asserts the service
#     answers, takes the stack down with the installed cargohold.devenv.down playbook, and removes what it made.
# Env: CARGOHOLD_SMOKE_DIR (default /tmp/cargohold-smoke; its venv is reused while requirements.txt is unchanged),
#      PYTHON (python3).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${CARGOHOLD_SMOKE_DIR:-/tmp/cargohold-smoke}
python=${PYTHON:-python3}
venv=$dir/venv
collections=$dir/collections
# The directory's name is the project's name: containers cargohold-smoke-*, volumes cargohold-smoke-cargo-*.
project=cargohold-smoke
ws=$dir/$project
port=18500
stack_up=false

say() { echo "smoke: $*"; }
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }

cleanup() {
    local rc=$?
    if $stack_up; then
        say "taking the stack down after a failure"
        (cd "$ws" && "$venv/bin/ansible-playbook" cargohold.devenv.down -e "cargohold_workspace=$ws") >/dev/null 2>&1 || true
    fi
    docker volume rm "$project-cargo-target" "$project-cargo-cache" >/dev/null 2>&1 || true
    rm -rf "${HOME}/.cache/cargohold/$project"
    if ((rc == 0)); then rm -rf "$dir/src" "$dir/dist" "$collections" "$ws"; else say "left $dir for inspection"; fi
}
trap cleanup EXIT

rm -rf "$dir/src" "$dir/dist" "$collections" "$ws"
mkdir -p "$dir/dist" "$collections/ansible_collections/community"

# 1. The tarball.
src=$dir/src/ansible_collections/cargohold/devenv
mkdir -p "$src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done \
    | xargs -0 -r cp --parents -P -t "$src")
for planted in .venv/bin/python .collections/ansible_collections/x .ansible/tmp/x .pytest_cache/v/x \
    examples/workspace/.ansible/x examples/workspace/target/debug/x plugins/modules/__pycache__/x.pyc \
    bench/results/x.json changelogs/.plugin-cache.yaml docs/_build/index.html; do
    mkdir -p "$src/$(dirname "$planted")" && : >"$src/$planted"
done
"$root/.venv/bin/ansible-galaxy" collection build "$src" --output-path "$dir/dist" >/dev/null
tarball=$(compgen -G "$dir/dist/cargohold-devenv-*.tar.gz")
contents=$(tar -tzf "$tarball" | sed 's|^\./||')
shipped_dev=$(grep -E '^(molecule|bench|scripts|tests|docs/_build|\.ci|\.config|\.venv|\.collections|\.git)(/|$)|(^|/)(\.ansible|\.pytest_cache|__pycache__|target|\.plugin-cache\.yaml)(/|$)|\.pyc$|^(requirements.*\.txt|ansible\.cfg|\.ansible-lint)$' <<<"$contents" || true)
[[ -z $shipped_dev ]] || fail "the tarball ships dev-only content:"$'\n'"$shipped_dev"
for needed in MANIFEST.json FILES.json README.md COPYING meta/runtime.yml changelogs/changelog.yaml \
    plugins/modules/dev_containers.py plugins/modules/workspace_services.py plugins/module_utils/_plan.py \
    plugins/filter/table.py roles/dev_stack/tasks/main.yml roles/dev_image/files/cargohold-run \
    roles/release_image/tasks/main.yml playbooks/dev.yml playbooks/down.yml playbooks/status.yml examples/workspace/dev.yml; do
    grep -qxF "$needed" <<<"$contents" || fail "the tarball lacks $needed"
done
say "$(basename "$tarball"): $(wc -l <<<"$contents") entries, $(du -k "$tarball" | cut -f1) KiB, no dev-only content"

# 2. A user's controller: only requirements.txt, and the collections installed from tarballs.
stamp=$(sha256sum "$root/requirements.txt" | cut -d' ' -f1)
if [[ ! -x $venv/bin/ansible-playbook || $(cat "$venv/.requirements-sha256" 2>/dev/null) != "$stamp" ]]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/requirements.txt"
    echo "$stamp" >"$venv/.requirements-sha256"
fi
# community.docker and its own dependency, from the pinned ansible wheel that scripts/setup.sh put in the dev venv.
dev_site=$("$root/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for dep in docker library_inventory_filtering_v1; do
    [[ -f $dev_site/ansible_collections/community/$dep/MANIFEST.json ]] \
        || fail "community.$dep is not in $dev_site (run scripts/setup.sh)"
    cp -r "$dev_site/ansible_collections/community/$dep" "$collections/ansible_collections/community/$dep"
done
unset ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATHS
export ANSIBLE_COLLECTIONS_PATH=$collections ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
"$venv/bin/ansible-galaxy" collection install --offline -p "$collections" "$tarball" >/dev/null
"$venv/bin/ansible-galaxy" collection verify --offline cargohold.devenv >/dev/null \
    || fail "the installed collection differs from its FILES.json"
# Where the modules are loaded from: the installed copy, never the checkout.
module_path=$(cd "$dir" && "$venv/bin/ansible-doc" cargohold.devenv.dev_containers \
    | grep -o '(/[^)]*/dev_containers\.py)' | head -n1 | tr -d '()')
[[ $module_path == "$collections"/* ]] || fail "cargohold.devenv.dev_containers comes from '$module_path'"
if "$venv/bin/ansible-galaxy" collection list 2>/dev/null | grep -qF "$root"; then
    fail "the checkout $root is visible to the installed Ansible"
fi
say "installed into $collections; cargohold.devenv loads from there only"

# 3. A workspace from the installed copy. Owned by uid 1000 when run as root, like the Molecule scenarios'
#    workspaces, so the dev image reuses their layers.
cp -a "$root/tests/smoke/workspace" "$ws"
if ((EUID == 0)); then chown -R 1000:1000 "$ws"; fi
start=$SECONDS
stack_up=true
(cd "$ws" && "$venv/bin/ansible-playbook" dev.yml) || fail "dev.yml failed"
say "dev.yml brought the stack up in $((SECONDS - start)) s"
reply=$("$venv/bin/python" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
    "http://127.0.0.1:$port/") || fail "nothing answers on 127.0.0.1:$port"
[[ $reply == "hello from the installed cargohold.devenv" ]] || fail "127.0.0.1:$port answered '$reply'"
say "127.0.0.1:$port answers '$reply'"

# The table is printed by the action plugin, on stderr with its progress lines.
report=$(cd "$ws" && "$venv/bin/ansible-playbook" cargohold.devenv.status -e dev_services_status_volumes=true 2>&1) \
    || fail "status failed"
if ! grep -qE '^[a-z0-9_-]+ +serving ' <<<"$report" \
    || ! grep -qE "^$project-cargo-target +[0-9.]+ [A-Za-z]+ *$" <<<"$report"; then
    fail "status did not print the serving service and the target volume's size: $report"
fi
say "status printed the serving service and the volume sizes"

(cd "$ws" && "$venv/bin/ansible-playbook" cargohold.devenv.down -e "cargohold_workspace=$ws") || fail "down failed"
stack_up=false
left=$(docker ps -aq --filter "label=io.cargohold.project=$project")
[[ -z $left ]] || fail "containers of $project are left after down: $left"
if "$venv/bin/python" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2)' "$port" 2>/dev/null; then
    fail "127.0.0.1:$port still answers after down"
fi
say "down removed every container of $project"
