# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one plan of a dev stack: names, volumes, network, state, containers, readiness and start order.

Private to this collection: no compatibility guarantees. Pure logic: computed once from the Cargo roots
(``_workspace``) and the options, consumed by the roles and the ``dev_containers`` module; nothing here is
re-derived in Jinja. Problems raise ``ValueError`` whose message starts with the option at fault; ``user_words``
turns option names into the variables the user set.
"""

from __future__ import annotations

import ipaddress
import json
import os
import posixpath
import re
import shlex
import typing as t
from dataclasses import dataclass, field

from ansible_collections.cargohold.devenv.plugins.module_utils import _workspace as ws

JsonDict = t.Dict[str, t.Any]

MODES = ("per_service", "shared_builder")
KINDS = ("service", "tool")
READY_TYPES = ("port", "http", "log", "healthcheck", "none")
WATCHERS = ("cargo-watch", "watchexec")
LOOPBACK = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1", "[::1]": "::1"}
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
MOUNT_TYPES = ("bind", "volume", "tmpfs")
LABEL_PREFIX = "io.cargohold."
STATE_MOUNT = "/run/cargohold"
# Under the shared target dir: the queues of cargohold-build --batch, one per Cargo root.
BATCH_DIR = "cargohold-batch"
# IPv6 loopback for servers that bind [::1]; Docker disables IPv6 in containers of a non-IPv6 network.
IPV6_LOOPBACK_SYSCTL = {"net.ipv6.conf.lo.disable_ipv6": "0"}

PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
SERVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
VOLUME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]+$")
USER_RE = re.compile(r"^(\d+):(\d+)$")
PORT_RE = re.compile(
    r"^(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:]+\]):)?(?P<host>\d+)(?::(?P<container>\d+))?"
    r"(?P<proto>/(?:tcp|udp))?$"
)
# Docker caps container names far above this, but DNS labels (the container name is the host name on the
# project network) stop at 63.
MAX_CONTAINER_NAME = 63


# --------------------------------------------------------------------------
# The one table of per-service settings: argument spec and docs come from here
# --------------------------------------------------------------------------

SERVICE_OPTIONS: t.Dict[str, JsonDict] = {
    "enabled": dict(type="bool", default=True,
                    doc="V(false) leaves the service out; it is still listed in RV(all_services) and RV(disabled)."),
    "kind": dict(type="str", choices=list(KINDS), default="service",
                 doc="V(tool) is a binary that runs once after each build and exits (a CLI): no port, not "
                     "waited for, never restarted."),
    "args": dict(type="list", elements="str", doc="Command-line arguments for the service binary."),
    "env": dict(type="dict", doc="Environment for this service; wins over O(env)."),
    "working_dir": dict(type="str", doc="Working directory, relative to O(source_dir) unless absolute; defaults "
                                        "to the service's Cargo root (where C(cargo run) would start)."),
    "port": dict(type="int", doc="The port the service listens on in its container (E(PORT)); defaults to "
                                 "O(container_port). The host port maps to it."),
    "listen": dict(type="str", doc="The address the service binds, when its code fixes it: V(127.0.0.1) or "
                                   "V(::1) makes the container forward its port to that loopback address so "
                                   "the published port and other services reach it."),
    "ports": dict(type="list", elements="raw",
                  doc="Host port mappings replacing the automatic one: an int host port (to C(port)), "
                      "C(HOST:CONTAINER) or C(IP:HOST:CONTAINER), optionally C(/tcp) or C(/udp). [] publishes "
                      "nothing."),
    "ready": dict(type="raw", doc="When the service counts as ready: V(port) (default: something listens on "
                                  "C(port) in the container), C({http: PATH}) (any HTTP answer) or C({http: PATH, "
                                  "status: 200}), C({log: REGEX}), V(healthcheck) (the Docker healthcheck in "
                                  "C(docker.healthcheck)) or V(none)."),
    "network_mode": dict(type="str", doc="V(service:NAME) shares NAME's network namespace (loopback included); "
                                         "V(host) or another Docker network mode otherwise."),
    "mounts": dict(type="list", elements="dict", options=dict(
        source=dict(type="str"),
        target=dict(type="str", required=True),
        type=dict(type="str", choices=list(MOUNT_TYPES), default="bind"),
        read_only=dict(type="bool", default=False),
    ), doc="Extra mounts: C(target), C(source) (relative to O(path) unless absolute), C(type), C(read_only)."),
    "depends_on": dict(type="list", elements="str", doc="Services created and started before this one."),
    "watch_ignore": dict(type="list", elements="str",
                         doc="Globs (relative to O(path)) whose changes do not rebuild this service, added to "
                             "O(watch_ignore)."),
    "docker": dict(type="dict", doc="Further container options, from a checked list (see M(cargohold.devenv."
                                    "dev_containers))."),
}


def service_argument_spec() -> JsonDict:
    return {name: {k: v for k, v in spec.items() if k != "doc"} for name, spec in SERVICE_OPTIONS.items()}


# --------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------

@dataclass
class Options:
    """Module options after defaults; ``from_params`` ignores ``None`` values."""

    image: str
    user: str
    target_volume: str
    cache_volume: str
    state_dir: str
    project: t.Optional[str] = None
    mode: str = "per_service"
    network: t.Optional[str] = None
    source_dir: str = "/workspace"
    target_dir: str = "/cargo-target"
    cache_dir: str = "/cargo-cache"
    port_base: int = 8080
    container_port: int = 8080
    bind_address: str = "127.0.0.1"
    cargo_args: t.List[str] = field(default_factory=list)
    watch_delay: float = 0.1
    batch_builds: bool = True
    watch_ignore: t.List[str] = field(default_factory=list)
    watcher: str = "cargo-watch"
    poll: bool = False
    poll_interval: t.Any = "500ms"
    ready: t.Any = "port"
    env: JsonDict = field(default_factory=dict)
    labels: JsonDict = field(default_factory=dict)
    services: t.Dict[str, JsonDict] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any]) -> "Options":
        known = cls.__dataclass_fields__  # pylint: disable=no-member
        for required in ("image", "user", "target_volume", "cache_volume", "state_dir"):
            if not params.get(required):
                raise ValueError(f"{required}: is required")
        return cls(**{k: v for k, v in params.items() if k in known and v is not None})


@dataclass
class Settings:
    """One service's override, normalized."""

    enabled: bool = True
    kind: str = "service"
    args: t.List[str] = field(default_factory=list)
    env: t.Dict[str, str] = field(default_factory=dict)
    working_dir: t.Optional[str] = None
    port: t.Optional[int] = None
    listen: t.Optional[str] = None
    ports: t.Optional[t.List[t.Any]] = None  # None: auto-assign; []: publish nothing
    ready: t.Any = None
    network_mode: t.Optional[str] = None
    mounts: t.List[JsonDict] = field(default_factory=list)
    depends_on: t.List[str] = field(default_factory=list)
    watch_ignore: t.List[str] = field(default_factory=list)
    docker: JsonDict = field(default_factory=dict)


