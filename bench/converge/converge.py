#!/usr/bin/env python
"""Converge, status and down benchmark: the collection's playbooks against docker-compose v1 running the same
rendered containers, in the same run, on generated workspaces of N std-only HTTP services (issue 11, item 5).
See bench/converge/README.md and docs/benchmarks.md.

For each N: a workspace of N services and one shared `common` crate (Cargo.lock generated offline), brought up
cold once with its `dev.yml`; then, each round, timed: `dev.yml` on the converged stack (must report changed=0),
`dev.yml --check`, `cargohold.devenv.status`, `cargohold.devenv.down`, and the second start (`dev.yml` with warm
volumes, from launch until every service answers GET /version, polled from here); and the same containers,
rendered from `docker inspect` into a docker-compose v2.4 file under another project name and port range:
`up -d` on the converged project, `ps`, `down`, and `up -d` until all serve. The two stacks are never up at the
same time; the order alternates every round. Every figure carries the load average before and after it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
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
from concurrent.futures import ThreadPoolExecutor

import docker  # type: ignore[import-not-found]
import yaml  # type: ignore[import-untyped]
from docker.errors import NotFound  # type: ignore[import-not-found]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
COLLECTIONS = os.path.join(REPO, ".collections")
PLAYBOOK = os.path.join(VENV_BIN, "ansible-playbook")
COMPOSE = shutil.which("docker-compose") or "docker-compose"
PREFIX = "convbench"  # projects convbench<N> and convbench<N>-compose: nothing else is touched
UID = 1000
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "cargohold")
POLL = 0.05  # seconds between two probes of one port
LOCK = threading.Lock()
# The least any Ansible command that asks the engine one question costs: one community.docker module run.
FLOOR_DOCKER_YML = """---
- name: One question to the engine, the least a status, up or down through Ansible can cost
  hosts: localhost
  gather_facts: false
  tasks:
    - name: List the containers of a project, as status does
      community.docker.docker_host_info:
        containers: true
        containers_all: true
        containers_filters:
          label: io.cargohold.project=convbench-floor
"""


RECAP_RE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
PROFILE_RE = re.compile(r"^(.+?) -{3,} (\d+\.\d+)s$", re.M)

# (key, what is compared, cargohold sample, compose sample, target ratio)
ROWS: t.List[t.Tuple[str, str, t.Optional[float]]] = [
    ("converge", "converged: dev.yml (changed=0) | up -d", 3.0),
    ("status", "status | ps", 2.0),
    ("down", "down | down", 1.5),
    ("start2", "second start -> all serving: dev.yml | up -d", 2.5),
    ("start2_exit", "second start -> command exits", None),
    ("down_start2", "down + second start -> all serving", None),
    ("check", "dev.yml --check | -", None),
]
PER_SERVICE_TARGET = 0.1


class BenchError(RuntimeError):
    pass


def log(msg: str) -> None:
    with LOCK:
        print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def loadavg() -> t.List[float]:
    with open("/proc/loadavg", encoding="ascii") as handle:
        return [float(x) for x in handle.read().split()[:3]]


# A second counts as quiet when no compiler or linker runs (the containers' first builds after a start are over)
# and the CPU was busy less than this share of it (all cores together; N idle containers cost a little each).
IDLE_BUSY = 0.35
BUILD_COMMS = {"rustc", "cc", "cc1", "ld", "collect2", "build-script-build"}


def cpu_times() -> t.Tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def building() -> bool:
    """Whether a compiler or linker runs anywhere on the machine (in a container or not)."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
                    if handle.read().strip() in BUILD_COMMS:
                        return True
            except OSError:
                continue
    return False


def quiet_for(seconds: float, timeout: float) -> float:
    """Block until `seconds` consecutive seconds were quiet (see IDLE_BUSY), or `timeout` passed; return the
    seconds waited."""
    start = time.monotonic()
    quiet_since = start
    busy, total = cpu_times()
    while time.monotonic() - start < timeout:
        time.sleep(0.5)
        busy2, total2 = cpu_times()
        share = (busy2 - busy) / max(1, total2 - total)
        busy, total = busy2, total2
        if share >= IDLE_BUSY or building():
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= seconds:
            break
    return time.monotonic() - start


def fmt_span(span: t.Optional[t.Sequence[float]]) -> str:
    return f"{span[0]:.2f}-{span[1]:.2f} s" if span else "?"


def fmt_load(sample: t.Mapping[str, t.Any]) -> str:
    return f"{sample['load_before'][0]:.2f}>{sample['load_after'][0]:.2f}"


def collection_state() -> t.Dict[str, t.Any]:
    """What is being measured: HEAD, the uncommitted changes and a hash of roles/, plugins/ and playbooks/ (other
    sessions may edit the checkout while the bench runs; a changed hash between start and end is reported)."""
    digest = hashlib.sha256()
    for top in ("roles", "plugins", "playbooks"):
        for root, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                path = os.path.join(root, name)
                digest.update(os.path.relpath(path, REPO).encode())
                with open(path, "rb") as handle:
                    digest.update(handle.read())

    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", REPO, *argv], capture_output=True, text=True, check=False).stdout.strip()

    return {"head": git("rev-parse", "--short", "HEAD"), "time": time.strftime("%H:%M:%S"),
            "uncommitted": git("status", "--short", "--", "roles", "plugins", "playbooks").splitlines(),
            "hash": digest.hexdigest()[:16]}


# --------------------------------------------------------------------------
# Processes: every child in its own session, so Ctrl-C reaches only us and we end exactly what we started
# --------------------------------------------------------------------------

