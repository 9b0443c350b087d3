"""cargohold-poll, the project's one poller, run for real on the host: changes in a source tree come out as
inotify events in the mirror the watchers watch (read here with inotify itself, through ctypes)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import signal
import struct
import subprocess
import time
import typing as t
from pathlib import Path

import pytest

from runner_support import FILES, running, session_pids, wait_until

POLL = FILES / "cargohold-poll"
RUN = FILES / "cargohold-run"

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_ISDIR = 0x40000000
WATCHED = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE


class Inotify:
    """The kernel's own file events for a few directories (what cargo-watch and watchexec read)."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.dirs: t.Dict[int, Path] = {}

    def watch(self, path: Path) -> None:
        wd = self.libc.inotify_add_watch(self.fd, str(path).encode(), WATCHED)
        assert wd >= 0, f"{path}: {os.strerror(ctypes.get_errno())}"
        self.dirs[wd] = path

    def events(self, settle: float = 0.3, timeout: float = 5.0) -> t.List[t.Tuple[str, str]]:
        """(kind, path) of the events until none came for `settle` seconds."""
        found: t.List[t.Tuple[str, str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _w, _x = select.select([self.fd], [], [], settle)
            if not ready:
                break
            data = os.read(self.fd, 65536)
            pos = 0
            while pos < len(data):
                wd, mask, _cookie, size = struct.unpack_from("iIII", data, pos)
                name = data[pos + 16:pos + 16 + size].rstrip(b"\0").decode()
                pos += 16 + size
                kind = next(k for bit, k in ((IN_CREATE, "create"), (IN_DELETE, "delete"), (IN_MODIFY, "modify"),
                                             (IN_MOVED_TO, "moved_to"), (IN_MOVED_FROM, "moved_from"),
                                             (IN_ATTRIB, "attrib"), (IN_CLOSE_WRITE, "close_write"))
                            if mask & bit)
                found.append((kind, str(self.dirs[wd] / name) if name else str(self.dirs[wd])))
        return found

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for rel, text in {"Cargo.toml": "[workspace]\n", "Cargo.lock": "# lock\n",
                      "crates/api/src/main.rs": "fn main() {}\n", "crates/api/.gitignore": "*.log\n",
                      "crates/lib/src/lib.rs": "pub fn f() {}\n", "target/debug/api": "binary\n",
                      ".git/HEAD": "ref\n", "crates/api/.git/config": "x\n"}.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text, encoding="utf-8")
    return src


def poller(src: Path, mirror: Path, *extra: str, interval: str = "0.1", scan: t.Sequence[str] = ("",),
           out: t.Optional[Path] = None) -> subprocess.Popen:
    argv = [str(POLL), "--source", str(src), "--mirror", str(mirror), "--interval", interval]
    for rel in scan:
        argv += ["--scan", str(src / rel) if rel else str(src)]
    argv += ["--prune", str(src / "target"), *extra]
    log = open(out or mirror.parent / "poll.log", "ab")  # pylint: disable=consider-using-with
    with log:
        return subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True,  # pylint: disable=consider-using-with
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)
    for pid in session_pids(proc.pid):
        os.kill(pid, signal.SIGKILL)


def mirrored(mirror: Path) -> t.Set[str]:
    return {str(p.relative_to(mirror)) for p in mirror.rglob("*")}


def wait_started(mirror: Path) -> None:
    log = mirror.parent / "poll.log"
    wait_until(lambda: log.exists() and "polling" in log.read_text(encoding="utf-8"), 5, "the poller to start")


