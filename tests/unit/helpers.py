"""Shared test helpers: hand-written cargo metadata and Cargo roots, plans, the fixture shapes (molecule/shapes)
and their dev.yml, real workspaces on disk, cargo lookup.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import typing as t
from pathlib import Path

import yaml  # PyYAML, from the venv (ansible-core depends on it)

from ansible_collections.cargohold.devenv.plugins.module_utils import _docker as dk
from ansible_collections.cargohold.devenv.plugins.module_utils import _plan as pl
from ansible_collections.cargohold.devenv.plugins.module_utils import _workspace as ws

ROOT = "/ws"


def find_cargo() -> t.Optional[str]:
    found = shutil.which("cargo")
    if found:
        return found
    candidate = os.path.expanduser("~/.cargo/bin/cargo")
    return candidate if os.access(candidate, os.X_OK) else None


# --------------------------------------------------------------------------
# Hand-written `cargo metadata --no-deps` (the subset the module reads)
# --------------------------------------------------------------------------

def target(name: str, kind: str = "bin", required_features: t.Sequence[str] = ()) -> dict:
    result = {"kind": [kind], "name": name, "crate_types": [kind]}
    if required_features:
        result["required-features"] = list(required_features)
    return result


def dep(name: str, path: t.Optional[str] = None, kind: t.Optional[str] = None, root: str = ROOT) -> dict:
    result = {"name": name, "kind": kind, "source": None if path else "registry+https://example"}
    if path is not None:
        result["path"] = path if path.startswith("/") else f"{root}/{path}"
    return result


def package(name: str, directory: str, targets: t.Sequence[dict] = (), deps: t.Sequence[dict] = (),
            root: str = ROOT) -> dict:
    pkg_dir = root if directory == "." else f"{root}/{directory}"
    return {
        "name": name,
        "id": f"path+file://{pkg_dir}#{name}@0.1.0",
        "manifest_path": f"{pkg_dir}/Cargo.toml",
        "targets": list(targets) or [target(name)],
        "dependencies": list(deps),
    }


def metadata(*packages: dict, root: str = ROOT, members: t.Optional[t.Sequence[str]] = None) -> dict:
    return {
        "packages": list(packages),
        "workspace_members": list(members) if members is not None else [p["id"] for p in packages],
        "workspace_root": root,
        "version": 1,
    }


# --------------------------------------------------------------------------
# Real workspaces
# --------------------------------------------------------------------------

MAIN_RS = 'fn main() { println!("hi"); }\n'
LIB_RS = "pub fn f() {}\n"


def write_tree(root: Path, files: t.Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def manifest(name: str, extra: str = "") -> str:
    return f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\npublish = false\n{extra}'


# Every discovery rule in one workspace: glob members + exclude, [[bin]] rename,
# src/bin autodiscovery with two bins, autobins = false, required-features,
# lib-only members, a path-dependency chain a -> b -> c with a dev-dependency
# (not watched) and a build-dependency (watched).
RICH_WORKSPACE = {
    "Cargo.toml": (
        '[workspace]\nresolver = "2"\n'
        'members = ["services/*", "crates/*", "tools/jobs"]\n'
        'exclude = ["services/skeleton"]\n'
    ),
    "services/api/Cargo.toml": manifest("api", '[dependencies]\na = { path = "../../crates/a" }\n'),
    "services/api/src/main.rs": MAIN_RS,
    "services/auth/Cargo.toml": manifest("auth-service", '[[bin]]\nname = "auth"\npath = "src/main.rs"\n'),
    "services/auth/src/main.rs": MAIN_RS,
    "services/skeleton/Cargo.toml": manifest("skeleton"),
    "services/skeleton/src/main.rs": MAIN_RS,
    "services/manual/Cargo.toml": manifest(
        "manual", 'autobins = false\n\n[[bin]]\nname = "manual"\npath = "src/main.rs"\n'),
    "services/manual/src/main.rs": MAIN_RS,
    "services/manual/src/bin/ignored.rs": MAIN_RS,
    "services/gated/Cargo.toml": manifest(
        "gated",
        '\n[features]\nmetrics = []\ntracing = []\n\n'
        '[[bin]]\nname = "gated"\npath = "src/main.rs"\nrequired-features = ["metrics", "tracing"]\n'),
    "services/gated/src/main.rs": MAIN_RS,
    "tools/jobs/Cargo.toml": manifest("jobs"),
    "tools/jobs/src/lib.rs": LIB_RS,
    "tools/jobs/src/bin/worker.rs": MAIN_RS,
    "tools/jobs/src/bin/cron.rs": MAIN_RS,
    "crates/a/Cargo.toml": manifest(
        "a", '[dependencies]\nb = { path = "../b" }\n[dev-dependencies]\ntesthelp = { path = "../testhelp" }\n'),
    "crates/a/src/lib.rs": LIB_RS,
    "crates/b/Cargo.toml": manifest(
        "b", '[dependencies]\nc = { path = "../c" }\n[build-dependencies]\ngen = { path = "../gen" }\n'),
    "crates/b/src/lib.rs": LIB_RS,
    "crates/b/build.rs": "fn main() {}\n",
    "crates/c/Cargo.toml": manifest("c"),
    "crates/c/src/lib.rs": LIB_RS,
    "crates/gen/Cargo.toml": manifest("gen"),
    "crates/gen/src/lib.rs": LIB_RS,
    "crates/testhelp/Cargo.toml": manifest("testhelp"),
    "crates/testhelp/src/lib.rs": LIB_RS,
}


def cargo_metadata(cargo: str, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [cargo, "metadata", "--format-version", "1", "--no-deps", "--offline",
         "--manifest-path", str(root / "Cargo.toml")],
        capture_output=True, text=True, check=False, timeout=120,
    )


def real_metadata(cargo: str, root: Path) -> dict:
    proc = cargo_metadata(cargo, root)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# --------------------------------------------------------------------------
# Cargo roots and plans on hand-written metadata
# --------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "molecule" / "shapes" / "fixtures"
ROLE_NAMES = REPO / "roles" / "dev_services" / "vars" / "main.yml"

PARAMS = {"image": "dev:latest", "user": "1000:1000", "target_volume": "ws-target", "cache_volume": "ws-cache",
          "state_dir": "/state"}


def root_path(rel: str, project: str = ROOT) -> str:
    return project if rel == "." else f"{project}/{rel}"


def cargo_root(rel: str, *packages: dict, lockfile: bool = True, project: str = ROOT,
               members: t.Optional[t.Sequence[str]] = None) -> ws.Root:
    """A ws.Root with hand-written metadata; build its packages with package(..., root=root_path(rel))."""
    path = root_path(rel, project)
    return ws.Root(rel, path, lockfile, metadata(*packages, root=path, members=members))


def plan(cargo_roots: t.Sequence[ws.Root], project_dir: str = ROOT, **params: t.Any) -> dict:
    """pl.render as the module calls it (module-only options such as roots are ignored by the plan)."""
    return pl.render(project_dir, list(cargo_roots), dict(PARAMS, **params), list(dk.DOCKER_OPTIONS))


def by_name(result: dict) -> dict:
    return {s["name"]: s for s in result["services"]}


# The four fixture repositories under molecule/shapes/fixtures, as hand-written metadata: (project dir, roots).

def shape_single(project: str = "/src/single") -> t.Tuple[str, list]:
    """One package, no [workspace]: lib kvd, bins kvd (src/main.rs) and kvctl (src/bin/kvctl.rs)."""
    return project, [cargo_root(".", package("kvd", ".", [target("kvd", "lib"), target("kvd"), target("kvctl")],
                                             root=project), project=project)]


def shape_roots(project: str = "/src/roots", payments_lock: bool = True) -> t.Tuple[str, list]:
    """No Cargo.toml at the top; two lone packages, each its own root with its own Cargo.lock."""
    return project, [
        cargo_root("orders", package("orders", ".", root=f"{project}/orders"), project=project),
        cargo_root("payments", package("payments", ".", root=f"{project}/payments"), lockfile=payments_lock,
                   project=project),
    ]


def shape_buildrs(project: str = "/src/buildrs") -> t.Tuple[str, list]:
    """Workspace crates/*: backend and gateway depend on proto (lib with build.rs)."""
    return project, [cargo_root(
        ".",
        package("backend", "crates/backend", deps=[dep("proto", "crates/proto", root=project)], root=project),
        package("gateway", "crates/gateway", deps=[dep("proto", "crates/proto", root=project)], root=project),
        package("proto", "crates/proto", [target("proto", "lib"), target("build-script-build", "custom-build")],
                root=project),
        project=project)]


def shape_nolock(project: str = "/src/nolock") -> t.Tuple[str, list]:
    """Workspace without Cargo.lock: services/catalog and services/inventory use crates/common."""
    return project, [cargo_root(
        ".",
        package("catalog", "services/catalog", deps=[dep("common", "crates/common", root=project)], root=project),
        package("common", "crates/common", [target("common", "lib")], root=project),
        package("inventory", "services/inventory", deps=[dep("common", "crates/common", root=project)],
                root=project),
        lockfile=False, project=project)]


SHAPES = {"single": shape_single, "roots": shape_roots, "buildrs": shape_buildrs, "nolock": shape_nolock}


# --------------------------------------------------------------------------
# The fixtures' dev.yml: the role variables a team sets, as module options
# --------------------------------------------------------------------------

def load_yaml(path: Path) -> t.Any:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def fixture_vars(name: str) -> dict:
    """The vars of the dev_stack role in fixtures/<name>/dev.yml."""
    (play,) = load_yaml(FIXTURES / name / "dev.yml")
    (role,) = [r for r in play["roles"] if r["role"] == "cargohold.devenv.dev_stack"]
    return dict(role.get("vars") or {})


def option_of_variable() -> t.Dict[str, str]:
    """Role variable -> module option, from the role's own table (the one errors are renamed with)."""
    names = load_yaml(ROLE_NAMES)["_dev_services_names"]
    return {variable: option for option, variable in names.items()}


def options_from_vars(variables: t.Mapping[str, t.Any]) -> dict:
    """Module options for the role variables a dev.yml sets; templated values (the project path) are dropped."""
    mapping = option_of_variable()
    options = {}
    for variable, value in variables.items():
        assert variable in mapping, f"{variable} is not a variable the dev_services role maps to an option"
        if isinstance(value, str) and "{{" in value:
            continue
        options[mapping[variable]] = value
    return options


def copy_fixture(name: str, dest: Path) -> Path:
    """A scratch copy of a fixture (cargo must never write into the shipped tree)."""
    root = dest / name
    shutil.copytree(FIXTURES / name, root, ignore=shutil.ignore_patterns("target"))
    return root


# --------------------------------------------------------------------------
# What each fixture's plan must say (hand-written metadata and real cargo alike)
# --------------------------------------------------------------------------

def _env(service: dict) -> dict:
    return service["container"]["env"]


def _port(ip: str, host: int, container: int, proto: str = "tcp") -> dict:
    return {"ip": ip, "host": host, "container": container, "proto": proto}


def check_single(result: dict) -> None:
    services = by_name(result)
    assert result["all_services"] == ["kvctl", "kvd"]
    assert [r["path"] for r in result["roots"]] == ["."]
    kvctl, kvd = services["kvctl"], services["kvd"]
    # kvctl: a CLI, so no port, no address, not waited for
    assert (kvctl["kind"], kvctl["port"], kvctl["address"], kvctl["url"]) == ("tool", None, None, None)
    assert kvctl["ready"]["type"] == "none"
    assert kvctl["container"]["published_ports"] == []
    assert _env(kvctl)["CARGOHOLD_KIND"] == "tool" and _env(kvctl)["CARGOHOLD_READY"] == "none"
    # kvd: listens on 127.0.0.1:7070 in its container, which forwards the port; published on port_base
    assert (kvd["kind"], kvd["port"], kvd["address"]) == ("service", 7070, "127.0.0.1:18311")
    assert kvd["container"]["published_ports"] == [_port("127.0.0.1", 18311, 7070)]
    assert _env(kvd)["CARGOHOLD_FORWARD"] == "127.0.0.1"
    assert _env(kvd)["CARGOHOLD_READY_PORT"] == "7070" and _env(kvd)["PORT"] == "7070"
    assert kvd["container"]["command"][-3:] == ["--", "--port", "7070"]
    for service in (kvctl, kvd):
        assert service["package"] == "kvd" and service["package_dir"] == "."
        assert service["container"]["working_dir"] == "/workspace"
        assert service["watch"] == ["/workspace"]


def check_roots(result: dict) -> None:
    services = by_name(result)
    assert result["roots"] == [{"path": "orders", "lockfile": True}, {"path": "payments", "lockfile": True}]
    assert result["lockfiles_missing"] == []
    assert result["all_services"] == ["orders", "payments"]
    for name, host in (("orders", 18320), ("payments", 18321)):
        service = services[name]
        assert (service["root"], service["package_dir"], service["local_dirs"]) == (name, name, [name])
        # payments reads assets/ relative to its working directory: its own root, where cargo run would start
        assert service["container"]["working_dir"] == f"/workspace/{name}"
        assert service["watch"] == [f"/workspace/{name}"]
        build = service["container"]["command"][-2]
        assert f"-p {name} --bin {name} -- build --manifest-path /workspace/{name}/Cargo.toml" in build
        assert service["container"]["networks"] == [{"name": result["network"], "aliases": [name]}]
        assert service["address"] == f"127.0.0.1:{host}"
    assert _env(services["orders"])["PAYMENTS_URL"] == "http://payments:8080"


def check_buildrs(result: dict) -> None:
    services = by_name(result)
    backend, gateway = services["backend"], services["gateway"]
    project = result["project"]
    assert result["all_services"] == ["backend", "gateway"]
    # backend shares gateway's network namespace (gateway calls it on [::1]:7001), so gateway starts first
    assert result["order"] == ["gateway", "backend"]
    assert backend["network_target"] == "gateway"
    assert backend["container"]["network_mode"] == f"container:{project}-gateway"
    assert backend["container"]["networks"] == [] and backend["container"]["published_ports"] == []
    assert gateway["container"]["published_ports"] == [_port("127.0.0.1", 18331, 7000), _port("127.0.0.1", 18330, 7001)]
    assert (backend["address"], gateway["address"]) == ("127.0.0.1:18330", "127.0.0.1:18331")
    for service in (backend, gateway):
        assert _env(service)["CARGOHOLD_FORWARD"] == "::1"
        # build.rs rewrites generated.rs on every build: ignored, or every build triggers the next
        assert service["watch_ignore"] == ["/workspace/crates/proto/src/generated.rs"]
        command = service["container"]["command"]
        assert command[command.index("-i") + 1] == "/workspace/crates/proto/src/generated.rs"
        assert "/workspace/crates/proto" in service["watch"]
    assert (_env(backend)["PORT"], _env(gateway)["PORT"]) == ("7001", "7000")


def check_nolock(result: dict) -> None:
    services = by_name(result)
    assert result["lockfiles_missing"] == ["."]
    assert result["roots"] == [{"path": ".", "lockfile": False}]
    assert result["all_services"] == ["catalog", "inventory"]
    for name, host in (("catalog", 18340), ("inventory", 18341)):
        service = services[name]
        assert service["ready"] == {"type": "http", "port": 8080, "path": "/version", "status": 200, "pattern": None}
        assert service["url"] == f"http://127.0.0.1:{host}/version"
        env = _env(service)
        assert (env["CARGOHOLD_READY"], env["CARGOHOLD_READY_PATH"], env["CARGOHOLD_READY_STATUS"]) == (
            "http", "/version", "200")
        assert service["watch"] == ["/workspace/Cargo.lock", "/workspace/Cargo.toml", "/workspace/crates/common",
                                    f"/workspace/services/{name}"]


SHAPE_CHECKS = {"single": check_single, "roots": check_roots, "buildrs": check_buildrs, "nolock": check_nolock}