class Procs:
    def __init__(self, logdir: str, logfile: str) -> None:
        self.logdir = logdir
        self.logfile = logfile
        self.running: t.Dict[int, subprocess.Popen] = {}
        self.count = 0

    def launch(self, cmd: t.Sequence[str], cwd: str, env: t.Optional[t.Mapping[str, str]] = None
               ) -> t.Tuple[subprocess.Popen, str]:
        self.count += 1
        out_path = os.path.join(self.logdir, f"{self.count:04d}.log")
        with open(out_path, "w", encoding="utf-8") as out:
            proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env or os.environ), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.running[proc.pid] = proc
        return proc, out_path

    def finish(self, proc: subprocess.Popen, out_path: str, cmd: t.Sequence[str], cwd: str,
               timeout: float) -> t.Tuple[int, str]:
        # A blocking wait, with a timer to end it: Popen.wait(timeout) polls with naps of up to 50 ms, which made
        # every timing a multiple of about 50 ms (12 % of a 0.42 s `docker-compose ps`).
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            self.stop(proc)

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            rc = proc.wait()
        finally:
            timer.cancel()
        if expired.is_set():
            rc = -1
        self.running.pop(proc.pid, None)
        with open(out_path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
        with open(self.logfile, "a", encoding="utf-8") as handle:
            handle.write(f"\n### ended {time.strftime('%H:%M:%S')} (cd {cwd} && {' '.join(cmd)}) -> rc {rc}\n{text}")
        if rc == -1:
            raise BenchError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}; see {self.logfile}")
        return rc, text

    def stop(self, proc: subprocess.Popen) -> None:
        """End one child we started, and its process group (its session) with it."""
        if proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def stop_all(self) -> None:
        for proc in list(self.running.values()):
            self.stop(proc)
        self.running.clear()


PROCS: t.Optional[Procs] = None


def ansible_env(**extra: str) -> t.Dict[str, str]:
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1",
                ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0",
                ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
                PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", **extra)


def measure(cmd: t.Sequence[str], cwd: str, env: t.Optional[t.Mapping[str, str]] = None,
            timeout: float = 1800, ok_rc: t.Collection[int] = (0,)) -> t.Dict[str, t.Any]:
    """Run one command; its wall time with the load average before and after."""
    assert PROCS is not None
    before = loadavg()
    t0 = time.monotonic()
    proc, out_path = PROCS.launch(cmd, cwd, env)
    rc, text = PROCS.finish(proc, out_path, cmd, cwd, timeout)
    elapsed = time.monotonic() - t0
    after = loadavg()
    if rc not in ok_rc:
        tail = "\n".join(text.strip().splitlines()[-25:])
        raise BenchError(f"{' '.join(cmd)} (in {cwd}) failed with rc {rc}:\n{tail}")
    return {"s": elapsed, "rc": rc, "load_before": before, "load_after": after, "out": text}


def recap(text: str) -> t.Dict[str, int]:
    rows = RECAP_RE.findall(text)
    if not rows:
        raise BenchError("no PLAY RECAP in the playbook output")
    return {"ok": sum(int(r[1]) for r in rows), "changed": sum(int(r[2]) for r in rows),
            "unreachable": sum(int(r[3]) for r in rows), "failed": sum(int(r[4]) for r in rows)}


# --------------------------------------------------------------------------
# HTTP: every port polled concurrently
# --------------------------------------------------------------------------

def serves(port: int, timeout: float = 0.5) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/version")
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_serving(ports: t.Sequence[int], t0: float, timeout: float,
                 proc: t.Optional[subprocess.Popen] = None) -> t.Dict[int, float]:
    """Seconds after t0 at which each port first answered GET /version with 200."""
    got: t.Dict[int, float] = {}
    stop = threading.Event()

    def worker(port: int) -> None:
        while not stop.is_set():
            if serves(port):
                with LOCK:
                    got[port] = time.monotonic() - t0
                return
            stop.wait(POLL)

    threads = [threading.Thread(target=worker, args=(p,), daemon=True) for p in ports]
    for thread in threads:
        thread.start()
    try:
        while any(th.is_alive() for th in threads):
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"ports {sorted(set(ports) - set(got))} did not serve /version within {timeout:.0f} s")
            if proc is not None and proc.poll() not in (None, 0):
                raise BenchError(f"the start command failed (rc {proc.returncode}) before all services served")
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join(2)
    return got


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------
# The generated workspace
# --------------------------------------------------------------------------

COMMON_RS = r'''//! Shared by every service of the converge benchmark: a tiny HTTP/1.1 responder, std only.
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

pub const VERSION: &str = "1";

/// Listens on 0.0.0.0:$PORT (8080 by default) and answers GET /version with 200, anything else with 404.
pub fn serve(name: &str) {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8080);
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
    println!("{name} listening on 0.0.0.0:{port}");
    for stream in listener.incoming().flatten() {
        let _ = handle(stream, name);
    }
}

fn handle(mut stream: TcpStream, name: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let (status, body) = match (parts.next(), parts.next()) {
        (Some("GET"), Some("/version")) => ("200 OK", format!("{name} {VERSION}\n")),
        _ => ("404 Not Found", String::from("not found\n")),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
'''

MAIN_RS = '''fn main() {
    common::serve(env!("CARGO_PKG_NAME"));
}
'''

DEV_YML = """---
# Generated by bench/converge: {n} std-only HTTP services; like examples/workspace/dev.yml.
- name: Bring up this workspace's hot-reloading dev stack
  hosts: localhost
  gather_facts: false
  roles:
    - role: cargohold.devenv.dev_stack
      vars:
        cargohold_workspace: "{{{{ playbook_dir }}}}"
        dev_services_port_base: {port_base}
        dev_services_ready: {{http: /version}}
"""

