"""module_utils/_plan.py: the plan of a dev stack, on hand-written cargo metadata."""

from __future__ import annotations

import json
import typing as t

import pytest

from ansible_collections.cargohold.devenv.plugins.module_utils import _docker as dk
from ansible_collections.cargohold.devenv.plugins.module_utils import _plan as pl
from ansible_collections.cargohold.devenv.plugins.module_utils import _workspace as ws

from helpers import (
    ROOT, SHAPE_CHECKS, SHAPES, by_name, cargo_root, dep, fixture_vars, options_from_vars, package, plan,
    shape_buildrs, shape_nolock, shape_roots, shape_single, target,
)


def base_root(lockfile: bool = True) -> ws.Root:
    return cargo_root(
        ".",
        package("api", "services/api", deps=[dep("common", "crates/common"), dep("serde")]),
        package("auth-service", "services/auth", [target("auth")], deps=[dep("common", "crates/common")]),
        package("billing", "services/billing"),
        package("common", "crates/common", [target("common", "lib")]),
        lockfile=lockfile,
    )


def render(cargo_roots: t.Optional[list] = None, project_dir: str = ROOT, **params: t.Any) -> dict:
    return plan(cargo_roots or [base_root()], project_dir, **params)


def shaped(shape: str, **params: t.Any) -> dict:
    project, cargo_roots = SHAPES[shape]()
    return plan(cargo_roots, project, **params)


def one(*packages: dict) -> t.List[ws.Root]:
    return [cargo_root(".", *packages)]


def ports_of(result: dict) -> t.Dict[str, t.List[str]]:
    """Published ports per service as IP:HOST:CONTAINER[/udp] strings (compact tables)."""
    return {n: [f"{p['ip']}:{p['host']}:{p['container']}" + ("" if p["proto"] == "tcp" else f"/{p['proto']}")
                for p in s["container"]["published_ports"]]
            for n, s in by_name(result).items()}


def env_of(result: dict, name: str) -> dict:
    return by_name(result)[name]["container"]["env"]


# --------------------------------------------------------------------------
# Bad input: each error must name the option at fault
# --------------------------------------------------------------------------

