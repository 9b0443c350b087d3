# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""From the plan to the Docker Engine API, and from the engine's answers back to a decision.

Private to this collection: no compatibility guarantees. Pure logic: the ``dev_containers`` module does the
I/O. Each container option is defined once in ``DOCKER_OPTIONS`` (argument type and how it lands in the
create body); a container's whole create body is hashed into a label, so a converged container is left alone
and any change to its definition or image recreates it (docker compose does the same).
"""

from __future__ import annotations

import hashlib
import json
import re
import typing as t

from ansible.module_utils.common.text.formatters import human_to_bytes

JsonDict = t.Dict[str, t.Any]

HASH_LABEL = "io.cargohold.config-hash"
PROJECT_LABEL = "io.cargohold.project"
VOLUME_LABEL = "io.cargohold.volume"
SERVICE_LABEL = "io.cargohold.service"


# --------------------------------------------------------------------------
# Extra container options: defined once, validated and applied from here
# --------------------------------------------------------------------------

def _bytes(value: t.Any) -> int:
    return value if isinstance(value, int) else human_to_bytes(str(value))


def _duration_ns(value: t.Any) -> int:
    """'30s', '1m30s', '500ms' or a number of seconds, as nanoseconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 1e9)
    units = {"ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(value))
    if not parts or "".join(a + b for a, b in parts) != str(value).replace(" ", ""):
        raise ValueError(f"'{value}' is not a duration such as 500ms, 30s or 1m30s")
    return int(sum(float(n) * units[u] for n, u in parts))


def _ulimits(value: t.List[str]) -> t.List[JsonDict]:
    result = []
    for item in value:
        name, _sep, limits = str(item).partition(":")
        soft, _sep, hard = limits.partition(":")
        if not name or not soft.lstrip("-").isdigit():
            raise ValueError(f"'{item}' is not NAME:SOFT[:HARD], e.g. nofile:65536:65536")
        result.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
    return result


def _devices(value: t.List[str]) -> t.List[JsonDict]:
    result = []
    for item in value:
        parts = str(item).split(":")
        result.append({"PathOnHost": parts[0], "PathInContainer": parts[1] if len(parts) > 1 else parts[0],
                       "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm"})
    return result


def _tmpfs(value: t.List[str]) -> JsonDict:
    return {p.partition(":")[0]: p.partition(":")[2] for p in map(str, value)}


def _healthcheck(value: JsonDict) -> JsonDict:
    test = value.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not test:
        raise ValueError("needs test, e.g. {test: 'curl -fs localhost:8080/ready', interval: 2s}")
    result: JsonDict = {"Test": list(test)}
    for key, api in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod")):
        if value.get(key) is not None:
            result[api] = _duration_ns(value[key])
    if value.get("retries") is not None:
        result["Retries"] = int(value["retries"])
    return result


# name: (argument spec, (section, key), converter)
DOCKER_OPTIONS: t.Dict[str, t.Tuple[JsonDict, t.Tuple[str, str], t.Callable[[t.Any], t.Any]]] = {
    "cap_add": (dict(type="list", elements="str"), ("HostConfig", "CapAdd"), list),
    "cap_drop": (dict(type="list", elements="str"), ("HostConfig", "CapDrop"), list),
    "cpus": (dict(type="float"), ("HostConfig", "NanoCpus"), lambda v: int(float(v) * 1e9)),
    "memory": (dict(type="str"), ("HostConfig", "Memory"), _bytes),
    "memory_reservation": (dict(type="str"), ("HostConfig", "MemoryReservation"), _bytes),
    "shm_size": (dict(type="str"), ("HostConfig", "ShmSize"), _bytes),
    "ulimits": (dict(type="list", elements="str"), ("HostConfig", "Ulimits"), _ulimits),
    "devices": (dict(type="list", elements="str"), ("HostConfig", "Devices"), _devices),
    "dns_servers": (dict(type="list", elements="str"), ("HostConfig", "Dns"), list),
    "etc_hosts": (dict(type="dict"), ("HostConfig", "ExtraHosts"),
                  lambda v: [f"{k}:{v[k]}" for k in sorted(v)]),
    "tmpfs": (dict(type="list", elements="str"), ("HostConfig", "Tmpfs"), _tmpfs),
    "security_opts": (dict(type="list", elements="str"), ("HostConfig", "SecurityOpt"), list),
    "sysctls": (dict(type="dict"), ("HostConfig", "Sysctls"), lambda v: {str(k): str(v[k]) for k in v}),
    "healthcheck": (dict(type="dict"), ("", "Healthcheck"), _healthcheck),
    "log_driver": (dict(type="str"), ("HostConfig", "LogConfig.Type"), str),
    "log_options": (dict(type="dict"), ("HostConfig", "LogConfig.Config"),
                    lambda v: {str(k): str(v[k]) for k in v}),
    "hostname": (dict(type="str"), ("", "Hostname"), str),
    "privileged": (dict(type="bool"), ("HostConfig", "Privileged"), bool),
    "groups": (dict(type="list", elements="str"), ("HostConfig", "GroupAdd"), lambda v: [str(g) for g in v]),
}


def docker_argument_spec() -> JsonDict:
    return {name: spec for name, (spec, _where, _convert) in DOCKER_OPTIONS.items()}


def _apply_option(body: JsonDict, name: str, value: t.Any, option: str) -> None:
    _spec, (section, key), convert = DOCKER_OPTIONS[name]
    try:
        converted = convert(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{option}.{name}: {exc}") from None
    where = body["HostConfig"] if section == "HostConfig" else body
    if "." in key:
        outer, inner = key.split(".")
        where.setdefault(outer, {})[inner] = converted
    elif name == "sysctls":
        where[key] = dict(where.get(key) or {}, **converted)
    else:
        where[key] = converted


# --------------------------------------------------------------------------
# Create bodies
# --------------------------------------------------------------------------

def create_body(container: JsonDict, option: str = "services") -> JsonDict:
    """The POST /containers/create body for one planned container, with its config hash as a label."""
    ports: t.Dict[str, t.List[JsonDict]] = {}
    for port in container.get("published_ports") or []:
        ports.setdefault(f"{port['container']}/{port['proto']}", []).append(
            {"HostIp": port["ip"], "HostPort": str(port["host"])})
    mounts = []
    for mount in container["mounts"]:
        item = {"Type": mount["type"], "Target": mount["target"], "ReadOnly": bool(mount.get("read_only"))}
        if mount.get("source") is not None:
            item["Source"] = mount["source"]
        mounts.append(item)
    networks = container.get("networks") or []
    host_config: JsonDict = {
        "Init": bool(container.get("init")),
        "Mounts": mounts,
        "PortBindings": ports,
        "RestartPolicy": {"Name": container.get("restart_policy") or "no"},
        "NetworkMode": container.get("network_mode") or (networks[0]["name"] if networks else "default"),
    }
    if container.get("sysctls"):
        host_config["Sysctls"] = dict(container["sysctls"])
    body: JsonDict = {
        "Image": container["image"],
        "Cmd": list(container["command"]),
        "Env": [f"{k}={v}" for k, v in sorted(container["env"].items())],
        "WorkingDir": container.get("working_dir") or "",
        "User": container.get("user") or "",
        "Labels": dict(container.get("labels") or {}),
        "StopSignal": container.get("stop_signal") or "SIGTERM",
        "StopTimeout": int(container.get("stop_timeout") or 10),
        "ExposedPorts": {key: {} for key in sorted(ports)},
        "HostConfig": host_config,
    }
    if networks:
        body["NetworkingConfig"] = {"EndpointsConfig": {
            networks[0]["name"]: {"Aliases": list(networks[0].get("aliases") or [])}}}
    service = body["Labels"].get(SERVICE_LABEL, "builder")
    for name in sorted(container.get("extra") or {}):
        if name not in DOCKER_OPTIONS:
            raise ValueError(f"{option}.{service}.docker: unsupported option {name}; allowed: "
                             f"{', '.join(DOCKER_OPTIONS)}")
        _apply_option(body, name, container["extra"][name], f"{option}.{service}.docker")
    body["Labels"][HASH_LABEL] = config_hash(body)
    return body


def config_hash(body: JsonDict) -> str:
    labels = {k: v for k, v in body.get("Labels", {}).items() if k != HASH_LABEL}
    stable = dict(body, Labels=labels)
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------

def container_names(entry: JsonDict) -> t.List[str]:
    return [n.lstrip("/") for n in entry.get("Names") or []]


def decide(planned: t.Sequence[t.Tuple[str, JsonDict]], existing: t.Sequence[JsonDict],
           image_id: t.Optional[str], unhealthy: t.Collection[str] = (),
           force: t.Collection[str] = ()) -> t.Tuple[t.List[JsonDict], t.List[JsonDict]]:
    """(actions in start order, orphans to remove) for planned (name, body) pairs against the listed containers.

    An action is {name, action: create|recreate|start|restart|keep, reason}. A container whose network
    namespace belongs to a (re)created one is recreated with it: it would otherwise keep a dead namespace.
    """
    by_name = {}
    for entry in existing:
        for name in container_names(entry):
            by_name[name] = entry
    actions = []
    replaced: t.Set[str] = set()
    for name, body in planned:
        entry = by_name.get(name)
        network_mode = body["HostConfig"].get("NetworkMode") or ""
        shares = network_mode[len("container:"):] if network_mode.startswith("container:") else None
        if entry is None:
            action, reason = "create", "not there"
        elif (entry.get("Labels") or {}).get(HASH_LABEL) != body["Labels"][HASH_LABEL]:
            action, reason = "recreate", "its definition changed"
        elif image_id is not None and entry.get("ImageID") != image_id:
            action, reason = "recreate", "the dev image was rebuilt"
        elif shares in replaced:
            action, reason = "recreate", f"it shares the network of {shares}, which is recreated"
        elif name in force:
            action, reason = "recreate", "asked for"
        elif entry.get("State") != "running":
            action, reason = "start", f"it was {entry.get('State') or 'not running'}"
        elif name in unhealthy:
            action, reason = "restart", "its service had crashed"
        else:
            action, reason = "keep", ""
        if action in ("create", "recreate", "start", "restart"):
            replaced.add(name)  # a started or restarted container gets a new network namespace too
        actions.append({"name": name, "action": action, "reason": reason,
                        "id": entry.get("Id") if entry else None})
    wanted = {name for name, _body in planned}
    orphans = [{"name": container_names(e)[0] if container_names(e) else e.get("Id"), "id": e.get("Id")}
               for e in existing if not wanted & set(container_names(e))]
    return actions, orphans


def waves(actions: t.Sequence[JsonDict], needs: t.Mapping[str, t.Collection[str]]) -> t.List[t.List[JsonDict]]:
    """Group actions so that each runs after everything it needs; order inside a wave is free."""
    level: t.Dict[str, int] = {}
    for action in actions:  # actions come in start order, so needs are levelled first
        level[action["name"]] = 1 + max((level.get(n, -1) for n in needs.get(action["name"], ())), default=-1)
    result: t.List[t.List[JsonDict]] = []
    for action in actions:
        while len(result) <= level[action["name"]]:
            result.append([])
        result[level[action["name"]]].append(action)
    return result


# --------------------------------------------------------------------------
# Ports held by something else
# --------------------------------------------------------------------------

def held_ports(containers: t.Sequence[JsonDict]) -> t.Dict[t.Tuple[int, str], str]:
    """(host port, proto) -> container name, for every published port in a container list."""
    held = {}
    for entry in containers:
        for port in entry.get("Ports") or []:
            if port.get("PublicPort"):
                held[(int(port["PublicPort"]), port.get("Type") or "tcp")] = (container_names(entry) or ["?"])[0]
    return held


# --------------------------------------------------------------------------
# Reading the state the supervisor writes
# --------------------------------------------------------------------------

def demux(raw: bytes) -> bytes:
    """Docker's multiplexed log stream (8-byte frame headers) to plain bytes."""
    out, pos = [], 0
    while pos + 8 <= len(raw) and raw[pos] in (0, 1, 2) and raw[pos + 1:pos + 4] == b"\0\0\0":
        size = int.from_bytes(raw[pos + 4:pos + 8], "big")
        out.append(raw[pos + 8:pos + 8 + size])
        pos += 8 + size
    return b"".join(out) if out else raw


def parse_state_line(text: t.Optional[str]) -> JsonDict:
    """`ready since=1 pid=7 restarts=0 code=- ready=1` -> {state: ready, since: 1, ...}."""
    words = (text or "").split()
    if not words:
        return {}
    result: JsonDict = {"state": words[0]}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if sep:
            result[key] = None if value == "-" else (int(value) if value.lstrip("-").isdigit() else value)
        elif "epoch" not in result and word.isdigit():
            result["epoch"] = int(word)
    return result


def first_error(log: str, lines: int = 12) -> t.List[str]:
    """The compiler's first error with its location, from a cargo build log."""
    text = log.splitlines()
    for index, line in enumerate(text):
        if line.startswith("error"):
            return text[index:index + lines]
    return text[-lines:]


def last_progress(log: str) -> t.Optional[str]:
    for line in reversed(log.splitlines()):
        stripped = line.strip()
        if stripped.startswith(("Compiling", "Checking", "Building", "Downloaded", "Downloading", "Updating")):
            return stripped
    return None


def service_status(service: JsonDict, entry: t.Optional[JsonDict], run: JsonDict, build: JsonDict,
                   build_log: str, progress: t.Optional[str] = None) -> JsonDict:
    """What a service is doing, from its container, its supervisor's state and its build's state.

    ``progress`` (what the running build does, see ``_progress.describe``) replaces the last log line in the detail.
    """
    row: JsonDict = {"service": service["name"], "address": service.get("url") or service.get("address") or "",
                     "kind": service.get("kind", "service"), "ready": False, "failed": False, "detail": ""}
    if entry is None:
        return dict(row, status="missing", detail="no container; run dev.yml")
    state = entry.get("State") or ""
    if state in ("exited", "dead"):
        return dict(row, status="stopped", detail=entry.get("Status") or state)
    if state != "running":  # created, restarting, or not yet reported by the engine: not a failure yet
        return dict(row, status="starting", detail=entry.get("Status") or state)
    if isinstance(run.get("since"), int) and isinstance(entry.get("Created"), int) and run["since"] < entry["Created"]:
        run = {}  # written by a previous container of this service: this one's supervisor has not reported yet
    if run.get("state") == "stopped":
        # The container runs, so its supervisor has not stopped: the line is the previous container's, written as
        # that one stopped (the state directory outlives containers).
        run = {}
    run_state = run.get("state")
    serving = run_state == "ready"
    if build.get("state") == "failed":
        detail = " | ".join([line.strip() for line in first_error(build_log, 8) if line.strip(" |")][:3])
        return dict(row, status="build failed", failed=True,
                    detail=("serving the last good build; " if serving else "") + detail)
    if build.get("state") == "building":
        progress = progress or last_progress(build_log)
        return dict(row, status="building", detail=("serving the last build; " if serving else "") + (progress or ""))
    if service.get("ready", {}).get("type") == "healthcheck":
        health = re.search(r"\((healthy|unhealthy|health: starting)\)", entry.get("Status") or "")
        status = health.group(1) if health else "starting"
        ok = status == "healthy"
        return dict(row, status="serving" if ok else "starting", ready=ok, detail=status)
    if run_state == "ready":
        return dict(row, status="serving", ready=True)
    if run_state == "exited":
        code = run.get("code")
        tool = row["kind"] == "tool"
        return dict(row, status="exited", ready=tool, failed=not tool, detail=f"exit code {code}")
    if run_state == "crashed":
        return dict(row, status="crashed", failed=not run.get("ready"),
                    detail=f"exit code {run.get('code')}, restarted {run.get('restarts')} times")
    if run_state == "starting" and run.get("restarts") and run.get("code") is not None:
        # Started again after a crash, not yet ready: still a crash loop (compose says "Restarting"), not a
        # service that merely starts; the table would otherwise flicker between crashed and starting.
        return dict(row, status="crashed", failed=not run.get("ready"),
                    detail=f"exit code {run.get('code')}, restarted {run.get('restarts')} times; starting again")
    if run_state == "waiting":
        return dict(row, status="building", detail="waiting for the first build")
    if run_state == "starting":
        return dict(row, status="starting")
    return dict(row, status=run_state or "starting")


# --------------------------------------------------------------------------
# The record of a converged stack's images and volumes
# --------------------------------------------------------------------------

# What the plan read on the host that the images and volumes are made from.
RECORDED_PLAN_KEYS = ("image", "user", "workspace_owner", "volumes", "host_toolchain")


def record_digest(digest: str, plan: t.Mapping[str, t.Any]) -> str:
    """The caller's digest of its own inputs, with those the plan read on the host."""
    host = {k: plan.get(k) for k in RECORDED_PLAN_KEYS}
    return hashlib.sha256(json.dumps([digest, host], sort_keys=True).encode()).hexdigest()


def current_record(digest: str, image_ids: t.Mapping[str, t.Optional[str]], volumes: t.Sequence[str]) -> JsonDict:
    return {"digest": digest, "images": dict(image_ids), "volumes": sorted(volumes)}


def record_differs(record: t.Any, digest: str, image_ids: t.Mapping[str, t.Optional[str]]) -> t.Optional[str]:
    """Why the images and the inputs of the volumes may no longer be what the last converge left (None: they are).
    A volume that is gone is not a reason: the converge creates it as the long way would (volume_bodies)."""
    if not isinstance(record, dict) or not record:
        return "no record of a converged stack"
    if record.get("digest") != digest:
        return "an input of the images or volumes changed"
    recorded = record.get("images") or {}
    for ref, image_id in image_ids.items():
        if ref not in recorded or recorded[ref] != image_id:
            return f"image {ref} changed"
    return None


def volume_bodies(plan: t.Mapping[str, t.Any], missing: t.Sequence[str],
                  labels: t.Mapping[str, str]) -> t.List[JsonDict]:
    """The engine's create bodies of the plan's volumes named in missing, labelled as the shared_volumes role
    labels them (volume_labels). Empty, they take their owner from the dev image's mount points on first mount."""
    kinds = {name: kind for kind, name in plan["volumes"].items()}
    return [{"Name": name, "Labels": volume_labels(plan["project"], kinds[name], labels)}
            for name in missing if name in kinds]


def volume_labels(project: str, kind: str, labels: t.Mapping[str, str]) -> t.Dict[str, str]:
    """The labels of a project's volume (kind: target or cache): the user's, then the project and the kind, which
    a user label cannot override (down, status and the orphan checks find the volume by them)."""
    return {**labels, PROJECT_LABEL: project, VOLUME_LABEL: kind}


def own_root_argv(user: str, storage_driver: str) -> t.Optional[t.List[str]]:
    """The command that makes a container's user the owner of its root directory, run once as root when the
    container is created or started: on the fuse-overlayfs storage driver only, and not for a container that
    runs as root (None).

    fuse-overlayfs serves POSIX ACLs, and the kernel does not cache the ACL of a FUSE mount's root: each absolute
    path a non-owner looks up costs a round trip to the storage daemon (60 us instead of 0.3 us here), some
    thousands per compile, which made a build as the dev user about twice as slow as the same build as root. The
    owner's permission check never reads ACLs."""
    if storage_driver != "fuse-overlayfs" or user.split(":", 1)[0] in ("", "0", "root"):
        return None
    return ["chown", user, "/"]


def exec_body(argv: t.List[str], output: bool, user: t.Optional[str] = None) -> JsonDict:
    """The body of POST /containers/{id}/exec: argv with its output attached (to be read) or not (run detached),
    as user, else as the container's own user."""
    body: JsonDict = {"AttachStdin": False, "AttachStdout": output, "AttachStderr": output, "Tty": False,
                      "Cmd": argv}
    if user is not None:
        body["User"] = user
    return body


def project_volumes(disk_usage: JsonDict, project: str) -> t.List[JsonDict]:
    """The project's volumes and their sizes in bytes (-1 when the engine has not computed one), by name, from the
    engine's disk usage (GET /system/df)."""
    return sorted(({"name": v["Name"], "size": (v.get("UsageData") or {}).get("Size", -1)}
                   for v in disk_usage.get("Volumes") or []
                   if (v.get("Labels") or {}).get(PROJECT_LABEL) == project), key=lambda v: v["name"])
