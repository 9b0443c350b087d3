#!/usr/bin/env python
"""Dev-loop benchmark: edit-to-serving times of the classic per-service `cargo watch` compose pattern, the
cargohold modes per_service and shared_builder (each also polling: the `poll` variant), and host-native cargo
(the physical limit), side by side in one run on the example workspace, and the CPU each stack uses while idle.
See bench/README.md and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as t

import docker  # type: ignore[import-not-found]
from docker.errors import APIError, NotFound  # type: ignore[import-not-found]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
# This checkout, never a copy Molecule's prerun leaves in ~/.ansible/collections (it would shadow the checkout).
ANSIBLE_ENV = {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, ".collections")}
EXAMPLE = os.path.join(REPO, "examples", "workspace")
EXAMPLE_SERVICES = ("api", "auth", "billing", "notify")
# The services of the measured workspace, in name order (the order the ports follow): the example's four, and with
# --services N, N-4 clones of api (svc005, ...). Set once by main().
SERVICES: t.List[str] = list(EXAMPLE_SERVICES)
TEMPLATE = EXAMPLE  # the workspace every mode copies; main() makes a bigger one for --services N
COMMON_RS = "crates/common/src/lib.rs"
API_RS = "services/api/src/main.rs"
BASE_IMAGE = "cargohold/rust-base:host"
DEV_TAG = "devloop-bench"  # one dev image shared by the bench's projects (its build hash ignores the project)
CLASSIC_IMAGE = "cargohold-devloop/classic:latest"
PREFIX = "devloop"  # container / volume / network / compose project prefix: touches nothing else
UID = 1000
STAMP_RE = re.compile(r"started=(\d+)")
CPUACCT = "/sys/fs/cgroup/cpuacct/docker"  # cgroup v1, cgroupfs driver: <CPUACCT>/<container id>/cpuacct.usage
# Variants every run knows; --variant adds to them. The dev image of the bench carries what any variant needs.
BUILTIN_VARIANTS = {"poll": ["dev_services_poll=true"], "watchexec": ["dev_services_watcher=watchexec"]}
LOCK = threading.Lock()

OFFSET = time.time() - time.monotonic()  # wall = mono + OFFSET


# cgroup v1 with the cgroupfs driver: every container is a child of /docker, which competes for the CPU as ONE
# entity against each busy task of the root group. On a machine whose other load runs in containers, host cargo
# in the root group would get several times the CPU share of any container. The host-native loop therefore
# runs in a sibling group of the containers (same cpu.shares), so the scheduler treats it like one more
# container and the comparison is about the pattern, not about the scheduler.
CGROUP_PARENT = "/sys/fs/cgroup/cpu/docker"
HOST_CGROUP: t.Optional[str] = None


def host_cgroup(enable: bool) -> t.Optional[str]:
    global HOST_CGROUP  # pylint: disable=global-statement
    if enable and HOST_CGROUP is None and os.path.isdir(CGROUP_PARENT) and os.access(CGROUP_PARENT, os.W_OK):
        path = os.path.join(CGROUP_PARENT, f"cargohold-devloop-host-{os.getpid()}")
        os.makedirs(path, exist_ok=True)
        HOST_CGROUP = path
    return HOST_CGROUP


def join_host_cgroup() -> None:
    """preexec_fn: move the new process into the host-native cgroup (when there is one)."""
    if HOST_CGROUP:
        with open(os.path.join(HOST_CGROUP, "cgroup.procs"), "w", encoding="ascii") as handle:
            handle.write(str(os.getpid()))


def remove_host_cgroup() -> None:
    if HOST_CGROUP and os.path.isdir(HOST_CGROUP):
        for _unused in range(50):
            try:
                os.rmdir(HOST_CGROUP)
                return
            except OSError:
                time.sleep(0.1)


def log(msg: str) -> None:
    with LOCK:
        print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def run(cmd: t.Sequence[str], **kw: t.Any) -> subprocess.CompletedProcess:
    check = kw.pop("check", True)
    return subprocess.run(list(cmd), check=check, **kw)


# --------------------------------------------------------------------------
# HTTP probing
# --------------------------------------------------------------------------

def get(port: int, timeout: float = 0.3) -> t.Optional[str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        return body if resp.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def stamp(body: t.Optional[str]) -> t.Optional[str]:
    match = STAMP_RE.search(body or "")
    return match.group(1) if match else None


def wait_for(ports: t.Dict[str, int], want: t.Dict[str, str], timeout: float,
             interval: float = 0.02) -> t.Dict[str, t.Tuple[float, str]]:
    """Poll each service until its body contains want[svc]; {svc: (monotonic time, body)}."""
    got: t.Dict[str, t.Tuple[float, str]] = {}
    deadline = time.monotonic() + timeout
    while len(got) < len(want):
        if time.monotonic() > deadline:
            missing = sorted(set(want) - set(got))
            raise TimeoutError(f"{missing} did not serve {[want[m] for m in missing]} within {timeout:.0f} s")
        for svc, text in want.items():
            if svc in got:
                continue
            body = get(ports[svc])
            if body is not None and text in body:
                got[svc] = (time.monotonic(), body)
        time.sleep(interval)
    return got


# --------------------------------------------------------------------------
# Workspace copies and edits
# --------------------------------------------------------------------------

def make_template(tmp: str, count: int) -> str:
    """The example workspace with count-4 more services, each a copy of api under its own name (its own package,
    marker and binary; the same shared crates), and a Cargo.lock that lists them (same dependency versions)."""
    global TEMPLATE  # pylint: disable=global-statement
    extra = [f"svc{i:03d}" for i in range(len(EXAMPLE_SERVICES) + 1, count + 1)]
    SERVICES[:] = sorted(list(EXAMPLE_SERVICES) + extra)
    if not extra:
        return TEMPLATE
    TEMPLATE = os.path.join(tmp, "template")
    shutil.copytree(EXAMPLE, TEMPLATE, ignore=shutil.ignore_patterns("target"))
    api = os.path.join(TEMPLATE, "services", "api")
    for name in extra:
        dest = os.path.join(TEMPLATE, "services", name)
        shutil.copytree(api, dest)
        for rel, pairs in (("Cargo.toml", [('name = "api"', f'name = "{name}"'),
                                           ("Example service: api.", f"Bench clone of api: {name}.")]),
                           (os.path.join("src", "main.rs"), [('"api-1"', f'"{name}-1"'),
                                                             ('SERVICE: &str = "api"', f'SERVICE: &str = "{name}"')])):
            path = os.path.join(dest, rel)
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            for old, new in pairs:
                if old not in text:
                    raise RuntimeError(f"{path}: {old!r} not found (did the example change?)")
                text = text.replace(old, new)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
    # Adds the new members to Cargo.lock and changes no locked version.
    run(["cargo", "metadata", "--format-version", "1"], cwd=TEMPLATE, stdout=subprocess.DEVNULL,
        env=dict(os.environ, PATH=f"{os.path.expanduser('~/.cargo/bin')}:{os.environ['PATH']}"))
    return TEMPLATE


def copy_workspace(dest: str, owner: t.Optional[int]) -> None:
    shutil.copytree(TEMPLATE, dest, ignore=shutil.ignore_patterns("target"))
    if owner is not None:
        for root, dirs, files in os.walk(dest):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), owner, owner)
        os.chown(dest, owner, owner)


def edit(path: str, pattern: str, new: str) -> t.Tuple[float, float]:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    updated, count = re.subn(pattern, new, text, count=1)
    if count != 1:
        raise RuntimeError(f"{path}: pattern {pattern!r} not found")
    t0 = time.monotonic()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(updated)
    return t0, time.monotonic()


def docker_ts(value: str) -> float:
    """RFC 3339 with nanoseconds (docker) -> monotonic seconds."""
    value = value.strip()
    main, _unused, frac = value.rstrip("Z").partition(".")
    wall = dt.datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp()
    if frac:
        wall += float("0." + re.sub(r"\D.*", "", frac))
    return wall - OFFSET


# --------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------

class Mode:
    kind = ""

    def __init__(self, name: str, tmp: str, port_base: int, client: docker.DockerClient,
                 extra_vars: t.Sequence[str] = ()) -> None:
        self.name = name
        self.tmp = tmp
        self.client = client
        self.extra_vars = list(extra_vars)
        self.ports = {svc: port_base + i for i, svc in enumerate(SERVICES)}
        self.slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        self.project = f"{PREFIX}-{self.slug}"
        self.ws = os.path.join(tmp, self.project)

    # lifecycle -------------------------------------------------------------
    def prepare(self) -> None:
        raise NotImplementedError

    def stop_and_wipe(self) -> None:
        """Stop everything and empty the build output and the crate cache."""
        raise NotImplementedError

    def start(self) -> None:
        """Start from the current state (returns once the start command was issued or done)."""
        raise NotImplementedError

    def start_finished(self) -> None:
        """Wait for a start command running in the background."""

    def cleanup(self) -> None:
        raise NotImplementedError

    # loop ------------------------------------------------------------------
    def after_edit(self) -> None:
        """Called right after a file was written (host-native builds here)."""

    def idle(self) -> bool:
        return True

    def target_bytes(self) -> int:
        raise NotImplementedError

    def started_at(self) -> t.Optional[float]:
        return None

    def profile(self, t_write: float, served: t.Dict[str, float], restarted: t.Sequence[str]) -> t.Optional[dict]:
        return None

    def cpu_ns(self) -> t.Optional[int]:
        """CPU time used so far by the mode's containers (cgroup v1 cpuacct), None when not measurable."""
        total = 0
        for container in self.containers():
            try:
                with open(os.path.join(CPUACCT, container.id, "cpuacct.usage"), encoding="ascii") as handle:
                    total += int(handle.read())
            except (OSError, ValueError):
                return None
        return total if self.containers() else None

    # helpers ---------------------------------------------------------------
    def containers(self) -> list:
        return self.client.containers.list(all=True, filters={"label": f"{self._label_key()}={self.project}"})

    def _label_key(self) -> str:
        return "io.cargohold.project"

    def _busy_in_containers(self) -> bool:
        for container in self.containers():
            try:
                top = container.top(ps_args="-eo args")
            except (APIError, NotFound):
                continue
            for proc in top.get("Processes") or []:
                cmd = " ".join(proc)
                if "rustc " in cmd or "cargohold-build" in cmd or "cargo build" in cmd:
                    return True
        return False

    def _volume_bytes(self, volume: str) -> int:
        out = self.client.containers.run(BASE_IMAGE, ["du", "-sb", "/v"], remove=True, network_mode="none",
                                         volumes={volume: {"bind": "/v", "mode": "ro"}}, user="0:0")
        return int(out.split()[0])

    def _remove_volumes(self, names: t.Sequence[str]) -> None:
        for name in names:
            for _unused in range(20):
                try:
                    self.client.volumes.get(name).remove(force=True)
                    break
                except NotFound:
                    break
                except APIError:  # still in use by a container that is going away
                    time.sleep(0.5)