if set(Settings.__dataclass_fields__) != set(SERVICE_OPTIONS):  # pylint: disable=no-member
    raise ImportError("_plan: Settings and SERVICE_OPTIONS must name the same settings")


# --------------------------------------------------------------------------
# Errors in the user's words
# --------------------------------------------------------------------------

LEAD_RE = re.compile(r"^(?P<option>[a-z_]+)(?P<rest>(?:[.\[][^:\s]*)?(?: \([^)]*\))?):")


def user_words(message: str, names: t.Mapping[str, str]) -> str:
    """Rename the option a message starts with (``services.api.ports:``) into the user's variable."""
    match = LEAD_RE.match(message)
    if not match or match.group("option") not in names:
        return message
    return names[match.group("option")] + match.group("rest") + ":" + message[match.end():]


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------

def default_project(root: str) -> str:
    name = re.sub(r"[^a-z0-9_.-]", "-", os.path.basename(os.path.normpath(root)).lower())
    return re.sub(r"^[^a-z0-9]+", "", name)


def validate_project(project: str, from_default: bool) -> str:
    if PROJECT_RE.match(project):
        return project
    hint = ("the project directory name does not give a usable one, so set project"
            if from_default else "use 1-63 of a-z 0-9 _ . - starting with a letter or digit")
    raise ValueError(f"project: '{project}' is not a valid container name prefix; {hint}")


def stack_names(project: str) -> JsonDict:
    """Every name of a project's dev stack on the Docker host, in one place: the roles' defaults read it through
    the cargohold.devenv.stack_names filter, and the plan uses it for what the caller leaves unset. Paths under
    ``~`` are the managed host's home, expanded there by the modules."""
    cache = f"~/.cache/cargohold/{project}"
    return {
        "image_name": "cargohold/dev",
        "image_tag": project,
        "image": f"cargohold/dev:{project}",
        "network": f"{project}-dev",
        "target_volume": f"{project}-cargo-target",
        "cache_volume": f"{project}-cargo-cache",
        "state_dir": f"{cache}/run",
        "plan_file": f"{cache}/plan.json",
        "build_dir": "~/.cache/cargohold/build",
    }


def container_name(project: str, service: str) -> str:
    """``shop-auth``; no stutter when the binary already carries the project name (``auth-service``)."""
    if service == project or service.startswith(project + "-"):
        return service
    return f"{project}-{service}"


def _container_path(value: str, option: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"{option}: '{value}' must be an absolute container path")
    normalized = posixpath.normpath(value)
    if normalized == "/":
        raise ValueError(f"{option}: must not be / (it would hide the whole container file system)")
    return normalized


def _is_within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def validate_dirs(opts: Options) -> t.Tuple[str, str, str]:
    source = _container_path(opts.source_dir, "source_dir")
    target = _container_path(opts.target_dir, "target_dir")
    cache = _container_path(opts.cache_dir, "cache_dir")
    for option, value in (("target_dir", target), ("cache_dir", cache)):
        if _is_within(value, source):
            raise ValueError(
                f"{option}: {value} is inside source_dir {source}; put it outside (e.g. /cargo-target): "
                "a volume nested under the source bind mount makes Docker create root-owned "
                "directories in your source tree, and some Docker Desktop versions silently "
                "detach it")
        if _is_within(source, value):
            raise ValueError(f"{option}: {value} contains source_dir {source}; use separate directories")
    if _is_within(target, cache) or _is_within(cache, target):
        raise ValueError(f"cache_dir: {cache} and target_dir {target} overlap; use separate directories")
    return source, target, cache


def validate_user(user: str) -> str:
    match = USER_RE.match(str(user))
    if not match:
        raise ValueError(f"user: '{user}' must be numeric UID:GID, e.g. 1000:1000 (see `id -u`:`id -g`)")
    if int(match.group(1)) == 0:
        raise ValueError("user: uid 0 (root) would leave root-owned files in your source tree and "
                         "volumes; use a non-root uid, e.g. your own (`id -u`:`id -g`)")
    return str(user)


