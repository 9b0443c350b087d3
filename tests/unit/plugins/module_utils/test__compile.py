"""module_utils/_compile.py: the builds asked for, the script the throwaway container runs, its create body."""

from __future__ import annotations

import subprocess
import typing as t

import pytest

from ansible_collections.cargohold.devenv.plugins.module_utils import _compile as cc
from ansible_collections.cargohold.devenv.plugins.module_utils import _docker as dk


def test_builds_keep_roots_with_binaries_and_normalise_paths() -> None:
    builds = cc.parse_builds([
        {"path": "./", "args": ["--release"], "bins": ["api", "auth"]},
        {"path": "tools/cli/", "args": [], "bins": []},
        {"path": "billing/payments", "bins": ["payments"]},
    ])
    assert [(b.path, b.args, b.bins) for b in builds] == [
        (".", ["--release"], ["api", "auth"]), ("billing/payments", [], ["payments"])]


@pytest.mark.parametrize("builds, error", [
    ([{"path": "/src", "bins": ["a"]}], r"builds\[0\]\.path: '/src' must be relative"),
    ([{"path": "../up", "bins": ["a"]}], r"builds\[0\]\.path: '../up' must be relative"),
    ([{"path": ".", "bins": ["a b"]}], r"builds\[0\]\.bins: 'a b' is not a binary name"),
    ([{"path": ".", "bins": ["../x"]}], r"builds\[0\]\.bins: '\.\./x' is not a binary name"),
    ([{"path": "a", "bins": ["api"]}, {"path": "b", "bins": ["api"]}], r"builds\[1\]\.bins: api is built by another root"),
])
def test_builds_are_refused(builds: t.List[dict], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        cc.parse_builds(builds)


def test_script_builds_each_root_from_its_directory_and_moves_the_binaries_out() -> None:
    builds = cc.parse_builds([
        {"path": ".", "args": ["--release", "--locked", "--features", "api/tls"], "bins": ["api", "auth"]},
        {"path": "billing/pay ments", "args": ["--profile", "dist"], "bins": ["payments"]},
    ])
    assert cc.script(builds, "/src", "/src/target/release") == (
        "set -eu\n"
        "mkdir -p /out\n"
        "cd /src\n"
        "cargo build --release --locked --features api/tls --bin api --bin auth\n"
        "mv /src/target/release/api /src/target/release/auth /out/\n"
        "cd '/src/billing/pay ments'\n"
        "cargo build --profile dist --bin payments\n"
        "mv /src/target/release/payments /out/\n"
    )


def test_script_stops_at_the_first_failure(tmp_path) -> None:
    """The script as sh runs it: a failing cargo stops it before anything is moved."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "cargo").write_text("#!/bin/sh\necho \"cargo $*\"; exit 101\n")
    (bin_dir / "cargo").chmod(0o755)
    builds = cc.parse_builds([{"path": ".", "bins": ["api"]}])
    text = cc.script(builds, str(tmp_path), str(tmp_path)).replace(cc.OUT, str(tmp_path / "out"))
    done = subprocess.run(["sh", "-c", text], env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 101
    assert done.stdout == "cargo build --bin api\n"


def test_create_body_labels_the_container_and_passes_the_environment() -> None:
    body = cc.create_body("cargohold/release-build:shop", "set -eu\n", "/src", {"B": "2", "A": "1"}, "shop")
    assert body["Cmd"] == ["sh", "-c", "set -eu\n"]
    assert body["Env"] == ["A=1", "B=2"]
    assert body["Labels"] == {cc.BUILD_LABEL: "shop"}
    assert body["User"] == "0:0" and body["WorkingDir"] == "/src"
    assert cc.container_name("shop") == "shop-release-build"


def test_tail_and_demux() -> None:
    framed = b"".join(bytes([1, 0, 0, 0]) + len(p).to_bytes(4, "big") + p for p in (b"a\n", b"\n", b"b\n"))
    assert dk.demux(framed) == b"a\n\nb\n"
    assert dk.demux(b"plain tty output") == b"plain tty output"
    assert cc.tail("\n".join(str(i) for i in range(50)) + "\n\n", keep=3) == ["47", "48", "49"]
