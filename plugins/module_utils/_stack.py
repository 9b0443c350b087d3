# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The dev stack of cargohold.devenv.dev_containers: converge, wait, report, restart and remove all its containers in one
pass, for the module and, in-process on a local connection, for its action plugin."""

from __future__ import annotations

import json
import os
import socket
import time
import typing as t
import traceback
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.community.docker.plugins.module_utils.common_api import (
    AnsibleDockerClientBase, RequestException)
from ansible_collections.community.docker.plugins.module_utils._api.errors import APIError, DockerException, NotFound

from ansible_collections.cargohold.devenv.plugins.module_utils import _docker as dk
from ansible_collections.cargohold.devenv.plugins.module_utils import _progress as pg

WORKERS = 4
# The actions of dk.decide that leave a container started by this converge.
STARTING = ("create", "recreate", "start")
POLL = 0.25
MIN_DOCKER_API_VERSION = "1.41"

# The module's own options; community.docker's connection options (DOCKER_COMMON_ARGS) are added to them.
ARGUMENT_SPEC = dict(
    plan=dict(type="dict"),
    plan_file=dict(type="path"),
    workspace=dict(type="dict"),
    current=dict(type="dict", options=dict(
        path=dict(type="path", required=True),
        digest=dict(type="str", required=True),
        images=dict(type="list", elements="str", default=[]),
        volumes=dict(type="list", elements="str", default=[]),
        volume_labels=dict(type="dict", default={}),
        record=dict(type="bool", default=False),
    )),
    state=dict(type="str", choices=["present", "status", "absent", "restarted", "rebuilt"], default="present"),
    services=dict(type="list", elements="str", default=[]),
    wait=dict(type="bool"),
    wait_timeout=dict(type="int", default=900),
    wait_step=dict(type="float", default=0),
    log_lines=dict(type="int", default=0),
    volumes=dict(type="bool", default=False),
    print_table=dict(type="bool", default=True),
    recreate=dict(type="list", elements="str", default=[]),
    names=dict(type="dict", default={}),
)
REQUIRED_ONE_OF = [("plan", "plan_file", "workspace")]


class Failure(Exception):
    """What the module fails with: the message and the other keys of its result."""

    def __init__(self, msg: str, **result: t.Any):
        super().__init__(msg)
        self.msg = msg
        self.result = result


class StackError(Exception):
    pass


class Stack:
    def __init__(self, client: AnsibleDockerClientBase, plan: dict, names: dict):
        self.client = client
        self.plan = plan
        self.names = names
        self.project = plan["project"]
        self.services = {s["name"]: s for s in plan["services"]}
        # The engine's storage driver, read by converge before it creates or starts a container (own_root).
        self.storage_driver = ""

    # ---------------------------------------------------------------- engine reads
    def list(self, all_projects: bool = False) -> list:
        params = {"all": 1}
        if not all_projects:
            params["filters"] = json.dumps({"label": [f"{dk.PROJECT_LABEL}={self.project}"]})
        return self.client.get_json("/containers/json", params=params)

    def image_id(self, ref: t.Optional[str] = None):
        try:
            return self.client.get_json("/images/{0}/json", ref or self.plan["image"])["Id"]
        except NotFound:
            return None

    def volume_exists(self, name: str) -> bool:
        try:
            self.client.get_json("/volumes/{0}", name)
        except NotFound:
            return False
        return True

    def network_exists(self) -> bool:
        return self.client.get_network(self.plan["network"]) is not None

    def logs(self, container: str, lines: int = 30) -> str:
        try:
            res = self.client._get(self.client._url("/containers/{0}/logs", container),
                                   params={"stdout": 1, "stderr": 1, "tail": lines})
            raw = self.client._result(res, binary=True)
        except (APIError, RequestException):
            return ""
        return dk.demux(raw).decode("utf-8", "replace")

    # ---------------------------------------------------------------- state files
    def read(self, service: str, name: str) -> str:
        try:
            with open(os.path.join(self.plan["state_dir"], service, name), encoding="utf-8",
                      errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def build_dir(self, service: str) -> str:
        return "builder" if self.plan.get("builder") else service

    def rows(self, entries: list, only: tuple = (), log_lines: int = 0) -> list:
        by_name = {n: e for e in entries for n in dk.container_names(e)}
        rows = []
        for name in sorted(self.services):
            if only and name not in only:
                continue
            service = self.services[name]
            build_dir = self.build_dir(name)
            build = dk.parse_state_line(self.read(build_dir, "build"))
            log = {"building": "build.log.partial", "failed": "build.log"}.get(build.get("state"))
            log = self.read(build_dir, log) if log else ""
            progress = pg.describe(log, self.read(build_dir, "progress")) if build.get("state") == "building" else None
            row = dk.service_status(service, by_name.get(service["container"]["name"]),
                                    dk.parse_state_line(self.read(name, "run")), build, log, progress)
            row["container"] = service["container"]["name"]
            row["progress"] = progress if row["status"] == "building" else None
            if log_lines:
                row["logs"] = self.logs(row["container"], log_lines)
            rows.append(row)
        return rows

    def selected(self, services: list) -> tuple:
        """The service names asked for, checked: all of them when none are named."""
        unknown = [s for s in services if s not in self.services]
        if unknown:
            raise StackError(f"service: {', '.join(unknown)} is not a service of {self.project}; its services: "
                             f"{', '.join(sorted(self.services))}")
        return tuple(dict.fromkeys(services)) or tuple(sorted(self.services))

    def prepare_state(self, services: list) -> None:
        """State dirs owned by the container user; stale state of containers about to start is dropped."""
        uid, gid = (int(x) for x in self.plan["user"].split(":"))
        for name in ["builder"] + sorted(self.services):
            path = os.path.join(self.plan["state_dir"], name)
            os.makedirs(path, mode=0o755, exist_ok=True)
            if os.geteuid() == 0:
                os.chown(path, uid, gid)
            if name in services:
                self.forget(name)

    def forget(self, service: str) -> None:
        for stale in ("run", "build", "build.log", "progress"):
            try:
                os.unlink(os.path.join(self.plan["state_dir"], service, stale))
            except FileNotFoundError:
                pass

    # ---------------------------------------------------------------- engine writes
    def create_network(self) -> None:
        self.client.post_json_to_json("/networks/create", data={
            "Name": self.plan["network"], "CheckDuplicate": True,
            "Labels": {dk.PROJECT_LABEL: self.project}})

    def remove(self, container: str) -> None:
        try:
            self.client.post_call("/containers/{0}/stop", container, params={"t": 3})
        except NotFound:
            return
        except APIError:
            pass
        try:
            self.client.delete_call("/containers/{0}", container, params={"force": 1})
        except NotFound:
            pass

    def create(self, name: str, body: dict) -> str:
        result = self.client.post_json_to_json("/containers/create", data=body, params={"name": name})
        self.client.post_call("/containers/{0}/start", result["Id"])
        return result["Id"]

    def own_root(self, container: str, user: str) -> None:
        """The container's user made the owner of its root on fuse-overlayfs (dk.own_root_argv): an optimisation,
        so a container that exits at once or an engine that refuses the exec changes nothing else."""
        argv = dk.own_root_argv(user, self.storage_driver)
        if argv:
            try:
                exec_id = self._exec_created(container, dk.exec_body(argv, output=False, user="0"))
                # Detached: a converge does not wait for it (the first build starts meanwhile and speeds up).
                self.client.post_json_to_text("/exec/{0}/start", exec_id, data={"Tty": False, "Detach": True})
            except APIError:
                pass

    def apply(self, action: dict, body: dict, service: str) -> None:
        kind = action["action"]
        if kind == "recreate":
            self.remove(action["id"])
            self.forget(service)  # what the old container's supervisor wrote as it stopped
        if kind in ("create", "recreate"):
            self.own_root(self.create(action["name"], body), body.get("User") or "")
        elif kind == "start":
            self.client.post_call("/containers/{0}/start", action["id"])
            self.own_root(action["id"], body.get("User") or "")
        elif kind == "restart":
            self.client.post_call("/containers/{0}/restart", action["id"], params={"t": 3})

    def exec(self, container: str, argv: list) -> tuple:
        """(exit code, output) of a command run in a running container, as its user, in its working dir."""
        exec_id = self._exec_created(container, dk.exec_body(argv, output=True))
        stdout, stderr = self.client.post_json_to_stream("/exec/{0}/start", exec_id,
                                                         data={"Tty": False, "Detach": False},
                                                         stream=False, tty=False, demux=True)
        code = self.client.get_json("/exec/{0}/json", exec_id).get("ExitCode")
        return code, ((stdout or b"") + (stderr or b"")).decode("utf-8", "replace")

    def _exec_created(self, container: str, body: dict) -> str:
        return self.client.post_json_to_json("/containers/{0}/exec", container, data=body)["Id"]


def port_conflicts(planned: list, actions: list, everyone: list, project: str) -> list:
    """Host ports a container about to start would publish that something else holds."""
    mine = [e for e in everyone if (e.get("Labels") or {}).get(dk.PROJECT_LABEL) == project]
    held = dk.held_ports([e for e in everyone if e not in mine])
    # Ports our own containers publish are freed when those are recreated; the engine's proxy holds them now.
    ours = dk.held_ports(mine)
    starting = {a["name"] for a in actions if a["action"] in STARTING}
    problems = []
    for name, body in planned:
        if name not in starting:
            continue
        for key, bindings in body["HostConfig"]["PortBindings"].items():
            proto = key.split("/")[1]
            for binding in bindings:
                port = int(binding["HostPort"])
                holder = held.get((port, proto))
                if holder is None and (port, proto) not in ours and not bindable(binding["HostIp"], port, proto):
                    holder = "another process"
                if holder is not None:
                    problems.append((name, binding["HostIp"], port, holder))
    return problems


def bindable(ip: str, port: int, proto: str) -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(family, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


def converge(stack: Stack, module, wait: bool, timeout: int, recreate: list, step: float = 0,
             current: t.Optional[dict] = None, volumes: t.Sequence[dict] = ()) -> dict:
    plan = stack.plan
    planned = [(c["name"], dk.create_body(c)) for c in plan["containers"]]
    bodies = dict(planned)
    # One list of every container serves both this project's decisions and the port check against the others.
    everyone = stack.list(all_projects=True)
    existing = [e for e in everyone if (e.get("Labels") or {}).get(dk.PROJECT_LABEL) == stack.project]
    image_id = stack.image_id()
    if image_id is None and not module.check_mode:
        raise StackError(f"image: {plan['image']} does not exist; build it first (the dev_image role does)")
    crashed = {stack.services[r["service"]]["container"]["name"] for r in stack.rows(existing)
               if r["status"] == "crashed"}
    force = {stack.services[n]["container"]["name"] for n in recreate if n in stack.services}
    actions, orphans = dk.decide(planned, existing, image_id, crashed, force)
    conflicts = port_conflicts(planned, actions, everyone, stack.project)
    if conflicts:
        lines = [f"{name}: host port {ip}:{port} is held by {holder}" for name, ip, port, holder in conflicts]
        raise StackError(
            "ports: " + "; ".join(lines) + ". Nothing was started. Stop what holds the port, or give the service "
            f"another host port ({stack.names.get('services', 'services')}.<service>.ports, or "
            f"{stack.names.get('port_base', 'port_base')}).")
    network_missing = not stack.network_exists()
    changes = [a for a in actions if a["action"] != "keep"]
    result = {
        "changed": bool(changes or orphans or network_missing or volumes),
        "actions": [{k: a[k] for k in ("name", "action", "reason")} for a in actions],
        "removed": [o["name"] for o in orphans],
        "diff": {
            "before": "".join(f"volume {v['Name']}: absent\n" for v in volumes)
            + "".join(f"{a['name']}: {'absent' if a['action'] == 'create' else 'present'}\n" for a in actions)
            + "".join(f"{o['name']}: present\n" for o in orphans),
            "after": "".join(f"volume {v['Name']}: create\n" for v in volumes)
            + "".join(f"{a['name']}: {a['action']}{' (' + a['reason'] + ')' if a['reason'] else ''}\n"
                      for a in actions) + "".join(f"{o['name']}: removed (orphan)\n" for o in orphans),
        },
    }
    if volumes:
        result["created_volumes"] = [v["Name"] for v in volumes]
    if current:
        result["current"] = True
    if module.check_mode:
        result["services"] = stack.rows(existing)
        result["ready"] = all_ready(result["services"])
        result["seconds"] = 0.0
        return result

    by_container = {s["container"]["name"]: n for n, s in stack.services.items()}
    restarting = {by_container.get(a["name"], "builder") for a in changes}
    stack.prepare_state(restarting)
    if any(a["action"] in STARTING for a in changes):
        stack.storage_driver = stack.client.get_json("/info").get("Driver") or ""
    for volume in volumes:
        stack.client.post_json_to_json("/volumes/create", data=volume)
    if network_missing:
        stack.create_network()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda o: stack.remove(o["id"]), orphans))
        needs = {}
        for name, service in stack.services.items():
            deps = set(service["depends_on"]) | ({service["network_target"]} if service["network_target"] else set())
            needs[service["container"]["name"]] = {stack.services[d]["container"]["name"] for d in deps}
        for wave in dk.waves(changes, needs):
            list(pool.map(lambda a: stack.apply(a, bodies[a["name"]], by_container.get(a["name"], "builder")), wave))
    if current and current["record"]:
        # Written once the containers run on these images and volumes, whatever their builds then do.
        ids, _missing = engine_now(stack, current, current["images"])
        record = dk.current_record(dk.record_digest(current["digest"], stack.plan), ids, current["volumes"])
        _planning().write_dest(module, current["path"], json.dumps(record, indent=2, sort_keys=True))
    started = time.monotonic()
    if wait:
        result["services"], result["ready"] = wait_ready(stack, timeout, step=step)
    else:
        result["services"] = stack.rows(stack.list())
        result["ready"] = all_ready(result["services"])
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def _planning():
    """The planner, imported only when a plan is made or recorded: status and down read the recorded plan, and
    every module a task imports is compiled anew (the collection loader keeps no bytecode)."""
    from ansible_collections.cargohold.devenv.plugins.module_utils import _planning as planning  # pylint: disable=import-outside-toplevel
    return planning


def _user_words(message: str, names: dict) -> str:
    from ansible_collections.cargohold.devenv.plugins.module_utils._plan import user_words  # pylint: disable=import-outside-toplevel
    return user_words(message, names)


def read_json(path: str):
    """The JSON document of a file on the managed host (a plan or a record); None when missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def engine_now(stack: Stack, current: dict, refs: list) -> tuple:
    """(image IDs by reference, missing volumes), read concurrently."""
    with ThreadPoolExecutor(WORKERS) as pool:
        ids = dict(zip(refs, pool.map(stack.image_id, refs)))
        found = list(pool.map(stack.volume_exists, current["volumes"]))
    return ids, [v for v, f in zip(current["volumes"], found) if not f]