def container_user(owner_uid: int, owner_gid: int, uid: t.Any = "", gid: t.Any = "", fallback: int = 1000) -> str:
    """uid:gid of the container user: the ones set, else the workspace owner's (the source and the volumes stay
    writable by the developer), else, for a root-owned workspace, ``fallback`` for both."""
    for option, value in (("uid", uid), ("gid", gid)):
        text = "" if value is None else str(value)
        if text and (not text.isdigit() or int(text) == 0):
            raise ValueError(f"{option}: is {text}: set a numeric id above 0 (the container user must not be "
                             "root), or leave it empty to take the owner of the workspace")
    root_owned = int(owner_uid) == 0
    chosen_uid = str(uid) if str(uid or "") else str(fallback if root_owned else owner_uid)
    chosen_gid = str(gid) if str(gid or "") else str(fallback if root_owned else owner_gid)
    return f"{chosen_uid}:{chosen_gid}"


def validate_volumes(opts: Options) -> None:
    for option in ("target_volume", "cache_volume"):
        value = getattr(opts, option)
        if not VOLUME_RE.match(value):
            raise ValueError(f"{option}: '{value}' is not a valid volume name "
                             "(at least 2 of a-z A-Z 0-9 _ . -, starting with a letter or digit)")
    if opts.target_volume == opts.cache_volume:
        raise ValueError("cache_volume: must differ from target_volume; build output and the "
                         "crate download cache need separate volumes")


def validate_scalars(opts: Options) -> None:
    if opts.mode not in MODES:
        raise ValueError(f"mode: '{opts.mode}' is not one of {', '.join(MODES)}")
    if not opts.image or any(c.isspace() for c in opts.image):
        raise ValueError(f"image: '{opts.image}' is not an image reference")
    _check_port(opts.container_port, "container_port")
    _check_port(opts.port_base, "port_base")
    if opts.watch_delay < 0:
        raise ValueError(f"watch_delay: {opts.watch_delay} must be >= 0 seconds")
    if opts.watcher not in WATCHERS:
        raise ValueError(f"watcher: '{opts.watcher}' is not one of {', '.join(WATCHERS)}")
    poll_seconds(opts.poll_interval)
    if not os.path.isabs(opts.state_dir):
        raise ValueError(f"state_dir: '{opts.state_dir}' must be an absolute path on the Docker host")
    _check_globs(opts.watch_ignore, "watch_ignore")
    for key in opts.labels:
        if str(key).startswith(LABEL_PREFIX):
            raise ValueError(f"labels: '{key}' is reserved (keys starting with {LABEL_PREFIX} "
                             "are set by this module); use another prefix")


def _check_globs(globs: t.Sequence[t.Any], option: str) -> t.List[str]:
    for index, glob in enumerate(globs):
        if not isinstance(glob, str) or not glob.strip():
            raise ValueError(f"{option}[{index}]: must be a non-empty glob, e.g. 'crates/proto/src/generated.rs'")
        if glob.startswith("/") or _is_outside_rel(glob):
            raise ValueError(f"{option}[{index}]: '{glob}' must be relative to the project directory")
    return [str(g) for g in globs]


def _is_outside_rel(rel: str) -> bool:
    norm = posixpath.normpath(rel)
    return norm == ".." or norm.startswith("../")


def _check_port(port: t.Any, option: str) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"{option}: port {port} is out of range 1..65535")
    return port


def host_address(value: str, option: str) -> str:
    """An IP address as Docker wants it in a port binding (IPv6 without brackets)."""
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        raise ValueError(f"{option}: '{value}' is not an IP address; use e.g. 127.0.0.1, 0.0.0.0, ::1 or ::") from None


def url_host(address: str) -> str:
    if address in ("0.0.0.0", ""):
        return "127.0.0.1"
    if address == "::":
        return "[::1]"
    return f"[{address}]" if ":" in address else address


def _env(values: t.Mapping[str, t.Any], option: str) -> t.Dict[str, str]:
    """Docker wants strings; YAML gives ints and bools, which we spell like a shell would."""
    result = {}
    for key, value in values.items():
        if not key or "=" in str(key):
            raise ValueError(f"{option}: '{key}' is not a valid environment variable name")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif value is None:
            value = ""
        elif isinstance(value, (dict, list)):
            raise ValueError(f"{option}: value of '{key}' must be a string, number or boolean")
        result[str(key)] = str(value)
    return result


# --------------------------------------------------------------------------
# Per-service settings
# --------------------------------------------------------------------------

def service_settings(overrides: t.Mapping[str, t.Any], names: t.Sequence[str],
                     docker_options: t.Sequence[str]) -> t.Dict[str, Settings]:
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"services: {', '.join(unknown)} not found in the project; "
                         f"valid service names are: {', '.join(names)}")
    settings = {}
    for name in names:
        raw = overrides.get(name) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"services.{name}: must be a dict of settings")
        extra = sorted(set(raw) - set(SERVICE_OPTIONS))
        if extra:
            raise ValueError(f"services.{name}: unknown setting(s) {', '.join(extra)}; "
                             f"valid ones are: {', '.join(SERVICE_OPTIONS)}")
        item = Settings(**{k: v for k, v in raw.items() if v is not None})
        unknown_docker = sorted(set(item.docker) - set(docker_options))
        if unknown_docker:
            raise ValueError(f"services.{name}.docker: unsupported option(s) {', '.join(unknown_docker)}; "
                             f"allowed: {', '.join(docker_options)}")
        if item.kind not in KINDS:
            raise ValueError(f"services.{name}.kind: '{item.kind}' is not one of {', '.join(KINDS)}")
        item.env = _env(item.env, f"services.{name}.env")
        item.args = [str(a) for a in item.args]
        item.watch_ignore = _check_globs(item.watch_ignore, f"services.{name}.watch_ignore")
        if item.port is not None:
            _check_port(item.port, f"services.{name}.port")
        if item.listen is not None:
            item.listen = host_address(str(item.listen).replace("localhost", "127.0.0.1"),
                                       f"services.{name}.listen")
        if item.network_mode is not None and not str(item.network_mode).strip():
            raise ValueError(f"services.{name}.network_mode: must not be empty; omit it instead")
        settings[name] = item
    return settings


