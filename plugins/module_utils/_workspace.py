# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Turn a Cargo workspace (as ``cargo metadata`` sees it) into container definitions.

Private to this collection: no compatibility guarantees. Pure logic only: it
never imports AnsibleModule and reports problems by raising ``ValueError``
with a message that names the offending field and how to fix it.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import typing as t
from dataclasses import dataclass, field

try:
    import tomllib
except ImportError:  # Python < 3.11 on the managed host
    tomllib = None  # type: ignore[assignment]


MODES = ("per_service", "shared_builder")

ALLOWED_DOCKER_OPTIONS = (
    "cap_add", "cap_drop", "cpus", "memory", "memory_reservation", "shm_size",
    "ulimits", "devices", "dns_servers", "etc_hosts", "tmpfs", "security_opts",
    "sysctls", "healthcheck", "log_driver", "log_options", "hostname",
    "privileged", "groups",
)

DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
MOUNT_TYPES = ("bind", "volume", "tmpfs")
LABEL_PREFIX = "io.cargohold."

PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
SERVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
VOLUME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]+$")
USER_RE = re.compile(r"^(\d+):(\d+)$")
PORT_RE = re.compile(
    r"^(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:]+\]):)?(?P<host>\d+)(?::(?P<container>\d+))?(?P<proto>/(?:tcp|udp))?$"
)
# Docker caps container names far above this, but DNS labels (the container
# name is the host name on the project network) stop at 63.
MAX_CONTAINER_NAME = 63

JsonDict = t.Dict[str, t.Any]


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
    env: JsonDict = field(default_factory=dict)
    labels: JsonDict = field(default_factory=dict)
    services: t.Dict[str, JsonDict] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any]) -> "Options":
        known = cls.__dataclass_fields__  # pylint: disable=no-member
        for required in ("image", "user", "target_volume", "cache_volume"):
            if not params.get(required):
                raise ValueError(f"{required}: is required")
        return cls(**{k: v for k, v in params.items() if k in known and v is not None})


@dataclass
class Workspace:
    """What the module learnt about the workspace directory on the managed host."""

    root: str
    has_lockfile: bool


@dataclass
class Service:
    """One binary target of a workspace member, as cargo sees it."""

    name: str
    package: str
    package_id: str
    package_dir: str  # relative to the workspace root, '.' for a root package
    required_features: t.List[str]
    local_dirs: t.List[str] = field(default_factory=list)  # package_dir + path deps


# --------------------------------------------------------------------------
# The workspace directory and cargo
# --------------------------------------------------------------------------

def inspect_workspace(path: str) -> Workspace:
    """Check ``path`` is a workspace root before asking cargo anything."""
    if not os.path.exists(path):
        raise ValueError(f"path: {path} does not exist; point it at the Cargo workspace root")
    if not os.path.isdir(path):
        raise ValueError(f"path: {path} is not a directory; point it at the Cargo workspace root")
    manifest = os.path.join(path, "Cargo.toml")
    if not os.path.isfile(manifest):
        raise ValueError(f"path: {path} has no Cargo.toml; point it at the Cargo workspace root")
    with open(manifest, encoding="utf-8") as handle:
        declares = declares_workspace(handle.read())
    if declares is False:
        raise ValueError(
            f"path: {manifest} has no [workspace] table, so {path} is not a workspace root; "
            "point path at the directory whose Cargo.toml has [workspace] "
            "(a single-package project can add an empty [workspace] table)"
        )
    return Workspace(root=path, has_lockfile=os.path.isfile(os.path.join(path, "Cargo.lock")))


def declares_workspace(manifest_text: str) -> t.Optional[bool]:
    """Whether a Cargo.toml has a [workspace] table; None if it is not valid TOML.

    Invalid TOML is left to cargo, whose error message is the useful one.
    """
    if tomllib is not None:
        try:
            return "workspace" in tomllib.loads(manifest_text)
        except tomllib.TOMLDecodeError:
            return None
    return bool(re.search(r"^\s*\[\s*workspace\s*[\].]", manifest_text, re.MULTILINE))


def find_cargo(cargo: str, home: t.Optional[str] = None) -> t.Optional[str]:
    """Resolve the cargo executable: as given if it has a '/', else PATH, else ~/.cargo/bin."""
    if "/" in cargo:
        return cargo if os.access(cargo, os.X_OK) else None
    found = shutil.which(cargo)
    if found:
        return found
    candidate = os.path.join(home or os.path.expanduser("~"), ".cargo", "bin", cargo)
    return candidate if os.access(candidate, os.X_OK) else None