FLOOR_YML = """---
- name: An empty play on localhost, what any ansible-playbook costs before its first task
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Do nothing
      ansible.builtin.meta: noop
"""


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def chown_tree(path: str, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def generate_workspace(ws: str, services: t.Sequence[str], port_base: int) -> None:
    write(os.path.join(ws, "Cargo.toml"),
          '[workspace]\nmembers = ["crates/common", "services/*"]\nresolver = "2"\n')
    write(os.path.join(ws, "crates", "common", "Cargo.toml"),
          '[package]\nname = "common"\nversion = "0.1.0"\nedition = "2021"\npublish = false\n')
    write(os.path.join(ws, "crates", "common", "src", "lib.rs"), COMMON_RS)
    for svc in services:
        write(os.path.join(ws, "services", svc, "Cargo.toml"),
              f'[package]\nname = "{svc}"\nversion = "0.1.0"\nedition = "2021"\npublish = false\n\n'
              '[dependencies]\ncommon = { path = "../../crates/common" }\n')
        write(os.path.join(ws, "services", svc, "src", "main.rs"), MAIN_RS)
    write(os.path.join(ws, "dev.yml"), DEV_YML.format(n=len(services), port_base=port_base))
    write(os.path.join(ws, ".gitignore"), "/target\n")
    cargo = shutil.which("cargo") or os.path.expanduser("~/.cargo/bin/cargo")
    subprocess.run([cargo, "generate-lockfile", "--offline"], cwd=ws, check=True, capture_output=True)
    if not os.path.isfile(os.path.join(ws, "Cargo.lock")):
        raise BenchError(f"cargo generate-lockfile wrote no Cargo.lock in {ws}")
    chown_tree(ws, UID, UID)


# --------------------------------------------------------------------------
# docker inspect -> docker-compose.yml (v2.4)
# --------------------------------------------------------------------------

# HostConfig keys the collection can set through `docker:` overrides that the renderer does not carry over:
# a container using any of them stops the bench rather than comparing different containers.
UNRENDERED = ("CapAdd", "CapDrop", "NanoCpus", "Memory", "MemoryReservation", "Ulimits", "Devices", "Dns",
              "ExtraHosts", "Tmpfs", "SecurityOpt", "Privileged", "GroupAdd")


def dollar(value: str) -> str:
    return value.replace("$", "$$")


def render_compose(client: docker.DockerClient, project: str, cproject: str, port_offset: int,
                   state_src: str, state_dst: str) -> t.Tuple[dict, t.List[str]]:
    """The compose file for the project's running containers, renamed to cproject, ports moved by port_offset,
    the state dir bind replaced by state_dst; and the service names."""
    containers = client.containers.list(all=True, filters={"label": f"io.cargohold.project={project}"})
    if not containers:
        raise BenchError(f"no container of project {project} to render")
    services: t.Dict[str, dict] = {}
    volumes: t.Dict[str, dict] = {}
    for container in sorted(containers, key=lambda c: c.name):
        attrs = container.attrs
        cfg, host = attrs["Config"], attrs["HostConfig"]
        image = client.images.get(attrs["Image"]).attrs["Config"]
        svc = (cfg.get("Labels") or {}).get("io.cargohold.service") or container.name[len(project) + 1:]
        for key in UNRENDERED:
            if host.get(key):
                raise BenchError(f"{container.name}: HostConfig.{key} is set; the compose renderer does not carry it")
        if cfg.get("Healthcheck") and cfg.get("Healthcheck") != image.get("Healthcheck"):
            raise BenchError(f"{container.name}: a healthcheck is set; the compose renderer does not carry it")
        image_env = set(image.get("Env") or [])
        env = {}
        for item in cfg.get("Env") or []:
            if item not in image_env:
                key, _unused, value = item.partition("=")
                env[key] = dollar(value)
        image_labels = image.get("Labels") or {}
        labels = {k: dollar(v) for k, v in (cfg.get("Labels") or {}).items() if image_labels.get(k) != v}
        if "io.cargohold.project" in (cfg.get("Labels") or {}):
            # also over the image's label: never listed (or removed as an orphan) as the cargohold project's
            labels["io.cargohold.project"] = cproject
        entry: t.Dict[str, t.Any] = {
            "container_name": f"{cproject}-{svc}",
            "image": cfg["Image"],
        }
        if cfg.get("Entrypoint") != image.get("Entrypoint"):
            entry["entrypoint"] = [dollar(a) for a in cfg.get("Entrypoint") or []]
        entry["command"] = [dollar(a) for a in cfg.get("Cmd") or []]
        entry["environment"] = env
        entry["working_dir"] = cfg.get("WorkingDir") or None
        entry["user"] = cfg.get("User") or None
        entry["init"] = bool(host.get("Init"))
        entry["labels"] = labels
        entry["stop_signal"] = cfg.get("StopSignal") or None
        if cfg.get("StopTimeout") is not None:
            entry["stop_grace_period"] = f"{cfg['StopTimeout']}s"
        policy = host.get("RestartPolicy") or {}
        if policy.get("Name") and policy["Name"] != "no":
            entry["restart"] = (f"on-failure:{policy['MaximumRetryCount']}"
                                if policy["Name"] == "on-failure" and policy.get("MaximumRetryCount")
                                else policy["Name"])
        if host.get("Sysctls"):
            entry["sysctls"] = dict(host["Sysctls"])
        ports = []
        for cport, binds in sorted((host.get("PortBindings") or {}).items()):
            for bind in binds or []:
                ip = bind.get("HostIp") or ""
                ip = f"[{ip}]" if ":" in ip else ip
                hport = int(bind["HostPort"]) + port_offset
                ports.append(f"{ip}:{hport}:{cport}" if ip else f"{hport}:{cport}")
        if ports:
            entry["ports"] = ports
        mounts = []
        for mount in host.get("Mounts") or []:
            item: t.Dict[str, t.Any] = {"type": mount["Type"], "target": mount["Target"]}
            source = mount.get("Source")
            if mount["Type"] == "bind":
                if source == state_src or source.startswith(state_src + "/"):
                    source = state_dst + source[len(state_src):]
                item["source"] = source
            elif mount["Type"] == "volume":
                item["source"] = source
                volumes[source] = {"external": True}
            else:
                raise BenchError(f"{container.name}: mount type {mount['Type']} is not rendered")
            if mount.get("ReadOnly"):
                item["read_only"] = True
            mounts.append(item)
        entry["volumes"] = mounts
        mode = host.get("NetworkMode") or ""
        if mode != f"{project}-dev":
            raise BenchError(f"{container.name}: network mode {mode!r} is not rendered (expected {project}-dev)")
        aliases = [a for a in (attrs["NetworkSettings"]["Networks"].get(mode) or {}).get("Aliases") or []
                   if a != container.id[:12]]
        entry["networks"] = {"default": {"aliases": aliases} if aliases else None}
        services[svc] = {k: v for k, v in entry.items() if v is not None}
    doc = {
        "version": "2.4",
        "services": services,
        "volumes": volumes,
        "networks": {"default": {"name": f"{cproject}-dev"}},
    }
    return doc, sorted(services)


# --------------------------------------------------------------------------
# One N: the cargohold project and its compose twin
# --------------------------------------------------------------------------

class Stack:
    def __init__(self, n: int, tmp: str, port_base: int, compose_port_base: int, client: docker.DockerClient,
                 args: argparse.Namespace) -> None:
        self.n = n
        self.args = args
        self.client = client
        self.project = f"{PREFIX}{n}"
        self.cproject = f"{self.project}-compose"
        self.ws = os.path.join(tmp, self.project)
        self.cdir = os.path.join(tmp, self.cproject)
        self.cfile = os.path.join(self.cdir, "docker-compose.yml")
        self.cstate = os.path.join(self.cdir, "run")
        self.state_dir = os.path.join(CACHE, self.project, "run")
        self.services = [f"svc{i:03d}" for i in range(1, n + 1)]
        self.port_base = port_base
        self.compose_port_base = compose_port_base
        self.ports = [port_base + i for i in range(n)]  # name order = port order, checked after the cold start
        self.cports = [compose_port_base + i for i in range(n)]
        self.up: t.Optional[str] = None  # "cargohold" | "compose" | None
        self.result: t.Dict[str, t.Any] = {
            "project": self.project, "compose_project": self.cproject, "port_base": port_base,
            "compose_port_base": compose_port_base, "cold": None, "switch": [],
            "cargohold": {k: [] for k in ("converge", "check", "status", "down", "start2", "start2_exit",
                                          "down_start2")},
            "compose": {k: [] for k in ("converge", "status", "down", "start2", "start2_exit", "down_start2")},
            "engine": {"start": [], "remove": []},
        }

    # commands -----------------------------------------------------------------
    def playbook(self, *argv: str) -> t.List[str]:
        return [PLAYBOOK, *argv]

    def compose(self, *argv: str) -> t.List[str]:
        return [COMPOSE, "--ansi", "never", "-p", self.cproject, "-f", self.cfile, *argv]

    def compose_env(self) -> t.Dict[str, str]:
        return dict(os.environ, COMPOSE_INTERACTIVE_NO_CLI="1")

    def ws_arg(self) -> t.List[str]:
        return ["-e", f"cargohold_workspace={self.ws}"]

    # lifecycle ----------------------------------------------------------------
    def prepare(self) -> None:
        self.cleanup(keep_tmp=True, quiet=True)  # leftovers of an interrupted run with the same names
        for port in self.ports + self.cports:
            if port_in_use(port):
                raise BenchError(f"port {port} is in use; pick another --port-base")
        generate_workspace(self.ws, self.services, self.port_base)
        os.makedirs(self.cdir, exist_ok=True)

    def cold(self) -> None:
        log(f"N={self.n}: cold start (images, volumes and the target dir get warm): ansible-playbook dev.yml")
        sample = measure(self.playbook("dev.yml"), self.ws, ansible_env(), timeout=self.args.cold_timeout)
        sample["recap"] = recap(sample.pop("out"))
        self.up = "cargohold"
        self.check_ports()
        served = wait_serving(self.ports, time.monotonic(), 60)
        if len(served) != self.n:
            raise BenchError("not every service serves after the cold start")
        self.result["cold"] = sample
        log(f"N={self.n}: cold start {sample['s']:.1f} s (load {fmt_load(sample)}), recap {sample['recap']}")
        self.render()

    def check_ports(self) -> None:
        found = []
        for container in self.client.containers.list(filters={"label": f"io.cargohold.project={self.project}"}):
            svc = container.labels.get("io.cargohold.service")
            for binds in (container.attrs["HostConfig"].get("PortBindings") or {}).values():
                for bind in binds or []:
                    found.append((svc, int(bind["HostPort"])))
        want = list(zip(self.services, self.ports))
        if sorted(found) != want:
            raise BenchError(f"published ports {sorted(found)} are not the expected {want}")

    def render(self) -> None:
        os.makedirs(self.cstate, exist_ok=True)
        for svc in self.services:  # the supervisors' state dirs, owned like the collection's
            src = os.path.join(self.state_dir, svc)
            dst = os.path.join(self.cstate, svc)
            os.makedirs(dst, exist_ok=True)
            st = os.stat(src) if os.path.isdir(src) else None
            os.chown(dst, st.st_uid if st else UID, st.st_gid if st else UID)
        doc, services = render_compose(self.client, self.project, self.cproject,
                                       self.compose_port_base - self.port_base, self.state_dir, self.cstate)
        if services != self.services:
            raise BenchError(f"rendered services {services} are not {self.services}")
        with open(self.cfile, "w", encoding="utf-8") as handle:
            handle.write(f"# Rendered by bench/converge from `docker inspect` of project {self.project}.\n")
            yaml.safe_dump(doc, handle, sort_keys=False, width=200)
        log(f"N={self.n}: compose file {self.cfile}")

    def containers(self, label: str) -> t.Dict[str, str]:
        return {c.name: c.id for c in self.client.containers.list(all=True, filters={"label": label})}

    def settle(self) -> None:
        """Wait until the CPU has been idle (under IDLE_BUSY busy) for --settle seconds in a row, at most
        --settle-timeout: after a start, N containers' first builds keep the machine busy for a while, and a
        command timed during them measures the builds, not itself."""
        waited = quiet_for(self.args.settle, self.args.settle_timeout)
        if waited > self.args.settle + 1:
            log(f"N={self.n}: waited {waited:.1f} s for the CPU to go quiet (load {loadavg()[0]:.2f})")

    # the measured sequences ---------------------------------------------------------
    def start(self, system: str) -> t.Dict[str, t.Any]:
        """Start `system` from down (warm volumes); time from launch until every port answers /version, and
        until the command exits."""
        assert PROCS is not None
        if system == "cargohold":
            cmd, cwd, env, ports = self.playbook("dev.yml"), self.ws, ansible_env(), self.ports
        else:
            cmd, cwd, env, ports = self.compose("up", "-d"), self.cdir, self.compose_env(), self.cports
        if any(serves(p) for p in ports):
            raise BenchError(f"{system}: a port answers before the start")
        before = loadavg()
        t0 = time.monotonic()
        wall0 = time.time()
        proc, out_path = PROCS.launch(cmd, cwd, env)
        try:
            served = wait_serving(ports, t0, self.args.timeout, proc)
        except BenchError:
            if proc.poll() is not None:
                _rc, text = PROCS.finish(proc, out_path, cmd, cwd, 10)
                raise BenchError(f"{' '.join(cmd)} failed:\n" + "\n".join(text.strip().splitlines()[-25:]))
            raise
        all_serving = max(served.values())
        after = loadavg()
        rc, text = PROCS.finish(proc, out_path, cmd, cwd, self.args.timeout)
        exited = time.monotonic() - t0
        if rc != 0:
            raise BenchError(f"{' '.join(cmd)} failed with rc {rc}:\n" + "\n".join(text.strip().splitlines()[-25:]))
        sample = {"s": all_serving, "exit_s": exited, "rc": rc, "load_before": before, "load_after": after,
                  "first_s": min(served.values())}
        started = self.started_at(system)
        if started:  # docker's StartedAt of the containers, relative to the launch: Ansible's share before them
            sample["containers_started_s"] = [min(started) - wall0, max(started) - wall0]
        if system == "cargohold":
            sample["recap"] = recap(text)
        self.up = system
        return sample

    def started_at(self, system: str) -> t.List[float]:
        label = (f"io.cargohold.project={self.project}" if system == "cargohold"
                 else f"com.docker.compose.project={self.cproject}")
        out = []
        for container in self.client.containers.list(filters={"label": label}):
            value = container.attrs["State"].get("StartedAt") or ""
            match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$", value)
            if match:
                wall = dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(
                    tzinfo=dt.timezone.utc).timestamp()
                out.append(wall + float(match.group(2) or 0))
        return out

    def stop_other(self, system: str) -> None:
        """Bring the other stack down (untimed) so both are never up at once."""
        if self.up == system or self.up is None:
            return
        if self.up == "cargohold":
            measure(self.playbook("cargohold.devenv.down", *self.ws_arg()), self.ws, ansible_env())
        else:
            measure(self.compose("down"), self.cdir, self.compose_env())
        self.up = None

    def ensure(self, system: str) -> None:
        if self.up == system:
            return
        self.stop_other(system)
        self.settle()
        sample = self.start(system)
        sample["system"] = system
        self.result["switch"].append(sample)
        log(f"N={self.n}: {system} up (untimed switch) in {sample['s']:.2f} s")

    def round_cargohold(self, r: int) -> None:
        self.ensure("cargohold")
        res = self.result["cargohold"]

        self.settle()
        s = measure(self.playbook("dev.yml"), self.ws, ansible_env())
        s["recap"] = recap(s.pop("out"))
        if s["recap"]["changed"] != 0:
            raise BenchError(f"dev.yml on the converged stack reported changed={s['recap']['changed']} "
                             f"(must be 0); see {self.args.logfile}")
        self.record(res, "converge", s, r, f"changed={s['recap']['changed']}")

        self.settle()
        s = measure(self.playbook("dev.yml", "--check"), self.ws, ansible_env())
        s["recap"] = recap(s.pop("out"))
        self.record(res, "check", s, r, f"changed={s['recap']['changed']}")

        self.settle()
        s = measure(self.playbook("cargohold.devenv.status", *self.ws_arg()), self.ws, ansible_env())
        out = s.pop("out")
        s["recap"] = recap(out)
        s["serving_rows"] = len(re.findall(r"\bsvc\d{3}\s+serving\b", out))
        self.record(res, "status", s, r, f"{s['serving_rows']} rows 'serving'")

        self.settle()
        s = measure(self.playbook("cargohold.devenv.down", *self.ws_arg()), self.ws, ansible_env())
        s["recap"] = recap(s.pop("out"))
        left = self.containers(f"io.cargohold.project={self.project}")
        if left:
            raise BenchError(f"down left containers: {sorted(left)}")
        self.up = None
        self.record(res, "down", s, r, f"changed={s['recap']['changed']}")

        self.settle()
        s = self.start("cargohold")
        self.record(res, "start2", s, r, f"exits at {s['exit_s']:.2f} s, first serving at {s['first_s']:.2f} s, "
                    f"containers started {fmt_span(s.get('containers_started_s'))}")
        res["start2_exit"].append(dict(s, s=s["exit_s"], round=r))
        res["down_start2"].append({"s": res["down"][-1]["s"] + s["s"], "round": r,
                                   "load_before": res["down"][-1]["load_before"], "load_after": s["load_after"]})

    def round_compose(self, r: int) -> None:
        self.ensure("compose")
        res = self.result["compose"]
        label = f"com.docker.compose.project={self.cproject}"

        self.settle()
        ids = self.containers(label)
        s = measure(self.compose("up", "-d"), self.cdir, self.compose_env())
        out = s.pop("out")
        uptodate = len(re.findall(r"is up-to-date", out))
        if self.containers(label) != ids or uptodate != self.n:
            raise BenchError(f"docker-compose up -d on the converged project changed containers "
                             f"({uptodate}/{self.n} up-to-date):\n{out[-2000:]}")
        self.record(res, "converge", s, r, f"{uptodate} up-to-date")

        self.settle()
        s = measure(self.compose("ps"), self.cdir, self.compose_env())
        out = s.pop("out")
        s["up_rows"] = len(re.findall(r"\bUp\b", out))
        self.record(res, "status", s, r, f"{s['up_rows']} rows 'Up'")

        self.settle()
        s = measure(self.compose("down"), self.cdir, self.compose_env())
        s.pop("out")
        if self.containers(label):
            raise BenchError("docker-compose down left containers")
        self.up = None
        self.record(res, "down", s, r, "")

        self.settle()
        s = self.start("compose")
        self.record(res, "start2", s, r, f"exits at {s['exit_s']:.2f} s, first serving at {s['first_s']:.2f} s, "
                    f"containers started {fmt_span(s.get('containers_started_s'))}")
        res["start2_exit"].append(dict(s, s=s["exit_s"], round=r))
        res["down_start2"].append({"s": res["down"][-1]["s"] + s["s"], "round": r,
                                   "load_before": res["down"][-1]["load_before"], "load_after": s["load_after"]})

    def round_engine(self, r: int) -> None:
        """The engine alone, no client of ours or compose's: create and start N containers of the dev image
        (`sleep`, as the dev user, with tini, no mount, no port, no network) from up to 64 threads (compose's
        parallel limit), until every one runs; then remove them all. What any client's second start and down pay
        per container on this engine, measured between the rounds."""
        image = f"cargohold/dev:{self.project}"
        label = {"io.cargohold.project": f"{self.project}-engine"}
        names = [f"{self.project}-engine-{i:03d}" for i in range(self.n)]

        def run(name: str) -> None:
            self.client.containers.run(image, ["sleep", "600"], name=name, detach=True, init=True, user=str(UID),
                                       network_mode="none", labels=label)

        def remove(name: str) -> None:
            self.client.containers.get(name).remove(force=True)

        try:
            for key, work in (("start", run), ("remove", remove)):
                self.settle()
                before = loadavg()
                t0 = time.monotonic()
                with ThreadPoolExecutor(max_workers=min(self.n, 64)) as pool:
                    list(pool.map(work, names))
                sample = {"s": time.monotonic() - t0, "load_before": before, "load_after": loadavg(), "round": r}
                self.result["engine"][key].append(sample)
                log(f"N={self.n} round {r + 1}: engine alone, {key} {self.n} containers: {sample['s']:.2f} s "
                    f"(load {fmt_load(sample)})")
        finally:
            for container in self.client.containers.list(all=True, filters={"label": f"io.cargohold.project="
                                                                                     f"{self.project}-engine"}):
                container.remove(force=True)

    def record(self, res: dict, key: str, sample: dict, r: int, note: str) -> None:
        sample["round"] = r
        sample.pop("out", None)
        res[key].append(sample)
        system = "cargohold" if res is self.result["cargohold"] else "compose"
        log(f"N={self.n} round {r + 1}: {system} {key}: {sample['s']:.2f} s (load {fmt_load(sample)}) {note}")

    def profile(self) -> t.Dict[str, t.Any]:
        """profile_tasks on the converged dev.yml, on status and on down (which also ends this N's stack)."""
        self.ensure("cargohold")
        env = ansible_env(ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
                          PROFILE_TASKS_TASK_OUTPUT_LIMIT="40")
        out: t.Dict[str, t.Any] = {}
        for key, cmd in (("converge", self.playbook("dev.yml")),
                         ("status", self.playbook("cargohold.devenv.status", *self.ws_arg())),
                         ("down", self.playbook("cargohold.devenv.down", *self.ws_arg()))):
            self.settle()
            s = measure(cmd, self.ws, env)
            text = s.pop("out")
            s["recap"] = recap(text)
            summary = text[text.rfind("=" * 20):] if "=" * 20 in text else text
            s["tasks"] = [(name.strip(), float(sec)) for name, sec in PROFILE_RE.findall(summary)]
            out[key] = s
            log(f"N={self.n}: profiled {key}: {s['s']:.2f} s (load {fmt_load(s)}), recap {s['recap']}")
        self.up = None
        return out

    def cleanup(self, keep_tmp: bool = False, quiet: bool = False) -> None:
        """Containers, networks and volumes of both projects, the dev image tag, the state and build dirs. Every
        step on its own: one that fails (a hung engine) is reported and the others still run."""
        client = docker.from_env(timeout=120)
        say = (lambda _msg: None) if quiet else log
        prefixes = (f"{self.project}-", f"{self.project}_")

        def step(what: str, func: t.Callable[[], None]) -> None:
            try:
                func()
            except Exception as exc:  # pylint: disable=broad-except
                if not isinstance(exc, NotFound):
                    log(f"clean-up: {what} failed: {type(exc).__name__}: {str(exc)[:300]}")

        def compose_down() -> None:
            if os.path.isfile(self.cfile):
                subprocess.run(self.compose("down", "-t", "1", "--remove-orphans"), cwd=self.cdir,
                               env=self.compose_env(), capture_output=True, check=False, timeout=300)

        def containers() -> None:
            victims = {}
            for label in (f"io.cargohold.project={self.project}", f"io.cargohold.project={self.cproject}",
                          f"com.docker.compose.project={self.cproject}"):
                for c in client.containers.list(all=True, filters={"label": label}):
                    victims[c.id] = c
            for c in client.containers.list(all=True, filters={"name": self.project}):
                if c.name.startswith(prefixes):
                    victims[c.id] = c
            for c in victims.values():
                step(f"removing container {c.name}", lambda c=c: (c.remove(force=True), say(f"removed container {c.name}")))

        def networks() -> None:
            for net in client.networks.list(names=[self.project]):
                if net.name.startswith(prefixes):
                    step(f"removing network {net.name}", lambda n=net: (n.remove(), say(f"removed network {n.name}")))

        def volumes() -> None:
            for vol in client.volumes.list(filters={"name": self.project}):
                if vol.name.startswith(prefixes):
                    step(f"removing volume {vol.name}",
                         lambda v=vol: (v.remove(force=True), say(f"removed volume {v.name}")))

        def image() -> None:
            if not self.args.keep_image and client.images.list(name=f"cargohold/dev:{self.project}"):
                client.images.remove(f"cargohold/dev:{self.project}")
                say(f"removed image cargohold/dev:{self.project}")

        step("docker-compose down", compose_down)
        step("listing containers", containers)
        step("listing networks", networks)
        step("listing volumes", volumes)
        step("removing the dev image tag", image)
        for path in (os.path.join(CACHE, self.project), os.path.join(CACHE, "build", f"dev-{self.project}")):
            shutil.rmtree(path, ignore_errors=True)
        if not keep_tmp:
            shutil.rmtree(self.ws, ignore_errors=True)
            shutil.rmtree(self.cdir, ignore_errors=True)
        self.up = None


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def median(samples: t.Sequence[dict]) -> t.Optional[float]:
    return statistics.median(s["s"] for s in samples) if samples else None


def loads(samples: t.Sequence[dict]) -> str:
    return " ".join(fmt_load(s) for s in samples) or "-"


def table(rows: t.Sequence[t.Sequence[str]], right: t.Collection[int] = ()) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for j, row in enumerate(rows):
        out.append("  ".join(str(c).rjust(widths[i]) if i in right else str(c).ljust(widths[i])
                             for i, c in enumerate(row)).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def report_n(n: int, res: dict, floor_docker: t.Optional[float] = None) -> str:
    ch, co = res["cargohold"], res["compose"]
    rows: t.List[t.List[str]] = [["command", "cargohold s", "compose s", "ratio", "target", "",
                                  "load cargohold (1-min, before>after per round)", "load compose"]]
    for key, label, target in ROWS:
        a, b = median(ch.get(key, [])), median(co.get(key, []))
        ratio = a / b if a is not None and b else None
        verdict = "" if target is None or ratio is None else ("met" if ratio <= target else "MISSED")
        rows.append([label, f"{a:.2f}" if a is not None else "-", f"{b:.2f}" if b is not None else "-",
                     f"{ratio:.2f}x" if ratio is not None else "-", f"<= {target}x" if target else "",
                     verdict, loads(ch.get(key, [])), loads(co.get(key, []))])
    spans = []
    for system, res_ in (("cargohold", ch), ("compose", co)):
        starts = [s["containers_started_s"] for s in res_["start2"] if s.get("containers_started_s")]
        if starts:
            spans.append(f"{system} first container started {statistics.median(x[0] for x in starts):.2f} s, "
                         f"last {statistics.median(x[1] for x in starts):.2f} s after launch")
    changed = [s["recap"]["changed"] for s in ch["check"]]
    text = [f"N={n} ({res['project']} / {res['compose_project']}), medians of {len(ch['converge'])} rounds",
            table(rows, right={1, 2, 3}),
            f"dev.yml --check on the converged stack: changed={changed} (issue 11: must be 0)"]
    if spans:
        text.append("second start, medians: " + "; ".join(spans))
    engine = res.get("engine") or {}
    if engine.get("start"):
        text.append(f"the engine alone (no client): create and start {n} containers of the dev image "
                    f"{median(engine['start']):.2f} s, remove them {median(engine['remove']):.2f} s "
                    f"(load {loads(engine['start'])} / {loads(engine['remove'])})")
    if res.get("cold"):
        c = res["cold"]
        text.append(f"cold start (first dev.yml, not a target): {c['s']:.1f} s (load {fmt_load(c)})")
    if floor_docker:
        bounds = [f"{label.rsplit(' | ', maxsplit=1)[-1]} {floor_docker / median(co[key]):.2f}x" for key, label, _target in ROWS[:3]
                  if co.get(key)]
        text.append(f"a play of one community.docker module ({floor_docker:.2f} s) against compose's: "
                    + ", ".join(bounds))
    return "\n".join(text)


def report_cost(results: dict) -> str:
    ns = sorted(int(n) for n in results["n"] if results["n"][n]["cargohold"]["converge"])
    if len(ns) < 2:
        return ""
    lo, hi = ns[0], ns[-1]
    rlo, rhi = results["n"][str(lo)], results["n"][str(hi)]
    rows = [["command", "cargohold s/service", "compose s/service", "engine alone s/service", "target (cargohold)",
             ""]]
    # What the engine alone pays per container for the same step (round_engine), where there is one.
    engine_key = {"down": "remove", "start2": "start"}

    def per_service(samples_lo: list, samples_hi: list) -> t.Optional[float]:
        a, b = median(samples_lo), median(samples_hi)
        return (b - a) / (hi - lo) if a is not None and b is not None else None

    for key, label, _target in ROWS:
        if key in ("start2_exit", "down_start2"):
            continue
        vals = [per_service(rlo[system].get(key, []), rhi[system].get(key, [])) for system in ("cargohold", "compose")]
        engine = engine_key.get(key)
        vals.append(per_service(rlo.get("engine", {}).get(engine, []), rhi.get("engine", {}).get(engine, []))
                    if engine else None)
        verdict = "" if vals[0] is None else ("met" if vals[0] <= PER_SERVICE_TARGET else "MISSED")
        rows.append([label] + [f"{v:.3f}" if v is not None else "-" for v in vals]
                    + [f"<= {PER_SERVICE_TARGET}", verdict])
    return f"cost per added service, (t({hi}) - t({lo})) / {hi - lo}:\n" + table(rows, right={1, 2, 3})


def report_profile(profile: dict, top: int = 12) -> str:
    out = []
    for key, s in profile.items():
        if key.startswith("_"):
            continue
        out.append(f"profile_tasks, {key} at N={profile.get('_n', '?')}: {s['s']:.2f} s "
                   f"(load {fmt_load(s)}), recap {s['recap']}")
        for name, sec in s["tasks"][:top]:
            out.append(f"  {sec:7.2f} s  {name}")
    return "\n".join(out)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def main() -> int:
    global PROCS  # pylint: disable=global-statement
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", default="4,32", help="comma-separated service counts (default 4,32)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per N (default 3)")
    parser.add_argument("--port-base", type=int, default=19000,
                        help="first loopback port; each N takes a block of 100 (compose: the same + 500)")
    parser.add_argument("--compose-offset", type=int, default=500, help="compose ports = cargohold's + this")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds without a compiler or linker running and with the CPU under 35%% busy before each "
                             "measured command")
    parser.add_argument("--settle-timeout", type=float, default=180.0,
                        help="measure anyway after this many seconds without that quiet (the log says so)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for one start to serve")
    parser.add_argument("--cold-timeout", type=float, default=2400.0, help="seconds for the cold start")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile_tasks runs at the largest N")
    parser.add_argument("--floor-rounds", type=int, default=-1,
                        help="runs of an empty fact-gathering play (default: --rounds)")
    parser.add_argument("--keep-image", action="store_true", help="keep the dev image tags cargohold/dev:convbench<N>")
    parser.add_argument("--label", default="", help="added to the result file name")
    parser.add_argument("--keep", action="store_true", help="leave everything up (debugging; clean up by hand)")
    args = parser.parse_args()
    counts = sorted({int(x) for x in args.services.split(",") if x.strip()})
    if not counts or min(counts) < 1 or max(counts) > 999:
        raise SystemExit("--services: counts between 1 and 999")
    if args.rounds < 1:
        raise SystemExit("--rounds: at least 1")

    def interrupt(signum: int, _frame: t.Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)

    results_dir = os.path.join(REPO, "bench", "results")
    os.makedirs(results_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S") + (f"-{args.label}" if args.label else "")
    out_path = os.path.join(results_dir, f"converge-{stamp}.json")
    args.logfile = os.path.join(results_dir, f"converge-{stamp}.log")
    tmp = tempfile.mkdtemp(prefix="cargohold-converge-")
    os.chmod(tmp, 0o755)
    logdir = os.path.join(tmp, "logs")
    os.makedirs(logdir)
    PROCS = Procs(logdir, args.logfile)
    client = docker.from_env(timeout=600)

    stacks: t.List[Stack] = []
    base = args.port_base
    for n in counts:
        stacks.append(Stack(n, tmp, base, base + max(args.compose_offset, 0), client, args))
        base += 100 * ((n + 99) // 100)
    if stacks[-1].port_base + counts[-1] > args.port_base + args.compose_offset:
        raise SystemExit("--compose-offset: the compose ports would overlap the cargohold ports")

    def version(cmd: t.Sequence[str]) -> str:
        try:
            return subprocess.run(list(cmd), capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return ""

    results: t.Dict[str, t.Any] = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "args": dict(vars(args)),
        "host": {"nproc": os.cpu_count(), "loadavg_start": loadavg(), "docker": client.version().get("Version"),
                 "compose": version([COMPOSE, "version", "--short"]),
                 "ansible": version([os.path.join(VENV_BIN, "ansible"), "--version"]),
                 },
        "collection": [collection_state()],
        "floor": [],
        "floor_docker": [],
        "n": {str(s.n): s.result for s in stacks},
        "profile": None,
        "error": None,
    }

    def save() -> None:
        results["host"]["loadavg_end"] = loadavg()
        results["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with open(out_path, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)

    t_start = time.monotonic()
    rc = 0
    try:
        log(f"scratch dir {tmp}; command output in {args.logfile}")
        for key, text, what in (("floor", FLOOR_YML, "empty play, no facts"),
                                ("floor_docker", FLOOR_DOCKER_YML, "one community.docker module run")):
            book = os.path.join(tmp, f"{key}.yml")
            write(book, text)
            for _unused in range(args.rounds if args.floor_rounds < 0 else args.floor_rounds):
                s = measure([PLAYBOOK, book], tmp, ansible_env())
                s.pop("out")
                results[key].append(s)
                log(f"floor: {what} {s['s']:.2f} s (load {fmt_load(s)})")
        for stack in stacks:
            if stack is not stacks[0]:
                results["collection"].append(collection_state())
            stack.prepare()
            stack.cold()
            save()
            for r in range(args.rounds):
                order = ("cargohold", "compose") if r % 2 == 0 else ("compose", "cargohold")
                for system in order:
                    getattr(stack, f"round_{system}")(r)
                    save()
                stack.round_engine(r)
                save()
            if stack is stacks[-1] and not args.no_profile:
                results["profile"] = dict(stack.profile(), _n=stack.n)
                save()
            print(report_n(stack.n, stack.result, median(results["floor_docker"])), flush=True)
            if not args.keep:
                stack.cleanup(keep_tmp=True)
    except KeyboardInterrupt as exc:
        results["error"] = f"interrupted ({exc})"
        log("interrupted: cleaning up")
        rc = 130
    except Exception as exc:  # pylint: disable=broad-except  # BenchError, engine errors, timeouts: clean up
        results["error"] = f"{type(exc).__name__}: {exc}"
        log(f"FAILED: {results['error']}")
        try:
            docker.from_env(timeout=10).ping()
        except Exception as ping_exc:  # pylint: disable=broad-except
            results["error"] += f" (the Docker engine does not answer a ping in 10 s: {type(ping_exc).__name__})"
            log("the Docker engine does not answer a ping in 10 s (hung?); the clean-up may not complete")
        rc = 1
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the clean-up is not interrupted half-way
        try:
            PROCS.stop_all()
            if not args.keep:
                for stack in stacks:
                    try:
                        stack.cleanup()
                    except Exception as exc:  # pylint: disable=broad-except
                        log(f"clean-up of {stack.project} failed: {exc}; remove its convbench* objects by hand")
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                log(f"--keep: left {tmp} and the projects {[s.project for s in stacks]} up")
        finally:
            signal.signal(signal.SIGINT, previous)
        results["runtime_s"] = time.monotonic() - t_start
        results["collection"].append(collection_state())
        save()

    floor = results["floor"]
    print()
    print(f"cargohold converge benchmark, {args.rounds} rounds, {os.cpu_count()} cores; load average at start "
          f"{results['host']['loadavg_start']}, at end {results['host']['loadavg_end']}; "
          f"runtime {results['runtime_s'] / 60:.1f} min")
    if floor:
        print(f"floor: ansible-playbook of an empty play (no facts, as the playbooks): median {median(floor):.2f} s "
              f"(load {loads(floor)})")
    if results["floor_docker"]:
        print(f"floor: a play of one community.docker module (docker_host_info listing a project's containers): "
              f"median {median(results['floor_docker']):.2f} s (load {loads(results['floor_docker'])})")
    states = results["collection"]
    print(f"collection measured: HEAD {states[0]['head']}, roles/plugins/playbooks hash {states[0]['hash']}, "
          f"uncommitted there: {', '.join(states[0]['uncommitted']) or 'none'}")
    if len({st["hash"] for st in states}) > 1:
        print("WARNING: the collection changed during the run: "
              + "; ".join(f"{st['time']} HEAD {st['head']} hash {st['hash']}" for st in states))
    for stack in stacks:
        if stack.result["cargohold"]["converge"] or stack.result["compose"]["converge"]:
            print()
            print(report_n(stack.n, stack.result, median(results["floor_docker"])))
    cost = report_cost(results)
    if cost:
        print()
        print(cost)
    if results["profile"]:
        print()
        print(report_profile(results["profile"]))
    if results["error"]:
        print(f"\nFAILED: {results['error']}")
    print(f"\nraw results: {os.path.relpath(out_path, os.getcwd())}; command output: "
          f"{os.path.relpath(args.logfile, os.getcwd())}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