def resolve_plan(module, params: dict) -> tuple:
    """(plan, planned, changed): the plan given, else the one recorded at plan_file, else one made now from the
    workspace options (planned, and changed when its dest file changed); None when there is none."""
    plan = params["plan"]
    if plan is None and params["plan_file"]:
        plan = read_json(params["plan_file"])
    if plan is not None or params["workspace"] is None:
        return plan, None, False
    planning = _planning()
    planned, changed = planning.plan(module, planning.validated(params["workspace"], "workspace"))
    return planned, planned, changed


def why_not_current(stack: Stack, current: dict) -> t.Tuple[t.Optional[str], t.List[str]]:
    """(why the last up's record no longer vouches for the images and the inputs of the volumes, None when it does;
    the volumes to create)."""
    if stack.plan.get("lockfiles_missing"):
        return f"no Cargo.lock in {', '.join(stack.plan['lockfiles_missing'])}", []
    record = read_json(current["path"])
    # The images the long way looked at, as it recorded them.
    refs = current["images"] or list(((record or {}).get("images") or {}))
    ids, missing = engine_now(stack, current, refs)
    why = dk.record_differs(record, dk.record_digest(current["digest"], stack.plan), ids)
    return why, ([] if why else missing)


def all_ready(rows: list) -> bool:
    return all(r["ready"] for r in rows if r["kind"] != "tool")