# (id, kwargs for render: roots= or shape= plus options, fragments of the message)
ERROR_CASES = [
    ("no-binary", dict(roots=one(package("common", "crates/common", [target("common", "lib")]))),
     ["path:", "no binary target"]),
    ("duplicate-bin", dict(roots=one(package("x", "a", [target("tool")]), package("y", "b", [target("tool")]))),
     ["services:", "'tool'", "package 'x'", "package 'y'", "[[bin]]"]),
    ("path-dep-outside-project", dict(roots=one(package("api", "api", deps=[dep("ext", "/elsewhere/ext")]))),
     ["service 'api'", "'ext'", "/elsewhere/ext", "outside the project directory"]),
    ("unknown-override", dict(services={"nope": {}}),
     ["services: nope not found in the project; valid service names are: api, auth, billing"]),
    ("override-not-dict", dict(services={"api": "yes"}), ["services.api:", "dict"]),
    ("unknown-setting", dict(services={"api": {"enable": False}}),
     ["services.api: unknown setting(s) enable; valid ones are: " + ", ".join(pl.SERVICE_OPTIONS)]),
    ("all-disabled", dict(services={n: {"enabled": False} for n in ("api", "auth", "billing")}),
     ["services:", "enabled: false"]),
    ("bad-service-name", dict(roots=one(package("café", "cafe"))), ["services:", "'café'", "[[bin]]"]),
    ("container-name-too-long", dict(project="p" * 60), ["services:", "container name", "shorten project"]),
    ("bad-project", dict(project="Bad Name"), ["project:", "Bad Name"]),
    ("missing-state-dir", dict(state_dir=""), ["state_dir: is required"]),
    ("relative-state-dir", dict(state_dir="run/cargohold"), ["state_dir:", "'run/cargohold'", "absolute"]),
    ("port-out-of-range", dict(services={"api": {"ports": [70000]}}), ["services.api.ports", "70000", "1..65535"]),
    ("port-base-overflow", dict(port_base=65535), ["port_base", "65536", "1..65535"]),
    ("container-port-zero", dict(container_port=0), ["container_port", "1..65535"]),
    ("service-port-zero", dict(services={"api": {"port": 0}}), ["services.api.port:", "1..65535"]),
    ("service-port-bool", dict(services={"api": {"port": True}}), ["services.api.port:"]),
    ("port-twice-explicit", dict(services={"api": {"ports": [9000]}, "auth": {"ports": ["9000:8080"]}}),
     ["services.auth.ports", "9000", "'api'"]),
    ("port-explicit-vs-auto", dict(services={"billing": {"ports": [8080]}}),
     ["services.billing.ports", "8080", "'api'"]),
    # services with their own ports take no port_base slot: auth gets 8080, billing 8081, taken by api
    ("port-auto-vs-explicit", dict(services={"api": {"ports": [8081]}}),
     ["port_base (service 'auth' gets port_base + 1)", "8081", "'api'"]),
    ("port-bad-format", dict(services={"api": {"ports": ["http"]}}), ["services.api.ports", "'http'"]),
    ("port-bad-ip", dict(services={"api": {"ports": ["[::g]:9000:8080"]}}), ["services.api.ports", "[::g]"]),
    ("bind-address-not-ip", dict(bind_address="localhost"), ["bind_address:", "'localhost'", "not an IP address"]),
    ("mount-root-source", dict(services={"api": {"mounts": [{"source": "/", "target": "/host"}]}}),
     ["services.api.mounts[0].source", "/"]),
    ("mount-root-target", dict(services={"api": {"mounts": [{"source": "data", "target": "/", "type": "volume"}]}}),
     ["services.api.mounts[0].target", "must not be /"]),
    ("mount-docker-socket", dict(services={"api": {"mounts": [{"source": "/var/run/docker.sock",
                                                               "target": "/var/run/docker.sock"}]}}),
     ["services.api.mounts[0].source", "/var/run/docker.sock"]),
    ("mount-run-docker-socket-target", dict(services={"api": {"mounts": [{"source": "/tmp/x",
                                                                          "target": "/run/docker.sock"}]}}),
     ["services.api.mounts[0].target", "/run/docker.sock"]),
    ("mount-bad-type", dict(services={"api": {"mounts": [{"source": "x", "target": "/x", "type": "nfs"}]}}),
     ["services.api.mounts[0].type", "nfs"]),
    ("mount-relative-target", dict(services={"api": {"mounts": [{"source": "x", "target": "x"}]}}),
     ["services.api.mounts[0].target", "absolute"]),
    ("mount-duplicate-target", dict(services={"api": {"mounts": [{"source": "x", "target": "/workspace"}]}}),
     ["services.api.mounts[0].target", "/workspace", "already"]),
    ("mount-over-state-mount", dict(services={"api": {"mounts": [{"source": "x", "target": "/run/cargohold/"}]}}),
     ["services.api.mounts[0].target", "/run/cargohold", "already"]),
    ("mount-duplicate-target-in-list", dict(services={"api": {"mounts": [{"source": "a", "target": "/d"},
                                                                         {"source": "b", "target": "/d"}]}}),
     ["services.api.mounts[1].target", "/d", "already"]),
    ("mount-tmpfs-with-source", dict(services={"api": {"mounts": [{"source": "x", "target": "/t", "type": "tmpfs"}]}}),
     ["services.api.mounts[0].source", "tmpfs"]),
    ("mount-missing-source", dict(services={"api": {"mounts": [{"target": "/t"}]}}),
     ["services.api.mounts[0].source", "required"]),
    ("depends-on-unknown", dict(services={"api": {"depends_on": ["db"]}}),
     ["services.api.depends_on", "'db'", "api, auth, billing"]),
    ("depends-on-disabled", dict(services={"api": {"depends_on": ["auth"]}, "auth": {"enabled": False}}),
     ["services.api.depends_on", "'auth'", "disabled"]),
    ("depends-on-self", dict(services={"api": {"depends_on": ["api"]}}), ["services.api.depends_on", "itself"]),
    ("depends-on-cycle", dict(services={"api": {"depends_on": ["auth"]}, "auth": {"depends_on": ["api"]}}),
     ["depends_on", "cycle", "api -> auth -> api"]),
    ("depends-on-cycle-of-three", dict(services={"api": {"depends_on": ["auth"]}, "auth": {"depends_on": ["billing"]},
                                                 "billing": {"depends_on": ["api"]}}),
     ["cycle api -> auth -> billing -> api"]),
    ("cycle-through-network-mode", dict(services={"api": {"depends_on": ["auth"]},
                                                  "auth": {"network_mode": "service:api"}}),
     ["cycle", "api -> auth -> api"]),
    ("network-mode-unknown-service", dict(services={"api": {"network_mode": "service:db"}}),
     ["services.api.network_mode: 'db' is not a service", "api, auth, billing"]),
    ("network-mode-empty-service", dict(services={"api": {"network_mode": "service:"}}),
     ["services.api.network_mode: '' is not a service"]),
    ("network-mode-disabled-service", dict(services={"api": {"network_mode": "service:auth"},
                                                     "auth": {"enabled": False}}),
     ["services.api.network_mode: 'auth' is disabled"]),
    ("network-mode-self", dict(services={"api": {"network_mode": "service:api"}}),
     ["services.api.network_mode:", "itself"]),
    ("network-mode-chained", dict(services={"api": {"network_mode": "service:auth"},
                                            "auth": {"network_mode": "service:billing"}}),
     ["services.api.network_mode: service:auth itself shares", "point it at billing"]),
    ("network-mode-sharer-with-ports", dict(services={"api": {"network_mode": "service:auth", "ports": [9000]}}),
     ["services.api.ports:", "network_mode service:auth", "published on auth's container", "drop ports"]),
    ("docker-unknown-option", dict(services={"api": {"docker": {"volumes": ["/:/host"]}}}),
     ["services.api.docker: unsupported option(s) volumes; allowed: " + ", ".join(dk.DOCKER_OPTIONS)]),
    ("kind-unknown", dict(services={"api": {"kind": "daemon"}}), ["services.api.kind:", "'daemon'", "service, tool"]),
    ("listen-not-ip", dict(services={"api": {"listen": "127.0.0.1:8080"}}),
     ["services.api.listen:", "'127.0.0.1:8080'", "not an IP address"]),
    ("ready-global-bad", dict(ready="http"), ["ready:", "'http'", "not a readiness check"]),
    ("ready-service-bad", dict(services={"api": {"ready": "tcp"}}), ["services.api.ready:", "'tcp'"]),
    ("ready-service-http-no-slash", dict(services={"api": {"ready": {"http": "version"}}}),
     ["services.api.ready.http:", "'version'", "starting with /"]),
    ("ready-healthcheck-without-docker-healthcheck", dict(services={"api": {"ready": "healthcheck"}}),
     ["services.api.ready:", "docker.healthcheck"]),
    ("watch-ignore-absolute", dict(watch_ignore=["/workspace/target"]),
     ["watch_ignore[0]:", "'/workspace/target'", "relative to the project directory"]),
    ("watch-ignore-dotdot", dict(watch_ignore=["a", "../elsewhere/*.rs"]), ["watch_ignore[1]:", "'../elsewhere/*.rs'"]),
    ("watch-ignore-empty", dict(watch_ignore=[""]), ["watch_ignore[0]:", "non-empty glob"]),
    ("service-watch-ignore-absolute", dict(services={"api": {"watch_ignore": ["/x"]}}),
     ["services.api.watch_ignore[0]:", "'/x'"]),
    ("service-watch-ignore-dotdot", dict(services={"api": {"watch_ignore": [".."]}}),
     ["services.api.watch_ignore[0]:", "'..'"]),
    ("target-dir-in-source", dict(target_dir="/workspace/target"),
     ["target_dir", "/workspace/target", "inside source_dir", "root-owned", "Docker Desktop"]),
    ("cache-dir-in-source", dict(cache_dir="/workspace/.cargo"), ["cache_dir", "inside source_dir"]),
    ("target-dir-equals-source", dict(target_dir="/workspace"), ["target_dir", "inside source_dir"]),
    ("source-in-target-dir", dict(source_dir="/cargo-target/src"), ["target_dir", "contains source_dir"]),
    ("cache-equals-target", dict(cache_dir="/cargo-target"), ["cache_dir", "overlap"]),
    ("relative-source-dir", dict(source_dir="workspace"), ["source_dir", "absolute"]),
    ("root-source-dir", dict(source_dir="/"), ["source_dir", "must not be /"]),
    ("user-root", dict(user="0:0"), ["user:", "non-root uid"]),
    ("user-names", dict(user="dev:dev"), ["user:", "numeric UID:GID"]),
    ("same-volumes", dict(cache_volume="ws-target"), ["cache_volume", "target_volume"]),
    ("bad-volume", dict(target_volume="-x"), ["target_volume", "'-x'"]),
    ("bad-mode", dict(mode="compose"), ["mode:", "per_service, shared_builder"]),
    ("bad-image", dict(image="dev latest"), ["image:"]),
    ("missing-image", dict(image=""), ["image:", "required"]),
    ("negative-delay", dict(watch_delay=-1.0), ["watch_delay"]),
    ("bad-watcher", dict(watcher="bacon"), ["watcher: 'bacon'", "cargo-watch, watchexec"]),
    ("poll-interval-unit", dict(poll=True, poll_interval="5 min"), ["poll_interval: '5 min'", "500ms"]),
    ("poll-interval-too-short", dict(poll=True, poll_interval="10ms"), ["poll_interval: '10ms'", "50ms to 60s"]),
    ("poll-interval-bool", dict(poll=True, poll_interval=True), ["poll_interval:"]),
    ("poller-name-clash", dict(roots=one(package("poller", "p")), poll=True),
     ["services:", "'poller'", "shared_builder"]),
    ("reserved-label", dict(labels={"io.cargohold.role": "x"}), ["labels:", "io.cargohold.role", "reserved"]),
    ("bad-env-name", dict(env={"A=B": "1"}), ["env:", "'A=B'"]),
    ("env-nested-value", dict(services={"api": {"env": {"A": {"b": 1}}}}), ["services.api.env", "'A'"]),
    ("builder-name-clash", dict(roots=one(package("builder", "b")), mode="shared_builder"),
     ["services:", "'builder'", "shared_builder"]),
    ("builder-name-clash-no-stutter", dict(roots=one(package("ws-builder", "b")), mode="shared_builder"),
     ["services:", "'builder'", "ws-builder"]),
    ("empty-network-mode", dict(services={"api": {"network_mode": " "}}), ["services.api.network_mode"]),
    ("locked-without-lockfile", dict(roots=[base_root(lockfile=False)], cargo_args=["--locked"]),
     ["cargo_args: --locked needs a Cargo.lock", "cargo generate-lockfile"]),
    # The fixture shapes (molecule/shapes/fixtures), each with the mistakes its shape invites.
    ("single-unknown-service", dict(shape="single", services={"kv": {"kind": "tool"}}),
     ["services: kv not found in the project; valid service names are: kvctl, kvd"]),
    ("single-listen-with-port", dict(shape="single", services={"kvd": {"listen": "127.0.0.1:7070"}}),
     ["services.kvd.listen:", "not an IP address"]),
    ("single-port-string", dict(shape="single", services={"kvd": {"ports": ["7070:"]}}),
     ["services.kvd.ports:", "'7070:'"]),
    ("single-share-own-network", dict(shape="single", services={"kvd": {"network_mode": "service:kvd"}}),
     ["services.kvd.network_mode:", "itself"]),
    ("roots-locked-payments-without-lock", dict(shape="roots-nolock-payments", cargo_args=["--locked"]),
     ["cargo_args: --locked needs a Cargo.lock, but payments has none"]),
    ("roots-duplicate-bin", dict(roots=[
        cargo_root("orders", package("orders", ".", [target("orders"), target("payments")], root=f"{ROOT}/orders")),
        cargo_root("payments", package("payments", ".", root=f"{ROOT}/payments"))]),
     ["'payments'", "package 'orders' (root orders)", "package 'payments' (root payments)"]),
    ("roots-ignore-outside", dict(shape="roots", watch_ignore=["../payments/assets/*"]),
     ["watch_ignore[0]:", "relative to the project directory"]),
    ("buildrs-ignore-absolute", dict(shape="buildrs", watch_ignore=["/workspace/crates/proto/src/generated.rs"]),
     ["watch_ignore[0]:", "'/workspace/crates/proto/src/generated.rs'"]),
    ("buildrs-sharer-with-ports", dict(shape="buildrs", services={
        "backend": {"network_mode": "service:gateway", "ports": ["7001:7001"]}}), ["services.backend.ports:"]),
    ("buildrs-share-both-ways", dict(shape="buildrs", services={
        "backend": {"network_mode": "service:gateway"}, "gateway": {"network_mode": "service:backend"}}),
     ["services.backend.network_mode: service:gateway itself shares"]),
    ("buildrs-share-a-library", dict(shape="buildrs", services={"backend": {"network_mode": "service:proto"}}),
     ["services.backend.network_mode: 'proto' is not a service", "backend, gateway"]),
    ("buildrs-listen-bad-ipv6", dict(shape="buildrs", services={"backend": {"listen": "::1::"}}),
     ["services.backend.listen:", "'::1::'"]),
    ("nolock-locked", dict(shape="nolock", cargo_args=["--locked"]),
     ["cargo_args: --locked needs a Cargo.lock, but . has none", "drop --locked"]),
    ("nolock-frozen", dict(shape="nolock", cargo_args=["--frozen", "--offline"]), ["cargo_args: --frozen"]),
    ("nolock-ready-status-out-of-range", dict(shape="nolock", ready={"http": "/version", "status": 999}),
     ["ready.status:", "'999'", "100..599"]),
    ("nolock-ready-unknown-key", dict(shape="nolock", ready={"http": "/version", "code": 200}),
     ["ready: unknown keys code, http"]),
]