def metadata_command(cargo: str, root: str) -> t.List[str]:
    return [cargo, "metadata", "--format-version", "1", "--no-deps",
            "--manifest-path", os.path.join(root, "Cargo.toml")]


def cargo_failure(root: str, rc: int, stderr: str) -> str:
    detail = (stderr or "").strip() or f"exit code {rc}"
    return (f"path: cargo metadata failed for {os.path.join(root, 'Cargo.toml')}: {detail}\n"
            "Fix Cargo.toml (run `cargo metadata --no-deps` in the workspace to reproduce).")


def parse_metadata(raw: t.Any) -> JsonDict:
    """Accept the JSON of ``cargo metadata`` as text or as an already decoded dict."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"metadata: not valid JSON ({exc}); pass the output of "
                             "`cargo metadata --format-version 1 --no-deps`") from exc
    if not isinstance(raw, dict):
        raise ValueError("metadata: expected a JSON object from "
                         "`cargo metadata --format-version 1 --no-deps`")
    missing = [k for k in ("packages", "workspace_members", "workspace_root") if k not in raw]
    if missing:
        raise ValueError(f"metadata: missing {', '.join(missing)}; pass the output of "
                         "`cargo metadata --format-version 1 --no-deps`")
    return raw


def check_workspace_root(metadata: JsonDict, root: str, ran_cargo: bool,
                         isfile: t.Callable[[str], bool] = os.path.isfile) -> None:
    """Make sure the metadata describes the workspace rooted at ``root``.

    Metadata collected elsewhere (inside a container) legitimately carries a
    different root; it is accepted when every member's Cargo.toml exists at
    the same relative place under ``root``.
    """
    meta_root = metadata["workspace_root"]
    if _same_dir(meta_root, root):
        return
    if ran_cargo:
        raise ValueError(
            f"path: {root} is a member of the workspace at {meta_root}, not a workspace root; "
            f"set path to {meta_root} or give {root}/Cargo.toml its own [workspace] table")
    packages = _packages_by_id(metadata)
    missing = []
    for member in metadata["workspace_members"]:
        rel = posixpath.relpath(packages[member]["manifest_path"], meta_root)
        if rel.startswith("..") or not isfile(os.path.join(root, *rel.split("/"))):
            missing.append(rel)
    if missing:
        raise ValueError(
            f"metadata: describes the workspace at {meta_root}, but {', '.join(sorted(missing))} "
            f"do not exist under path {root}; collect metadata from the same workspace")


def _same_dir(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


# --------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------

def _packages_by_id(metadata: JsonDict) -> t.Dict[str, JsonDict]:
    packages = {p["id"]: p for p in metadata["packages"]}
    unknown = [m for m in metadata["workspace_members"] if m not in packages]
    if unknown:
        raise ValueError(f"metadata: workspace_members {unknown} have no entry in packages")
    return packages


def _rel(path: str, root: str) -> str:
    return posixpath.normpath(posixpath.relpath(posixpath.normpath(path), posixpath.normpath(root)))


def _is_outside(rel: str) -> bool:
    return rel == ".." or rel.startswith("../")


def discover_services(metadata: JsonDict) -> t.List[Service]:
    """Every binary target of every workspace member, sorted by name."""
    root = metadata["workspace_root"]
    packages = _packages_by_id(metadata)
    by_name: t.Dict[str, Service] = {}
    for member in metadata["workspace_members"]:
        package = packages[member]
        package_dir = _rel(posixpath.dirname(package["manifest_path"]), root)
        for target in package.get("targets", []):
            if "bin" not in target.get("kind", []):
                continue
            service = Service(
                name=target["name"], package=package["name"], package_id=member,
                package_dir=package_dir,
                required_features=list(target.get("required-features") or []),
            )
            _add_unique(by_name, service)
    if not by_name:
        raise ValueError(
            f"path: the workspace at {root} has no binary target in any member; "
            "add a member with src/main.rs or a [[bin]] section")
    _attach_local_dirs(by_name, metadata, packages)
    return [by_name[name] for name in sorted(by_name)]


def _add_unique(by_name: t.Dict[str, Service], service: Service) -> None:
    other = by_name.get(service.name)
    if other is not None:
        raise ValueError(
            f"services: binary '{service.name}' is built by both package '{other.package}' "
            f"and package '{service.package}'; service names must be unique, so rename one "
            f"with a [[bin]] section, e.g. name = \"{service.package}-{service.name}\"")
    by_name[service.name] = service


def _attach_local_dirs(by_name: t.Dict[str, Service], metadata: JsonDict,
                       packages: t.Dict[str, JsonDict]) -> None:
    """Package dir + transitive path dependencies (build and normal, not dev)."""
    root = metadata["workspace_root"]
    by_dir = {_rel(posixpath.dirname(p["manifest_path"]), root): p for p in packages.values()}
    for service in by_name.values():
        seen: t.List[str] = []
        pending = [service.package_dir]
        while pending:
            rel = pending.pop()
            if rel in seen:
                continue
            seen.append(rel)
            package = by_dir.get(rel)
            if package is None:  # a path dependency cargo --no-deps does not describe
                continue
            for dep in package.get("dependencies", []):
                if not dep.get("path") or dep.get("kind") == "dev":
                    continue
                dep_rel = _rel(dep["path"], root)
                if _is_outside(dep_rel):
                    raise ValueError(
                        f"services: service '{service.name}' depends (via package "
                        f"'{package['name']}') on '{dep['name']}' at {dep['path']}, outside the "
                        f"workspace root {root}; only the workspace root is mounted into the "
                        "container, so move that crate into the workspace (or vendor it)")
                pending.append(dep_rel)
        service.local_dirs = sorted(seen)
    _check_non_service_path_deps(metadata, packages)


def _check_non_service_path_deps(metadata: JsonDict, packages: t.Dict[str, JsonDict]) -> None:
    # cargo loads every member to resolve the workspace, so a library nobody
    # uses that points outside the root still breaks every build in a container.
    root = metadata["workspace_root"]
    for member in metadata["workspace_members"]:
        for dep in packages[member].get("dependencies", []):
            if dep.get("path") and dep.get("kind") != "dev" and _is_outside(_rel(dep["path"], root)):
                raise ValueError(
                    f"services: package '{packages[member]['name']}' depends on '{dep['name']}' at "
                    f"{dep['path']}, outside the workspace root {root}; cargo in the container "
                    "cannot load it, so move that crate into the workspace (or vendor it)")


# --------------------------------------------------------------------------
# Validation of options
# --------------------------------------------------------------------------

def default_project(root: str) -> str:
    name = re.sub(r"[^a-z0-9_.-]", "-", os.path.basename(os.path.normpath(root)).lower())
    return re.sub(r"^[^a-z0-9]+", "", name)


def validate_project(project: str, from_default: bool) -> str:
    if PROJECT_RE.match(project):
        return project
    hint = ("the workspace directory name does not give a usable one, so set project"
            if from_default else "use 1-63 of a-z 0-9 _ . - starting with a letter or digit")
    raise ValueError(f"project: '{project}' is not a valid container name prefix; {hint}")


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
    for key in opts.labels:
        if str(key).startswith(LABEL_PREFIX):
            raise ValueError(f"labels: '{key}' is reserved (keys starting with {LABEL_PREFIX} "
                             "are set by this module); use another prefix")


def _check_port(port: t.Any, option: str) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"{option}: port {port} is out of range 1..65535")
    return port


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

@dataclass
class Settings:
    """One service's override, normalized."""

    enabled: bool = True
    args: t.List[str] = field(default_factory=list)
    env: t.Dict[str, str] = field(default_factory=dict)
    working_dir: t.Optional[str] = None
    ports: t.Optional[t.List[t.Any]] = None  # None: auto-assign; []: publish nothing
    network_mode: t.Optional[str] = None
    mounts: t.List[JsonDict] = field(default_factory=list)
    depends_on: t.List[str] = field(default_factory=list)
    docker: JsonDict = field(default_factory=dict)