def network_target(settings: Settings) -> t.Optional[str]:
    mode = settings.network_mode or ""
    return mode[len("service:"):] if mode.startswith("service:") else None


def check_references(settings: t.Dict[str, Settings], enabled: t.Sequence[str]) -> None:
    for name in enabled:
        refs = [("depends_on", dep) for dep in settings[name].depends_on]
        target = network_target(settings[name])
        if target is not None:
            refs.append(("network_mode", target))
            if settings[name].ports:
                raise ValueError(f"services.{name}.ports: a service with network_mode service:{target} shares "
                                 f"{target}'s network; its port is published on {target}'s container, so drop "
                                 "ports here (set port to the port it listens on)")
        for option, dep in refs:
            if dep == name:
                raise ValueError(f"services.{name}.{option}: a service cannot refer to itself")
            if dep not in settings:
                raise ValueError(f"services.{name}.{option}: '{dep}' is not a service; "
                                 f"valid service names are: {', '.join(sorted(settings))}")
            if dep not in enabled:
                raise ValueError(f"services.{name}.{option}: '{dep}' is disabled; enable it or drop it here")
        if target is not None and network_target(settings[target]) is not None:
            raise ValueError(f"services.{name}.network_mode: service:{target} itself shares another service's "
                             f"network; point it at {network_target(settings[target])} instead")


