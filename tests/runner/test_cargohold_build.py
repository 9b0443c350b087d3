"""cargohold-build, one build with its outcome kept for the Ansible module, run with a fake cargo."""

from __future__ import annotations

import calendar
import fcntl
import os
import re
import subprocess
import time
import typing as t
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


# --batch: the fake cargo appends its arguments to a file, takes a while, and fails when asked to build FAKE_FAIL.
BATCH_CARGO = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_SEEN/calls"
echo "   Compiling for: $*"
sleep 0.3
[[ -n ${FAKE_FAIL:-} && " $* " == *" --bin $FAKE_FAIL "* ]] && { echo "error: $FAKE_FAIL does not compile"; exit 101; }
exit 0
"""
COMMON = ("build", "--manifest-path", "/workspace/Cargo.toml", "--locked")


def queue_of(batch: Path) -> Path:
    return batch  # the planner names one queue per Cargo root


def start_batch(fake: Path, batch: Path, service: str, **env: str) -> subprocess.Popen:
    full_env = {"PATH": f"{fake / 'bin'}{os.pathsep}{os.environ['PATH']}", "FAKE_SEEN": str(fake / "seen"),
                "CARGOHOLD_BUILD_STATE": str(fake / "state" / service), "HOSTNAME": f"box-{service}", **env}
    return subprocess.Popen([str(BUILD), "--batch", str(batch), "-p", service, "--bin", service, "--", *COMMON],
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def held_queue(fake: Path, services: t.Sequence[str], **env: str) -> t.Tuple[Path, t.List[subprocess.Popen]]:
    """Start one batch build per service while the queue's lock is held, so all of them wait; release it once
    each has left its request (as after an edit that woke every watcher)."""
    (fake / "bin" / "cargo").write_text(BATCH_CARGO, encoding="utf-8")
    batch = fake / "batch"
    queue = queue_of(batch)
    queue.mkdir(parents=True)
    with open(queue / "lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        (queue / "req.box-gone.1").write_text("", encoding="utf-8")  # left by a build killed while writing it
        procs = [start_batch(fake, batch, s, **env) for s in services]
        deadline = time.monotonic() + 10
        while len(list(queue.glob("req.*"))) < len(services) + 1:
            assert time.monotonic() < deadline, sorted(p.name for p in queue.iterdir())
            time.sleep(0.01)
    return queue, procs


def outcome(fake: Path, service: str) -> str:
    return (fake / "state" / service / "build").read_text(encoding="utf-8").split()[0]


def test_batch_builds_what_every_waiting_watcher_asked_for_in_one_cargo(fake: Path) -> None:
    queue, procs = held_queue(fake, ["api", "auth", "billing"])
    codes = [p.wait(10) for p in procs]
    assert codes == [0, 0, 0], [p.stderr.read() for p in procs]
    calls = (fake / "seen" / "calls").read_text(encoding="utf-8").splitlines()
    assert len(calls) == 1, calls
    assert calls[0].startswith(" ".join(COMMON) + " ")
    assert sorted(re.findall(r"-p (\w+) --bin (\w+)", calls[0])) == [(s, s) for s in ("api", "auth", "billing")]
    for service in ("api", "auth", "billing"):
        assert outcome(fake, service) == "ok"
        assert f"Compiling for: {calls[0]}" in (fake / "state" / service / "build.log").read_text(encoding="utf-8")
    assert sorted(p.name for p in queue.iterdir() if not p.name.startswith("log.")) == ["lock", "req.box-gone.1"], (
        "nothing left over; an empty request is never taken")


def test_a_failed_batch_is_built_again_service_by_service(fake: Path) -> None:
    _queue, procs = held_queue(fake, ["api", "auth", "billing"], FAKE_FAIL="auth")
    codes = dict(zip(("api", "auth", "billing"), (p.wait(15) for p in procs)))
    assert codes == {"api": 0, "auth": 101, "billing": 0}, "one service's error keeps no other from its build"
    calls = (fake / "seen" / "calls").read_text(encoding="utf-8").splitlines()
    assert len(calls) == 4, calls
    assert sorted(c.rsplit(" -p ", 1)[1] for c in calls[1:]) == [f"{s} --bin {s}" for s in ("api", "auth", "billing")]
    assert {s: outcome(fake, s) for s in codes} == {"api": "ok", "auth": "failed", "billing": "ok"}
    assert "error: auth does not compile" in (fake / "state" / "auth" / "build.log").read_text(encoding="utf-8")


def test_a_lone_batch_build_is_one_ordinary_cargo(fake: Path) -> None:
    (fake / "bin" / "cargo").write_text(BATCH_CARGO, encoding="utf-8")
    proc = start_batch(fake, fake / "batch", "api")
    assert proc.wait(10) == 0, proc.stderr.read()
    assert (fake / "seen" / "calls").read_text(encoding="utf-8") == " ".join(COMMON) + " -p api --bin api\n"
    assert outcome(fake, "api") == "ok"
    assert sorted(p.name for p in queue_of(fake / "batch").iterdir()) == ["lock"]


def test_a_waiting_build_stopped_by_its_watcher_leaves_no_request(fake: Path) -> None:
    (fake / "bin" / "cargo").write_text(BATCH_CARGO, encoding="utf-8")
    queue = queue_of(fake / "batch")
    queue.mkdir(parents=True)
    with open(queue / "lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = start_batch(fake, fake / "batch", "api")
        deadline = time.monotonic() + 10
        while not list(queue.glob("req.*")):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.terminate()
        time.sleep(0.2)
    assert proc.wait(10) == 143
    assert not (fake / "seen" / "calls").exists(), "it built nothing"
    assert sorted(p.name for p in queue.iterdir()) == ["lock"]


def test_batch_needs_its_separator(fake: Path) -> None:
    result = run_build(fake, "--batch", str(fake / "batch"), "-p", "api", "build")
    assert result.returncode == 2
    assert "usage: cargohold-build [--batch DIR SELECTION... --] CARGO-ARGS..." in result.stderr