def wait_ready(stack: Stack, timeout: float, only: tuple = (), step: float = 0) -> tuple:
    """(rows, ready): poll the services at once until all are ready, or (with step) for step seconds at most;
    fail at once on a failed build or a dead service, and after timeout seconds."""
    now = time.monotonic()
    deadline = now + timeout
    step_end = now + step if step else None
    while True:
        entries = stack.list()
        rows = stack.rows(entries, only)
        waited = [r for r in rows if r["kind"] != "tool"]
        failed = [r for r in waited if r["failed"] or r["status"] in ("stopped", "missing")]
        if failed:
            raise StackError(failure_report(stack, failed), rows)
        if all(r["ready"] for r in waited):
            return rows, True
        if step_end is not None and step_end < deadline and time.monotonic() > step_end:
            return rows, False
        if time.monotonic() > deadline:
            waiting = [f"{r['service']} ({r['status']}{': ' + r['detail'] if r['detail'] else ''})"
                       for r in waited if not r["ready"]]
            raise StackError(f"wait_timeout: not ready after {timeout} s: {', '.join(waiting)}. Raise "
                             f"{stack.names.get('wait_timeout', 'wait_timeout')} if the first build is slow, or "
                             "set the service's ready check (ready: none, {http: /path} or {log: regex}).", rows)
        time.sleep(POLL)