@pytest.mark.parametrize("kwargs, fragments", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_render_errors(kwargs: dict, fragments: t.List[str]) -> None:
    kwargs = dict(kwargs)
    shape = kwargs.pop("shape", None)
    cargo_roots = kwargs.pop("roots", None)
    project_dir = ROOT
    if shape == "roots-nolock-payments":
        project_dir, cargo_roots = shape_roots(payments_lock=False)
    elif shape is not None:
        project_dir, cargo_roots = SHAPES[shape]()
    with pytest.raises(ValueError) as info:
        render(cargo_roots, project_dir, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


# --------------------------------------------------------------------------
# The whole plan
# --------------------------------------------------------------------------

def test_render_per_service_defaults() -> None:
    result = render()
    assert {k: v for k, v in result.items() if k not in ("services", "containers")} == {
        "project": "ws",
        "project_dir": ROOT,
        "workspace_root": ROOT,
        "roots": [{"path": ".", "lockfile": True}],
        "lockfiles_missing": [],
        "network": "ws-dev",
        "volumes": {"target": "ws-target", "cache": "ws-cache"},
        "state_dir": "/state",
        "image": "dev:latest",
        "user": "1000:1000",
        "mode": "per_service",
        "all_services": ["api", "auth", "billing"],
        "disabled": [],
        "order": ["api", "auth", "billing"],
        "builder": None,
    }
    assert [c["name"] for c in result["containers"]] == ["ws-api", "ws-auth", "ws-billing"]
    auth = by_name(result)["auth"]
    assert auth == {
        "name": "auth",
        "kind": "service",
        "package": "auth-service",
        "bin": "auth",
        "root": ".",
        "package_dir": "services/auth",
        "local_dirs": ["crates/common", "services/auth"],
        "required_features": [],
        "watch": ["/workspace/Cargo.lock", "/workspace/Cargo.toml", "/workspace/crates/common",
                  "/workspace/services/auth"],
        "watch_ignore": [],
        "port": 8080,
        "address": "127.0.0.1:8081",
        "url": None,
        "ready": {"type": "port", "port": 8080, "path": None, "status": None, "pattern": None},
        "depends_on": [],
        "network_target": None,
        "state_dir": "/state/auth",
        "container": {
            "name": "ws-auth",
            "image": "dev:latest",
            "command": ["cargohold-run", "cargo", "watch", "--delay", "0.1",
                        "-w", "/workspace/Cargo.lock", "-w", "/workspace/Cargo.toml",
                        "-w", "/workspace/crates/common", "-w", "/workspace/services/auth",
                        "-s", "cargohold-build --batch /cargo-target/cargohold-batch -p auth-service --bin auth -- build --manifest-path /workspace/Cargo.toml",
                        "--"],
            "env": {"CARGO_TARGET_DIR": "/cargo-target", "PORT": "8080", "SERVICE_NAME": "auth",
                    "CARGOHOLD_BIN": "/cargo-target/debug/auth", "CARGOHOLD_STATE": "/run/cargohold/auth",
                    "CARGOHOLD_KIND": "service", "CARGOHOLD_READY": "port", "CARGOHOLD_READY_PORT": "8080",
                    "CARGOHOLD_BUILD_STATE": "/run/cargohold/auth", "CARGOHOLD_OWN_BUILD": "1"},
            "working_dir": "/workspace",
            "user": "1000:1000",
            "init": True,
            "mounts": [
                {"type": "bind", "source": ROOT, "target": "/workspace", "read_only": False},
                {"type": "volume", "source": "ws-target", "target": "/cargo-target", "read_only": False},
                {"type": "volume", "source": "ws-cache", "target": "/cargo-cache", "read_only": False},
                {"type": "bind", "source": "/state", "target": "/run/cargohold", "read_only": False},
            ],
            "published_ports": [{"ip": "127.0.0.1", "host": 8081, "container": 8080, "proto": "tcp"}],
            "networks": [{"name": "ws-dev", "aliases": ["auth"]}],
            "network_mode": None,
            "sysctls": {"net.ipv6.conf.lo.disable_ipv6": "0"},
            "labels": {"io.cargohold.project": "ws", "io.cargohold.service": "auth",
                       "io.cargohold.role": "service", "io.cargohold.mode": "per_service"},
            "stop_signal": "SIGINT",
            "stop_timeout": 3,
            "restart_policy": "unless-stopped",
            "extra": {},
        },
    }
    recorded = json.loads(pl.to_json(result))  # plain JSON for the role and for dest
    assert recorded == dict({k: v for k, v in result.items() if k != "lockfiles_missing"},
                            roots=[{"path": r["path"]} for r in result["roots"]])


def test_recorded_plan_does_not_change_once_the_lock_file_exists() -> None:
    before, after = render([base_root(lockfile=False)]), render([base_root(lockfile=True)])
    assert before["lockfiles_missing"] == ["."] and after["lockfiles_missing"] == []
    assert pl.to_json(before) == pl.to_json(after)


def test_to_json_is_stable() -> None:
    text = pl.to_json(render())
    assert text == pl.to_json(render()) and text.endswith("}\n")
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"


@pytest.mark.parametrize("mode", pl.MODES)
def test_every_container_converts(mode: str) -> None:
    result = render(mode=mode, services={"billing": {"network_mode": "host", "docker": {"memory": "1g"}},
                                         "auth": {"network_mode": "service:api", "port": 9000}})
    for container in result["containers"]:
        body = dk.create_body(container)
        assert body["Labels"][dk.HASH_LABEL] == dk.config_hash(body)


def test_package_with_two_bins_gives_two_services() -> None:
    result = render(one(package("jobs", "tools/jobs", [target("jobs", "lib"), target("worker"), target("cron")])))
    assert [(s["name"], s["package"], s["package_dir"]) for s in result["services"]] == [
        ("cron", "jobs", "tools/jobs"), ("worker", "jobs", "tools/jobs")]
    assert ports_of(result) == {"cron": ["127.0.0.1:8080:8080"], "worker": ["127.0.0.1:8081:8080"]}


def test_non_member_packages_are_ignored() -> None:
    api, stray = package("api", "api"), package("stray", "stray")
    assert render([cargo_root(".", api, stray, members=[api["id"]])])["all_services"] == ["api"]


def test_disabled_services_are_listed_not_planned() -> None:
    result = render(services={"billing": {"enabled": False}})
    assert result["all_services"] == ["api", "auth", "billing"]
    assert result["disabled"] == ["billing"]
    assert [s["name"] for s in result["services"]] == ["api", "auth"] == result["order"]
    assert [c["name"] for c in result["containers"]] == ["ws-api", "ws-auth"]


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------

# (id, options, settings of api, the -s build string, the service args after --)
COMMAND_CASES = [
    ("plain", {}, {}, "cargohold-build --batch /cargo-target/cargohold-batch -p api --bin api -- build --manifest-path /workspace/Cargo.toml", []),
    ("cargo-args", {"cargo_args": ["--locked", "--offline"]}, {},
     "cargohold-build --batch /cargo-target/cargohold-batch -p api --bin api -- build --manifest-path /workspace/Cargo.toml --locked --offline", []),
    ("service-args-stay-separate", {}, {"args": ["--greeting", "hello world"]},
     "cargohold-build --batch /cargo-target/cargohold-batch -p api --bin api -- build --manifest-path /workspace/Cargo.toml", ["--greeting", "hello world"]),
    ("args-stringified", {}, {"args": [7070, True]},
     "cargohold-build --batch /cargo-target/cargohold-batch -p api --bin api -- build --manifest-path /workspace/Cargo.toml", ["7070", "True"]),
    ("all", {"cargo_args": ["--locked"]}, {"args": ["-v"]},
     "cargohold-build --batch /cargo-target/cargohold-batch -p api --bin api -- build --manifest-path /workspace/Cargo.toml --locked", ["-v"]),
    ("unbatched", {"batch_builds": False, "cargo_args": ["--locked"]}, {},
     "cargohold-build build --manifest-path /workspace/Cargo.toml -p api --bin api --locked", []),
    ("source-dir-quoted", {"source_dir": "/my src"}, {},
     "cargohold-build --batch /cargo-target/cargohold-batch -p api --bin api -- build --manifest-path '/my src/Cargo.toml'", []),
]


@pytest.mark.parametrize("params, settings, build, args", [c[1:] for c in COMMAND_CASES],
                         ids=[c[0] for c in COMMAND_CASES])
def test_per_service_command(params: dict, settings: dict, build: str, args: t.List[str]) -> None:
    command = by_name(render(services={"api": settings}, **params))["api"]["container"]["command"]
    assert command[:5] == ["cargohold-run", "cargo", "watch", "--delay", "0.1"]
    split = command.index("--")
    assert command[split - 2:split] == ["-s", build]
    assert command[split + 1:] == args


def test_required_features_and_watch_delay() -> None:
    service = render(one(package("gated", "gated", [target("gated", required_features=["metrics", "otel"])])),
                     watch_delay=2.0)["services"][0]
    assert service["required_features"] == ["metrics", "otel"]
    assert service["container"]["command"][:5] == ["cargohold-run", "cargo", "watch", "--delay", "2"]
    assert service["container"]["command"][-2].endswith(
        "-p gated --bin gated --features gated/metrics,gated/otel -- build --manifest-path /workspace/Cargo.toml")


def test_manifest_path_is_the_services_root() -> None:
    project, cargo_roots = shape_roots()
    for service in plan(cargo_roots, project)["services"]:
        build = service["container"]["command"][-2]
        assert build.endswith(f" -- build --manifest-path /workspace/{service['root']}/Cargo.toml")


BUILD_COMMAND_CASES = [
    ("top-root", ws.Service("api", "api", "id", ".", "api", []), "/workspace", [],
     ["cargohold-build", "--batch", "/t/cargohold-batch", "-p", "api", "--bin", "api", "--",
      "build", "--manifest-path", "/workspace/Cargo.toml"]),
    # Features named with their package: the shared build of several packages needs that.
    ("unbatched", ws.Service("api", "api", "id", ".", "api", ["a"]), "/workspace", ["--locked"],
     ["cargohold-build", "build", "--manifest-path", "/workspace/Cargo.toml", "-p", "api", "--bin", "api",
      "--features", "api/a", "--locked"]),
    ("nested-root-features-args", ws.Service("pay", "payments", "id", "billing/payments", "billing/payments",
                                             ["a", "b"]), "/src", ["--release"],
     ["cargohold-build", "--batch", "/t/cargohold-batch", "-p", "payments", "--bin", "pay",
      "--features", "payments/a,payments/b", "--", "build", "--manifest-path", "/src/billing/payments/Cargo.toml",
      "--release"]),
]


@pytest.mark.parametrize("service, source, args, expected", [c[1:] for c in BUILD_COMMAND_CASES],
                         ids=[c[0] for c in BUILD_COMMAND_CASES])
def test_build_command(service: ws.Service, source: str, args: t.List[str], expected: t.List[str]) -> None:
    batch = "/t/cargohold-batch" if "--batch" in expected else None
    assert pl.build_command(service, source, args, batch) == expected


def test_builder_build_one_step_per_root() -> None:
    services = [ws.Service("orders", "orders", "i", "orders", "orders", []),
                ws.Service("admin", "admin", "i", "orders", "orders/admin", ["x"]),
                ws.Service("pay", "payments", "i", "payments", "payments", [])]
    assert pl.builder_build(services, "/workspace", ["orders", "payments"], ["--locked"]) == [
        "cargohold-build", "build", "--manifest-path", "/workspace/orders/Cargo.toml", "--workspace", "--bins",
        "--features", "admin/x", "--locked", "&&",
        "cargohold-build", "build", "--manifest-path", "/workspace/payments/Cargo.toml", "--workspace", "--bins",
        "--locked"]


ARTIFACT_CASES = [
    ("debug", [], "/t/debug"),
    ("release", ["--release"], "/t/release"),
    ("short-release", ["-r"], "/t/release"),
    ("profile", ["--profile", "fast"], "/t/fast"),
    ("profile-eq-dev", ["--profile=dev"], "/t/debug"),
    ("profile-bench", ["--profile", "bench"], "/t/release"),
    ("target", ["--target", "x86_64-unknown-linux-musl", "--locked"], "/t/x86_64-unknown-linux-musl/debug"),
    ("target-eq-release", ["--target=aarch64-unknown-linux-gnu", "--release"], "/t/aarch64-unknown-linux-gnu/release"),
]


@pytest.mark.parametrize("args, expected", [c[1:] for c in ARTIFACT_CASES], ids=[c[0] for c in ARTIFACT_CASES])
def test_artifact_dir(args: t.List[str], expected: str) -> None:
    assert pl.artifact_dir("/t", args) == expected


def test_binary_follows_cargo_args() -> None:
    env = env_of(render(cargo_args=["--release"], target_dir="/t"), "auth")
    assert env["CARGOHOLD_BIN"] == "/t/release/auth" and env["CARGO_TARGET_DIR"] == "/t"


# --------------------------------------------------------------------------
# Watching
# --------------------------------------------------------------------------

WATCH_CASES = [
    ("dev-dep-skipped-build-dep-kept",
     one(package("api", "api", deps=[dep("t", "t", kind="dev"), dep("g", "g", kind="build")]),
         package("t", "t", [target("t", "lib")]), package("g", "g", [target("g", "lib")])),
     ["/workspace/Cargo.lock", "/workspace/Cargo.toml", "/workspace/api", "/workspace/g"]),
    ("transitive-chain",
     one(package("api", "api", deps=[dep("a", "libs/a")]),
         package("a", "libs/a", [target("a", "lib")], deps=[dep("b", "libs/b")]),
         package("b", "libs/b", [target("b", "lib")], deps=[dep("c", "libs/c"), dep("a", "libs/a")]),
         package("c", "libs/c", [target("c", "lib")])),
     ["/workspace/Cargo.lock", "/workspace/Cargo.toml", "/workspace/api", "/workspace/libs/a", "/workspace/libs/b",
      "/workspace/libs/c"]),
    ("nested-dirs-collapse",
     one(package("api", "api", deps=[dep("inner", "api/inner")]),
         package("inner", "api/inner", [target("inner", "lib")])),
     ["/workspace/Cargo.lock", "/workspace/Cargo.toml", "/workspace/api"]),
    ("root-package-covers-all",
     one(package("app", ".", deps=[dep("lib", "lib")]), package("lib", "lib", [target("lib", "lib")])),
     ["/workspace"]),
    ("lockfile-watched-even-when-missing-yet", [cargo_root(".", package("api", "api"), lockfile=False)],
     ["/workspace/Cargo.lock", "/workspace/Cargo.toml", "/workspace/api"]),
    ("root-below-project-watches-its-own-manifest",
     [cargo_root("billing", package("svc", "svc", root=f"{ROOT}/billing"))],
     ["/workspace/billing/Cargo.lock", "/workspace/billing/Cargo.toml", "/workspace/billing/svc"]),
    ("lone-package-root-covers-manifest", [cargo_root("orders", package("orders", ".", root=f"{ROOT}/orders"))],
     ["/workspace/orders"]),
    ("path-dep-in-a-sibling-dir",
     [cargo_root("orders", package("orders", ".", deps=[dep("shared", "../shared", root=f"{ROOT}/orders")],
                                   root=f"{ROOT}/orders"))],
     ["/workspace/orders", "/workspace/shared"]),
]


@pytest.mark.parametrize("cargo_roots, expected", [c[1:] for c in WATCH_CASES], ids=[c[0] for c in WATCH_CASES])
def test_watch_paths(cargo_roots: list, expected: t.List[str]) -> None:
    service = render(cargo_roots)["services"][0]
    assert service["watch"] == expected
    command = service["container"]["command"]
    assert [command[i + 1] for i, arg in enumerate(command) if arg == "-w"] == expected


def test_two_roots_watch_only_their_own_root() -> None:
    cargo_roots = [cargo_root("a", package("x", "x", root=f"{ROOT}/a")),
                   cargo_root("b", package("y", "y", root=f"{ROOT}/b"))]
    services = by_name(render(cargo_roots))
    assert services["x"]["watch"] == ["/workspace/a/Cargo.lock", "/workspace/a/Cargo.toml", "/workspace/a/x"]
    assert services["y"]["watch"] == ["/workspace/b/Cargo.lock", "/workspace/b/Cargo.toml", "/workspace/b/y"]
    assert (services["x"]["package_dir"], services["x"]["local_dirs"]) == ("a/x", ["a/x"])


def test_watch_paths_function() -> None:
    assert pl.watch_paths(["/s/a/x", "/s/a", "/s/b/y/"], "/s", ["a", "b"]) == [
        "/s/a", "/s/b/Cargo.lock", "/s/b/Cargo.toml", "/s/b/y"]


WATCH_IGNORE_CASES = [
    ("none", [], {}, []),
    ("global", ["crates/proto/src/generated.rs"], {}, ["/workspace/crates/proto/src/generated.rs"]),
    ("service", [], {"watch_ignore": ["**/*.tmp"]}, ["/workspace/**/*.tmp"]),
    ("global-then-service", ["a/*", "b"], {"watch_ignore": ["c"]}, ["/workspace/a/*", "/workspace/b", "/workspace/c"]),
]


@pytest.mark.parametrize("global_ignore, settings, expected", [c[1:] for c in WATCH_IGNORE_CASES],
                         ids=[c[0] for c in WATCH_IGNORE_CASES])
def test_watch_ignore(global_ignore: t.List[str], settings: dict, expected: t.List[str]) -> None:
    result = render(watch_ignore=global_ignore, services={"api": settings})
    api = by_name(result)["api"]
    assert api["watch_ignore"] == expected
    command = api["container"]["command"]
    assert [command[i + 1] for i, arg in enumerate(command) if arg == "-i"] == expected
    assert command.index("-s") > max([i for i, arg in enumerate(command) if arg in ("-w", "-i")])
    # a service's globs stay its own; all are anchored at the project (cargo-watch matches relative ones anywhere)
    assert by_name(result)["auth"]["watch_ignore"] == ["/workspace/" + g for g in global_ignore]


def test_custom_dirs() -> None:
    api = by_name(render(source_dir="/src", target_dir="/t", cache_dir="/c"))["api"]
    assert api["watch"] == ["/src/Cargo.lock", "/src/Cargo.toml", "/src/crates/common", "/src/services/api"]
    assert [m["target"] for m in api["container"]["mounts"]] == ["/src", "/t", "/c", "/run/cargohold"]
    assert api["container"]["env"]["CARGO_TARGET_DIR"] == "/t"
    assert api["container"]["working_dir"] == "/src"


# --------------------------------------------------------------------------
# Ports and addresses
# --------------------------------------------------------------------------

PORT_CASES = [
    ("auto", {}, {}, {"api": ["127.0.0.1:8080:8080"], "auth": ["127.0.0.1:8081:8080"],
                      "billing": ["127.0.0.1:8082:8080"]}),
    ("base-and-bind", {"port_base": 9000, "bind_address": "0.0.0.0", "container_port": 3000}, {},
     {"api": ["0.0.0.0:9000:3000"], "auth": ["0.0.0.0:9001:3000"], "billing": ["0.0.0.0:9002:3000"]}),
    # every enabled service keeps its port_base slot, so one service's ports never move another's
    ("override-keeps-the-slot", {}, {"auth": {"ports": [9999, "9998:81", "10.0.0.1:9997:82/udp"]}},
     {"api": ["127.0.0.1:8080:8080"], "auth": ["127.0.0.1:9999:8080", "127.0.0.1:9998:81", "10.0.0.1:9997:82/udp"],
      "billing": ["127.0.0.1:8082:8080"]}),
    ("disabled-not-counted", {}, {"api": {"enabled": False}},
     {"auth": ["127.0.0.1:8080:8080"], "billing": ["127.0.0.1:8081:8080"]}),
    ("empty-publishes-nothing", {}, {"billing": {"ports": []}},
     {"api": ["127.0.0.1:8080:8080"], "auth": ["127.0.0.1:8081:8080"], "billing": []}),
    ("same-port-other-protocol", {}, {"auth": {"ports": ["8080:8080/udp"]}},
     {"api": ["127.0.0.1:8080:8080"], "auth": ["127.0.0.1:8080:8080/udp"], "billing": ["127.0.0.1:8082:8080"]}),
    ("service-port-is-container-side", {}, {"auth": {"port": 7070}},
     {"api": ["127.0.0.1:8080:8080"], "auth": ["127.0.0.1:8081:7070"], "billing": ["127.0.0.1:8082:8080"]}),
    ("service-port-with-int-mapping", {}, {"auth": {"port": 7070, "ports": [9000, "9001:81"]}},
     {"api": ["127.0.0.1:8080:8080"], "auth": ["127.0.0.1:9000:7070", "127.0.0.1:9001:81"],
      "billing": ["127.0.0.1:8082:8080"]}),
    ("tool-takes-no-port", {}, {"api": {"kind": "tool"}},
     {"api": [], "auth": ["127.0.0.1:8081:8080"], "billing": ["127.0.0.1:8082:8080"]}),
    ("ipv6-bind", {"bind_address": "::1"}, {}, {"api": ["::1:8080:8080"], "auth": ["::1:8081:8080"],
                                                "billing": ["::1:8082:8080"]}),
    ("ipv6-bind-bracketed", {"bind_address": "[::1]"}, {"api": {"ports": ["[::]:9000:8080"]}},
     {"api": [":::9000:8080"], "auth": ["::1:8081:8080"], "billing": ["::1:8082:8080"]}),
]


@pytest.mark.parametrize("params, services, expected", [c[1:] for c in PORT_CASES], ids=[c[0] for c in PORT_CASES])
def test_ports(params: dict, services: dict, expected: dict) -> None:
    assert ports_of(render(services=services, **params)) == expected


def test_service_port_sets_port_env_and_ready_port() -> None:
    env = env_of(render(services={"auth": {"port": 7070}}), "auth")
    assert (env["PORT"], env["CARGOHOLD_READY_PORT"]) == ("7070", "7070")
    assert by_name(render(services={"auth": {"port": 7070}}))["auth"]["port"] == 7070
    assert env_of(render(container_port=3000), "auth")["PORT"] == "3000"


# (id, options, settings of api, address, url)
ADDRESS_CASES = [
    ("default", {}, {}, "127.0.0.1:8080", None),
    ("any-address", {"bind_address": "0.0.0.0"}, {}, "127.0.0.1:8080", None),
    ("explicit-ip", {}, {"ports": ["192.168.1.5:9000:8080"]}, "192.168.1.5:9000", None),
    ("no-ports", {}, {"ports": []}, None, None),
    ("network-mode-none", {}, {"network_mode": "none"}, None, None),
    ("http-ready", {}, {"ready": {"http": "/version"}}, "127.0.0.1:8080", "http://127.0.0.1:8080/version"),
    ("http-ready-global", {"ready": {"http": "/health", "status": 204}}, {}, "127.0.0.1:8080",
     "http://127.0.0.1:8080/health"),
    ("http-ready-no-ports", {}, {"ready": {"http": "/"}, "ports": []}, None, None),
    ("log-ready", {}, {"ready": {"log": "listening"}}, "127.0.0.1:8080", None),
    ("ipv6-loopback", {"bind_address": "::1"}, {}, "[::1]:8080", None),
    ("ipv6-any", {"bind_address": "::"}, {"ready": {"http": "/v"}}, "[::1]:8080", "http://[::1]:8080/v"),
    ("ipv6-mapping", {}, {"ports": ["[::1]:9000:8080"]}, "[::1]:9000", None),
    ("tool", {}, {"kind": "tool"}, None, None),
]


@pytest.mark.parametrize("params, settings, address, url", [c[1:] for c in ADDRESS_CASES],
                         ids=[c[0] for c in ADDRESS_CASES])
def test_address_and_url(params: dict, settings: dict, address: t.Optional[str], url: t.Optional[str]) -> None:
    api = by_name(render(services={"api": settings}, **params))["api"]
    assert (api["address"], api["url"]) == (address, url)


def test_ipv6_bind_address_binding() -> None:
    result = render(bind_address="::1")
    api = by_name(result)["api"]
    assert api["address"] == "[::1]:8080"
    assert api["container"]["published_ports"] == [{"ip": "::1", "host": 8080, "container": 8080, "proto": "tcp"}]
    assert dk.create_body(api["container"])["HostConfig"]["PortBindings"] == {
        "8080/tcp": [{"HostIp": "::1", "HostPort": "8080"}]}


HOST_ADDRESS_CASES = [
    ("ipv4", "127.0.0.1", "127.0.0.1"),
    ("any", "0.0.0.0", "0.0.0.0"),
    ("ipv6", "::1", "::1"),
    ("ipv6-bracketed", "[::1]", "::1"),
    ("ipv6-compressed", "0:0:0:0:0:0:0:1", "::1"),
    ("ipv6-any", "::", "::"),
]


@pytest.mark.parametrize("value, expected", [c[1:] for c in HOST_ADDRESS_CASES], ids=[c[0] for c in HOST_ADDRESS_CASES])
def test_host_address(value: str, expected: str) -> None:
    assert pl.host_address(value, "bind_address") == expected


@pytest.mark.parametrize("value", ["localhost", "127.0.0.1:80", "::1::", "[127.0.0.1]x", ""])
def test_host_address_errors(value: str) -> None:
    with pytest.raises(ValueError, match=r"^opt: .* is not an IP address"):
        pl.host_address(value, "opt")


URL_HOST_CASES = [("0.0.0.0", "127.0.0.1"), ("", "127.0.0.1"), ("::", "[::1]"), ("::1", "[::1]"),
                  ("10.1.2.3", "10.1.2.3"), ("fd00::5", "[fd00::5]")]


@pytest.mark.parametrize("address, expected", URL_HOST_CASES)
def test_url_host(address: str, expected: str) -> None:
    assert pl.url_host(address) == expected


def test_network_mode_other_than_service() -> None:
    result = render(services={"auth": {"network_mode": "host"}, "billing": {"network_mode": "none"}})
    for name, mode in (("auth", "host"), ("billing", "none")):
        container = by_name(result)[name]["container"]
        assert (container["network_mode"], container["networks"], container["sysctls"]) == (mode, [], {})
        assert container["published_ports"] == []
        assert dk.create_body(container)["HostConfig"]["NetworkMode"] == mode
    # auto ports skip them: api gets port_base, nobody else is numbered
    assert ports_of(result) == {"api": ["127.0.0.1:8080:8080"], "auth": [], "billing": []}


def test_host_network_services_do_not_collide() -> None:
    try:
        result = render(services={"auth": {"network_mode": "host"}, "billing": {"network_mode": "host"}})
    except ValueError as exc:
        assert "services." in str(exc)
        return
    assert env_of(result, "auth")["PORT"] != env_of(result, "billing")["PORT"]


# --------------------------------------------------------------------------
# Readiness, tools, listen
# --------------------------------------------------------------------------

def _ready(kind: str, port: t.Optional[int] = None, path: t.Optional[str] = None, status: t.Optional[int] = None,
           pattern: t.Optional[str] = None) -> dict:
    return {"type": kind, "port": port, "path": path, "status": status, "pattern": pattern}


PARSE_READY_CASES = [
    ("default", None, 8080, _ready("port", 8080)),
    ("port", "port", 7070, _ready("port", 7070)),
    ("none", "none", 8080, _ready("none")),
    ("healthcheck", "healthcheck", 8080, _ready("healthcheck")),
    ("http", {"http": "/version"}, 8080, _ready("http", 8080, "/version")),
    ("http-status", {"http": "/x", "status": 200}, 8080, _ready("http", 8080, "/x", 200)),
    ("http-status-text", {"http": "/x", "status": "204"}, 9, _ready("http", 9, "/x", 204)),
    ("log", {"log": r"listening on \S+"}, 8080, _ready("log", pattern=r"listening on \S+")),
]


@pytest.mark.parametrize("value, port, expected", [c[1:] for c in PARSE_READY_CASES],
                         ids=[c[0] for c in PARSE_READY_CASES])
def test_parse_ready(value: t.Any, port: int, expected: dict) -> None:
    assert pl.parse_ready(value, "services.api.ready", port) == expected


PARSE_READY_ERRORS = [
    ("unknown-word", "tcp", ["services.api.ready:", "'tcp'", "{http: /path}"]),
    ("bare-http", "http", ["services.api.ready:", "'http'"]),
    ("bare-log", "log", ["services.api.ready:", "'log'"]),
    ("number", 8080, ["services.api.ready:", "must be port, none, healthcheck"]),
    ("bool", True, ["services.api.ready:"]),
    ("list", ["port"], ["services.api.ready:"]),
    ("http-no-slash", {"http": "version"}, ["services.api.ready.http:", "'version'"]),
    ("status-too-big", {"http": "/", "status": 999}, ["services.api.ready.status:", "100..599"]),
    ("status-bool", {"http": "/", "status": True}, ["services.api.ready.status:"]),
    ("status-word", {"http": "/", "status": "ok"}, ["services.api.ready.status:", "'ok'"]),
    ("status-without-http", {"status": 200}, ["services.api.ready: unknown keys status"]),
    ("log-and-http", {"log": "x", "http": "/"}, ["services.api.ready: unknown keys http, log"]),
    ("bad-regex", {"log": "listening ("}, ["services.api.ready.log:", "not a valid regular expression"]),
]


@pytest.mark.parametrize("value, fragments", [c[1:] for c in PARSE_READY_ERRORS],
                         ids=[c[0] for c in PARSE_READY_ERRORS])
def test_parse_ready_errors(value: t.Any, fragments: t.List[str]) -> None:
    with pytest.raises(ValueError) as info:
        pl.parse_ready(value, "services.api.ready", 8080)
    for fragment in fragments:
        assert fragment in str(info.value)


# (id, options, settings of api, ready, CARGOHOLD_READY* env of api)
READY_ENV_CASES = [
    ("default", {}, {}, _ready("port", 8080), {"CARGOHOLD_READY": "port", "CARGOHOLD_READY_PORT": "8080"}),
    ("service-port", {}, {"port": 7070}, _ready("port", 7070),
     {"CARGOHOLD_READY": "port", "CARGOHOLD_READY_PORT": "7070"}),
    ("none", {}, {"ready": "none"}, _ready("none"), {"CARGOHOLD_READY": "none"}),
    ("global-none", {"ready": "none"}, {}, _ready("none"), {"CARGOHOLD_READY": "none"}),
    ("http", {}, {"ready": {"http": "/version"}}, _ready("http", 8080, "/version"),
     {"CARGOHOLD_READY": "http", "CARGOHOLD_READY_PORT": "8080", "CARGOHOLD_READY_PATH": "/version"}),
    ("http-status", {}, {"ready": {"http": "/x", "status": 200}, "port": 9000}, _ready("http", 9000, "/x", 200),
     {"CARGOHOLD_READY": "http", "CARGOHOLD_READY_PORT": "9000", "CARGOHOLD_READY_PATH": "/x",
      "CARGOHOLD_READY_STATUS": "200"}),
    ("global-http-own-port", {"ready": {"http": "/v"}}, {"port": 7000}, _ready("http", 7000, "/v"),
     {"CARGOHOLD_READY": "http", "CARGOHOLD_READY_PORT": "7000", "CARGOHOLD_READY_PATH": "/v"}),
    ("service-overrides-global", {"ready": {"http": "/v"}}, {"ready": "port"}, _ready("port", 8080),
     {"CARGOHOLD_READY": "port", "CARGOHOLD_READY_PORT": "8080"}),
    ("log", {}, {"ready": {"log": "^ready$"}}, _ready("log", pattern="^ready$"),
     {"CARGOHOLD_READY": "log", "CARGOHOLD_READY_LOG": "^ready$"}),
    ("healthcheck", {}, {"ready": "healthcheck", "docker": {"healthcheck": {"test": "true"}}}, _ready("healthcheck"),
     {"CARGOHOLD_READY": "none"}),
    ("tool-is-never-waited-for", {"ready": {"http": "/v"}}, {"kind": "tool", "ready": {"log": "x"}}, _ready("none"),
     {"CARGOHOLD_READY": "none"}),
    ("listen-adds-forward-port", {}, {"listen": "127.0.0.1", "ready": "none"}, _ready("none"),
     {"CARGOHOLD_READY": "none", "CARGOHOLD_READY_PORT": "8080"}),
]


@pytest.mark.parametrize("params, settings, ready, env", [c[1:] for c in READY_ENV_CASES],
                         ids=[c[0] for c in READY_ENV_CASES])
def test_readiness_in_plan(params: dict, settings: dict, ready: dict, env: dict) -> None:
    result = render(services={"api": settings}, **params)
    assert by_name(result)["api"]["ready"] == ready
    assert {k: v for k, v in env_of(result, "api").items() if k.startswith("CARGOHOLD_READY")} == env


def test_global_healthcheck_readiness_needs_every_service_healthcheck() -> None:
    with pytest.raises(ValueError, match=r"^services\.api\.ready: healthcheck needs docker\.healthcheck"):
        render(ready="healthcheck")


def test_tool() -> None:
    result = render(services={"billing": {"kind": "tool", "args": ["migrate"]}})
    billing = by_name(result)["billing"]
    assert (billing["kind"], billing["port"], billing["address"], billing["url"]) == ("tool", None, None, None)
    assert billing["ready"]["type"] == "none"
    assert billing["container"]["published_ports"] == []
    env = billing["container"]["env"]
    assert (env["CARGOHOLD_KIND"], env["CARGOHOLD_READY"]) == ("tool", "none")
    assert "CARGOHOLD_READY_PORT" not in env
    assert billing["container"]["command"][-2:] == ["--", "migrate"]
    assert env_of(result, "api")["CARGOHOLD_KIND"] == "service"


LISTEN_CASES = [
    ("ipv4-loopback", "127.0.0.1", "127.0.0.1"),
    ("localhost", "localhost", "127.0.0.1"),
    ("ipv6-loopback", "::1", "::1"),
    ("ipv6-bracketed", "[::1]", "::1"),
    ("any-needs-no-forward", "0.0.0.0", None),
    ("ipv6-any-needs-no-forward", "::", None),
]


@pytest.mark.parametrize("listen, forward", [c[1:] for c in LISTEN_CASES], ids=[c[0] for c in LISTEN_CASES])
def test_listen(listen: str, forward: t.Optional[str]) -> None:
    env = env_of(render(services={"api": {"listen": listen, "port": 7000}}), "api")
    assert env.get("CARGOHOLD_FORWARD") == forward
    assert env["CARGOHOLD_READY_PORT"] == "7000"
    assert "CARGOHOLD_FORWARD" not in env_of(render(), "api")


# --------------------------------------------------------------------------
# Network sharing and start order
# --------------------------------------------------------------------------

def test_network_mode_service() -> None:
    # backend sorts before gateway, yet it shares gateway's namespace: gateway starts first
    result = render(one(package("backend", "b"), package("gateway", "g"), package("zeta", "z")),
                    services={"backend": {"network_mode": "service:gateway", "port": 7001}})
    services = by_name(result)
    backend, gateway = services["backend"]["container"], services["gateway"]["container"]
    assert (backend["network_mode"], backend["networks"], backend["sysctls"]) == ("container:ws-gateway", [], {})
    assert backend["published_ports"] == []
    # backend's host port (port_base + 0) is published on gateway's container, to backend's port
    assert gateway["published_ports"] == [{"ip": "127.0.0.1", "host": 8081, "container": 8080, "proto": "tcp"},
                                          {"ip": "127.0.0.1", "host": 8080, "container": 7001, "proto": "tcp"}]
    assert services["backend"]["address"] == "127.0.0.1:8080"
    assert services["backend"]["network_target"] == "gateway"
    assert result["order"] == ["gateway", "backend", "zeta"]
    assert [c["name"] for c in result["containers"]] == ["ws-gateway", "ws-backend", "ws-zeta"]
    body = dk.create_body(backend)
    assert body["HostConfig"]["NetworkMode"] == "container:ws-gateway"
    assert "NetworkingConfig" not in body and body["HostConfig"]["PortBindings"] == {}


def test_network_sharers_need_distinct_ports() -> None:
    try:
        result = render(one(package("backend", "b"), package("gateway", "g")),
                        services={"backend": {"network_mode": "service:gateway"}})
    except ValueError as exc:
        assert "services.backend" in str(exc)
        return
    assert env_of(result, "backend")["PORT"] != env_of(result, "gateway")["PORT"]


# Depth-first in name order: a service's dependencies come right before it.
ORDER_CASES = [
    ("by-name", {}, ["api", "auth", "billing"]),
    ("one-dependency", {"api": {"depends_on": ["billing"]}}, ["billing", "api", "auth"]),
    ("chain", {"api": {"depends_on": ["auth"]}, "auth": {"depends_on": ["billing"]}}, ["billing", "auth", "api"]),
    ("diamond-ties-by-name", {"api": {"depends_on": ["billing", "auth"]}}, ["auth", "billing", "api"]),
    ("network-target-first", {"api": {"network_mode": "service:billing", "port": 9001}}, ["billing", "api", "auth"]),
    ("both", {"auth": {"depends_on": ["api"]}, "api": {"network_mode": "service:billing", "port": 9001}},
     ["billing", "api", "auth"]),
    ("disabled-left-out", {"billing": {"enabled": False}, "api": {"depends_on": ["auth"]}}, ["auth", "api"]),
]


@pytest.mark.parametrize("services, expected", [c[1:] for c in ORDER_CASES], ids=[c[0] for c in ORDER_CASES])
def test_start_order(services: dict, expected: t.List[str]) -> None:
    result = render(services=services)
    assert result["order"] == expected
    for name in expected:  # topological
        service = by_name(result)[name]
        for dep_name in service["depends_on"] + ([service["network_target"]] if service["network_target"] else []):
            assert expected.index(dep_name) < expected.index(name)
    assert [c["name"] for c in result["containers"]] == [f"ws-{n}" for n in expected]
    assert [s["name"] for s in result["services"]] == sorted(expected)  # services stay sorted by name


def test_start_order_function() -> None:
    settings = {n: pl.Settings() for n in "abcde"}
    settings["a"].depends_on = ["e"]
    settings["c"].depends_on = ["b", "e"]
    settings["d"].network_mode = "service:a"
    assert pl.start_order(settings, list("edcba")) == ["e", "a", "b", "c", "d"]


# --------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------

CONTAINER_NAME_CASES = [
    ("prefixed", "shop", "auth", "shop-auth"),
    ("binary-carries-project", "shop", "shop-auth", "shop-auth"),
    ("binary-is-project", "kvd", "kvd", "kvd"),
    ("prefix-without-dash-is-not-stutter", "shop", "shopping", "shop-shopping"),
    ("underscore-is-not-stutter", "shop", "shop_auth", "shop-shop_auth"),
    ("suffix-is-not-stutter", "auth", "shop-auth", "auth-shop-auth"),
]


@pytest.mark.parametrize("project, service, expected", [c[1:] for c in CONTAINER_NAME_CASES],
                         ids=[c[0] for c in CONTAINER_NAME_CASES])
def test_container_name(project: str, service: str, expected: str) -> None:
    assert pl.container_name(project, service) == expected


def test_no_stutter_in_plan() -> None:
    result = render(one(package("kvd", ".", [target("kvd"), target("kvctl")])), project="kvd")
    assert [c["name"] for c in result["containers"]] == ["kvd-kvctl", "kvd"]


def test_container_names_are_unique() -> None:
    try:
        result = render(one(package("api", "a"), package("shop-api", "b")), project="shop")
    except ValueError as exc:
        assert "shop-api" in str(exc)
        return
    names = [c["name"] for c in result["containers"]]
    assert len(names) == len(set(names)), names


PROJECT_CASES = [
    ("plain", "/src/shop", "shop"),
    ("upper-and-space", "/src/My Shop", "my-shop"),
    ("leading-junk", "/src/_-.Shop", "shop"),
    ("trailing-slash", "/src/shop/", "shop"),
    ("unicode", "/src/café", "caf-"),
]


@pytest.mark.parametrize("root, expected", [c[1:] for c in PROJECT_CASES], ids=[c[0] for c in PROJECT_CASES])
def test_default_project(root: str, expected: str) -> None:
    assert pl.default_project(root) == expected


def test_default_project_unusable() -> None:
    with pytest.raises(ValueError, match="project:.*set project"):
        pl.validate_project(pl.default_project("/src/___"), from_default=True)


def test_project_and_network_from_project_dir() -> None:
    project, cargo_roots = shape_roots("/home/dev/My Roots")
    result = plan(cargo_roots, project)
    assert (result["project"], result["network"]) == ("my-roots", "my-roots-dev")
    assert result["containers"][0]["mounts"][0]["source"] == "/home/dev/My Roots"
    assert plan(cargo_roots, project, network="shared")["network"] == "shared"


# --------------------------------------------------------------------------
# Errors in the user's words
# --------------------------------------------------------------------------

NAMES = {"services": "dev_services_overrides", "port_base": "dev_services_port_base", "roots": "cargohold_roots",
         "cargo_args": "dev_services_cargo_args", "watch_ignore": "dev_services_watch_ignore",
         "ready": "dev_services_ready"}

USER_WORDS_CASES = [
    ("top-option", "port_base: port 70000 is out of range", "dev_services_port_base: port 70000 is out of range"),
    ("nested", "services.api.ports: host port 9000 is already used",
     "dev_services_overrides.api.ports: host port 9000 is already used"),
    ("nested-deep", "services.api.mounts[0].target: /x", "dev_services_overrides.api.mounts[0].target: /x"),
    ("indexed", "roots[1]: /p/x has no Cargo.toml", "cargohold_roots[1]: /p/x has no Cargo.toml"),
    ("indexed-top", "watch_ignore[0]: '/x' must be relative", "dev_services_watch_ignore[0]: '/x' must be relative"),
    ("ready-nested", "ready.status: '999'", "dev_services_ready.status: '999'"),
    ("unknown-option-untouched", "metadata: not valid JSON", "metadata: not valid JSON"),
    ("not-an-option", "Something broke: badly", "Something broke: badly"),
    ("only-the-lead", "cargo_args: drop --locked; see services: x",
     "dev_services_cargo_args: drop --locked; see services: x"),
    ("no-colon", "services are fine", "services are fine"),
]


@pytest.mark.parametrize("message, expected", [c[1:] for c in USER_WORDS_CASES], ids=[c[0] for c in USER_WORDS_CASES])
def test_user_words(message: str, expected: str) -> None:
    assert pl.user_words(message, NAMES) == expected


def test_user_words_on_real_errors() -> None:
    for kwargs, start in ((dict(services={"api": {"ports": ["http"]}}), "dev_services_overrides.api.ports: "),
                          (dict(cargo_args=["--locked"], cargo_roots=[base_root(lockfile=False)]),
                           "dev_services_cargo_args: --locked")):
        kwargs = dict(kwargs)
        with pytest.raises(ValueError) as info:
            render(kwargs.pop("cargo_roots", None), **kwargs)
        assert pl.user_words(str(info.value), NAMES).startswith(start)


def test_user_words_on_auto_port_errors() -> None:
    with pytest.raises(ValueError) as info:
        render(port_base=65535)
    assert pl.user_words(str(info.value), NAMES).startswith("dev_services_port_base")


# --------------------------------------------------------------------------
# Environment, labels, overrides, working directory
# --------------------------------------------------------------------------

def test_env_layers_and_labels() -> None:
    result = render(env={"RUST_LOG": "info", "DEBUG": True, "N": 3, "PORT": "1"},
                    labels={"team": "core"},
                    services={"api": {"env": {"RUST_LOG": "debug", "EMPTY": None, "OFF": False}}})
    api = by_name(result)["api"]["container"]
    own = {k: v for k, v in api["env"].items() if not k.startswith("CARGOHOLD_")}
    assert own == {"CARGO_TARGET_DIR": "/cargo-target", "PORT": "1", "SERVICE_NAME": "api",
                   "RUST_LOG": "debug", "DEBUG": "true", "N": "3", "EMPTY": "", "OFF": "false"}
    assert env_of(result, "auth")["RUST_LOG"] == "info"
    assert api["labels"]["team"] == "core"


def test_overrides_applied() -> None:
    result = render(services={
        "api": {
            "mounts": [{"source": "config", "target": "/etc/api", "read_only": True},
                       {"source": "pgdata", "target": "/data", "type": "volume"},
                       {"target": "/scratch", "type": "tmpfs"},
                       {"source": "/abs/x", "target": "/x"}],
            "working_dir": "services/api",
            "docker": {"cap_add": ["NET_ADMIN"], "memory": "1g"},
            "depends_on": ["billing", "auth"],
        },
    })
    api = by_name(result)["api"]
    assert api["container"]["mounts"][4:] == [
        {"type": "bind", "source": f"{ROOT}/config", "target": "/etc/api", "read_only": True},
        {"type": "volume", "source": "pgdata", "target": "/data", "read_only": False},
        {"type": "tmpfs", "source": None, "target": "/scratch", "read_only": False},
        {"type": "bind", "source": "/abs/x", "target": "/x", "read_only": False},
    ]
    assert api["container"]["working_dir"] == "/workspace/services/api"
    assert api["container"]["extra"] == {"cap_add": ["NET_ADMIN"], "memory": "1g"}
    assert api["depends_on"] == ["auth", "billing"]


WORKING_DIR_CASES = [
    ("top-root", "single", {}, "kvd", "/workspace"),
    ("own-root", "roots", {}, "payments", "/workspace/payments"),
    ("own-root-custom-source", "roots", {"source_dir": "/src"}, "orders", "/src/orders"),
    ("relative-to-source-not-root", "roots", {"services": {"orders": {"working_dir": "orders/src"}}}, "orders",
     "/workspace/orders/src"),
    ("absolute", "roots", {"services": {"orders": {"working_dir": "/tmp"}}}, "orders", "/tmp"),
    ("member-of-workspace-starts-at-root", "nolock", {}, "catalog", "/workspace"),
]


@pytest.mark.parametrize("shape, params, service, expected", [c[1:] for c in WORKING_DIR_CASES],
                         ids=[c[0] for c in WORKING_DIR_CASES])
def test_working_dir(shape: str, params: dict, service: str, expected: str) -> None:
    assert by_name(shaped(shape, **params))[service]["container"]["working_dir"] == expected


def test_state() -> None:
    result = render(state_dir="/home/dev/.cache/cargohold/ws/run")
    api = by_name(result)["api"]
    assert result["state_dir"] == "/home/dev/.cache/cargohold/ws/run"
    assert api["state_dir"] == "/home/dev/.cache/cargohold/ws/run/api"
    assert api["container"]["mounts"][3] == {"type": "bind", "source": "/home/dev/.cache/cargohold/ws/run",
                                             "target": "/run/cargohold", "read_only": False}
    assert api["container"]["env"]["CARGOHOLD_STATE"] == "/run/cargohold/api"


# --------------------------------------------------------------------------
# Shared builder
# --------------------------------------------------------------------------

def test_shared_builder() -> None:
    cargo_roots = one(
        package("api", "api", deps=[dep("common", "common")]),
        package("gated", "gated", [target("gated", required_features=["metrics"])]),
        package("off", "off", [target("off", required_features=["x"])]),
        package("common", "common", [target("common", "lib")]),
    )
    result = render(cargo_roots, mode="shared_builder", cargo_args=["--locked"], watch_ignore=["gen/*"],
                    services={"api": {"args": ["--port", "1"]}, "off": {"enabled": False}})
    builder = result["builder"]
    assert result["containers"][0] is builder
    assert builder["name"] == "ws-builder"
    assert builder["labels"] == {"io.cargohold.project": "ws", "io.cargohold.role": "builder",
                                 "io.cargohold.mode": "shared_builder"}
    assert builder["published_ports"] == [] and builder["extra"] == {}
    assert builder["networks"] == [{"name": "ws-dev", "aliases": []}]
    assert builder["env"] == {"CARGO_TARGET_DIR": "/cargo-target", "CARGOHOLD_BUILD_STATE": "/run/cargohold/builder"}
    assert builder["command"] == [
        "cargo", "watch", "--delay", "0.1",
        "-w", "/workspace/Cargo.lock", "-w", "/workspace/Cargo.toml", "-w", "/workspace/api",
        "-w", "/workspace/common", "-w", "/workspace/gated", "-i", "/workspace/gen/*",
        "-s", "cargohold-build build --manifest-path /workspace/Cargo.toml --workspace --bins "
              "--features gated/metrics --locked",
    ]
    services = by_name(result)
    api = services["api"]["container"]
    assert api["command"] == ["cargohold-run", "--", "--port", "1"]
    assert api["env"]["CARGOHOLD_BIN"] == "/cargo-target/debug/api"
    assert api["env"]["CARGOHOLD_BUILD_STATE"] == "/run/cargohold/builder"
    assert "CARGOHOLD_OWN_BUILD" not in api["env"]
    assert services["gated"]["container"]["command"] == ["cargohold-run", "--"]
    assert api["labels"]["io.cargohold.mode"] == "shared_builder"


def test_shared_builder_two_roots() -> None:
    project, cargo_roots = shape_roots()
    result = plan(cargo_roots, project, mode="shared_builder")
    command = result["builder"]["command"]
    assert command[command.index("-s") + 1] == (
        "cargohold-build build --manifest-path /workspace/orders/Cargo.toml --workspace --bins && "
        "cargohold-build build --manifest-path /workspace/payments/Cargo.toml --workspace --bins")
    assert [command[i + 1] for i, a in enumerate(command) if a == "-w"] == ["/workspace/orders", "/workspace/payments"]
    assert result["builder"]["working_dir"] == "/workspace"


# --------------------------------------------------------------------------
# The one table of per-service settings
# --------------------------------------------------------------------------

def test_settings_mirror_service_options() -> None:
    assert list(pl.Settings.__dataclass_fields__) == list(pl.SERVICE_OPTIONS)  # pylint: disable=no-member
    spec = pl.service_argument_spec()
    assert list(spec) == list(pl.SERVICE_OPTIONS)
    for name, option in pl.SERVICE_OPTIONS.items():
        assert option.get("doc"), f"{name} has no doc"
        assert "doc" not in spec[name] and spec[name]["type"] == option["type"]
        default = pl.Settings.__dataclass_fields__[name]  # pylint: disable=no-member
        if "default" in option:
            assert default.default == option["default"], name


def test_service_settings_defaults() -> None:
    settings = pl.service_settings({"api": None, "auth": {"listen": "localhost", "args": [1]}},
                                   ["api", "auth"], list(dk.DOCKER_OPTIONS))
    assert settings["api"] == pl.Settings()
    assert (settings["auth"].listen, settings["auth"].args) == ("127.0.0.1", ["1"])


# --------------------------------------------------------------------------
# The fixture shapes, planned with the overrides of their dev.yml
# --------------------------------------------------------------------------

@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_shapes_with_their_dev_yml(shape: str) -> None:
    options = options_from_vars(fixture_vars(shape))
    project, cargo_roots = SHAPES[shape]()
    listed = options.pop("roots", None)
    if listed is not None:
        assert listed == [r.rel for r in cargo_roots]
    result = plan(cargo_roots, project, **options)
    SHAPE_CHECKS[shape](result)
    for container in result["containers"]:
        dk.create_body(container)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_shapes_in_shared_builder_mode(shape: str) -> None:
    options = options_from_vars(fixture_vars(shape))
    options.pop("roots", None)
    project, cargo_roots = SHAPES[shape]()
    result = plan(cargo_roots, project, mode="shared_builder", **options)
    assert result["containers"][0]["name"] == f"{result['project']}-builder"
    services = {s["name"] for s in result["services"]}
    assert {c["labels"].get("io.cargohold.service") for c in result["containers"][1:]} == services


def test_shape_helpers_match_their_readme() -> None:
    # the hand-written shapes must stay the fixtures' shapes (real cargo checks the same facts)
    assert [r.rel for r in shape_single()[1]] == ["."]
    assert [r.has_lockfile for r in shape_nolock()[1]] == [False]
    assert {s.name for s in ws.discover_services(shape_buildrs()[1])} == {"backend", "gateway"}


# --------------------------------------------------------------------------
# Watchers and polling
# --------------------------------------------------------------------------

def test_default_watcher_commands_are_unchanged() -> None:
    """cargo-watch without polling: the commands of existing stacks, so that nothing is recreated."""
    api = by_name(render())["api"]["container"]["command"]
    assert api[:api.index("--")] == [
        "cargohold-run", "cargo", "watch", "--delay", "0.1", "-w", "/workspace/Cargo.lock",
        "-w", "/workspace/Cargo.toml", "-w", "/workspace/crates/common", "-w", "/workspace/services/api",
        "-s", "cargohold-build --batch /cargo-target/cargohold-batch -p api --bin api -- build --manifest-path /workspace/Cargo.toml"]
    result = render(mode="shared_builder", watch_ignore=["x/*.rs"])
    assert result["builder"]["command"][:4] == ["cargo", "watch", "--delay", "0.1"]
    assert result["builder"]["command"][-4:-2] == ["-i", "/workspace/x/*.rs"]
    assert [c["labels"]["io.cargohold.role"] for c in result["containers"]].count("poller") == 0


def test_watchexec_command_per_service_and_builder() -> None:
    api = by_name(render(watcher="watchexec", watch_delay=0.25, watch_ignore=["gen/*.rs"]))["api"]
    command = api["container"]["command"]
    watcher = command[1:command.index("--")]
    assert watcher == [
        "watchexec", "--debounce", "250ms", "--on-busy-update", "restart", "--emit-events-to", "none",
        "--shell", "sh", "--project-origin", "/workspace", "-w", "/workspace/Cargo.lock", "-w", "/workspace/Cargo.toml",
        "-w", "/workspace/crates/common", "-w", "/workspace/services/api", "-i", "/gen/*.rs",
        "cargohold-build --batch /cargo-target/cargohold-batch -p api --bin api -- build --manifest-path /workspace/Cargo.toml"]
    builder = render(watcher="watchexec", mode="shared_builder")["builder"]["command"]
    assert builder[0] == "watchexec" and builder[-1].startswith("cargohold-build build ")
    assert "-s" not in builder


@pytest.mark.parametrize("watcher", ["cargo-watch", "watchexec"])
def test_poll_per_service_one_poller_and_watchers_on_the_mirror(watcher: str) -> None:
    result = render(poll=True, poll_interval="2s", watcher=watcher, watch_ignore=["gen/*.rs"],
                    services={"api": {"watch_ignore": ["services/api/out.txt"]}})
    mirror = "/cargo-cache/cargohold-poll/ws"
    pollers = [c for c in result["containers"] if c["labels"]["io.cargohold.role"] == "poller"]
    assert len(pollers) == 1 and result["containers"][0] is pollers[0], "one poller, started first"
    poller = pollers[0]
    assert poller["name"] == "ws-poller" and poller["published_ports"] == [] and poller["restart_policy"]
    assert poller["command"] == [
        "cargohold-poll", "--source", "/workspace", "--mirror", mirror, "--interval", "2",
        "--scan", "/workspace/Cargo.lock", "--scan", "/workspace/Cargo.toml", "--scan", "/workspace/crates/common",
        "--scan", "/workspace/services/api", "--scan", "/workspace/services/auth",
        "--scan", "/workspace/services/billing", "--prune", "/workspace/target"]
    api = by_name(result)["api"]
    assert api["watch"][-1] == "/workspace/services/api", "the plan still names the source paths"
    command = api["container"]["command"]
    watcher_argv = command[1:command.index("--")]
    assert watcher_argv[:5] == ["cargohold-poll", "--source", "/workspace", "--mirror", mirror]
    assert "--scan" not in watcher_argv and "--interval" not in watcher_argv, "a service's watcher does not poll"
    watched = [watcher_argv[i + 1] for i, a in enumerate(watcher_argv) if a == "-w"]
    assert watched == [f"{mirror}/Cargo.lock", f"{mirror}/Cargo.toml", f"{mirror}/crates/common",
                       f"{mirror}/services/api"]
    ignored = [watcher_argv[i + 1] for i, a in enumerate(watcher_argv) if a == "-i"]
    if watcher == "watchexec":
        assert watcher_argv[watcher_argv.index("--project-origin") + 1] == mirror
        assert ignored == ["/gen/*.rs", "/services/api/out.txt"], "anchored at the project origin: the mirror"
    else:
        assert ignored == [f"{mirror}/gen/*.rs", f"{mirror}/services/api/out.txt"]
    assert watcher_argv[5] == ("watchexec" if watcher == "watchexec" else "cargo")


def test_poll_shared_builder_polls_in_the_builder() -> None:
    result = render(poll=True, mode="shared_builder", cache_dir="/cache", project="shop")
    assert [c["labels"]["io.cargohold.role"] for c in result["containers"]].count("poller") == 0
    command = result["builder"]["command"]
    mirror = "/cache/cargohold-poll/shop"
    assert command[:7] == ["cargohold-poll", "--source", "/workspace", "--mirror", mirror, "--interval", "0.5"]
    scanned = [command[i + 1] for i, a in enumerate(command) if a == "--scan"]
    watched = [command[i + 1] for i, a in enumerate(command) if a == "-w"]
    assert [pl.mirrored(p, "/workspace", mirror) for p in scanned] == watched
    assert command[command.index("cargo"):][:2] == ["cargo", "watch"]
    for service in result["services"]:
        assert service["container"]["command"][:2] == ["cargohold-run", "--"], "services only run binaries"


@pytest.mark.parametrize("value, seconds", [("500ms", 0.5), ("2s", 2.0), ("0.25", 0.25), (1, 1.0), ("50ms", 0.05),
                                            ("60s", 60.0), (" 750 ms ", 0.75)])
def test_poll_interval(value: t.Any, seconds: float) -> None:
    assert pl.poll_seconds(value) == seconds


def test_poll_off_ignores_the_interval() -> None:
    """An unused interval is still checked (a typo is caught before it matters), but changes nothing."""
    assert render(poll_interval="2s") == render()
    with pytest.raises(ValueError, match="^poll_interval:"):
        render(poll_interval="soon")


# --------------------------------------------------------------------------
# The container user and the stack's names
# --------------------------------------------------------------------------

CONTAINER_USER_CASES = [
    # (id, owner uid, owner gid, uid, gid, fallback, expected)
    ("owner", 1000, 1000, "", "", 1000, "1000:1000"),
    ("owner-other-group", 1001, 50, "", "", 1000, "1001:50"),
    ("root-owned-falls-back", 0, 0, "", "", 1000, "1000:1000"),
    ("root-owned-other-fallback", 0, 0, "", "", 4242, "4242:4242"),
    ("uid-set", 1000, 1000, "2000", "", 1000, "2000:1000"),
    ("both-set-on-root-owned", 0, 0, 2000, 3000, 1000, "2000:3000"),
    ("none-means-empty", 1000, 1000, None, None, 1000, "1000:1000"),
]


@pytest.mark.parametrize("owner_uid, owner_gid, uid, gid, fallback, expected",
                         [c[1:] for c in CONTAINER_USER_CASES], ids=[c[0] for c in CONTAINER_USER_CASES])
def test_container_user(owner_uid: int, owner_gid: int, uid: t.Any, gid: t.Any, fallback: int,
                        expected: str) -> None:
    assert pl.container_user(owner_uid, owner_gid, uid, gid, fallback) == expected


@pytest.mark.parametrize("uid, gid, option", [("0", "", "uid"), ("", "0", "gid"), ("abc", "", "uid"),
                                              ("", "-5", "gid")])
def test_container_user_refuses_root_and_non_numbers(uid: str, gid: str, option: str) -> None:
    with pytest.raises(ValueError, match=f"^{option}: is "):
        pl.container_user(1000, 1000, uid, gid)


def test_stack_names_are_the_ones_the_plan_falls_back_to() -> None:
    names = pl.stack_names("shop")
    assert names == {
        "image_name": "cargohold/dev", "image_tag": "shop", "image": "cargohold/dev:shop", "network": "shop-dev",
        "target_volume": "shop-cargo-target", "cache_volume": "shop-cargo-cache",
        "state_dir": "~/.cache/cargohold/shop/run", "plan_file": "~/.cache/cargohold/shop/plan.json",
        "build_dir": "~/.cache/cargohold/build"}
    result = plan([cargo_root(".", package("api", "api"))], network=None)
    assert result["network"] == pl.stack_names(result["project"])["network"]
