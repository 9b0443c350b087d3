#!/usr/bin/env bash
# Creates ./.venv with what the dev stack needs on the controller (requirements.txt: ansible-core and requests,
# plus the community.docker collection) and makes this checkout importable as the cargohold.devenv collection
# (a link, so edits take effect without a reinstall).
# --test also installs the test tools (requirements-test.txt: Molecule, ansible-lint, pytest, antsibull-changelog
# and the full `ansible` package for the collections the scenarios use); scripts/test.sh needs them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
case ${1:-} in
    "") test_tools=false ;;
    --test) test_tools=true ;;
    *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac

[[ -x "$root/.venv/bin/python" ]] || "$python" -m venv "$root/.venv"
pip_install=("$root/.venv/bin/pip" install --quiet --disable-pip-version-check)
"${pip_install[@]}" -r "$root/requirements.txt"
if $test_tools; then
    "${pip_install[@]}" -r "$root/requirements-test.txt"
fi

site=$("$root/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# Galaxy is out of reach and community.docker has no PyPI package of its own: it comes from the `ansible` wheel
# pinned in requirements-test.txt, of which only community.docker and the one collection it depends on are
# extracted (a few MB instead of the whole package's 470). When that `ansible` is installed (--test), pip's copy
# is the same one.
ansible_pin=$(sed -n 's/^ansible==\([0-9][0-9.]*\).*/\1/p' "$root/requirements-test.txt")
[[ -n $ansible_pin ]] || { echo "setup.sh: no ansible==VERSION line in requirements-test.txt" >&2; exit 1; }
stamp="$site/ansible_collections/.cargohold-collections-from-ansible"
have=$("$root/.venv/bin/python" -c '
import importlib.metadata as m
try:
    print(m.version("ansible"))
except m.PackageNotFoundError:
    print("")')
if [[ $have != "$ansible_pin" ]] && ! { [[ -f $stamp && $(<"$stamp") == "$ansible_pin" ]] \
        && [[ -f $site/ansible_collections/community/docker/MANIFEST.json ]]; }; then
    download=$(mktemp -d)
    trap 'rm -rf "$download"' EXIT
    "$root/.venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --dest "$download" "ansible==$ansible_pin"
    "$root/.venv/bin/python" - "$download"/ansible-*.whl "$site" <<'EOF'
import pathlib, shutil, sys, zipfile

wheel, site = sys.argv[1], pathlib.Path(sys.argv[2])
wanted = ("community/docker", "community/library_inventory_filtering_v1")
with zipfile.ZipFile(wheel) as z:
    for name in wanted:
        shutil.rmtree(site / "ansible_collections" / name, ignore_errors=True)
        prefix = f"ansible_collections/{name}/"
        members = [m for m in z.namelist() if m.startswith(prefix)]
        if not members:
            sys.exit(f"setup.sh: {wheel} holds no {name} collection")
        z.extractall(site, members)
EOF
    echo "$ansible_pin" >"$stamp"
fi

# Found by every ansible in the venv, whatever the working directory (e.g. inside a team's workspace).
mkdir -p "$site/ansible_collections/cargohold" "$root/.collections/ansible_collections/cargohold"
ln -sfn "$root" "$site/ansible_collections/cargohold/devenv"
ln -sfn "$root" "$root/.collections/ansible_collections/cargohold/devenv"
# Ansible searches its default collection paths before the venv, so an installed copy there would shadow this
# checkout outside the repository root (Molecule's prerun leaves one in ~/.ansible/collections).
for other in "$HOME/.ansible/collections" /usr/share/ansible/collections; do
    if [[ -e $other/ansible_collections/cargohold/devenv && ! $other/ansible_collections/cargohold/devenv -ef $root ]]; then
        echo "cargohold: warning: $other/ansible_collections/cargohold/devenv shadows this checkout;" \
            "remove it, or set ANSIBLE_COLLECTIONS_PATH=$root/.collections" >&2
    fi
done
echo "cargohold: $($test_tools && echo 'dev stack and test tools' || echo 'dev stack tools') in $root/.venv;" \
    "collection cargohold.devenv -> $root"