class ContainerMode(Mode):
    """A mode whose services run in containers with the target dir on the first of its volumes."""

    def _volumes(self) -> t.List[str]:
        raise NotImplementedError

    def idle(self) -> bool:
        return not self._busy_in_containers()

    def target_bytes(self) -> int:
        return self._volume_bytes(self._volumes()[0])

    def started_at(self) -> t.Optional[float]:
        return _first_start(self.containers())


class Classic(ContainerMode):
    """The hand-made pattern: docker-compose v1, per-service `cargo watch -x "run --bin <svc>"` as root,
    the target volume at /app/target under the /app bind mount and a volume over all of /usr/local/cargo."""

    kind = "classic"

    def compose(self, *args: str, **kw: t.Any) -> subprocess.CompletedProcess:
        return run(["docker-compose", "-p", self.project.replace("-", ""), *args], cwd=self.ws,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)

    def prepare(self) -> None:
        copy_workspace(self.ws, None)
        lines = ['version: "3.8"', "services:"]
        for svc in SERVICES:
            lines += [
                f"  {svc}:",
                f"    image: {CLASSIC_IMAGE}",
                "    working_dir: /app",
                f"    command: cargo watch -x \"run --bin {svc}\"",
                "    environment:",
                "      PORT: \"8080\"",
                "    ports:",
                f"      - \"127.0.0.1:{self.ports[svc]}:8080\"",
                "    volumes:",
                "      - .:/app",
                "      - target:/app/target",
                "      - cargo:/usr/local/cargo",
                "    labels:",
                f"      io.cargohold.devloop: \"{self.project}\"",
            ]
        lines += ["volumes:", "  target: {}", "  cargo: {}", ""]
        with open(os.path.join(self.ws, "docker-compose.yml"), "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines))

    def _label_key(self) -> str:
        return "io.cargohold.devloop"

    def _volumes(self) -> t.List[str]:
        p = self.project.replace("-", "")
        return [f"{p}_target", f"{p}_cargo"]

    def stop_and_wipe(self) -> None:
        self.compose("down", "-v", "-t", "1", "--remove-orphans", check=False)
        self._remove_volumes(self._volumes())

    def start(self) -> None:
        self.compose("up", "-d")

    def cleanup(self) -> None:
        self.stop_and_wipe()


class Managed(ContainerMode):
    """cargohold's dev_stack role, brought up with the workspace's own dev.yml."""

    def __init__(self, *args: t.Any, **kw: t.Any) -> None:
        super().__init__(*args, **kw)
        self.proc: t.Optional[subprocess.Popen] = None
        self.logfile = os.path.join(self.tmp, f"{self.project}.playbook.log")
        self.image_vars: t.List[str] = []  # what the shared dev image was built with (set by main)

    def playbook(self, *extra: str, background: bool = False) -> t.Optional[subprocess.Popen]:
        cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "dev.yml",
               "-e", f"dev_services_mode={self.kind}",
               "-e", f"dev_services_port_base={self.ports[SERVICES[0]]}",
               "-e", f"dev_image_tag={DEV_TAG}",
               "-e", f"dev_image_build_dir={os.path.join(self.tmp, 'image-build')}"]
        for var in self.image_vars + self.extra_vars:
            cmd += ["-e", var]
        cmd += list(extra)
        env = dict(os.environ, **ANSIBLE_ENV, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
        out = open(self.logfile, "a", encoding="utf-8")  # pylint: disable=consider-using-with
        out.write(f"\n### {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=self.ws, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        if background:
            return proc
        if proc.wait() != 0:
            raise RuntimeError(f"{self.name}: ansible-playbook failed; see {self.logfile}")
        return None

    def prepare(self) -> None:
        copy_workspace(self.ws, UID)

    def _volumes(self) -> t.List[str]:
        return [f"{self.project}-cargo-target", f"{self.project}-cargo-cache"]

    def remove_containers(self) -> None:
        for container in self.containers():
            try:
                container.remove(force=True)
            except NotFound:
                pass

    def stop_and_wipe(self) -> None:
        self.remove_containers()
        self._remove_volumes(self._volumes())

    def start(self) -> None:
        self.proc = self.playbook(background=True)

    def start_finished(self) -> None:
        if self.proc is not None:
            rc = self.proc.wait()
            self.proc = None
            if rc != 0:
                kept = os.path.join(REPO, "bench", "results", f"{self.project}-{time.strftime('%H%M%S')}.playbook.log")
                shutil.copy(self.logfile, kept)
                raise RuntimeError(f"{self.name}: ansible-playbook failed; see {kept}")

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.remove_containers()
        self._remove_volumes(self._volumes())
        for net in self.client.networks.list(names=[f"{self.project}-dev"]):
            if net.name == f"{self.project}-dev":
                try:
                    net.remove()
                except (APIError, NotFound):
                    pass

    def _logs(self, name: str, since: float) -> t.List[t.Tuple[float, str]]:
        try:
            raw = self.client.containers.get(name).logs(timestamps=True, since=int(since + OFFSET) - 1)
        except NotFound:
            return []
        lines = []
        for line in raw.decode("utf-8", "replace").splitlines():
            stamp_text, _unused, text = line.partition(" ")
            try:
                lines.append((docker_ts(stamp_text), text))
            except ValueError:
                continue
        return lines


class PerService(Managed):
    kind = "per_service"


class SharedBuilder(Managed):
    kind = "shared_builder"

    def profile(self, t_write: float, served: t.Dict[str, float], restarted: t.Sequence[str]) -> t.Optional[dict]:
        """Where the seconds went, from the builder's and the runners' log time stamps (docker's)."""
        b = [(ts, x) for ts, x in self._logs(f"{self.project}-builder", t_write) if ts >= t_write - 0.05]
        running = next((ts for ts, x in b if "[Running" in x), None)
        finished = next((ts for ts, x in b if "Finished `" in x), None)
        cargo_s = None
        for _ts, x in b:
            match = re.search(r"Finished `.*` profile .* in ([0-9.]+)(m?s)", x)
            if match:
                cargo_s = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
                break
        done = next((ts for ts, x in b if "[Finished running" in x), None)
        svc = {}
        for name in restarted:
            lines = [(ts, x) for ts, x in self._logs(f"{self.project}-{name}", t_write) if ts >= t_write - 0.05]
            rebuilt = next((ts for ts, x in lines if "was rebuilt" in x), None)
            listening = next((ts for ts, x in lines if "listening on" in x and (rebuilt is None or ts >= rebuilt)),
                             None)
            svc[name] = {"rebuilt_seen": _rel(rebuilt, t_write), "listening": _rel(listening, t_write),
                         "served": _rel(served.get(name), t_write)}
        return {"build_started": _rel(running, t_write), "cargo_finished": _rel(finished, t_write),
                "cargo_reported_s": cargo_s, "build_script_done": _rel(done, t_write), "services": svc}


class Host(Mode):
    """Host-native cargo (same 1.95 toolchain): `cargo build --workspace --bins` right after the write (no
    watcher, no debounce), then restart only the binaries whose file changed. The physical limit."""

    kind = "host"

    def __init__(self, *args: t.Any, **kw: t.Any) -> None:
        super().__init__(*args, **kw)
        self.target = os.path.join(self.tmp, f"{self.project}-target")
        self.cargo_home = os.path.join(self.tmp, f"{self.project}-cargo-home")
        self.procs: t.Dict[str, subprocess.Popen] = {}
        self.seen: t.Dict[str, t.Tuple[int, int, int]] = {}
        self.thread: t.Optional[threading.Thread] = None
        self.error: t.Optional[str] = None
        sysroot = run(["rustc", "--print", "sysroot"], capture_output=True, text=True,
                      env=dict(os.environ, PATH=f"{os.path.expanduser('~/.cargo/bin')}:{os.environ['PATH']}")
                      ).stdout.strip()
        self.cargo = os.path.join(sysroot, "bin", "cargo")
        self.env = dict(os.environ, CARGO_HOME=self.cargo_home, CARGO_TARGET_DIR=self.target,
                        PATH=f"{sysroot}/bin:{os.environ['PATH']}")
        for var in ("RUSTUP_TOOLCHAIN", "RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_INCREMENTAL"):
            self.env.pop(var, None)
        self.build_log = os.path.join(self.tmp, f"{self.project}.build.log")

    def prepare(self) -> None:
        copy_workspace(self.ws, None)

    def _bin(self, svc: str) -> str:
        return os.path.join(self.target, "debug", svc)

    def _stop(self, svc: str) -> None:
        proc = self.procs.pop(svc, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(2)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass

    def _start(self, svc: str) -> None:
        out = open(os.path.join(self.tmp, f"{self.project}-{svc}.log"), "a", encoding="utf-8")  # pylint: disable=consider-using-with
        env = dict(self.env, PORT=str(self.ports[svc]), SERVICE_NAME=svc)
        self.procs[svc] = subprocess.Popen([self._bin(svc)], env=env,
                                           stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                           preexec_fn=join_host_cgroup)
        out.close()

    def build_and_restart(self) -> None:
        with open(self.build_log, "a", encoding="utf-8") as out:
            rc = subprocess.call([self.cargo, "build", "--workspace", "--bins"], cwd=self.ws, env=self.env,
                                 stdout=out, stderr=subprocess.STDOUT, preexec_fn=join_host_cgroup)
        if rc != 0:
            self.error = f"cargo build failed; see {self.build_log}"
            return
        for svc in SERVICES:
            st = os.stat(self._bin(svc))
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if self.seen.get(svc) != key or svc not in self.procs:
                self._stop(svc)
                self._start(svc)
                self.seen[svc] = key

    def stop_and_wipe(self) -> None:
        self._join()
        for svc in list(self.procs):
            self._stop(svc)
        self.seen.clear()
        shutil.rmtree(self.target, ignore_errors=True)
        shutil.rmtree(self.cargo_home, ignore_errors=True)

    def start(self) -> None:
        self.after_edit()

    def start_finished(self) -> None:
        self._join()

    def _join(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error:
            raise RuntimeError(f"{self.name}: {self.error}")

    def after_edit(self) -> None:
        self._join()
        self.thread = threading.Thread(target=self.build_and_restart, daemon=True)
        self.thread.start()

    def idle(self) -> bool:
        return self.thread is None or not self.thread.is_alive()

    def target_bytes(self) -> int:
        return int(run(["du", "-sb", self.target], capture_output=True, text=True).stdout.split()[0])

    def cleanup(self) -> None:
        self.stop_and_wipe()


def _first_start(containers: list) -> t.Optional[float]:
    times = []
    for container in containers:
        value = container.attrs.get("State", {}).get("StartedAt")
        if value and not value.startswith("0001"):
            times.append(docker_ts(value))
    return min(times) if times else None


def _rel(value: t.Optional[float], origin: float) -> t.Optional[float]:
    return None if value is None else round(value - origin, 3)


MODE_CLASSES = {"classic": Classic, "per_service": PerService, "shared_builder": SharedBuilder, "host": Host}


# --------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------

def quiesce(mode: Mode, settle: float, timeout: float = 600.0) -> t.Dict[str, str]:
    """All services serving, start stamps unchanged for `settle` s, and no build running; the stamps."""
    deadline = time.monotonic() + timeout
    last: t.Dict[str, t.Optional[str]] = {}
    since = time.monotonic()
    while time.monotonic() < deadline:
        now = {svc: stamp(get(port)) for svc, port in mode.ports.items()}
        if now != last or None in now.values():
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle and mode.idle():
            return t.cast(t.Dict[str, str], now)
        time.sleep(0.1)
    raise TimeoutError(f"{mode.name}: not quiescent within {timeout:.0f} s (last stamps {last})")


def cold_start(mode: Mode, timeout: float) -> dict:
    mode.stop_and_wipe()
    t0 = time.monotonic()
    mode.start()
    got = wait_for(mode.ports, {svc: " marker=" for svc in SERVICES}, timeout, interval=0.05)
    t_all = max(ts for ts, _unused in got.values())
    started = mode.started_at()
    mode.start_finished()
    return {"s": round(t_all - t0, 3),
            "containers_started": _rel(started, t0),
            "from_containers_started": _rel(t_all, started) if started else None}


def shared_edit(mode: Mode, version: int, settle: float, timeout: float, profile: bool) -> dict:
    before = quiesce(mode, settle)
    t_write, _unused = edit(os.path.join(mode.ws, COMMON_RS), r'VERSION_TAG: &str = "v\d+";',
                            f'VERSION_TAG: &str = "v{version}";')
    mode.after_edit()
    got = wait_for(mode.ports, {svc: f"common=v{version} " for svc in SERVICES}, timeout)
    per = {svc: round(ts - t_write, 3) for svc, (ts, _unused) in got.items()}
    result = {"s": max(per.values()), "per_service": per,
              "restarted": sorted(s for s, (_unused, b) in got.items() if stamp(b) != before[s])}
    if profile:
        result["profile"] = mode.profile(t_write, {s: ts for s, (ts, _unused) in got.items()}, SERVICES)
    return result


def one_edit(mode: Mode, version: int, settle: float, timeout: float, profile: bool) -> dict:
    before = quiesce(mode, settle)
    t_write, _unused = edit(os.path.join(mode.ws, API_RS), r'MARKER: &str = "api-\d+";',
                            f'MARKER: &str = "api-{version}";')
    mode.after_edit()
    got = wait_for(mode.ports, {"api": f"marker=api-{version} "}, timeout)
    t_api = got["api"][0]
    after = quiesce(mode, settle)  # lets the other watchers of the classic pattern finish restarting
    others = sorted(s for s in SERVICES if s != "api" and after[s] != before[s])
    result = {"s": round(t_api - t_write, 3), "others_restarted": len(others), "others": others}
    if profile:
        result["profile"] = mode.profile(t_write, {"api": t_api}, ["api"])
    return result


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def med(values: t.Sequence[float]) -> t.Optional[float]:
    return statistics.median(values) if values else None


def fmt_s(values: t.Sequence[float], unit: str = "s") -> str:
    if not values:
        return "-"
    if unit == "MB":
        return f"{med(values) / 1e6:.0f} MB"
    if unit == "%":
        return f"{med(values):.2f}%"
    if unit == "n":
        return f"{med(values):g} [{min(values):g}-{max(values):g}]"
    return f"{med(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def ratio(a: t.Optional[float], b: t.Optional[float]) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def report(results: dict) -> str:
    modes = results["modes"]
    rows = []
    metrics = [(f"shared-crate edit -> all {len(SERVICES)} serving (s)", "shared", "s", "s"),
               ("one-service edit -> api serving (s)", "one", "s", "s"),
               ("other services restarted by it", "one", "others_restarted", "n"),
               ("cold start, empty volumes -> all serving (s)", "cold", "s", "s"),
               ("target volume / dir size", "size", None, "MB"),
               ("idle CPU, % of one core", "idle_cpu", "percent", "%")]
    names = list(modes)

    def values(name: str, key: str, field: t.Optional[str]) -> t.List[float]:
        samples = modes[name].get(key, [])
        return [s if field is None else s[field] for s in samples if field is None or s.get(field) is not None]

    header = ["metric"] + names
    rows.append(header)
    for label, key, field, unit in metrics:
        rows.append([label] + [fmt_s(values(n, key, field), unit) for n in names])
    base = {"classic": next((n for n in names if modes[n]["kind"] == "classic"), None),
            "host": next((n for n in names if modes[n]["kind"] == "host"), None)}
    for ref_kind, ref in base.items():
        if ref is None:
            continue
        for label, key, field, unit in metrics:
            if unit in ("n", "%"):
                continue
            ref_med = med(values(ref, key, field))
            rows.append([f"  {label.split(' (', maxsplit=1)[0]} vs {ref_kind}"] +
                        [ratio(med(values(n, key, field)), ref_med) for n in names])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def profile_summary(results: dict) -> str:
    out = []
    for name, data in results["modes"].items():
        if data["kind"] != "shared_builder":
            continue
        for key, label in (("shared", "shared-crate edit"), ("one", "one-service edit")):
            rows = [s["profile"] for s in data.get(key, []) if s.get("profile")]
            if not rows:
                continue

            def m(fn: t.Callable[[dict], t.Optional[float]]) -> str:
                vals = [v for v in (fn(r) for r in rows) if v is not None]
                return f"{med(vals):.2f}" if vals else "-"

            def last_svc(r: dict, field: str) -> t.Optional[float]:
                vals = [s[field] for s in r["services"].values() if s.get(field) is not None]
                return max(vals) if vals else None

            def phase(r: dict, a: t.Optional[float], b: t.Optional[float]) -> t.Optional[float]:
                return None if a is None or b is None else b - a

            out.append(
                f"{name} {label} (medians, s after the write): build starts {m(lambda r: r['build_started'])}, "
                f"cargo finished {m(lambda r: r['cargo_finished'])} (cargo says {m(lambda r: r['cargo_reported_s'])}), "
                f"runner sees new binary {m(lambda r: last_svc(r, 'rebuilt_seen'))}, "
                f"listening {m(lambda r: last_svc(r, 'listening'))}, served {m(lambda r: last_svc(r, 'served'))}"
                f" | phases: detect {m(lambda r: r['build_started'])}, "
                f"compile+link {m(lambda r: phase(r, r['build_started'], r['cargo_finished']))}, "
                f"handoff {m(lambda r: phase(r, r['cargo_finished'], last_svc(r, 'rebuilt_seen')))}, "
                f"restart {m(lambda r: phase(r, last_svc(r, 'rebuilt_seen'), last_svc(r, 'listening')))}, "
                f"first response {m(lambda r: phase(r, last_svc(r, 'listening'), last_svc(r, 'served')))}")
    return "\n".join(out)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def image_needs(modes: t.Sequence["Mode"]) -> t.Dict[str, str]:
    """dev_image settings of the one dev image all managed modes share: the poller always (it changes no
    other layer), watchexec when a mode uses it; each mode gets them too, so that none rebuilds the image."""
    needs = {"dev_image_poll": "true"}
    if any("watchexec" in var for mode in modes for var in getattr(mode, "extra_vars", [])):
        needs["dev_image_watcher"] = "watchexec"
    return needs


def idle_cpu(mode: "Mode", settle: float, seconds: float) -> t.Optional[dict]:
    """Share of one core the mode's containers use while nothing changes (watchers, pollers, supervisors)."""
    quiesce(mode, settle)
    start, t0 = mode.cpu_ns(), time.monotonic()
    if start is None:
        return None
    time.sleep(seconds)
    end, elapsed = mode.cpu_ns(), time.monotonic() - t0
    if end is None:
        return None
    return {"percent": round((end - start) / 1e9 / elapsed * 100, 3), "seconds": round(elapsed, 2),
            "loadavg": os.getloadavg()[0]}


def build_images(tmp: str, managed: t.Optional[Managed], client: docker.DockerClient, need_classic: bool,
                 image_vars: t.Optional[t.Dict[str, str]] = None) -> None:
    """The dev image (and the Rust base image if missing) from the roles, with the same input-hash check as
    `up`, then the classic pattern's image on the same base."""
    if managed is None and not need_classic:
        return
    ws = managed.ws if managed is not None else os.path.join(tmp, "image-ws")
    if managed is None:
        copy_workspace(ws, UID)
    book = os.path.join(tmp, "image.yml")
    with open(book, "w", encoding="utf-8") as handle:
        handle.write("- hosts: localhost\n  gather_facts: true\n  roles:\n"
                     "    - role: cargohold.devenv.dev_image\n      vars:\n"
                     f"        cargohold_workspace: {ws}\n        cargohold_project: {PREFIX}-image\n"
                     f"        dev_image_tag: {DEV_TAG}\n"
                     f"        dev_image_build_dir: {os.path.join(tmp, 'image-build')}\n"
                     + "".join(f"        {k}: {v}\n" for k, v in (image_vars or {}).items()))
    logfile = os.path.join(tmp, "image.log")
    log(f"dev image cargohold/dev:{DEV_TAG} (built only if its inputs changed)")
    with open(logfile, "w", encoding="utf-8") as out:
        rc = subprocess.call([os.path.join(VENV_BIN, "ansible-playbook"), book], stdout=out,
                             stderr=subprocess.STDOUT, env=dict(os.environ, **ANSIBLE_ENV))
    if rc != 0:
        raise RuntimeError(f"building the dev image failed; see {logfile}")
    if need_classic:
        ctx = os.path.join(tmp, "classic-image")
        os.makedirs(ctx)
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", os.path.join(ctx, "extra-ca.crt"))
        with open(os.path.join(ctx, "Dockerfile"), "w", encoding="utf-8") as handle:
            handle.write(
                f"FROM {BASE_IMAGE}\n"
                "COPY extra-ca.crt /usr/local/share/ca-certificates/extra.crt\n"
                "RUN update-ca-certificates >/dev/null\n"
                "ENV CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH\n"
                f"COPY --from=cargohold/dev:{DEV_TAG} /usr/local/bin/cargo-watch /usr/local/cargo/bin/\n"
                "WORKDIR /app\n")
        log(f"classic image {CLASSIC_IMAGE}")
        client.images.build(path=ctx, tag=CLASSIC_IMAGE, rm=True, pull=False)


def parse_modes(spec: str, variants: t.Dict[str, t.List[str]]) -> t.List[t.Tuple[str, str, t.List[str]]]:
    result = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        kind, _unused, variant = item.partition(":")
        if kind not in MODE_CLASSES:
            raise SystemExit(f"--modes: unknown mode {kind!r}; use {', '.join(MODE_CLASSES)}")
        if variant and variant not in variants and variant not in BUILTIN_VARIANTS:
            raise SystemExit(f"--modes: variant {variant!r} of {kind} has no --variant {variant}=...")
        if variant and kind not in ("per_service", "shared_builder"):
            raise SystemExit(f"--modes: variants apply to per_service and shared_builder, not {kind}")
        result.append((item, kind, variants.get(variant, BUILTIN_VARIANTS.get(variant, []))))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="measured edit rounds per mode (default 5)")
    parser.add_argument("--cold-rounds", type=int, default=3, help="cold starts per mode (default 3, at least 1: "
                        "the first start of every mode is a cold one)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured edit rounds first (default 1)")
    parser.add_argument("--modes", default="classic,per_service,shared_builder,per_service:poll,"
                                           "shared_builder:poll,host",
                        help="comma-separated: classic, per_service, shared_builder, host; "
                             "KIND:VARIANT for a --variant of per_service/shared_builder (built in: "
                             f"{', '.join(BUILTIN_VARIANTS)})")
    parser.add_argument("-e", "--extra-vars", action="append", default=[],
                        help="passed to every dev.yml run (per_service, shared_builder), like ansible-playbook -e")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=EXTRAVARS",
                        help="named set of extra vars (one -e value, JSON or k=v ...) for KIND:NAME in --modes; "
                             "repeat NAME=... to add several")
    parser.add_argument("--port-base", type=int, default=19500, help="first loopback port (10 per mode)")
    parser.add_argument("--settle", type=float, default=2.0, help="quiet seconds that count as quiescent")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one edit/start")
    parser.add_argument("--no-profile", action="store_true", help="skip the shared_builder log profile")
    parser.add_argument("--services", type=int, default=len(EXAMPLE_SERVICES),
                        help="services in the workspace: the example's 4, and above that clones of api "
                             "(svc005, ...) sharing its crates (ports: 10 per mode up to 10 services, else 100)")
    parser.add_argument("--label", default="", help="added to the result file name")
    parser.add_argument("--host-cgroup", choices=("docker", "root"), default="docker",
                        help="cgroup of the host-native loop: a sibling of the containers under /docker (default, "
                             "fair under load from other containers) or the root group")
    parser.add_argument("--idle-seconds", type=float, default=20.0,
                        help="seconds of idle CPU measured per mode after the edit rounds (0: skip)")
    parser.add_argument("--keep", action="store_true", help="leave the stacks up (debugging; clean up by hand)")
    args = parser.parse_args()

    variants: t.Dict[str, t.List[str]] = {}
    for item in args.variant:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--variant {item!r}: use NAME=EXTRAVARS")
        variants.setdefault(name, []).append(value)
    specs = parse_modes(args.modes, variants)

    for var in ("TERM", "HUP"):
        signal.signal(getattr(signal, f"SIG{var}"), lambda *_unused: (_unused for _unused in ()).throw(KeyboardInterrupt()))

    client = docker.from_env(timeout=300)
    host_cgroup(args.host_cgroup == "docker")
    tmp = tempfile.mkdtemp(prefix="cargohold-devloop-")
    os.chmod(tmp, 0o755)
    modes: t.List[Mode] = []
    make_template(tmp, args.services)
    stride = 10 if len(SERVICES) <= 10 else 100 * ((len(SERVICES) + 99) // 100)
    for index, (name, kind, extra) in enumerate(specs):
        modes.append(MODE_CLASSES[kind](name, tmp, args.port_base + stride * index, client,
                                        list(args.extra_vars) + extra))
    for mode in modes:
        for svc, port in mode.ports.items():
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    raise SystemExit(f"port {port} ({mode.name}/{svc}) is in use; pick another --port-base")

    results: dict = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": {"nproc": os.cpu_count(), "loadavg_start": os.getloadavg(),
                 "rustc": run(["rustc", "-V"], capture_output=True, text=True, check=False,
                              env=dict(os.environ, PATH=f"{os.path.expanduser('~/.cargo/bin')}:{os.environ['PATH']}")
                              ).stdout.strip(),
                 "docker": client.version().get("Version")},
        "args": vars(args),
        "host_cgroup": HOST_CGROUP,
        "modes": {m.name: {"kind": m.kind, "project": m.project, "extra_vars": getattr(m, "extra_vars", []),
                           "cold": [], "shared": [], "one": [], "size": [], "idle_cpu": []} for m in modes},
    }
    results_dir = os.path.join(REPO, "bench", "results")
    os.makedirs(results_dir, exist_ok=True)
    stamp_name = time.strftime("%Y%m%d-%H%M%S") + (f"-{args.label}" if args.label else "")
    out_path = os.path.join(results_dir, f"devloop-{stamp_name}.json")

    def save() -> None:
        results["host"]["loadavg_end"] = os.getloadavg()
        with open(out_path, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)

    try:
        log(f"scratch dir {tmp}")
        for mode in modes:
            mode.prepare()
            mode.stop_and_wipe()  # leftovers of an interrupted run of the same project names
        needs = image_needs(modes)
        results["image_vars"] = needs
        for mode in modes:
            if isinstance(mode, Managed):
                mode.image_vars = [f"{k}={v}" for k, v in needs.items()]
        build_images(tmp, next((m for m in modes if isinstance(m, Managed)), None), client,
                     any(isinstance(m, Classic) for m in modes), needs)

        cold_rounds = max(args.cold_rounds, 1)
        for r in range(cold_rounds):
            order = modes[r % len(modes):] + modes[:r % len(modes)]
            for mode in order:
                log(f"cold start {r + 1}/{cold_rounds}: {mode.name}")
                try:
                    sample = cold_start(mode, args.timeout * 3)
                except (RuntimeError, TimeoutError) as exc:  # a transient failure on a busy machine: once more
                    log(f"  {mode.name}: {exc}; retrying this cold start once")
                    sample = cold_start(mode, args.timeout * 3)
                log(f"  {mode.name}: all serving after {sample['s']:.2f} s")
                results["modes"][mode.name]["cold"].append(sample)
                save()

        version = 1
        total = args.warmup + args.rounds
        for r in range(total):
            version += 1
            measured = r >= args.warmup
            order = modes[r % len(modes):] + modes[:r % len(modes)]
            tag = f"round {r + 1 - args.warmup}/{args.rounds}" if measured else f"warm-up {r + 1}"
            for mode in order:
                profile = measured and not args.no_profile
                s = shared_edit(mode, version, args.settle, args.timeout, profile)
                o = one_edit(mode, version, args.settle, args.timeout, profile)
                log(f"{tag} {mode.name}: shared-crate edit {s['s']:.2f} s, one-service edit {o['s']:.2f} s, "
                    f"{o['others_restarted']} others restarted")
                if measured:
                    results["modes"][mode.name]["shared"].append(s)
                    results["modes"][mode.name]["one"].append(o)
                save()
        for mode in modes:
            mode.start_finished()
            results["modes"][mode.name]["size"].append(mode.target_bytes())
        if args.idle_seconds > 0:
            for mode in modes:
                sample = idle_cpu(mode, args.settle, args.idle_seconds)
                if sample is not None:
                    log(f"idle {mode.name}: {sample['percent']:.2f}% of one core over {sample['seconds']:.0f} s "
                        f"(load {sample['loadavg']:.2f})")
                    results["modes"][mode.name]["idle_cpu"].append(sample)
        save()
        print()
        print(f"cargohold dev-loop benchmark, {args.rounds} edit rounds + {args.cold_rounds} cold starts per mode, "
              f"medians [min-max]; load average at start {results['host']['loadavg_start'][0]:.1f}, "
              f"at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(report(results))
        summary = profile_summary(results)
        if summary:
            print()
            print(summary)
        print(f"\nraw samples: {os.path.relpath(out_path, os.getcwd())}")
        return 0
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        save()
        if args.keep:
            log(f"--keep: left {', '.join(m.project for m in modes)} and {tmp}")
        else:
            for mode in modes:
                try:
                    mode.cleanup()
                except Exception as exc:  # pylint: disable=broad-except
                    log(f"cleanup of {mode.name}: {exc}")
            shutil.rmtree(tmp, ignore_errors=True)
            remove_host_cgroup()
            log("cleaned up containers, volumes, networks and the scratch dir")


if __name__ == "__main__":
    sys.exit(main())
