"""cargohold-build, one build with its outcome kept for the Ansible module, run with a fake cargo."""

from __future__ import annotations

import calendar
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from runner_support import BUILD

# The fake cargo records what the build state looked like while it ran, prints to both streams, takes a while.
FAKE_CARGO = """#!/usr/bin/env bash
state=${CARGOHOLD_BUILD_STATE:-$CARGO_TARGET_DIR/cargohold}
cat "$state/build" > "$FAKE_SEEN/build-during"
cat "$state/build.log.partial" > "$FAKE_SEEN/partial-during"
echo "color=$CARGO_TERM_COLOR args=$*"
echo "   Compiling api v0.1.0 (/workspace/api)"
echo "error[E0425]: cannot find value \\`x\\` in this scope" >&2
sleep 0.2
exit "${FAKE_RC:-0}"
"""


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "cargo").write_text(FAKE_CARGO, encoding="utf-8")
    (bindir / "cargo").chmod(0o755)
    (tmp_path / "seen").mkdir()
    return tmp_path


def run_build(fake: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {"PATH": f"{fake / 'bin'}{os.pathsep}{os.environ['PATH']}", "FAKE_SEEN": str(fake / "seen"), **env}
    return subprocess.run([str(BUILD), *args], env=full_env, capture_output=True, text=True, timeout=10, check=False)


@pytest.mark.parametrize("rc, outcome", [(0, "ok"), (101, "failed")])
def test_build_records_its_outcome(fake: Path, rc: int, outcome: str) -> None:
    state = fake / "state" / "api"
    (fake / "state").mkdir()
    before = int(time.time())
    result = run_build(fake, "build", "-p", "api", "--bin", "api", CARGOHOLD_BUILD_STATE=str(state), FAKE_RC=str(rc),
                       TZ="Asia/Tokyo")
    after = int(time.time())
    assert result.returncode == rc

    during = (fake / "seen" / "build-during").read_text(encoding="utf-8")
    building = re.fullmatch(r"building (\d+)\n", during)
    assert building and before <= int(building.group(1)) <= after
    assert (fake / "seen" / "partial-during").read_text(encoding="utf-8") == ""

    build = re.fullmatch(rf"{outcome} (\d+) (\d+)\n", (state / "build").read_text(encoding="utf-8"))
    assert build, (state / "build").read_text(encoding="utf-8")
    assert before <= int(build.group(1)) <= after
    assert 200 <= int(build.group(2)) < 5000, "the duration in ms (the fake cargo sleeps 0.2 s)"
    last = (state / "last-build").read_text(encoding="utf-8")
    assert re.fullmatch(rf"{outcome} \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ {build.group(2)} ms\n", last)
    iso = last.split()[1]
    assert calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")) == int(build.group(1)), "UTC whatever TZ says"

    log = (state / "build.log").read_text(encoding="utf-8")
    assert "color=never args=build -p api --bin api\n" in log
    assert "   Compiling api v0.1.0 (/workspace/api)\n" in log
    assert "error[E0425]: cannot find value `x` in this scope\n" in log, "stderr is in the log too"
    assert log in result.stdout, "and all of it on stdout (docker logs)"
    assert sorted(p.name for p in state.iterdir()) == ["build", "build.log", "last-build"]


def test_build_state_defaults_to_the_target_dir(fake: Path) -> None:
    target = fake / "target"
    stale = target / "cargohold"
    stale.mkdir(parents=True)
    (stale / "build.log.partial").write_text("left over from a killed build\n", encoding="utf-8")
    result = run_build(fake, "build", CARGO_TARGET_DIR=str(target), CARGO_TERM_COLOR="always")
    assert result.returncode == 0
    assert re.fullmatch(r"ok \d+ \d+\n", (stale / "build").read_text(encoding="utf-8"))
    assert (fake / "seen" / "partial-during").read_text(encoding="utf-8") == "", "truncated before cargo starts"
    log = (stale / "build.log").read_text(encoding="utf-8")
    assert log.startswith("color=always args=build\n"), "CARGO_TERM_COLOR from the caller wins"
    assert not (stale / "build.log.partial").exists()


PROGRESS_CARGO = """#!/usr/bin/env bash
printf ' Downloading 2 crates              \\r'
printf '  Downloaded serde v1.0.0\\n'
printf '    Building [=>     ] 1/3: serde                \\r'
cat "$CARGOHOLD_BUILD_STATE/progress" > "$FAKE_SEEN/progress-during"
printf '          \\r   Compiling api v0.1.0\\n'
printf '    Building [===>   ] 2/3: api(bin)             \\r'
sleep 0.2
cat "$CARGOHOLD_BUILD_STATE/progress" > "$FAKE_SEEN/progress-later"
printf '    Finished `dev` profile\\n'
"""


def test_progress_bar_goes_to_its_own_file(fake: Path) -> None:
    (fake / "bin" / "cargo").write_text(PROGRESS_CARGO, encoding="utf-8")
    state = fake / "state"
    result = run_build(fake, "build", CARGOHOLD_BUILD_STATE=str(state))
    assert result.returncode == 0, result.stderr
    assert (fake / "seen" / "progress-later").read_text(encoding="utf-8").rstrip() == "    Building [===>   ] 2/3: api(bin)"
    assert (fake / "seen" / "progress-during").read_text(encoding="utf-8").rstrip() in (
        "", "    Building [=>     ] 1/3: serde", " Downloading 2 crates"), "a whole bar or none yet (a pipe away)"
    log = (state / "build.log").read_text(encoding="utf-8")
    assert log == "  Downloaded serde v1.0.0\n   Compiling api v0.1.0\n    Finished `dev` profile\n"
    assert result.stdout == log, "docker logs shows the messages without the bars"
    assert not (state / "progress").exists(), "only while cargo runs"
