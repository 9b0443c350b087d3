#!/usr/bin/env bash
# Run `ansible-test sanity` (all default tests) for the whole collection.
#
# ansible-test must run from <dir>/ansible_collections/<namespace>/<name> and
# resolves the working directory with getcwd(), so a symlink to the checkout
# does not work: we copy the files git would ship (tracked + untracked, minus
# ignored) into a temporary tree. The copy has no .git, so ansible-test sees
# exactly those files. Without git (e.g. an unpacked tarball) we copy the tree
# minus local-only directories.
#
# --venv needs pip's bootstrap script from a host this environment cannot
# reach; we put a stand-in in ansible-test's cache that installs pip from its
# PyPI wheel instead.
#
# Env: ANSIBLE_TEST (default: ansible-test on PATH), SANITY_PYTHON (3.11),
#      SANITY_ARGS (extra args, e.g. "--test pylint").
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ansible_test="${ANSIBLE_TEST:-ansible-test}"
python_version="${SANITY_PYTHON:-3.11}"

if ! command -v "$ansible_test" >/dev/null 2>&1; then
    echo "sanity.sh: '$ansible_test' not found; set ANSIBLE_TEST or activate the venv" >&2
    exit 2
fi

read -r namespace name < <(
    awk -F': *' '/^namespace:/ {ns=$2} /^name:/ {n=$2} END {print ns, n}' "$repo/galaxy.yml"
)

# Python that runs ansible-test (its shebang), used to find the pip version
# ansible-test wants and to fetch that pip's wheel.
at_path="$(command -v "$ansible_test")"
at_python="$(head -n1 "$at_path" | sed -e 's/^#! *//' -e 's/ .*//')"
[ -x "$at_python" ] || at_python=python3

install_get_pip_stand_in() {
    local pip_version cache wheel_dir stand_in
    pip_version="$("$at_python" - <<'EOF'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([^']+)'", src.read_text()).group(1))
EOF
)"
    cache="$HOME/.ansible/test/cache"
    stand_in="$cache/get_pip_${pip_version//./_}.py"
    wheel_dir="$cache/pip-wheel-$pip_version"
    if ! compgen -G "$wheel_dir/pip-$pip_version-*.whl" >/dev/null; then
        mkdir -p "$wheel_dir"
        "$at_python" -m pip download --quiet --disable-pip-version-check --no-deps \
            --only-binary=:all: --dest "$wheel_dir" "pip==$pip_version"
    fi
    local wheel
    wheel="$(compgen -G "$wheel_dir/pip-$pip_version-*.whl" | head -n1)"
    # Only rewrite when different so concurrent runs do not race on it.
    local content
    content="$(cat <<EOF
# Stand-in for get-pip.py written by scripts/sanity.sh: installs pip from
# its wheel instead of an embedded archive fetched from the network.
import sys

WHEEL = "$wheel"
sys.path.insert(0, WHEEL)

from pip._internal.cli.main import main  # noqa: E402

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
args = [WHEEL if a == "pip==$pip_version" else a for a in args]
sys.exit(main(["install"] + args))
EOF
)"
    mkdir -p "$cache"
    if [ ! -f "$stand_in" ] || [ "$(cat "$stand_in")" != "$content" ]; then
        printf '%s\n' "$content" >"$stand_in.tmp.$$"
        mv "$stand_in.tmp.$$" "$stand_in"
    fi
}

copy_collection() {
    local dest="$1"
    mkdir -p "$dest"
    if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
            | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
            | xargs -0 -r cp --parents -P -t "$dest")
    else
        (cd "$repo" && tar -cf - \
            --exclude=./.git --exclude=./.venv --exclude=./.collections \
            --exclude=./.ansible --exclude=./tests/output --exclude='*/target' \
            --exclude=__pycache__ --exclude='*.pyc' .) | tar -xf - -C "$dest"
    fi
}

install_get_pip_stand_in

work="$(mktemp -d "${TMPDIR:-/tmp}/cargohold-sanity.XXXXXX")"
trap 'rm -rf "$work"' EXIT
coll="$work/ansible_collections/$namespace/$name"
copy_collection "$coll"
# Collections this one depends on must sit beside it for the import and doc tests (community.docker).
deps_root="$("$at_python" -c 'import ansible_collections.community.docker as m, os; print(os.path.dirname(os.path.dirname(list(m.__path__)[0])))' 2>/dev/null || true)"
if [ -n "$deps_root" ] && [ -d "$deps_root/community/docker" ]; then
    mkdir -p "$work/ansible_collections/community"
    cp -r "$deps_root/community/docker" "$work/ansible_collections/community/docker"
fi

if compgen -G "$coll/changelogs/fragments/*.y*ml" >/dev/null && [ ! -f "$coll/changelogs/config.yaml" ]; then
    echo "sanity.sh: changelog fragments exist but changelogs/config.yaml does not; the changelog" \
        "test will fail (create it with: antsibull-changelog init .)" >&2
fi

cd "$coll"
start=$SECONDS
set +e
# shellcheck disable=SC2086
"$ansible_test" sanity --venv --python "$python_version" --color no ${SANITY_ARGS:-}
rc=$?
set -e
echo "sanity.sh: ansible-test sanity exited $rc after $((SECONDS - start)) s"
exit "$rc"