SETTING_KEYS = tuple(Settings.__dataclass_fields__)  # pylint: disable=no-member


def service_settings(overrides: t.Mapping[str, t.Any], names: t.Sequence[str]) -> t.Dict[str, Settings]:
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"services: {', '.join(unknown)} not found in the workspace; "
                         f"valid service names are: {', '.join(names)}")
    settings = {}
    for name in names:
        raw = overrides.get(name) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"services.{name}: must be a dict of settings")
        extra = sorted(set(raw) - set(SETTING_KEYS))
        if extra:
            raise ValueError(f"services.{name}: unknown setting(s) {', '.join(extra)}; "
                             f"valid ones are: {', '.join(SETTING_KEYS)}")
        settings[name] = Settings(**{k: v for k, v in raw.items() if v is not None})
        _check_docker_options(name, settings[name].docker)
        settings[name].env = _env(settings[name].env, f"services.{name}.env")
        settings[name].args = [str(a) for a in settings[name].args]
    return settings


def _check_docker_options(name: str, docker: JsonDict) -> None:
    unknown = sorted(set(docker) - set(ALLOWED_DOCKER_OPTIONS))
    if unknown:
        raise ValueError(f"services.{name}.docker: unsupported option(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(ALLOWED_DOCKER_OPTIONS)}")


