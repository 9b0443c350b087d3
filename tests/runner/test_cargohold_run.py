"""cargohold-run, the supervisor of every dev container, run for real on the host (no Docker)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import typing as t
from pathlib import Path

import pytest

from runner_support import (RUN, Supervisor, free_port, install_file, parse_run, process_state, running,
                            session_pids, signal_mask, wait_until)

SIGINT_BIT = 1 << (signal.SIGINT - 1)


def connect_and_read(host: str, port: int, timeout: float = 1.0) -> str:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.sendall(b"hello\n")
        return sock.recv(200).decode()


def refused(host: str, port: int) -> bool:
    try:
        connect_and_read(host, port, 0.5)
    except OSError:
        return True
    return False


def states_seen(supervisor: Supervisor, until: t.Callable[[dict], bool],
                timeout: float) -> t.List[t.Tuple[float, dict]]:
    """Every distinct state line seen (with the time it was first seen) until one satisfies until."""
    seen: t.List[t.Tuple[float, dict]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = supervisor.state()
        if current and (not seen or seen[-1][1] != current):
            seen.append((time.monotonic(), current))
            if until(current):
                return seen
        time.sleep(0.005)
    raise AssertionError(f"timed out; seen: {[s for _when, s in seen]}\n{supervisor.output()}")


@pytest.fixture(scope="module")
def ten_seconds_up(tmp_path_factory: pytest.TempPathFactory, probe: Path) -> t.Iterator[t.Tuple[Supervisor, list]]:
    """A service that crashes twice, then runs for 10.6 s and panics: started with the module, so that its 12 s
    run alongside the other tests; test_ten_seconds_of_uptime_reset_the_backoff (the last one) looks at it."""
    sup = Supervisor(tmp_path_factory.mktemp("uptime"), probe, "flaky")
    counter = sup.dir / "count"
    install_file(sup.bin, text=(
        "#!/bin/sh\n"
        f"n=$(($(cat '{counter}' 2>/dev/null || echo 0) + 1)); echo $n > '{counter}'\n"
        "[ $n -le 2 ] && exit 5\n"
        f"exec '{probe}' --panic-after-ms 10600\n"))
    sup.start()
    history: list = []
    done = threading.Event()

    def record() -> None:
        while not done.wait(0.02):
            current = sup.state()
            if current and (not history or history[-1] != current):
                history.append(current)

    recorder = threading.Thread(target=record, daemon=True)
    recorder.start()
    yield sup, history
    done.set()
    recorder.join()
    sup.cleanup()


# --------------------------------------------------------------------------------------------------------------
# Readiness
# --------------------------------------------------------------------------------------------------------------

def test_port_waiting_then_starting_then_ready(supervisors: t.Callable[..., Supervisor],
                                               ten_seconds_up: t.Tuple[Supervisor, list]) -> None:
    assert ten_seconds_up  # started here, looked at in the last test
    port, other = free_port(), free_port()
    sup = supervisors("kvd").start(ready="port", ready_port=str(port))
    # The same service, but readiness is asked on a port it never listens on.
    elsewhere = supervisors("other").start(ready="port", ready_port=str(other))
    waiting = sup.wait_state("waiting", pid=None, ready=0)
    time.sleep(0.25)
    assert sup.state() == waiting, "nothing to run yet: still waiting"
    assert f"waiting for kvd to be built ({sup.bin})" in sup.output()
    old_run = open(sup.state_dir / "run", encoding="utf-8")  # pylint: disable=consider-using-with

    sup.install("--delay-ms", "400", "--listen", f"127.0.0.1:{port}")
    elsewhere.install("--listen", f"127.0.0.1:{free_port()}")
    starting = sup.wait_state("starting", ready=0)
    assert starting["pid"] and running(starting["pid"])
    assert refused("127.0.0.1", port), "the probe listens only after 400 ms"
    ready = sup.wait_state("ready", pid=starting["pid"], ready=1, restarts=0, code=None)
    assert connect_and_read("127.0.0.1", port) == f"probe {starting['pid']}\n", "the pid is the service's own"
    sup.wait_output(f"cargohold-run: kvd ready (port {port})\n")
    assert ready["since"] >= waiting["since"]
    # Atomic writes: each new state is a new file renamed over the old one, which is never rewritten in place.
    with old_run:
        assert parse_run(old_run.read()) == waiting
    assert not (sup.state_dir / "run.tmp").exists()

    assert elsewhere.state()["state"] == "starting", "a listener on another port is not readiness"


def test_http_readiness(supervisors: t.Callable[..., Supervisor]) -> None:
    ports = [free_port() for _index in range(4)]
    version = supervisors("version").start(ready="http", ready_port=str(ports[0]), ready_path="/version",
                                           ready_status="200")
    any_answer = supervisors("any").start(ready="http", ready_port=str(ports[1]))
    wrong_status = supervisors("wrong").start(ready="http", ready_port=str(ports[2]), ready_status="200")
    not_http = supervisors("nothttp").start(ready="http", ready_port=str(ports[3]))
    for sup, port in zip((version, any_answer, wrong_status), ports):
        sup.install("--delay-ms", "200", "--http", "--listen", f"127.0.0.1:{port}")
    not_http.install("--listen", f"127.0.0.1:{ports[3]}")

    version.wait_state("starting")
    started = time.monotonic()
    version.wait_state("ready", ready=1)
    version.wait_output(f"version ready (http /version on port {ports[0]}: 200)\n")
    any_answer.wait_state("ready", ready=1)
    any_answer.wait_output(f"any ready (http / on port {ports[1]}: 404)\n")  # a 404 on / is an answer
    time.sleep(max(0.0, started + 1.2 - time.monotonic()))
    assert wrong_status.state()["state"] == "starting", "/ answers 404, not the 200 asked for"
    assert not_http.state()["state"] == "starting", "a listener that does not speak HTTP is not ready"


def test_log_readiness_and_output_log(supervisors: t.Callable[..., Supervisor]) -> None:
    sup = supervisors("logged").start(ready="log", ready_log="^listening on [0-9]+$")
    never = supervisors("never").start(ready="log", ready_log="^never$")
    sup.install("--delay-ms", "300", "--say", "listening on 42")
    never.install("--say", "listening on 42")
    first = sup.wait_state("starting")
    time.sleep(0.15)
    assert sup.state()["state"] == "starting", "the line comes after 300 ms"
    sup.wait_state("ready", pid=first["pid"], ready=1)
    sup.wait_output("cargohold-run: logged ready (log)\n")
    log = (sup.state_dir / "output.log").read_text(encoding="utf-8")
    assert log == f"probe {first['pid']} starting\nlistening on 42\n"
    out = sup.output()  # the service's output still goes to stdout (in its order, among the supervisor's lines)
    assert out.index(f"probe {first['pid']} starting\n") < out.index("listening on 42\n") < out.index("logged ready")

    sup.install("--say", "listening on 43")
    second = sup.wait_state("ready", ready=1, not_pid=first["pid"])
    assert second["pid"] != first["pid"]
    log = (sup.state_dir / "output.log").read_text(encoding="utf-8")
    assert log == f"probe {second['pid']} starting\nlistening on 43\n", "output.log starts over with each start"
    assert never.state()["state"] == "starting"


# --------------------------------------------------------------------------------------------------------------
# Rebuilds, crashes, exits
# --------------------------------------------------------------------------------------------------------------

def test_rebuild_restarts_the_service(supervisors: t.Callable[..., Supervisor]) -> None:
    port = free_port()
    sup = supervisors("kvd")
    sup.install("--listen", f"127.0.0.1:{port}")
    sup.start(ready="port", ready_port=str(port))
    # Warm target volume: it starts at once, never waits.
    first = sup.wait_state("ready")
    assert "waiting" not in sup.output()

    replaced = time.monotonic()
    sup.install("--listen", f"127.0.0.1:{port}")
    second = sup.wait_state("ready", timeout=3, not_pid=first["pid"])
    restart_seconds = time.monotonic() - replaced
    assert second["pid"] != first["pid"] and second["restarts"] == 0 and second["code"] is None
    assert process_state(first["pid"]) is None, "the old binary's process is gone"
    assert sup.wait_output("cargohold-run: kvd was rebuilt, restarting it\n").count("was rebuilt") == 1
    assert restart_seconds < 1.5

    # cargo hard-links the linker's output into place: the new file's mtime can predate the start of the
    # running child. A new inode is a rebuild all the same.
    sup.install("--listen", f"127.0.0.1:{port}", mtime=time.time() - 3600)
    third = sup.wait_state("ready", timeout=2, not_pid=second["pid"])
    assert third["pid"] != second["pid"]
    # The same file rewritten (same inode, newer mtime) is a rebuild too.
    os.utime(sup.bin, (time.time() + 1, time.time() + 1))
    fourth = sup.wait_state("ready", timeout=2, not_pid=third["pid"])
    assert fourth["pid"] != third["pid"]
    time.sleep(0.3)
    assert sup.state()["pid"] == fourth["pid"], "no restart without a new build"
    assert sup.output().count("was rebuilt") == 3


def test_crash_restarts_with_growing_backoff_until_rebuilt(supervisors: t.Callable[..., Supervisor]) -> None:
    sup = supervisors("crashy")
    sup.install("--exit", "3")
    sup.start()
    seen = states_seen(sup, lambda s: s["state"] == "crashed" and s["restarts"] == 3, timeout=6)
    starts = [(when, s) for when, s in seen if s["state"] in ("starting", "ready")]
    pids = []
    for _when, s in starts:
        if s["pid"] not in pids:
            pids.append(s["pid"])
    assert len(pids) == 3, seen
    first_seen = {s["pid"]: when for when, s in reversed(starts)}
    gap1 = first_seen[pids[1]] - first_seen[pids[0]]
    gap2 = first_seen[pids[2]] - first_seen[pids[1]]
    assert 0.45 <= gap1 < 0.95, gap1
    assert gap2 >= 0.95 and gap2 > 1.6 * gap1, (gap1, gap2)
    crashed = [s for _when, s in seen if s["state"] == "crashed"]
    assert [(s["restarts"], s["code"], s["pid"]) for s in crashed] == [(1, 3, None), (2, 3, None), (3, 3, None)]
    restarted = [s for _when, s in starts if s["pid"] == pids[2]]
    assert restarted[0]["restarts"] == 2 and restarted[0]["code"] == 3, "a restart shows why it restarted"
    out = sup.wait_output("restart 3 in 2 s\n")
    for line in ("crashy exited with status 3; restart 1 in 0.5 s", "crashy exited with status 3; restart 2 in 1 s",
                 "crashy exited with status 3; restart 3 in 2 s"):
        assert f"cargohold-run: {line}\n" in out

    # Restart 3 would come in 2 s; a rebuild (the fix) starts at once and resets the counter.
    fixed = time.monotonic()
    sup.install("--listen", f"127.0.0.1:{free_port()}")
    state = sup.wait_state("ready", timeout=2, restarts=0, code=None)
    assert time.monotonic() - fixed < 1.8
    assert state["pid"] not in pids


def test_panic_after_ready_is_a_crash(supervisors: t.Callable[..., Supervisor]) -> None:
    port = free_port()
    sup = supervisors("panicky")
    sup.install("--listen", f"127.0.0.1:{port}", "--panic-after-ms", "300")
    sup.start(ready="port", ready_port=str(port))
    first = sup.wait_state("ready")
    crashed = sup.wait_state("crashed", timeout=2)
    assert crashed == {**crashed, "pid": None, "restarts": 1, "code": 101, "ready": 1}
    sup.wait_output("panicky exited with status 101; restart 1 in 0.5 s\n")
    again = sup.wait_state("starting", timeout=1.5, restarts=1, code=101, ready=0)
    assert again["pid"] != first["pid"]


def test_death_by_signal_is_a_crash_with_128_plus_n(supervisors: t.Callable[..., Supervisor]) -> None:
    sup = supervisors("aborts")
    sup.install("--abort")
    sup.start()
    sup.wait_state("crashed", code=128 + signal.SIGABRT, restarts=1)
    sup.wait_output(f"aborts exited with status {128 + signal.SIGABRT}; restart 1 in 0.5 s\n")
    sup.signal(signal.SIGINT)
    assert sup.errors() == "", "bash's job notice (line N: PID Aborted ...) is filtered out"


def test_clean_exit_and_tools_are_not_restarted(supervisors: t.Callable[..., Supervisor]) -> None:
    clean = supervisors("oneshot")
    clean.install("--exit", "0")
    clean.start()
    tool = supervisors("tool")
    tool.install("--exit", "3")
    tool.start(kind="tool")
    clean_state = clean.wait_state("exited", code=0, pid=None, restarts=0)
    tool_state = tool.wait_state("exited", code=3, pid=None, restarts=0)
    time.sleep(0.9)  # beyond the first crash backoff (0.5 s)
    assert clean.state() == clean_state and tool.state() == tool_state
    assert clean.output().count(" starting\n") == 1 and tool.output().count(" starting\n") == 1
    clean.wait_output("oneshot exited with status 0; it restarts when it is rebuilt\n")

    clean.install("--exit", "0")
    tool.install("--exit", "3")
    wait_until(lambda: clean.output().count("oneshot exited with status 0;") == 2, 2, "the rebuilt oneshot to run")
    wait_until(lambda: tool.output().count("tool exited with status 3;") == 2, 2, "the rebuilt tool to run")
    assert clean.output().count(" starting\n") == 2 and tool.output().count(" starting\n") == 2
    assert clean.state()["state"] == "exited" and tool.state()["state"] == "exited"
    clean.signal(signal.SIGTERM)
    assert clean.state() == {**clean.state(), "state": "stopped", "pid": None, "code": 0}
    assert clean.output().endswith("cargohold-run: stopped (oneshot was not running)\n")


# --------------------------------------------------------------------------------------------------------------
# Stopping
# --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_of_a_service_without_signal_handler_is_fast(supervisors: t.Callable[..., Supervisor], sig: int) -> None:
    port = free_port()
    sup = supervisors("kvd")
    sup.install_probe()
    sup.start(["--listen", f"127.0.0.1:{port}"], ready="port", ready_port=str(port))
    pid = sup.wait_state("ready")["pid"]
    assert os.getpgid(pid) == pid, "the service has its own process group"
    assert not signal_mask(pid, "SigIgn") & SIGINT_BIT, "SIGINT is not ignored by the service"
    assert not signal_mask(pid, "SigCgt") & SIGINT_BIT, "the probe has no SIGINT handler"

    start = time.monotonic()
    sup.proc.send_signal(sig)
    wait_until(lambda: not running(pid), 2, "the service to die", step=0.0002)
    service_gone = time.monotonic() - start
    wait_until(lambda: not running(sup.pid), 2, "cargohold-run to exit", step=0.0002)
    supervisor_gone = time.monotonic() - start
    sup.proc.wait(2)
    print(f"stop latency ({signal.Signals(sig).name}): service gone after {service_gone * 1000:.1f} ms, "
          f"cargohold-run exited after {supervisor_gone * 1000:.1f} ms")
    # SIGTERM would come after half the 2 s grace: well under that, SIGINT alone ended it. The latency itself is
    # printed above, not bounded tightly: a busy CI host must not fail a behaviour test.
    assert service_gone < 0.5
    assert supervisor_gone < 0.9
    assert sup.proc.returncode == 0
    assert sup.state() == {**sup.state(), "state": "stopped", "pid": None, "code": 130, "ready": 1}
    assert re.search(r"cargohold-run: kvd stopped \(status 130, [0-9.]+ s\)\n", sup.output())
    assert session_pids(sup.pid) == [], "nothing of the supervisor is left"
    assert sup.errors() == ""


def test_stop_lets_a_handler_shut_down_cleanly(supervisors: t.Callable[..., Supervisor]) -> None:
    sup = supervisors("graceful")
    sup.install("--on-int", "graceful", "--say", "up")
    sup.start(ready="log", ready_log="^up$")
    pid = sup.wait_state("ready")["pid"]
    assert signal_mask(pid, "SigCgt") & SIGINT_BIT, "the probe handles SIGINT"
    # SIGINT to cargohold-run's whole process group, as Ctrl-C in a terminal or `tini -g` would send it: its
    # helpers (the tee of output.log) must outlive the service's last words.
    start = time.monotonic()
    os.killpg(sup.pid, signal.SIGINT)
    wait_until(lambda: not running(sup.pid), 5, "cargohold-run to exit", step=0.0002)
    seconds = time.monotonic() - start
    sup.proc.wait(5)
    print(f"stop latency with a SIGINT handler (100 ms of cleanup): {seconds * 1000:.1f} ms")
    assert 0.1 <= seconds < 0.95
    assert sup.state()["state"] == "stopped" and sup.state()["code"] == 0
    out = sup.output()
    # What the service prints while it shuts down still reaches stdout and output.log.
    assert "probe: graceful shutdown\nprobe: bye\n" in out
    assert out.index("probe: bye") < out.index("graceful stopped (status 0,")
    assert (sup.state_dir / "output.log").read_text(encoding="utf-8").endswith("probe: graceful shutdown\nprobe: bye\n")
    assert session_pids(sup.pid) == []


def test_stop_escalates_to_sigterm_then_sigkill(supervisors: t.Callable[..., Supervisor]) -> None:
    deaf = supervisors("deaf")
    deaf.install("--on-int", "ignore")
    deaf.start(stop_grace="1")
    deafer = supervisors("deafer")
    deafer.install("--on-int", "ignore", "--ignore-term")
    deafer.start(stop_grace="1")
    deaf.wait_state("ready")
    deafer.wait_state("ready")
    deaf_seconds = deaf.signal(signal.SIGINT)
    deafer_seconds = deafer.signal(signal.SIGINT)
    assert deaf.state()["code"] == 128 + signal.SIGTERM and 0.45 <= deaf_seconds < 0.95
    assert deafer.state()["code"] == 128 + signal.SIGKILL and 0.95 <= deafer_seconds < 1.8
    # bash's own "Killed" job notice is filtered out of stderr.
    assert deafer.errors() == ""
    assert session_pids(deaf.pid) == [] and session_pids(deafer.pid) == []


def test_rebuild_of_a_service_that_ignores_sigint_waits_for_sigterm(supervisors: t.Callable[..., Supervisor]) -> None:
    sup = supervisors("deaf")
    sup.install("--on-int", "ignore")
    sup.start(stop_grace="1.2")
    first = sup.wait_state("ready")
    replaced = time.monotonic()
    sup.install("--on-int", "ignore")
    second = sup.wait_state("ready", timeout=2, not_pid=first["pid"])
    assert second["pid"] != first["pid"]
    assert 0.55 <= time.monotonic() - replaced < 1.15, "SIGTERM after half the grace, before SIGKILL"


def test_sigint_ignored_at_start_falls_back_to_sigterm(supervisors: t.Callable[..., Supervisor]) -> None:
    sup = supervisors("kvd")
    sup.install()
    sup.start(sigint_ignored=True, stop_grace="4")
    first = sup.wait_state("ready")
    assert signal_mask(first["pid"], "SigIgn") & SIGINT_BIT, "the test set-up: SIGINT ignored, inherited"
    assert "warning: SIGINT was ignored when cargohold-run started" in sup.output()
    replaced = time.monotonic()
    sup.install()
    sup.wait_state("ready", timeout=2, not_pid=first["pid"])
    assert time.monotonic() - replaced < 1.8, "SIGTERM first, not after half the 4 s grace"
    seconds = sup.signal(signal.SIGTERM)
    assert seconds < 1.5 and sup.state()["code"] == 128 + signal.SIGTERM


# --------------------------------------------------------------------------------------------------------------
# Watcher, own build, forward
# --------------------------------------------------------------------------------------------------------------

def test_watcher_builds_and_is_stopped_with_its_group(supervisors: t.Callable[..., Supervisor], tmp_path: Path) -> None:
    sup = supervisors("api")
    sup.build_dir.mkdir(parents=True)
    (sup.build_dir / "build").write_text("ok 1000 5\n", encoding="utf-8")  # from the container's previous life
    fake = tmp_path / "fakebin"
    fake.mkdir()
    # A fake cargo whose "build" puts a new binary in place the way cargo does.
    (fake / "cargo").write_text(
        "#!/usr/bin/env bash\n"
        "echo \"   Compiling api ($*)\"\n"
        f"printf '#!/bin/sh\\nexec %s --say up\\n' '{sup.probe}' > \"$CARGOHOLD_BIN.new\"\n"
        "chmod +x \"$CARGOHOLD_BIN.new\" && mv \"$CARGOHOLD_BIN.new\" \"$CARGOHOLD_BIN\"\n", encoding="utf-8")
    (fake / "cargo").chmod(0o755)
    sup.bin.parent.mkdir(parents=True)
    seen = tmp_path / "seen"
    pids = tmp_path / "watcher-pids"
    # After its build it notes SIGTERM and lives on, and so does its child: the SIGKILL to its group is needed.
    terms = tmp_path / "terms"
    script = (f"cat \"$CARGOHOLD_BUILD_STATE/build\" > '{seen}'; sleep 0.3; cargohold-build build -p api --bin api; "
              f"trap 'echo TERM >> {terms}' TERM; sh -c \"trap '' TERM; exec sleep 300\" & echo $$ $! > '{pids}'; "
              "while :; do sleep 0.05; done")
    before = int(time.time())
    sup.start(watcher=["bash", "-c", script], path_prefix=[fake], own_build="1", ready="log", ready_log="^up$")
    sup.wait_state("waiting")
    wait_until(lambda: seen.exists() and seen.read_text(encoding="utf-8"), 2, "the watcher to start")
    marker = re.fullmatch(r"building (\d+)\n", seen.read_text(encoding="utf-8"))
    assert marker and int(marker.group(1)) >= before, "the stale ok was replaced before the watcher started"
    sup.wait_state("ready", timeout=3)
    assert re.fullmatch(r"ok \d+ \d+\n", (sup.build_dir / "build").read_text(encoding="utf-8"))
    assert "Compiling api (build -p api --bin api)" in (sup.build_dir / "build.log").read_text(encoding="utf-8")
    assert "   Compiling api (build -p api --bin api)\n" in sup.output()
    watcher_pid, sleeper_pid = map(int, wait_until(lambda: pids.exists() and pids.read_text().split(), 2, "pids"))
    assert os.getpgid(watcher_pid) == watcher_pid == os.getpgid(sleeper_pid), "the watcher has its own group"

    seconds = sup.signal(signal.SIGINT)
    assert seconds < 1.5
    assert terms.read_text(encoding="utf-8").startswith("TERM\n"), "the watcher was asked first"
    assert not running(watcher_pid) and not running(sleeper_pid), "the watcher's whole group is gone"
    assert session_pids(sup.pid) == []


def non_loopback_ipv4() -> t.Optional[str]:
    try:
        words = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    return next((w for w in words if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", w) and not w.startswith("127.")), None)


def ipv6_loopback() -> bool:
    try:
        free_port("::1")
    except OSError:
        return False
    return True


def listening(address_hex: str, port: int) -> bool:
    needle = f"{address_hex}:{port:04X}"
    with open("/proc/net/tcp", encoding="utf-8") as table:
        return any(line.split()[1] == needle and line.split()[3] == "0A" for line in table.readlines()[1:])


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat is missing")
def test_forward_reaches_a_loopback_only_service(supervisors: t.Callable[..., Supervisor]) -> None:
    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("no non-loopback IPv4 address (hostname -I)")
    address_hex = "".join(f"{int(part):02X}" for part in reversed(address.split(".")))
    cases = [("v4", "127.0.0.1")] + ([("v6", "::1")] if ipv6_loopback() else [])
    started = []
    for name, loopback in cases:
        port = free_port(loopback)
        sup = supervisors(name)
        listen = f"[{loopback}]:{port}" if ":" in loopback else f"{loopback}:{port}"
        sup.install("--delay-ms", "500", "--listen", listen)
        sup.start(ready="port", ready_port=str(port), forward=loopback)
        started.append((sup, port, loopback))
    for sup, port, loopback in started:
        sup.wait_state("starting")
        wait_until(lambda p=port: listening(address_hex, p), 2, "socat to listen")
        sup.wait_output(f"forwarding {address}:{port} to {loopback}:{port}\n")
        assert sup.state()["state"] == "starting", "socat's listener is not the service's"
    for sup, port, loopback in started:
        pid = sup.wait_state("ready")["pid"]
        assert connect_and_read(address, port) == f"probe {pid}\n"
        sup.signal(signal.SIGINT)
        assert not listening(address_hex, port), "socat is gone with the supervisor"
        assert session_pids(sup.pid) == [], [open(f"/proc/{p}/cmdline").read() for p in session_pids(sup.pid)]


# --------------------------------------------------------------------------------------------------------------
# Fork-free polling, bad input
# --------------------------------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is missing")
def test_idle_polling_forks_nothing(supervisors: t.Callable[..., Supervisor], tmp_path: Path) -> None:
    waiting = supervisors("waiting").start(watcher=["sleep", "30"], own_build="1")
    ready = supervisors("ready")
    ready.install("--say", "up")
    ready.start(ready="log", ready_log="^up$")
    exited = supervisors("exited")
    exited.install("--exit", "0")
    exited.start()
    # Never ready: checks /proc/net/tcp at every tick, and (http) talks to a server that does not speak HTTP.
    port_check = supervisors("port_check")
    port_check.install()
    port_check.start(ready="port", ready_port=str(free_port()))
    http_port = free_port()
    http_check = supervisors("http_check")
    http_check.install("--listen", f"127.0.0.1:{http_port}")
    http_check.start(ready="http", ready_port=str(http_port))
    waiting.wait_state("waiting")
    ready.wait_state("ready")
    exited.wait_state("exited")
    port_check.wait_state("starting")
    http_check.wait_state("starting")
    traces = []
    for sup in (waiting, ready, exited, port_check, http_check):
        trace = tmp_path / f"{sup.dir.name}.strace"
        tracer = subprocess.Popen(  # pylint: disable=consider-using-with
            ["strace", "-qq", "-e", "trace=clone,clone3,fork,vfork,execve", "-o", str(trace), "-p", str(sup.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        traces.append((sup, tracer, trace))
    time.sleep(1.0)  # ten poll ticks
    for sup, tracer, trace in traces:
        tracer.send_signal(signal.SIGINT)
        _out, err = tracer.communicate(timeout=5)
        if not trace.exists() or b"Operation not permitted" in err:
            pytest.skip(f"strace cannot attach here: {err.decode()}")
        calls = [line for line in trace.read_text(encoding="utf-8").splitlines() if "(" in line]
        assert calls == [], f"{sup.dir.name}: the idle loop forked: {calls}"
        assert sup.proc.poll() is None
    assert http_check.state()["state"] == "starting" and port_check.state()["state"] == "starting"
    # And the same check fails when something does fork: a rebuild restarts the service.
    trace = tmp_path / "rebuild.strace"
    tracer = subprocess.Popen(  # pylint: disable=consider-using-with
        ["strace", "-qq", "-e", "trace=clone,clone3,fork,vfork", "-o", str(trace), "-p", str(ready.pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.2)
    ready.install("--say", "up")
    ready.wait_state("starting")
    time.sleep(0.1)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(5)
    assert "clone" in trace.read_text(encoding="utf-8")


@pytest.mark.parametrize("argv, env, message", [
    (["--"], {"CARGOHOLD_BIN": "relative/kvd"}, "CARGOHOLD_BIN must be the absolute path"),
    (["cargo", "watch"], {}, "usage: cargohold-run [WATCHER-ARGV...] -- [SERVICE-ARGS...]"),
    (["--"], {"CARGOHOLD_READY": "tcp"}, "CARGOHOLD_READY must be port, http, log or none"),
    (["--"], {"CARGOHOLD_READY": "port", "CARGOHOLD_READY_PORT": "70000"}, "CARGOHOLD_READY_PORT must be a TCP port"),
    (["--"], {"CARGOHOLD_FORWARD": "0.0.0.0", "CARGOHOLD_READY_PORT": "80"}, "CARGOHOLD_FORWARD must be"),
    (["--"], {"CARGOHOLD_READY": "log"}, "CARGOHOLD_READY=log needs CARGOHOLD_READY_LOG"),
    (["--"], {"CARGOHOLD_STATE": ""}, "CARGOHOLD_STATE must name"),
])
def test_bad_input_is_refused(tmp_path: Path, argv: t.List[str], env: t.Dict[str, str], message: str) -> None:
    full_env = {"PATH": os.environ["PATH"], "CARGOHOLD_BIN": str(tmp_path / "kvd"),
                "CARGOHOLD_STATE": str(tmp_path / "s"), "CARGOHOLD_BUILD_STATE": str(tmp_path / "b"),
                "CARGOHOLD_READY": "none", **env}
    result = subprocess.run([str(RUN), *argv], env=full_env, capture_output=True, text=True, timeout=5, check=False)
    assert result.returncode == 2
    assert message in result.stderr


def test_ten_seconds_of_uptime_reset_the_backoff(ten_seconds_up: t.Tuple[Supervisor, list]) -> None:
    sup, history = ten_seconds_up
    out = sup.wait_output("flaky exited with status 101; restart 1 in 0.5 s\n", timeout=16)
    assert "flaky exited with status 5; restart 2 in 1 s\n" in out
    assert "restart 3" not in out, "the crash after 10 s of uptime starts the backoff over"
    third = next(s for s in history if s["state"] == "ready" and s["restarts"] == 2)
    assert {**third, "restarts": 0} in history, "the counter went back to 0 while it ran"