def start_order(settings: t.Dict[str, Settings], enabled: t.Sequence[str]) -> t.List[str]:
    """Topological order over depends_on and network_mode service:X, ties by name; cycles are refused."""
    state: t.Dict[str, int] = {}  # 1 visiting, 2 done
    order: t.List[str] = []

    def deps(name: str) -> t.List[str]:
        target = network_target(settings[name])
        return sorted(set(settings[name].depends_on) | ({target} if target else set()))

    def visit(name: str, trail: t.List[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join(trail[trail.index(name):] + [name])
            raise ValueError(f"services.{name}.depends_on: dependency cycle {cycle}; break it")
        state[name] = 1
        for dep in deps(name):
            visit(dep, trail + [name])
        state[name] = 2
        order.append(name)

    for name in sorted(enabled):
        visit(name, [])
    return order


def parse_ready(value: t.Any, option: str, port: t.Optional[int]) -> JsonDict:
    """Normalize a readiness setting to {type, port, path, status, pattern}."""
    spec: JsonDict = {"type": "port", "port": port, "path": None, "status": None, "pattern": None}
    if value is None or value == "port":
        pass
    elif isinstance(value, str):
        if value not in READY_TYPES or value in ("http", "log"):
            raise ValueError(f"{option}: '{value}' is not a readiness check; use port, none, healthcheck, "
                             "{http: /path} (any answer counts), {http: /path, status: 200} or {log: 'regex'}")
        spec["type"] = value
    elif isinstance(value, dict):
        keys = set(value)
        if keys <= {"http", "status"} and "http" in keys:
            path = str(value["http"])
            if not path.startswith("/"):
                raise ValueError(f"{option}.http: '{path}' must be a path starting with /, e.g. /version")
            status = value.get("status")
            if status is not None and (isinstance(status, bool) or not str(status).isdigit()
                                       or not 100 <= int(status) <= 599):
                raise ValueError(f"{option}.status: '{status}' is not an HTTP status code (100..599)")
            spec.update(type="http", path=path, status=int(status) if status is not None else None)
        elif keys == {"log"}:
            pattern = str(value["log"])
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{option}.log: '{pattern}' is not a valid regular expression ({exc})") from None
            spec.update(type="log", pattern=pattern)
        else:
            raise ValueError(f"{option}: unknown keys {', '.join(sorted(map(str, keys)))}; use {{http: /path}}, "
                             "{http: /path, status: 200} or {log: 'regex'}")
    else:
        raise ValueError(f"{option}: must be port, none, healthcheck or a dict such as {{http: /version}}")
    if spec["type"] not in ("port", "http"):
        spec["port"] = None
    return spec


# --------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------

@dataclass
class Port:
    ip: str
    host: int
    container: int
    proto: str = "tcp"

    def as_dict(self) -> JsonDict:
        return {"ip": self.ip, "host": self.host, "container": self.container, "proto": self.proto}


def parse_port(value: t.Any, bind_address: str, container_port: int, option: str) -> Port:
    if isinstance(value, int) and not isinstance(value, bool):
        return Port(bind_address, _check_port(value, option), container_port)
    match = PORT_RE.match(str(value))
    if not match:
        raise ValueError(f"{option}: '{value}' is not a port mapping; use HOST, "
                         "'HOST:CONTAINER' or 'IP:HOST:CONTAINER', e.g. '127.0.0.1:8081:8080'")
    container = match.group("container")
    return Port(
        ip=host_address(match.group("ip"), option) if match.group("ip") else bind_address,
        host=_check_port(int(match.group("host")), option),
        container=_check_port(int(container), option) if container else container_port,
        proto=(match.group("proto") or "/tcp")[1:],
    )


def assign_ports(opts: Options, bind_address: str, settings: t.Dict[str, Settings],
                 enabled: t.Sequence[str], container_ports: t.Dict[str, int]) -> t.Dict[str, t.List[Port]]:
    """Host ports per enabled service: explicit ones, else port_base + its index among the enabled services.

    Every enabled service owns its slot, used or not, so that one service's settings never move another's port.
    """
    result: t.Dict[str, t.List[Port]] = {}
    owner: t.Dict[t.Tuple[int, str], str] = {}
    for index, name in enumerate(enabled):
        item = settings[name]
        option = f"services.{name}.ports"
        if item.kind == "tool" or (item.network_mode and item.network_mode != "host"
                                   and network_target(item) is None):
            ports = [parse_port(p, bind_address, container_ports[name], option) for p in item.ports or []]
        elif item.ports is None:
            option = f"port_base (service '{name}' gets port_base + {index})"
            ports = [Port(bind_address, _check_port(opts.port_base + index, option), container_ports[name])]
        else:
            ports = [parse_port(p, bind_address, container_ports[name], option) for p in item.ports]
        for port in ports:
            key = (port.host, port.proto)
            if key in owner:
                raise ValueError(f"{option}: host port {port.host} is already used by service "
                                 f"'{owner[key]}'; choose another port or change port_base")
            owner[key] = name
        result[name] = ports
    return result


# --------------------------------------------------------------------------
# Mounts
# --------------------------------------------------------------------------

def _mount(kind: str, source: t.Optional[str], target: str, read_only: bool = False) -> JsonDict:
    return {"type": kind, "source": source, "target": target, "read_only": read_only}


def extra_mounts(name: str, mounts: t.Sequence[JsonDict], root: str,
                 taken: t.Sequence[str]) -> t.List[JsonDict]:
    result = []
    targets = list(taken)
    for index, mount in enumerate(mounts):
        option = f"services.{name}.mounts[{index}]"
        kind = mount.get("type") or "bind"
        if kind not in MOUNT_TYPES:
            raise ValueError(f"{option}.type: '{kind}' is not one of {', '.join(MOUNT_TYPES)}")
        target = _container_path(mount.get("target") or "", f"{option}.target")
        source = _mount_source(mount.get("source"), kind, root, option)
        for value, field_name in ((source, "source"), (target, "target")):
            if value is not None and posixpath.normpath(value) in ("/",) + DOCKER_SOCKETS:
                raise ValueError(f"{option}.{field_name}: mounting {value} into a dev container "
                                 "would hand it control of the host; mount something narrower")
        if target in targets:
            raise ValueError(f"{option}.target: {target} is already a mount target; pick another path")
        targets.append(target)
        result.append(_mount(kind, source, target, bool(mount.get("read_only"))))
    return result


def _mount_source(source: t.Optional[str], kind: str, root: str, option: str) -> t.Optional[str]:
    if kind == "tmpfs":
        if source:
            raise ValueError(f"{option}.source: a tmpfs mount has no source; drop it")
        return None
    if not source:
        raise ValueError(f"{option}.source: required for a {kind} mount")
    if kind == "bind" and not source.startswith("/"):
        # Relative bind sources are relative to the project, like the source mount.
        return os.path.normpath(os.path.join(root, source))
    return source


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------

def watch_paths(paths: t.Iterable[str], source_dir: str, roots: t.Sequence[str]) -> t.List[str]:
    """Container paths to watch: the given dirs plus each root's Cargo.toml and Cargo.lock; none nested."""
    wanted = {posixpath.normpath(p) for p in paths}
    for root in roots:
        base = posixpath.normpath(posixpath.join(source_dir, root))
        wanted.add(posixpath.join(base, "Cargo.toml"))
        # The lock file exists (committed, or generated before any container starts).
        wanted.add(posixpath.join(base, "Cargo.lock"))
    result: t.List[str] = []
    for path in sorted(wanted, key=lambda p: (p.count("/"), p)):
        if not any(_is_within(path, kept) for kept in result):
            result.append(path)
    return sorted(result)


def _delay(seconds: float) -> str:
    return format(float(seconds), "g")


DURATION_RE = re.compile(r"^(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s)?$")
POLL_LIMITS = (0.05, 60.0)


def poll_seconds(value: t.Any) -> float:
    """``500ms``, ``2s`` or a number of seconds."""
    match = None if isinstance(value, bool) else DURATION_RE.match(str(value).strip())
    seconds = float(match.group("number")) / (1000 if match.group("unit") == "ms" else 1) if match else -1.0
    if not POLL_LIMITS[0] <= seconds <= POLL_LIMITS[1]:
        raise ValueError(f"poll_interval: '{value}' is not a polling interval; use 50ms to 60s, e.g. 500ms or 2s")
    return seconds


def watch_command(watcher: str, delay: float, paths: t.Sequence[str], ignore: t.Sequence[str],
                  shell: str, origin: str) -> t.List[str]:
    """The watcher's argv: a build (the ``sh -c`` text ``shell``) at start and after each change.

    ``paths`` and the ``ignore`` globs are absolute, under ``origin`` (the project's directory).
    """
    if watcher == "watchexec":
        # cargo-watch's behaviour: a change during a build restarts the build; no event list in the environment.
        # watchexec anchors a glob starting with / at the project origin, not at the file system's root.
        command = ["watchexec", "--debounce", f"{round(delay * 1000)}ms", "--on-busy-update", "restart",
                   "--emit-events-to", "none", "--shell", "sh", "--project-origin", origin]
        ignore = [glob[len(origin):] for glob in ignore]
    else:
        command = ["cargo", "watch", "--delay", _delay(delay)]
    for path in paths:
        command += ["-w", path]
    for glob in ignore:
        command += ["-i", glob]
    return command + ([shell] if watcher == "watchexec" else ["-s", shell])


def mirrored(path: str, source_dir: str, mirror: str) -> str:
    return mirror + path[len(source_dir):]


def manifest(source_dir: str, root: str) -> str:
    return posixpath.normpath(posixpath.join(source_dir, root, "Cargo.toml"))


def build_command(service: ws.Service, source_dir: str, cargo_args: t.Sequence[str],
                  batch_dir: t.Optional[str]) -> t.List[str]:
    """A per_service watcher's build. With ``batch_dir``, cargohold-build --batch: one cargo builds this
    selection with those of the other watchers that the same edit woke (features named with their package, as a
    build of several packages needs)."""
    selection = ["-p", service.package, "--bin", service.name]
    if service.required_features:
        selection += ["--features", ",".join(f"{service.package}/{f}" for f in service.required_features)]
    build = ["build", "--manifest-path", manifest(source_dir, service.root)]
    if batch_dir is None:
        return ["cargohold-build", *build, *selection, *cargo_args]
    return ["cargohold-build", "--batch", batch_dir, *selection, "--", *build, *cargo_args]


def batch_queue(target_dir: str, root: str) -> str:
    """The queue of cargohold-build --batch for a Cargo root: its builds share the manifest and the cargo args."""
    return posixpath.normpath(posixpath.join(target_dir, BATCH_DIR, root))


def builder_build(services: t.Sequence[ws.Service], source_dir: str, roots: t.Sequence[str],
                  cargo_args: t.Sequence[str]) -> t.List[str]:
    """One `cargo build --workspace --bins` per root, chained: the builder's outcome is the first failure."""
    command: t.List[str] = []
    for root in roots:
        features = sorted({f"{s.package}/{f}" for s in services if s.root == root for f in s.required_features})
        step = ["cargohold-build", "build", "--manifest-path", manifest(source_dir, root), "--workspace", "--bins"]
        if features:
            step += ["--features", ",".join(features)]
        command += (["&&"] if command else []) + step + list(cargo_args)
    return command


def artifact_dir(target_dir: str, cargo_args: t.Sequence[str]) -> str:
    """Where cargo puts binaries for these args: <target>[/<triple>]/<profile dir>."""
    profile, triple = "debug", None
    args = list(cargo_args)
    for index, arg in enumerate(args):
        following = args[index + 1] if index + 1 < len(args) else None
        if arg in ("--release", "-r"):
            profile = "release"
        elif arg == "--profile" and following:
            profile = following
        elif arg.startswith("--profile="):
            profile = arg.split("=", 1)[1]
        elif arg == "--target" and following:
            triple = following
        elif arg.startswith("--target="):
            triple = arg.split("=", 1)[1]
    if profile == "dev":
        profile = "debug"
    if profile == "bench":
        profile = "release"
    parts = [target_dir] + ([triple] if triple else []) + [profile]
    return posixpath.join(*parts)


# --------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------

def render(project_dir: str, roots: t.Sequence[ws.Root], params: t.Mapping[str, t.Any],
           docker_options: t.Sequence[str] = ()) -> JsonDict:
    """The whole dev stack for validated Cargo roots and options (the module result, without ``changed``)."""
    opts = Options.from_params(params)
    validate_scalars(opts)
    validate_user(opts.user)
    validate_volumes(opts)
    dirs = validate_dirs(opts)
    project = validate_project(opts.project or default_project(project_dir), opts.project is None)
    network = opts.network or stack_names(project)["network"]
    bind_address = host_address(str(opts.bind_address), "bind_address")
    global_env = _env(opts.env, "env")
    default_ready = parse_ready(opts.ready, "ready", None)
    ws.check_locked(roots, opts.cargo_args)

    services = ws.discover_services(roots)
    names = [s.name for s in services]
    settings = service_settings(opts.services, names, docker_options)
    enabled = [n for n in names if settings[n].enabled]
    if not enabled:
        raise ValueError("services: every service has enabled: false; leave at least one enabled")
    owners: t.Dict[str, str] = {}
    for name in names:
        _check_container_name(project, name)
        other = owners.setdefault(container_name(project, name), name)
        if other != name:
            raise ValueError(f"services: '{other}' and '{name}' both give container name "
                             f"'{container_name(project, name)}'; rename one binary with a [[bin]] section or set "
                             "project")
    if opts.mode == "shared_builder" and container_name(project, "builder") in {
            container_name(project, n) for n in enabled}:
        raise ValueError(f"services: in mode shared_builder a service named 'builder' clashes with the "
                         f"builder container {project}-builder; rename the binary or use mode per_service")
    if opts.mode == "per_service" and opts.poll and container_name(project, "poller") in {
            container_name(project, n) for n in enabled}:
        raise ValueError(f"services: with poll in mode per_service a service named 'poller' clashes with the "
                         f"poller container {project}-poller; rename the binary or use mode shared_builder")
    check_references(settings, enabled)
    order = start_order(settings, enabled)
    container_ports = {n: settings[n].port or opts.container_port for n in enabled}
    ports = assign_ports(opts, bind_address, settings, enabled, container_ports)
    for name in enabled:
        # On the host's network a service listens on its host port itself.
        if settings[name].network_mode == "host" and settings[name].port is None and ports[name]:
            container_ports[name] = ports[name][0].host
            ports[name] = [Port(p.ip, p.host, p.host, p.proto) for p in ports[name]]
    _check_shared_ports(settings, enabled, container_ports)

    ctx = _Context(opts, project_dir, [r.rel for r in roots], project, network, dirs, global_env, default_ready)
    by_name = {s.name: s for s in services}
    rendered = {n: ctx.service(by_name[n], settings[n], ports[n], container_ports[n]) for n in enabled}
    # A service sharing another's network namespace is reached through that container's published ports.
    for name in enabled:
        target = network_target(settings[name])
        if target is not None:
            shared = rendered[target]["container"]
            shared["published_ports"] = shared["published_ports"] + [p.as_dict() for p in ports[name]]
            rendered[name]["address"] = _address(ports[name])
    builder = poller = None
    if opts.mode == "shared_builder":
        builder = ctx.builder([by_name[n] for n in enabled], [w for n in enabled for w in rendered[n]["watch"]])
    elif opts.poll:
        poller = ctx.poller([w for n in enabled for w in rendered[n]["watch"]])
    containers = [c for c in (builder, poller) if c] + [rendered[n]["container"] for n in order]
    return {
        "project": project,
        "project_dir": project_dir,
        "workspace_root": project_dir,
        "roots": [{"path": r.rel, "lockfile": r.has_lockfile} for r in roots],
        "lockfiles_missing": [r.rel for r in roots if not r.has_lockfile],
        "network": network,
        "volumes": {"target": opts.target_volume, "cache": opts.cache_volume},
        "state_dir": opts.state_dir,
        "image": opts.image,
        "user": opts.user,
        "mode": opts.mode,
        "all_services": names,
        "disabled": [n for n in names if n not in enabled],
        "order": order,
        "services": [rendered[n] for n in sorted(enabled)],
        "builder": builder,
        "containers": containers,
    }


def _check_shared_ports(settings: t.Dict[str, Settings], enabled: t.Sequence[str],
                        container_ports: t.Dict[str, int]) -> None:
    """Services in one network namespace (service:X sharing, or the host's) cannot listen on one port."""
    groups: t.Dict[str, t.List[str]] = {}
    for name in enabled:
        if settings[name].kind == "tool":
            continue
        target = network_target(settings[name])
        group = target or ("host" if settings[name].network_mode == "host" else name)
        groups.setdefault(group, []).append(name)
    for group, members in groups.items():
        seen: t.Dict[int, str] = {}
        for name in sorted(members, key=lambda n: n != group):  # the namespace's owner first
            other = seen.setdefault(container_ports[name], name)
            if other != name:
                raise ValueError(
                    f"services.{name}.port: {name} and {other} share a network namespace and would both listen "
                    f"on port {container_ports[name]}; set port (and the service's own listen flag or PORT) to "
                    "a different one")


def _check_container_name(project: str, name: str) -> None:
    container = container_name(project, name)
    if not SERVICE_RE.match(name) or len(container) > MAX_CONTAINER_NAME:
        raise ValueError(
            f"services: '{name}' gives container name '{container}', which is not valid "
            f"(a-z A-Z 0-9 _ . -, at most {MAX_CONTAINER_NAME} characters); rename the binary "
            "with a [[bin]] section or shorten project")


def _address(ports: t.Sequence[Port]) -> t.Optional[str]:
    if not ports:
        return None
    return f"{url_host(ports[0].ip)}:{ports[0].host}"


@dataclass
class _Context:
    opts: Options
    project_dir: str
    roots: t.List[str]
    project: str
    network: str
    dirs: t.Tuple[str, str, str]
    global_env: t.Dict[str, str]
    default_ready: JsonDict

    def service(self, service: ws.Service, settings: Settings, ports: t.List[Port], port: int) -> JsonDict:
        source, target, _cache = self.dirs
        option = f"services.{service.name}"
        watch = watch_paths([posixpath.join(source, d) for d in service.local_dirs], source, [service.root])
        # cargo-watch matches a relative glob as a suffix anywhere; anchored at the project it means what it says.
        ignore = [posixpath.join(source, g) for g in list(self.opts.watch_ignore) + settings.watch_ignore]
        if settings.kind == "tool":
            ready = parse_ready("none", f"{option}.ready", None)
        elif settings.ready is not None:
            ready = parse_ready(settings.ready, f"{option}.ready", port)
        else:
            ready = dict(self.default_ready, port=port if self.default_ready["type"] in ("port", "http") else None)
        if ready["type"] == "healthcheck" and "healthcheck" not in settings.docker:
            raise ValueError(f"{option}.ready: healthcheck needs docker.healthcheck with a test; set one or "
                             "use ready: port")
        state = posixpath.join(STATE_MOUNT, service.name)
        binary = posixpath.join(artifact_dir(target, self.opts.cargo_args), service.name)
        env = {
            "CARGO_TARGET_DIR": target, "PORT": str(port), "SERVICE_NAME": service.name,
            "CARGOHOLD_BIN": binary, "CARGOHOLD_STATE": state, "CARGOHOLD_KIND": settings.kind,
            "CARGOHOLD_READY": ready["type"] if ready["type"] != "healthcheck" else "none",
        }
        for key, value in (("PORT", ready["port"]), ("PATH", ready["path"]), ("STATUS", ready["status"]),
                           ("LOG", ready["pattern"])):
            if value is not None:
                env[f"CARGOHOLD_READY_{key}"] = str(value)
        if settings.listen in ("127.0.0.1", "::1"):
            env["CARGOHOLD_FORWARD"] = settings.listen
            env.setdefault("CARGOHOLD_READY_PORT", str(port))
        if self.opts.mode == "per_service":
            env["CARGOHOLD_BUILD_STATE"] = state
            env["CARGOHOLD_OWN_BUILD"] = "1"
            watcher = self.watcher(watch, ignore, shlex.join(build_command(
                service, source, self.opts.cargo_args,
                batch_queue(target, service.root) if self.opts.batch_builds else None)))
        else:
            env["CARGOHOLD_BUILD_STATE"] = posixpath.join(STATE_MOUNT, "builder")
            watcher = []
        env.update(self.global_env)
        env.update(settings.env)
        container = self._container(
            name=container_name(self.project, service.name), role="service", service=service.name,
            command=["cargohold-run", *watcher, "--", *settings.args], env=env,
            working_dir=self._working_dir(service, settings.working_dir),
        )
        container["mounts"] += extra_mounts(service.name, settings.mounts, self.project_dir,
                                            [m["target"] for m in container["mounts"]])
        target_service = network_target(settings)
        if target_service is not None:
            container["network_mode"] = "container:" + container_name(self.project, target_service)
            container["networks"] = []
            container["sysctls"] = {}
            published: t.List[JsonDict] = []
        elif settings.network_mode is not None:
            container["network_mode"] = settings.network_mode
            container["networks"] = []
            container["sysctls"] = {}
            published = [] if settings.network_mode == "host" else [p.as_dict() for p in ports]
        else:
            published = [p.as_dict() for p in ports]
        container["published_ports"] = published
        container["extra"] = dict(settings.docker)
        address = _address(ports)
        url = None
        if address and ready["type"] == "http":
            url = f"http://{address}{ready['path']}"
        return {
            "name": service.name,
            "kind": settings.kind,
            "package": service.package,
            "bin": service.name,
            "root": service.root,
            "package_dir": service.package_dir,
            "local_dirs": list(service.local_dirs),
            "required_features": list(service.required_features),
            "watch": watch,
            "watch_ignore": ignore,
            "port": port if settings.kind == "service" else None,
            "address": address,
            "url": url,
            "ready": ready,
            "depends_on": sorted(settings.depends_on),
            "network_target": target_service,
            "state_dir": posixpath.join(self.opts.state_dir, service.name),
            "container": container,
        }

    def builder(self, services: t.Sequence[ws.Service], watch: t.Sequence[str]) -> JsonDict:
        source, target, _cache = self.dirs
        paths = watch_paths(watch, source, self.roots)
        roots = sorted({s.root for s in services})
        env = {"CARGO_TARGET_DIR": target, "CARGOHOLD_BUILD_STATE": posixpath.join(STATE_MOUNT, "builder")}
        env.update(self.global_env)
        build = builder_build(services, source, roots, self.opts.cargo_args)
        shell = " ".join(part if part == "&&" else shlex.quote(part) for part in build)
        # The only watcher of the project also hosts the poller.
        command = self.watcher(paths, [posixpath.join(source, g) for g in self.opts.watch_ignore], shell, scan=paths)
        container = self._container(
            name=f"{self.project}-builder", role="builder", service=None,
            command=command, env=env, working_dir=source,
        )
        container["published_ports"] = []
        container["extra"] = {}
        return container

    def poller(self, watch: t.Sequence[str]) -> JsonDict:
        """In mode per_service, one container polls for every service's watcher."""
        source = self.dirs[0]
        container = self._container(
            name=f"{self.project}-poller", role="poller", service=None,
            command=self.poll_args(watch_paths(watch, source, self.roots)), env={}, working_dir=source,
        )
        container["published_ports"] = []
        container["extra"] = {}
        return container

    def mirror(self) -> str:
        return posixpath.join(self.dirs[2], "cargohold-poll", self.project)

    def watcher(self, paths: t.Sequence[str], ignore: t.Sequence[str], shell: str,
                scan: t.Sequence[str] = ()) -> t.List[str]:
        """The watcher's argv. Polling, it watches the mirror the poller keeps on the cache volume (where inotify
        works), with its ignore globs moved there; with ``scan``, it runs the poller itself too."""
        source = self.dirs[0]
        if not self.opts.poll:
            return watch_command(self.opts.watcher, self.opts.watch_delay, paths, ignore, shell, source)
        mirror = self.mirror()
        return self.poll_args(scan) + watch_command(
            self.opts.watcher, self.opts.watch_delay, [mirrored(p, source, mirror) for p in paths],
            [mirrored(g, source, mirror) for g in ignore], shell, mirror)

    def poll_args(self, scan: t.Sequence[str]) -> t.List[str]:
        source = self.dirs[0]
        command = ["cargohold-poll", "--source", source, "--mirror", self.mirror()]
        if scan:
            command += ["--interval", _delay(poll_seconds(self.opts.poll_interval))]
            for path in scan:
                command += ["--scan", path]
            # A target dir of builds on the host: thousands of files no watcher looks at.
            for root in self.roots:
                command += ["--prune", posixpath.normpath(posixpath.join(source, root, "target"))]
        return command

    def _working_dir(self, service: ws.Service, working_dir: t.Optional[str]) -> str:
        source = self.dirs[0]
        if not working_dir:
            return posixpath.normpath(posixpath.join(source, service.root))
        return posixpath.normpath(posixpath.join(source, working_dir))

    def _container(self, name: str, role: str, service: t.Optional[str], command: t.List[str],
                   env: t.Dict[str, str], working_dir: str) -> JsonDict:
        labels = {
            "io.cargohold.project": self.project,
            "io.cargohold.role": role,
            "io.cargohold.mode": self.opts.mode,
        }
        if service is not None:
            labels["io.cargohold.service"] = service
        labels.update({str(k): str(v) for k, v in self.opts.labels.items()})
        source, target, cache = self.dirs
        return {
            "name": name,
            "image": self.opts.image,
            "command": command,
            "env": env,
            "working_dir": working_dir,
            "user": self.opts.user,
            "init": True,
            "mounts": [
                _mount("bind", self.project_dir, source),
                _mount("volume", self.opts.target_volume, target),
                _mount("volume", self.opts.cache_volume, cache),
                _mount("bind", self.opts.state_dir, STATE_MOUNT),
            ],
            "networks": [{"name": self.network, "aliases": [service] if service else []}],
            "network_mode": None,
            "sysctls": dict(IPV6_LOOPBACK_SYSCTL),
            "labels": labels,
            "stop_signal": "SIGINT",
            "stop_timeout": 3,
            "restart_policy": "unless-stopped",
        }


def to_json(result: JsonDict) -> str:
    """The text written to ``dest``: stable so unchanged input means unchanged file.

    Whether a root still lacks its Cargo.lock is left out: the role generates it before anything starts, so it
    describes this run, not the stack, and would make the second run differ from the first.
    """
    recorded = dict(result, roots=[{"path": r["path"]} for r in result.get("roots", [])])
    recorded.pop("lockfiles_missing", None)
    return json.dumps(recorded, sort_keys=True, indent=2) + "\n"