def check_depends_on(settings: t.Dict[str, Settings], enabled: t.Sequence[str]) -> None:
    for name in enabled:
        for dep in settings[name].depends_on:
            if dep == name:
                raise ValueError(f"services.{name}.depends_on: a service cannot depend on itself")
            if dep not in settings:
                raise ValueError(f"services.{name}.depends_on: '{dep}' is not a service; "
                                 f"valid service names are: {', '.join(sorted(settings))}")
            if dep not in enabled:
                raise ValueError(f"services.{name}.depends_on: '{dep}' is disabled; "
                                 f"enable it or drop it from depends_on")
    _check_cycles(settings, enabled)


def _check_cycles(settings: t.Dict[str, Settings], enabled: t.Sequence[str]) -> None:
    state: t.Dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, trail: t.List[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join(trail[trail.index(name):] + [name])
            raise ValueError(f"services.{name}.depends_on: dependency cycle {cycle}; break it")
        state[name] = 1
        for dep in settings[name].depends_on:
            visit(dep, trail + [name])
        state[name] = 2

    for name in enabled:
        visit(name, [])


# --------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------

@dataclass
class Port:
    ip: str
    host: int
    container: int
    proto: str = ""

    def spec(self) -> str:
        return f"{self.ip}:{self.host}:{self.container}{self.proto}"


def parse_port(value: t.Any, bind_address: str, container_port: int, option: str) -> Port:
    if isinstance(value, int) and not isinstance(value, bool):
        return Port(bind_address, _check_port(value, option), container_port)
    match = PORT_RE.match(str(value))
    if not match:
        raise ValueError(f"{option}: '{value}' is not a port mapping; use HOST, "
                         "'HOST:CONTAINER' or 'IP:HOST:CONTAINER', e.g. '127.0.0.1:8081:8080'")
    container = match.group("container")
    return Port(
        ip=match.group("ip") or bind_address,
        host=_check_port(int(match.group("host")), option),
        container=_check_port(int(container), option) if container else container_port,
        proto=match.group("proto") or "",
    )


def assign_ports(opts: Options, settings: t.Dict[str, Settings],
                 enabled: t.Sequence[str]) -> t.Dict[str, t.List[Port]]:
    """Host ports per enabled service: explicit ones, else port_base + index."""
    result: t.Dict[str, t.List[Port]] = {}
    owner: t.Dict[t.Tuple[int, str], str] = {}
    for index, name in enumerate(enabled):
        option = f"services.{name}.ports"
        explicit = settings[name].ports
        if explicit is None:
            port = opts.port_base + index
            option = f"port_base (service '{name}' gets port_base + {index})"
            ports = [Port(opts.bind_address, _check_port(port, option), opts.container_port)]
        else:
            ports = [parse_port(p, opts.bind_address, opts.container_port, option) for p in explicit]
        for port in ports:
            key = (port.host, port.proto or "/tcp")
            if key in owner:
                raise ValueError(f"{option}: host port {port.host} is already used by service "
                                 f"'{owner[key]}'; choose another port or change port_base")
            owner[key] = name
        result[name] = ports
    return result


def service_url(ports: t.Sequence[Port], network_mode: t.Optional[str], container_port: int) -> t.Optional[str]:
    if network_mode is not None and network_mode != "host":
        return None
    if network_mode == "host":
        port = ports[0].host if ports else container_port
        return f"http://127.0.0.1:{port}/"
    if not ports:
        return None
    host = ports[0].ip
    if host in ("0.0.0.0", "[::]", ""):
        host = "127.0.0.1"
    return f"http://{host}:{ports[0].host}/"


# --------------------------------------------------------------------------
# Mounts
# --------------------------------------------------------------------------

def base_mounts(root: str, opts: Options, dirs: t.Tuple[str, str, str]) -> t.List[JsonDict]:
    source, target, cache = dirs
    return [
        _mount("bind", root, source),
        _mount("volume", opts.target_volume, target),
        _mount("volume", opts.cache_volume, cache),
    ]


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
        # Relative bind sources are relative to the workspace, like the source mount.
        return os.path.normpath(os.path.join(root, source))
    return source


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------

def watch_paths(paths: t.Iterable[str], source_dir: str, has_lockfile: bool) -> t.List[str]:
    """Container paths to watch (plus the manifest and lock file): sorted, unique, none nested."""
    paths = {posixpath.normpath(p) for p in paths}
    paths.add(posixpath.join(source_dir, "Cargo.toml"))
    if has_lockfile:
        paths.add(posixpath.join(source_dir, "Cargo.lock"))
    result: t.List[str] = []
    for path in sorted(paths, key=lambda p: (p.count("/"), p)):
        if not any(_is_within(path, kept) for kept in result):
            result.append(path)
    return sorted(result)


def _delay(seconds: float) -> str:
    return format(float(seconds), "g")


def _watch_prefix(delay: float, paths: t.Sequence[str]) -> t.List[str]:
    command = ["cargo", "watch", "--delay", _delay(delay)]
    for path in paths:
        command += ["-w", path]
    return command


def run_command(service: Service, watch: t.Sequence[str], opts: Options, args: t.Sequence[str]) -> t.List[str]:
    cargo = ["run", "-p", service.package, "--bin", service.name]
    if service.required_features:
        cargo += ["--features", ",".join(service.required_features)]
    cargo += list(opts.cargo_args)
    if args:
        cargo += ["--", *args]
    return _watch_prefix(opts.watch_delay, watch) + ["-x", shlex.join(cargo)]


def builder_command(services: t.Sequence[Service], watch: t.Sequence[str], opts: Options) -> t.List[str]:
    cargo = ["build", "--workspace", "--bins"]
    features = [f"{s.package}/{f}" for s in services for f in s.required_features]
    if features:
        cargo += ["--features", ",".join(sorted(set(features)))]
    cargo += list(opts.cargo_args)
    # cargohold-build (in the dev image) records each build's outcome for `status`.
    return _watch_prefix(opts.watch_delay, watch) + ["-s", shlex.join(["cargohold-build", *cargo])]


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


def runner_command(service: Service, opts: Options, target_dir: str, args: t.Sequence[str]) -> t.List[str]:
    binary = posixpath.join(artifact_dir(target_dir, opts.cargo_args), service.name)
    return ["cargohold-run", binary, "--", *args]


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------

def render(metadata: JsonDict, workspace: Workspace, params: t.Mapping[str, t.Any]) -> JsonDict:
    """The module's result (without ``changed``) for validated metadata and options."""
    opts = Options.from_params(params)
    validate_scalars(opts)
    validate_user(opts.user)
    validate_volumes(opts)
    dirs = validate_dirs(opts)
    project = validate_project(opts.project or default_project(workspace.root), opts.project is None)
    network = opts.network or f"{project}-dev"
    global_env = _env(opts.env, "env")

    services = discover_services(metadata)
    names = [s.name for s in services]
    settings = service_settings(opts.services, names)
    enabled = [n for n in names if settings[n].enabled]
    if not enabled:
        raise ValueError("services: every service has enabled: false; leave at least one enabled")
    for name in names:
        _check_container_name(project, name)
    if opts.mode == "shared_builder" and "builder" in names:
        raise ValueError(f"services: in mode shared_builder a service named 'builder' clashes with the "
                         f"builder container {project}-builder; rename the binary or use mode per_service")
    check_depends_on(settings, enabled)
    ports = assign_ports(opts, settings, enabled)

    ctx = _Context(opts, workspace, project, network, dirs, global_env)
    rendered = [ctx.service(s, settings[s.name], ports[s.name]) for s in services if s.name in enabled]
    builder = None
    if opts.mode == "shared_builder":
        builder = ctx.builder([s for s in services if s.name in enabled],
                              [w for r in rendered for w in r["watch"]])
    return {
        "project": project,
        "workspace_root": workspace.root,
        "network": network,
        "mode": opts.mode,
        "all_services": names,
        "disabled": [n for n in names if n not in enabled],
        "services": rendered,
        "builder": builder,
    }


def _check_container_name(project: str, name: str) -> None:
    container = f"{project}-{name}"
    if not SERVICE_RE.match(name) or len(container) > MAX_CONTAINER_NAME:
        raise ValueError(
            f"services: '{name}' gives container name '{container}', which is not valid "
            f"(a-z A-Z 0-9 _ . -, at most {MAX_CONTAINER_NAME} characters); rename the binary "
            "with a [[bin]] section or shorten project")


@dataclass
class _Context:
    opts: Options
    workspace: Workspace
    project: str
    network: str
    dirs: t.Tuple[str, str, str]
    global_env: t.Dict[str, str]

    def service(self, service: Service, settings: Settings, ports: t.List[Port]) -> JsonDict:
        source, target, _cache = self.dirs
        watch = watch_paths([posixpath.join(source, d) for d in service.local_dirs],
                            source, self.workspace.has_lockfile)
        if self.opts.mode == "per_service":
            command = run_command(service, watch, self.opts, settings.args)
        else:
            command = runner_command(service, self.opts, target, settings.args)
        port_for_env = ports[0].host if settings.network_mode == "host" and ports else self.opts.container_port
        env = {"CARGO_TARGET_DIR": target, "PORT": str(port_for_env), "SERVICE_NAME": service.name}
        env.update(self.global_env)
        env.update(settings.env)
        container = self._container(
            name=f"{self.project}-{service.name}", role="service", service=service.name,
            command=command, env=env,
            working_dir=self._working_dir(service.name, settings.working_dir),
        )
        mounts = container["mounts"]
        mounts += extra_mounts(service.name, settings.mounts, self.workspace.root, [m["target"] for m in mounts])
        if settings.network_mode is not None:
            if not settings.network_mode.strip():
                raise ValueError(f"services.{service.name}.network_mode: must not be empty; omit it instead")
            del container["networks"]
            container["network_mode"] = settings.network_mode
        else:
            container["published_ports"] = [p.spec() for p in ports]
        container["extra"] = dict(settings.docker)
        return {
            "name": service.name,
            "package": service.package,
            "bin": service.name,
            "package_dir": service.package_dir,
            "required_features": list(service.required_features),
            "watch": watch,
            "url": service_url(ports, settings.network_mode, self.opts.container_port),
            "depends_on": sorted(settings.depends_on),
            "container": container,
        }

    def builder(self, services: t.Sequence[Service], watch: t.Sequence[str]) -> JsonDict:
        source, target, _cache = self.dirs
        paths = watch_paths(watch, source, self.workspace.has_lockfile)
        env = {"CARGO_TARGET_DIR": target}
        env.update(self.global_env)
        container = self._container(
            name=f"{self.project}-builder", role="builder", service=None,
            command=builder_command(services, paths, self.opts), env=env, working_dir=source,
        )
        container["extra"] = {}
        return container

    def _working_dir(self, name: str, working_dir: t.Optional[str]) -> str:
        source = self.dirs[0]
        if not working_dir:
            return source
        path = posixpath.normpath(posixpath.join(source, working_dir))
        if self.opts.mode == "per_service" and not _is_within(path, source):
            raise ValueError(f"services.{name}.working_dir: {path} is outside source_dir {source}; "
                             "cargo run must start inside the workspace to find Cargo.toml")
        return path

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
        return {
            "name": name,
            "image": self.opts.image,
            "command": command,
            "env": env,
            "working_dir": working_dir,
            "user": self.opts.user,
            "init": True,
            "mounts": base_mounts(self.workspace.root, self.opts, self.dirs),
            "networks": [{"name": self.network}],
            "labels": labels,
            "stop_signal": "SIGINT",
            "stop_timeout": 2,
            "restart_policy": "unless-stopped",
        }


def to_json(result: JsonDict) -> str:
    """The text written to ``dest``: stable so unchanged input means unchanged file."""
    return json.dumps(result, sort_keys=True, indent=2) + "\n"