def failure_report(stack: Stack, failed: list) -> str:
    parts = []
    for row in failed:
        name = row["service"]
        service = stack.services[name]
        if row["status"] == "build failed":
            log = stack.read(stack.build_dir(name), "build.log")
            body = "\n".join("    " + line for line in dk.first_error(log, 20))
            parts.append(f"{name}: the build failed; the stack stays up and the next good edit recovers it:\n{body}")
            continue
        logs = stack.logs(service["container"]["name"])
        body = "\n".join("    " + line for line in logs.splitlines()[-20:])
        hint = ""
        if row["status"] == "exited":
            hint = (f" If {name} is a command-line tool rather than a server, set "
                    f"{stack.names.get('services', 'services')}.{name}.kind: tool.")
        state = stack.read(name, "run").strip() or "none yet"
        parts.append(f"{name}: {row['status']} ({row['detail']}; supervisor state: {state}).{hint} "
                     f"Last log lines:\n{body}")
    return "Not every service came up:\n" + "\n".join(parts)


def clean_argv(service: dict, plan: dict) -> list:
    """`cargo clean -p <package>` for the profile and target the service's binary is built for."""
    container = service["container"]
    source = next(m["target"] for m in container["mounts"]
                  if m["type"] == "bind" and m.get("source") == plan["project_dir"])
    target_dir = container["env"]["CARGO_TARGET_DIR"].rstrip("/")
    parts = container["env"]["CARGOHOLD_BIN"][len(target_dir) + 1:].split("/")[:-1]  # [triple/]profile-dir
    argv = ["cargo", "clean", "--manifest-path", os.path.normpath(os.path.join(source, service["root"], "Cargo.toml")),
            "-p", service["package"]]
    profile = parts[-1] if parts else "debug"
    if profile == "release":
        argv.append("--release")
    elif profile != "debug":
        argv += ["--profile", profile]
    if len(parts) > 1:
        argv += ["--target", parts[0]]
    return argv