def test_changes_become_inotify_events_in_the_mirror(tree: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    proc = poller(tree, mirror)
    try:
        wait_started(mirror)
        assert mirrored(mirror) == {"Cargo.toml", "Cargo.lock", "crates", "crates/api", "crates/api/src",
                                    "crates/api/src/main.rs", "crates/api/.gitignore", "crates/lib",
                                    "crates/lib/src", "crates/lib/src/lib.rs"}, "no target, no .git"
        assert (mirror / "crates/api/.gitignore").read_text(encoding="utf-8") == "*.log\n", "ignore files are copied"
        inotify = Inotify()
        for rel in ("", "crates/api/src", "crates/lib/src", "crates/api"):
            inotify.watch(mirror / rel)
        # An edit, a new file in a new directory, a deletion, a rename (as editors save), a change under target.
        (tree / "crates/api/src/main.rs").write_text("fn main() { edited() }\n", encoding="utf-8")
        (tree / "crates/api/src/routes").mkdir()
        (tree / "crates/api/src/routes/mod.rs").write_text("// new\n", encoding="utf-8")
        (tree / "crates/lib/src/lib.rs").unlink()
        (tree / "Cargo.toml.tmp").write_text("[workspace]\nmembers = []\n", encoding="utf-8")
        os.replace(tree / "Cargo.toml.tmp", tree / "Cargo.toml")
        (tree / "target/debug/api").write_text("relinked\n", encoding="utf-8")
        (tree / ".git/HEAD").write_text("other\n", encoding="utf-8")
        events = inotify.events()
        touched = {path for _kind, path in events}
        assert str(mirror / "crates/api/src/main.rs") in touched
        assert ("create", str(mirror / "crates/api/src/routes")) in events
        assert ("delete", str(mirror / "crates/lib/src/lib.rs")) in events
        assert str(mirror / "Cargo.toml") in touched
        assert not any("target" in p or ".git/" in p or p.endswith(".tmp") for p in touched), events
        assert (mirror / "crates/api/src/routes/mod.rs").is_file()
        # Nothing changes: nothing happens.
        assert inotify.events(settle=0.5) == []
        inotify.close()
    finally:
        stop(proc)


def test_a_restarted_poller_replays_only_what_changed_meanwhile(tree: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    proc = poller(tree, mirror)
    wait_started(mirror)
    stop(proc)
    (tmp_path / "poll.log").unlink()
    # While no poller ran: an edit and a deletion. A new poller must replay them, and touch nothing else
    # (a flood of events would rebuild every service at once).
    time.sleep(0.05)
    (tree / "crates/api/src/main.rs").write_text("fn main() { meanwhile() }\n", encoding="utf-8")
    (tree / "crates/lib/src/lib.rs").unlink()
    inotify = Inotify()
    for rel in ("", "crates/api/src", "crates/lib/src"):
        inotify.watch(mirror / rel)
    proc = poller(tree, mirror)
    try:
        wait_started(mirror)
        events = inotify.events()
        assert {path for _kind, path in events} == {str(mirror / "crates/api/src/main.rs"),
                                                    str(mirror / "crates/lib/src/lib.rs")}, events
        assert not (mirror / "crates/lib/src/lib.rs").exists()
        inotify.close()
    finally:
        stop(proc)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stops_at_once_whatever_the_interval(tree: Path, tmp_path: Path, sig: int) -> None:
    mirror = tmp_path / "mirror"
    proc = poller(tree, mirror, interval="30")
    try:
        wait_started(mirror)
        start = time.monotonic()
        proc.send_signal(sig)
        wait_until(lambda: not running(proc.pid), 2, "the poller to exit", step=0.001)
        assert time.monotonic() - start < 2, "not after the 30 s interval"
        assert proc.wait(1) == 0
    finally:
        stop(proc)


def test_idle_tick_forks_one_listing(tree: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    proc = poller(tree, mirror, interval="0.1")
    try:
        wait_started(mirror)
        trace = tmp_path / "poll.strace"
        tracer = subprocess.Popen(  # pylint: disable=consider-using-with
            ["strace", "-qq", "-f", "-e", "trace=clone,clone3,fork,vfork,execve", "-o", str(trace),
             "-p", str(proc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        tracer.send_signal(signal.SIGINT)
        _out, err = tracer.communicate(timeout=5)
        if not trace.exists() or b"Operation not permitted" in err:
            pytest.skip(f"strace cannot attach here: {err.decode()}")
        lines = trace.read_text(encoding="utf-8").splitlines()
        forks = [line for line in lines if "clone" in line or "fork" in line]
        execs = [line for line in lines if "execve(" in line]
        assert 3 <= len(forks) <= 12, f"about one fork per 0.1 s tick: {forks}"
        assert all(line.startswith(f"{proc.pid} ") for line in forks), f"the listing forks nothing more: {forks}"
        assert execs and all("/find" in line for line in execs), execs
    finally:
        stop(proc)


def test_watcher_mode_makes_the_watched_mirror_paths_and_execs(tree: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    pid_file = tmp_path / "pid"
    script = f"echo $$ > '{pid_file}'; exec sleep 30"
    proc = subprocess.Popen(  # pylint: disable=consider-using-with
        [str(POLL), "--source", str(tree), "--mirror", str(mirror), "sh", "-c", script, "watcher",
         "-w", str(mirror / "crates/api"), "-w", str(mirror / "Cargo.lock"), "-i", str(mirror / "crates/api/*.log"),
         "--watch", str(mirror / "crates/new")], start_new_session=True)
    try:
        pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 5, "the watcher"))
        assert pid == proc.pid, "the watcher replaced the wrapper (exec): cargohold-run signals the watcher itself"
        assert (mirror / "crates/api").is_dir() and (mirror / "Cargo.lock").is_file()
        assert (mirror / "crates/new").is_file(), "a path missing in the source too: a file, so the watcher starts"
        assert mirrored(mirror) == {"crates", "crates/api", "Cargo.lock", "crates/new"}, "an ignore glob is no path"
    finally:
        stop(proc)


def test_builder_mode_polls_beside_the_watcher(tree: Path, tmp_path: Path) -> None:
    """The shared builder: the poller runs in the background and the watcher in the foreground."""
    mirror = tmp_path / "mirror"
    script = "exec sleep 30"
    proc = poller(tree, mirror, "sh", "-c", script, "watcher", "-w", str(mirror / "crates"))
    try:
        wait_started(mirror)
        inotify = Inotify()
        inotify.watch(mirror / "crates/api/src")
        (tree / "crates/api/src/main.rs").write_text("fn main() { again() }\n", encoding="utf-8")
        assert str(mirror / "crates/api/src/main.rs") in {path for _kind, path in inotify.events()}
        inotify.close()
        with open(f"/proc/{proc.pid}/cmdline", "rb") as handle:
            assert handle.read().split(b"\0")[0] == b"sleep", "the foreground process is the watcher"
    finally:
        stop(proc)


def test_under_cargohold_run_an_edit_rebuilds_and_stop_ends_the_poller(tree: Path, tmp_path: Path) -> None:
    """The per_service chain: cargohold-run -> cargohold-poll -> a watcher of the mirror (inotifywait's role
    played by a shell loop on the mirror file), and cargohold-run's stop takes the whole group."""
    mirror = tmp_path / "mirror"
    builds = tmp_path / "builds"
    poll_proc = poller(tree, mirror)
    wait_started(mirror)
    watched = mirror / "crates/api/src/main.rs"
    # A watcher that "builds" whenever the mirror file's content changes.
    script = (f"last=; while :; do now=$(cat '{watched}' 2>/dev/null); "
              f"[ \"$now\" != \"$last\" ] && echo build >> '{builds}'; last=$now; sleep 0.05; done")
    env = {"PATH": f"{FILES}{os.pathsep}{os.environ['PATH']}", "CARGOHOLD_BIN": str(tmp_path / "bin/svc"),
           "CARGOHOLD_STATE": str(tmp_path / "state"), "CARGOHOLD_BUILD_STATE": str(tmp_path / "build"),
           "CARGOHOLD_READY": "none", "TMPDIR": str(tmp_path)}
    with open(tmp_path / "run.log", "wb") as log:
        run = subprocess.Popen(  # pylint: disable=consider-using-with
            [str(RUN), str(POLL), "--source", str(tree), "--mirror", str(mirror), "sh", "-c", script, "w",
             "-w", str(mirror / "crates/api"), "--"], env=env, stdout=log, stderr=log, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_until(lambda: builds.exists() and builds.read_text().count("build") == 1, 5, "the first build")
        (tree / "crates/api/src/main.rs").write_text("fn main() { edited() }\n", encoding="utf-8")
        wait_until(lambda: builds.read_text().count("build") == 2, 5, "the rebuild after the edit")
        (tree / "crates/lib/src/lib.rs").write_text("pub fn g() {}\n", encoding="utf-8")
        time.sleep(0.6)
        assert builds.read_text().count("build") == 2, "an edit elsewhere does not reach this watcher"
        run.send_signal(signal.SIGINT)
        wait_until(lambda: not running(run.pid), 3, "cargohold-run to stop")
        assert session_pids(run.pid) == [], "the watcher went with cargohold-run"
    finally:
        stop(run)
        stop(poll_proc)


@pytest.mark.parametrize("argv, message", [
    (["--mirror", "/m", "--scan", "/s/a"], "--source must be an absolute directory"),
    (["--source", "/s", "--mirror", "/s/m", "--scan", "/s/a"], "--mirror must be outside --source"),
    (["--source", "/s", "--mirror", "/m", "--interval", "0", "--scan", "/s/a"], "--interval must be a positive"),
    (["--source", "/s", "--mirror", "/m", "--interval", "1m", "--scan", "/s/a"], "--interval must be a positive"),
    (["--source", "/s", "--mirror", "/m"], "nothing to do"),
    (["--source", "/s", "--mirror", "/m", "--scan", "/elsewhere"], "'/elsewhere' is not under --source /s"),
    (["--source", "/s", "--mirror", "/m", "--bogus"], "unknown option '--bogus'"),
])
def test_bad_input_is_refused(argv: t.List[str], message: str) -> None:
    result = subprocess.run([str(POLL), *argv], capture_output=True, text=True, timeout=5, check=False)
    assert result.returncode == 2
    assert message in result.stderr
