"""Helpers for the tests of the dev image's supervisor scripts (cargohold-run, cargohold-build).

The tests run the real scripts on the host as real processes, without Docker: a small Rust program (probe.rs,
compiled once per session with rustc -O) stands in for the services.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import typing as t
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = HERE.parents[1] / "roles" / "dev_image" / "files"
RUN = FILES / "cargohold-run"
BUILD = FILES / "cargohold-build"

RUN_LINE = re.compile(
    r"(?P<state>waiting|starting|ready|exited|crashed|stopped) since=(?P<since>\d+) pid=(?P<pid>\d+|-)"
    r" restarts=(?P<restarts>\d+) code=(?P<code>\d+|-) ready=(?P<ready>[01])\n"
)


def find_rustc() -> t.Optional[str]:
    found = shutil.which("rustc")
    if found:
        return found
    candidate = os.path.expanduser("~/.cargo/bin/rustc")
    return candidate if os.access(candidate, os.X_OK) else None


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def parse_run(text: str) -> dict:
    match = RUN_LINE.fullmatch(text)
    assert match, f"state file is not one well-formed line: {text!r}"
    fields: dict = match.groupdict()
    for key in ("since", "restarts", "ready"):
        fields[key] = int(fields[key])
    for key in ("pid", "code"):
        fields[key] = None if fields[key] == "-" else int(fields[key])
    return fields


def process_state(pid: int) -> t.Optional[str]:
    """The state letter of a process (R, S, Z, ...), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(") ", 1)[1][0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def running(pid: int) -> bool:
    return process_state(pid) not in (None, "Z", "X")


def session_pids(sid: int) -> t.List[int]:
    """The live processes of a session (the supervisor's children stay in it, in their own process groups)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                fields = handle.read().rsplit(") ", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def signal_mask(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def wait_until(predicate: t.Callable[[], t.Any], timeout: float, what: str, step: float = 0.005) -> t.Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def install_file(target: Path, source: t.Optional[Path] = None, text: t.Optional[str] = None,
                 mtime: t.Optional[float] = None) -> None:
    """Puts a new file (new inode) at target the way cargo does: written elsewhere, then renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.new")
    if source is not None:
        shutil.copyfile(source, temp)
    else:
        temp.write_text(text or "", encoding="utf-8")
    temp.chmod(0o755)
    if mtime is not None:
        os.utime(temp, (mtime, mtime))
    os.replace(temp, target)


def _default_sigint() -> None:
    # What tini gives its child; a test runner started in the background may have SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Supervisor:
    """One cargohold-run process with its own target, state and build-state directories."""

    def __init__(self, root: Path, probe_path: Path, name: str = "svc") -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.probe = probe_path
        self.bin = self.dir / "target" / "debug" / name
        self.state_dir = self.dir / "state"
        self.build_dir = self.dir / "build-state"
        self.stdout = self.dir / "stdout.log"
        self.stderr = self.dir / "stderr.log"
        self.proc: t.Optional[subprocess.Popen] = None

    # -- the "build" ----------------------------------------------------------------------------------------
    def install(self, *probe_args: str, mtime: t.Optional[float] = None) -> None:
        """A new build: a wrapper that execs the probe with these arguments (the pid stays the probe's)."""
        quoted = " ".join(f"'{arg}'" for arg in (str(self.probe), *probe_args))
        install_file(self.bin, text=f"#!/bin/sh\nexec {quoted} \"$@\"\n", mtime=mtime)

    def install_probe(self) -> None:
        """A new build that is the Rust program itself (its arguments come after cargohold-run's --)."""
        install_file(self.bin, source=self.probe)

    # -- the process ----------------------------------------------------------------------------------------
    def start(self, service_args: t.Sequence[str] = (), watcher: t.Sequence[str] = (), sigint_ignored: bool = False,
              path_prefix: t.Sequence[Path] = (), **env: str) -> "Supervisor":
        full_env = {
            "PATH": os.pathsep.join([*map(str, path_prefix), str(FILES), os.environ.get("PATH", "/usr/bin:/bin")]),
            "HOME": os.environ.get("HOME", "/tmp"),
            "TMPDIR": str(self.dir),
            "LANG": "C.UTF-8",
            "CARGOHOLD_BIN": str(self.bin),
            "CARGOHOLD_STATE": str(self.state_dir),
            "CARGOHOLD_BUILD_STATE": str(self.build_dir),
            "CARGOHOLD_READY": "none",
        }
        full_env.update({f"CARGOHOLD_{key.upper()}": str(value) for key, value in env.items()})
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            preexec = _ignore_sigint if sigint_ignored else _default_sigint
            self.proc = subprocess.Popen(  # pylint: disable=consider-using-with,subprocess-popen-preexec-fn
                [str(RUN), *watcher, "--", *service_args], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env=full_env, start_new_session=True, preexec_fn=preexec,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        return self.stdout.read_text(encoding="utf-8", errors="replace")

    def wait_output(self, text: str, timeout: float = 2.0) -> str:
        """Waits until stdout contains text (the state file is written before the message is printed)."""
        try:
            wait_until(lambda: text in self.output(), timeout, f"{text!r} on stdout")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstdout:\n{self.output()}") from None
        return self.output()

    def errors(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def state(self) -> t.Optional[dict]:
        try:
            text = (self.state_dir / "run").read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return parse_run(text)

    def wait_state(self, state: str, timeout: float = 3.0, not_pid: t.Optional[int] = None, **fields: t.Any) -> dict:
        """Waits for a state line with this state and these fields (and a pid other than not_pid)."""
        def matches() -> t.Optional[dict]:
            current = self.state()
            if (current and current["state"] == state and all(current[k] == v for k, v in fields.items())
                    and (not_pid is None or current["pid"] != not_pid)):
                return current
            assert self.proc is None or self.proc.poll() is None, (
                f"cargohold-run exited ({self.proc.returncode}) before state {state}:\n"
                f"{self.output()}\n{self.errors()}")
            return None
        try:
            return wait_until(matches, timeout, f"state {state} {fields}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last state: {self.state()}\nstdout:\n{self.output()}\n"
                                 f"stderr:\n{self.errors()}") from None

    def signal(self, sig: int = signal.SIGINT, timeout: float = 5.0) -> float:
        """Sends sig to cargohold-run alone (as tini does) and returns the seconds until it exited."""
        assert self.proc is not None
        start = time.monotonic()
        self.proc.send_signal(sig)
        # Not Popen.wait(timeout): it polls with sleeps of up to 50 ms. An exited process is a zombie until reaped.
        wait_until(lambda: not running(self.proc.pid), timeout, "cargohold-run to exit", step=0.0002)
        seconds = time.monotonic() - start
        self.proc.wait(timeout)
        return seconds

    def cleanup(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in session_pids(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