def restart(stack: Stack, module, services: tuple, rebuild: bool, wait: bool, timeout: int, step: float) -> dict:
    """Restart the containers of the services (rebuild: after cleaning their packages) and wait for them."""
    entries = stack.list()
    by_name = {n: e for e in entries for n in dk.container_names(e)}
    containers = [stack.services[s]["container"]["name"] for s in services]
    builder = (stack.plan.get("builder") or {}).get("name")
    if rebuild and builder:
        containers.insert(0, builder)
    down = [c for c in containers if (by_name.get(c) or {}).get("State") != "running"]
    if down:
        raise StackError(f"service: {', '.join(down)} is not running; bring the stack up first (dev.yml), which "
                         "starts what is stopped")
    action = "rebuild" if rebuild else "restart"
    result = {"changed": True, "removed": [], "seconds": 0.0,
              "actions": [{"name": c, "action": action if c != builder else "restart",
                           "reason": "asked for" if c != builder else "it builds the binaries"} for c in containers],
              "diff": {"before": "".join(f"{c}: running\n" for c in containers),
                       "after": "".join(f"{c}: {action}\n" for c in containers)}}
    if module.check_mode:
        result["services"] = stack.rows(entries)
        result["ready"] = all_ready(result["services"])
        return result
    if rebuild:
        cleaned = set()
        for name in services:
            service = stack.services[name]
            if (service["root"], service["package"]) in cleaned:
                continue
            cleaned.add((service["root"], service["package"]))
            code, output = stack.exec(service["container"]["name"], clean_argv(service, stack.plan))
            if code != 0:
                raise StackError(f"service: cargo clean of {service['package']} (for {name}) failed with exit "
                                 f"code {code}; nothing was restarted:\n{output.strip()}")
    for name in services + (("builder",) if rebuild and builder else ()):
        stack.forget(name)
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda c: stack.client.post_call("/containers/{0}/restart", by_name[c]["Id"], params={"t": 3}),
                      containers))
    started = time.monotonic()
    if wait:
        rows, result["ready"] = wait_ready(stack, timeout, services, step)
        others = stack.rows(stack.list())
        result["services"] = [next((r for r in rows if r["service"] == o["service"]), o) for o in others]
    else:
        result["services"] = stack.rows(stack.list())
        result["ready"] = all_ready([r for r in result["services"] if r["service"] in services])
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def absent(stack: Stack, module) -> dict:
    existing = stack.list()
    network = stack.network_exists()
    names = [dk.container_names(e)[0] for e in existing]
    if not module.check_mode:
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(lambda e: stack.remove(e["Id"]), existing))
        if network:
            try:
                stack.client.delete_call("/networks/{0}", stack.plan["network"])
            except NotFound:
                pass
    return {"changed": bool(existing or network), "removed": names, "actions": [], "services": [],
            "ready": False, "seconds": 0.0,
            "diff": {"before": "".join(f"{n}: present\n" for n in names),
                     "after": "".join(f"{n}: absent\n" for n in names)}}


def run(module: t.Any, client: AnsibleDockerClientBase) -> dict:
    """The module's result for its validated params (module.params), or Failure. ``module`` gives params,
    check_mode, _diff, run_command, add_cleanup_file and atomic_move: an AnsibleModule, or the action plugin's
    in-process stand-in."""
    params = module.params
    try:
        plan, planned, plan_changed = resolve_plan(module, params)
    except ValueError as exc:
        raise Failure(str(exc)) from exc
    nothing_done = dict(current=False, actions=[], removed=[], services=[], ready=False, seconds=0.0)
    if planned and planned.get("cargo_missing"):
        return dict(changed=False, reason="no cargo on the host to read the workspace", plan=planned, **nothing_done)
    if plan is None:
        raise Failure(f"No plan was recorded at {params['plan_file']}: bring the stack up first "
                      "(ansible-playbook dev.yml records it).")
    stack = Stack(client, plan, params["names"])
    state = params["state"]
    wait = params["wait"] if params["wait"] is not None else state != "status"
    current = params["current"] if state == "present" else None
    try:
        why, missing = why_not_current(stack, current) if current and not current["record"] else (None, [])
        if why:
            return dict(changed=plan_changed, reason=why, **({"plan": planned} if planned else {}), **nothing_done)
        if state == "absent":
            result = absent(stack, module)
        elif state == "status":
            result = status(stack, module, params, wait)
        elif state in ("restarted", "rebuilt"):
            result = restart(stack, module, stack.selected(params["services"]), state == "rebuilt", wait,
                             params["wait_timeout"], params["wait_step"])
        else:
            result = converge(stack, module, wait, params["wait_timeout"], params["recreate"], params["wait_step"],
                              current, dk.volume_bodies(plan, missing, current["volume_labels"]) if missing else [])
    except StackError as exc:
        rows = exc.args[1] if len(exc.args) > 1 else []
        raise Failure(_user_words(str(exc.args[0]), params["names"]), services=rows) from exc
    except ValueError as exc:
        raise Failure(_user_words(str(exc), params["names"])) from exc
    except (DockerException, RequestException) as exc:
        raise Failure(f"Docker API error: {exc}", exception=traceback.format_exc()) from exc
    result["table"] = pg.report(result["services"], result.get("volumes"))
    if not module._diff:  # pylint: disable=protected-access
        result.pop("diff", None)
    if planned:
        result.update(plan=planned, changed=result["changed"] or plan_changed)
    return result


def status(stack: Stack, module: t.Any, params: dict, wait: bool) -> dict:
    only = stack.selected(params["services"]) if params["services"] else ()
    if wait and not module.check_mode:
        started = time.monotonic()
        rows, ready = wait_ready(stack, params["wait_timeout"], only, params["wait_step"])
        rows = stack.rows(stack.list(), only, params["log_lines"]) if params["log_lines"] else rows
        seconds = round(time.monotonic() - started, 2)
    else:
        rows, seconds = stack.rows(stack.list(), only, params["log_lines"]), 0.0
        ready = all_ready(rows)
    result = {"changed": False, "actions": [], "removed": [], "seconds": seconds, "services": rows, "ready": ready}
    if params["volumes"]:
        result["volumes"] = dk.project_volumes(stack.client.get_json("/system/df"), stack.project)
    return result
