"""Pure logic of module_utils/_workspace.py on hand-written cargo metadata."""

from __future__ import annotations

import json
import typing as t

import pytest

from ansible_collections.cargohold.devenv.plugins.module_utils import _workspace as ws

from helpers import ROOT, dep, metadata, package, target

PARAMS = {"image": "dev:latest", "user": "1000:1000", "target_volume": "ws-target", "cache_volume": "ws-cache"}


def base_metadata() -> dict:
    return metadata(
        package("api", "services/api", deps=[dep("common", "crates/common"), dep("serde")]),
        package("auth-service", "services/auth", [target("auth")], deps=[dep("common", "crates/common")]),
        package("billing", "services/billing"),
        package("common", "crates/common", [target("common", "lib")]),
    )


def render(md: t.Optional[dict] = None, has_lockfile: bool = True, **params: t.Any) -> dict:
    return ws.render(md or base_metadata(), ws.Workspace(ROOT, has_lockfile), dict(PARAMS, **params))


def by_name(result: dict) -> dict:
    return {s["name"]: s for s in result["services"]}


# --------------------------------------------------------------------------
# Errors: each must name the field at fault
# --------------------------------------------------------------------------

ERROR_CASES = [
    ("no-binary", dict(md=metadata(package("common", "crates/common", [target("common", "lib")]))),
     ["path:", "no binary target"]),
    ("duplicate-bin", dict(md=metadata(package("x", "a", [target("tool")]), package("y", "b", [target("tool")]))),
     ["services:", "'tool'", "package 'x'", "package 'y'", "[[bin]]"]),
    ("path-dep-outside-root", dict(md=metadata(package("api", "api", deps=[dep("ext", "/elsewhere/ext")]))),
     ["service 'api'", "'ext'", "/elsewhere/ext", "outside the workspace root"]),
    ("path-dep-outside-root-transitive",
     dict(md=metadata(package("api", "api", deps=[dep("lib", "lib")]),
                      package("lib", "lib", [target("lib", "lib")], deps=[dep("ext", "../ext")]))),
     ["service 'api'", "via package 'lib'", "'ext'"]),
    ("path-dep-outside-root-unused-lib",
     dict(md=metadata(package("api", "api"),
                      package("lib", "lib", [target("lib", "lib")], deps=[dep("ext", "../ext")]))),
     ["package 'lib'", "'ext'", "outside the workspace root"]),
    ("unknown-override", dict(services={"nope": {}}), ["services:", "nope", "api, auth, billing"]),
    ("override-not-dict", dict(services={"api": "yes"}), ["services.api:", "dict"]),
    ("unknown-setting", dict(services={"api": {"enable": False}}), ["services.api:", "enable", "enabled"]),
    ("all-disabled", dict(services={n: {"enabled": False} for n in ("api", "auth", "billing")}),
     ["services:", "enabled: false"]),
    ("bad-service-name", dict(md=metadata(package("café", "cafe"))), ["services:", "'café'", "[[bin]]"]),
    ("container-name-too-long", dict(project="p" * 60), ["services:", "container name", "shorten project"]),
    ("bad-project", dict(project="Bad Name"), ["project:", "Bad Name"]),
    ("port-out-of-range", dict(services={"api": {"ports": [70000]}}), ["services.api.ports", "70000", "1..65535"]),
    ("port-base-overflow", dict(port_base=65535), ["port_base", "65536", "1..65535"]),
    ("container-port-zero", dict(container_port=0), ["container_port", "1..65535"]),
    ("port-twice-explicit", dict(services={"api": {"ports": [9000]}, "auth": {"ports": ["9000:8080"]}}),
     ["services.auth.ports", "9000", "'api'"]),
    ("port-explicit-vs-auto", dict(services={"billing": {"ports": [8080]}}),
     ["services.billing.ports", "8080", "'api'"]),
    ("port-auto-vs-explicit", dict(services={"api": {"ports": [8081]}}),
     ["port_base", "'auth'", "8081", "'api'"]),
    ("port-bad-format", dict(services={"api": {"ports": ["http"]}}), ["services.api.ports", "'http'"]),
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
    ("docker-unknown-option", dict(services={"api": {"docker": {"volumes": ["/:/host"]}}}),
     ["services.api.docker", "volumes", "cap_add", "privileged"]),
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
    ("reserved-label", dict(labels={"io.cargohold.role": "x"}), ["labels:", "io.cargohold.role", "reserved"]),
    ("bad-env-name", dict(env={"A=B": "1"}), ["env:", "'A=B'"]),
    ("env-nested-value", dict(services={"api": {"env": {"A": {"b": 1}}}}), ["services.api.env", "'A'"]),
    ("working-dir-outside-source", dict(services={"api": {"working_dir": "/tmp"}}),
     ["services.api.working_dir", "/tmp", "outside source_dir"]),
    ("builder-name-clash", dict(md=metadata(package("builder", "b")), mode="shared_builder"),
     ["services:", "'builder'", "shared_builder"]),
    ("empty-network-mode", dict(services={"api": {"network_mode": " "}}), ["services.api.network_mode"]),
]


@pytest.mark.parametrize("kwargs, fragments", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_render_errors(kwargs: dict, fragments: t.List[str]) -> None:
    kwargs = dict(kwargs)
    with pytest.raises(ValueError) as info:
        render(kwargs.pop("md", None), **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


# --------------------------------------------------------------------------
# Discovery and rendering
# --------------------------------------------------------------------------

def test_render_per_service_defaults() -> None:
    result = render()
    assert result["project"] == "ws"
    assert result["network"] == "ws-dev"
    assert result["all_services"] == ["api", "auth", "billing"]
    assert result["disabled"] == []
    assert result["builder"] is None
    auth = by_name(result)["auth"]
    assert auth == {
        "name": "auth",
        "package": "auth-service",
        "bin": "auth",
        "package_dir": "services/auth",
        "required_features": [],
        "watch": ["/workspace/Cargo.lock", "/workspace/Cargo.toml", "/workspace/crates/common",
                  "/workspace/services/auth"],
        "url": "http://127.0.0.1:8081/",
        "depends_on": [],
        "container": {
            "name": "ws-auth",
            "image": "dev:latest",
            "command": ["cargo", "watch", "--delay", "0.1",
                        "-w", "/workspace/Cargo.lock", "-w", "/workspace/Cargo.toml",
                        "-w", "/workspace/crates/common", "-w", "/workspace/services/auth",
                        "-x", "run -p auth-service --bin auth"],
            "env": {"CARGO_TARGET_DIR": "/cargo-target", "PORT": "8080", "SERVICE_NAME": "auth"},
            "working_dir": "/workspace",
            "user": "1000:1000",
            "init": True,
            "mounts": [
                {"type": "bind", "source": ROOT, "target": "/workspace", "read_only": False},
                {"type": "volume", "source": "ws-target", "target": "/cargo-target", "read_only": False},
                {"type": "volume", "source": "ws-cache", "target": "/cargo-cache", "read_only": False},
            ],
            "published_ports": ["127.0.0.1:8081:8080"],
            "networks": [{"name": "ws-dev"}],
            "labels": {"io.cargohold.project": "ws", "io.cargohold.service": "auth",
                       "io.cargohold.role": "service", "io.cargohold.mode": "per_service"},
            "stop_signal": "SIGINT",
            "stop_timeout": 2,
            "restart_policy": "unless-stopped",
            "extra": {},
        },
    }
    json.dumps(result)  # must be plain JSON for the role and for dest


DOCKER_CONTAINER_OPTIONS = {
    "name", "image", "command", "env", "working_dir", "user", "init", "mounts", "published_ports", "networks",
    "network_mode", "labels", "stop_signal", "stop_timeout", "restart_policy",
}


@pytest.mark.parametrize("mode", ws.MODES)
def test_container_keys_are_docker_container_options(mode: str) -> None:
    result = render(mode=mode, services={"billing": {"network_mode": "host"}})
    containers = [s["container"] for s in result["services"]] + ([result["builder"]] if result["builder"] else [])
    for container in containers:
        assert set(container) - {"extra"} <= DOCKER_CONTAINER_OPTIONS


COMMAND_CASES = [
    ("plain", {}, {}, "run -p api --bin api"),
    ("cargo-args", {"cargo_args": ["--locked", "--offline"]}, {}, "run -p api --bin api --locked --offline"),
    ("service-args-quoted", {}, {"args": ["--greeting", "hello world"]},
     "run -p api --bin api -- --greeting 'hello world'"),
    ("all", {"cargo_args": ["--locked"]}, {"args": ["-v"]}, "run -p api --bin api --locked -- -v"),
]


@pytest.mark.parametrize("params, settings, expected", [c[1:] for c in COMMAND_CASES],
                         ids=[c[0] for c in COMMAND_CASES])
def test_per_service_run_string(params: dict, settings: dict, expected: str) -> None:
    command = by_name(render(services={"api": settings}, **params))["api"]["container"]["command"]
    assert command[-2:] == ["-x", expected]


def test_required_features_and_watch_delay() -> None:
    md = metadata(package("gated", "gated", [target("gated", required_features=["metrics", "otel"])]))
    service = render(md, watch_delay=2.0)["services"][0]
    assert service["required_features"] == ["metrics", "otel"]
    assert service["container"]["command"][:4] == ["cargo", "watch", "--delay", "2"]
    assert service["container"]["command"][-1] == "run -p gated --bin gated --features metrics,otel"


def test_package_with_two_bins_gives_two_services() -> None:
    md = metadata(package("jobs", "tools/jobs", [target("jobs", "lib"), target("worker"), target("cron")]))
    services = render(md)["services"]
    assert [(s["name"], s["package"], s["package_dir"]) for s in services] == [
        ("cron", "jobs", "tools/jobs"), ("worker", "jobs", "tools/jobs")]
    assert [s["container"]["published_ports"] for s in services] == [["127.0.0.1:8080:8080"],
                                                                     ["127.0.0.1:8081:8080"]]


def test_non_member_packages_are_ignored() -> None:
    api = package("api", "api")
    stray = package("stray", "stray")
    assert render(metadata(api, stray, members=[api["id"]]))["all_services"] == ["api"]


WATCH_CASES = [
    ("dev-dep-skipped-build-dep-kept",
     metadata(package("api", "api", deps=[dep("t", "t", kind="dev"), dep("g", "g", kind="build")]),
              package("t", "t", [target("t", "lib")]), package("g", "g", [target("g", "lib")])),
     True, ["/workspace/Cargo.lock", "/workspace/Cargo.toml", "/workspace/api", "/workspace/g"]),
    ("transitive-chain",
     metadata(package("api", "api", deps=[dep("a", "libs/a")]),
              package("a", "libs/a", [target("a", "lib")], deps=[dep("b", "libs/b")]),
              package("b", "libs/b", [target("b", "lib")], deps=[dep("c", "libs/c"), dep("a", "libs/a")]),
              package("c", "libs/c", [target("c", "lib")])),
     False, ["/workspace/Cargo.toml", "/workspace/api", "/workspace/libs/a", "/workspace/libs/b",
             "/workspace/libs/c"]),
    ("nested-dirs-collapse",
     metadata(package("api", "api", deps=[dep("inner", "api/inner")]),
              package("inner", "api/inner", [target("inner", "lib")])),
     True, ["/workspace/Cargo.lock", "/workspace/Cargo.toml", "/workspace/api"]),
    ("root-package-covers-all",
     metadata(package("app", ".", deps=[dep("lib", "lib")]), package("lib", "lib", [target("lib", "lib")])),
     True, ["/workspace"]),
    ("non-member-path-dep-inside-root",
     metadata(package("api", "api", deps=[dep("vendored", "vendor/x")])),
     False, ["/workspace/Cargo.toml", "/workspace/api", "/workspace/vendor/x"]),
]


@pytest.mark.parametrize("md, lockfile, expected", [c[1:] for c in WATCH_CASES], ids=[c[0] for c in WATCH_CASES])
def test_watch_paths(md: dict, lockfile: bool, expected: t.List[str]) -> None:
    service = render(md, has_lockfile=lockfile)["services"][0]
    assert service["watch"] == expected
    command = service["container"]["command"]
    assert [command[i + 1] for i, arg in enumerate(command) if arg == "-w"] == expected


def test_custom_dirs_and_source_dir_in_watch() -> None:
    result = render(source_dir="/src", target_dir="/t", cache_dir="/c")
    api = by_name(result)["api"]
    assert api["watch"] == ["/src/Cargo.lock", "/src/Cargo.toml", "/src/crates/common", "/src/services/api"]
    assert [m["target"] for m in api["container"]["mounts"]] == ["/src", "/t", "/c"]
    assert api["container"]["env"]["CARGO_TARGET_DIR"] == "/t"
    assert api["container"]["working_dir"] == "/src"


PORT_CASES = [
    ("auto", {}, {}, {"api": ["127.0.0.1:8080:8080"], "auth": ["127.0.0.1:8081:8080"],
                      "billing": ["127.0.0.1:8082:8080"]}),
    ("base-and-bind", {"port_base": 9000, "bind_address": "0.0.0.0", "container_port": 3000}, {},
     {"api": ["0.0.0.0:9000:3000"], "auth": ["0.0.0.0:9001:3000"], "billing": ["0.0.0.0:9002:3000"]}),
    ("override-keeps-others", {}, {"auth": {"ports": [9999, "9998:81", "10.0.0.1:9997:82/udp"]}},
     {"api": ["127.0.0.1:8080:8080"], "auth": ["127.0.0.1:9999:8080", "127.0.0.1:9998:81", "10.0.0.1:9997:82/udp"],
      "billing": ["127.0.0.1:8082:8080"]}),
    ("disabled-not-counted", {}, {"api": {"enabled": False}},
     {"auth": ["127.0.0.1:8080:8080"], "billing": ["127.0.0.1:8081:8080"]}),
    ("empty-publishes-nothing", {}, {"billing": {"ports": []}},
     {"api": ["127.0.0.1:8080:8080"], "auth": ["127.0.0.1:8081:8080"], "billing": []}),
    ("same-port-other-protocol", {}, {"auth": {"ports": ["8080:8080/udp"]}},
     {"api": ["127.0.0.1:8080:8080"], "auth": ["127.0.0.1:8080:8080/udp"], "billing": ["127.0.0.1:8082:8080"]}),
]


@pytest.mark.parametrize("params, services, expected", [c[1:] for c in PORT_CASES], ids=[c[0] for c in PORT_CASES])
def test_ports(params: dict, services: dict, expected: dict) -> None:
    result = render(services=services, **params)
    assert {n: s["container"]["published_ports"] for n, s in by_name(result).items()} == expected


URL_CASES = [
    ("default", {}, {}, "http://127.0.0.1:8080/"),
    ("any-address", {"bind_address": "0.0.0.0"}, {}, "http://127.0.0.1:8080/"),
    ("explicit-ip", {}, {"ports": ["192.168.1.5:9000:8080"]}, "http://192.168.1.5:9000/"),
    ("no-ports", {}, {"ports": []}, None),
    ("network-mode-none", {}, {"network_mode": "none"}, None),
    ("network-mode-host", {}, {"network_mode": "host"}, "http://127.0.0.1:8080/"),
]


@pytest.mark.parametrize("params, settings, expected", [c[1:] for c in URL_CASES], ids=[c[0] for c in URL_CASES])
def test_url(params: dict, settings: dict, expected: t.Optional[str]) -> None:
    assert by_name(render(services={"api": settings}, **params))["api"]["url"] == expected


def test_network_mode_drops_networks_and_ports() -> None:
    result = render(services={"auth": {"network_mode": "host"}})
    container = by_name(result)["auth"]["container"]
    assert container["network_mode"] == "host"
    assert "networks" not in container and "published_ports" not in container
    # On the host network the service must listen on its own host port.
    assert container["env"]["PORT"] == "8081"


def test_env_layers_and_labels() -> None:
    result = render(env={"RUST_LOG": "info", "DEBUG": True, "N": 3},
                    labels={"team": "core"},
                    services={"api": {"env": {"RUST_LOG": "debug", "EMPTY": None}}})
    api = by_name(result)["api"]["container"]
    assert api["env"] == {"CARGO_TARGET_DIR": "/cargo-target", "PORT": "8080", "SERVICE_NAME": "api",
                          "RUST_LOG": "debug", "DEBUG": "true", "N": "3", "EMPTY": ""}
    assert by_name(result)["auth"]["container"]["env"]["RUST_LOG"] == "info"
    assert api["labels"]["team"] == "core"


def test_disabled_dependency_reported() -> None:
    # separate from the previous case: a disabled service named in depends_on is an error
    with pytest.raises(ValueError, match="disabled"):
        render(services={"api": {"depends_on": ["billing"]}, "billing": {"enabled": False}})


def test_overrides_applied() -> None:
    result = render(services={
        "api": {
            "mounts": [{"source": "config", "target": "/etc/api", "read_only": True},
                       {"source": "pgdata", "target": "/data", "type": "volume"},
                       {"target": "/scratch", "type": "tmpfs"}],
            "working_dir": "services/api",
            "docker": {"cap_add": ["NET_ADMIN"], "memory": "1g"},
            "depends_on": ["billing", "auth"],
        },
    })
    api = by_name(result)["api"]
    assert api["container"]["mounts"][3:] == [
        {"type": "bind", "source": f"{ROOT}/config", "target": "/etc/api", "read_only": True},
        {"type": "volume", "source": "pgdata", "target": "/data", "read_only": False},
        {"type": "tmpfs", "source": None, "target": "/scratch", "read_only": False},
    ]
    assert api["container"]["working_dir"] == "/workspace/services/api"
    assert api["container"]["extra"] == {"cap_add": ["NET_ADMIN"], "memory": "1g"}
    assert api["depends_on"] == ["auth", "billing"]


def test_shared_builder() -> None:
    md = metadata(
        package("api", "api", deps=[dep("common", "common")]),
        package("gated", "gated", [target("gated", required_features=["metrics"])]),
        package("off", "off", [target("off", required_features=["x"])]),
        package("common", "common", [target("common", "lib")]),
    )
    result = render(md, mode="shared_builder", cargo_args=["--locked"],
                    services={"api": {"args": ["--port", "1"]}, "off": {"enabled": False}})
    builder = result["builder"]
    assert builder["name"] == "ws-builder"
    assert builder["labels"] == {"io.cargohold.project": "ws", "io.cargohold.role": "builder",
                                 "io.cargohold.mode": "shared_builder"}
    assert "published_ports" not in builder
    assert builder["networks"] == [{"name": "ws-dev"}]
    assert builder["command"] == [
        "cargo", "watch", "--delay", "0.1",
        "-w", "/workspace/Cargo.lock", "-w", "/workspace/Cargo.toml", "-w", "/workspace/api",
        "-w", "/workspace/common", "-w", "/workspace/gated",
        "-s", "cargohold-build build --workspace --bins --features gated/metrics --locked",
    ]
    services = by_name(result)
    assert services["api"]["container"]["command"] == ["cargohold-run", "/cargo-target/debug/api", "--",
                                                       "--port", "1"]
    assert services["gated"]["container"]["command"] == ["cargohold-run", "/cargo-target/debug/gated", "--"]
    assert services["api"]["container"]["labels"]["io.cargohold.mode"] == "shared_builder"


ARTIFACT_CASES = [
    ("debug", [], "/t/debug"),
    ("release", ["--release"], "/t/release"),
    ("short-release", ["-r"], "/t/release"),
    ("profile", ["--profile", "fast"], "/t/fast"),
    ("profile-eq-dev", ["--profile=dev"], "/t/debug"),
    ("target", ["--target", "x86_64-unknown-linux-musl", "--locked"], "/t/x86_64-unknown-linux-musl/debug"),
    ("target-eq-release", ["--target=aarch64-unknown-linux-gnu", "--release"], "/t/aarch64-unknown-linux-gnu/release"),
]


@pytest.mark.parametrize("args, expected", [c[1:] for c in ARTIFACT_CASES], ids=[c[0] for c in ARTIFACT_CASES])
def test_artifact_dir(args: t.List[str], expected: str) -> None:
    assert ws.artifact_dir("/t", args) == expected


PROJECT_CASES = [
    ("plain", "/src/shop", "shop"),
    ("upper-and-space", "/src/My Shop", "my-shop"),
    ("leading-junk", "/src/_-.Shop", "shop"),
    ("trailing-slash", "/src/shop/", "shop"),
    ("unicode", "/src/café", "caf-"),
]


@pytest.mark.parametrize("root, expected", [c[1:] for c in PROJECT_CASES], ids=[c[0] for c in PROJECT_CASES])
def test_default_project(root: str, expected: str) -> None:
    assert ws.default_project(root) == expected


def test_default_project_unusable() -> None:
    with pytest.raises(ValueError, match="project:.*set project"):
        ws.validate_project(ws.default_project("/src/___"), from_default=True)


# --------------------------------------------------------------------------
# Metadata input and workspace root checks
# --------------------------------------------------------------------------

METADATA_INPUT_ERRORS = [
    ("not-json", "{nope", ["metadata:", "not valid JSON"]),
    ("not-object", "[1, 2]", ["metadata:", "JSON object"]),
    ("missing-keys", {"packages": []}, ["metadata:", "workspace_members", "workspace_root"]),
]


@pytest.mark.parametrize("raw, fragments", [c[1:] for c in METADATA_INPUT_ERRORS],
                         ids=[c[0] for c in METADATA_INPUT_ERRORS])
def test_parse_metadata_errors(raw: t.Any, fragments: t.List[str]) -> None:
    with pytest.raises(ValueError) as info:
        ws.parse_metadata(raw)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_parse_metadata_accepts_text_and_dict() -> None:
    md = base_metadata()
    assert ws.parse_metadata(json.dumps(md)) == md
    assert ws.parse_metadata(md) is md


def test_member_of_other_workspace() -> None:
    md = base_metadata()
    with pytest.raises(ValueError) as info:
        ws.check_workspace_root(md, "/ws/services/api", ran_cargo=True)
    assert "path:" in str(info.value) and "member of the workspace at /ws" in str(info.value)


def test_foreign_metadata_rebased_when_members_exist() -> None:
    md = metadata(package("api", "services/api", root="/workspace"), root="/workspace")
    ws.check_workspace_root(md, "/home/dev/shop", ran_cargo=False,
                            isfile=lambda p: p == "/home/dev/shop/services/api/Cargo.toml")
    result = ws.render(md, ws.Workspace("/home/dev/shop", True), PARAMS)
    assert result["services"][0]["package_dir"] == "services/api"
    assert result["services"][0]["container"]["mounts"][0]["source"] == "/home/dev/shop"


def test_foreign_metadata_rejected_when_members_missing() -> None:
    md = metadata(package("api", "services/api", root="/workspace"), root="/workspace")
    with pytest.raises(ValueError, match=r"metadata:.*services/api/Cargo.toml"):
        ws.check_workspace_root(md, "/home/dev/shop", ran_cargo=False, isfile=lambda p: False)


def test_members_without_package_entry() -> None:
    md = base_metadata()
    md["workspace_members"].append("path+file:///ws/ghost#0.1.0")
    with pytest.raises(ValueError, match="metadata:.*ghost"):
        render(md)


MANIFEST_CASES = [
    ("workspace-table", '[workspace]\nmembers = ["a"]\n', True),
    ("workspace-subtable-only", '[workspace.package]\nversion = "1.0.0"\n', True),
    ("package-only", '[package]\nname = "a"\n', False),
    ("invalid-toml-left-to-cargo", "[workspace\n", None),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in MANIFEST_CASES], ids=[c[0] for c in MANIFEST_CASES])
def test_declares_workspace(text: str, expected: t.Optional[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    if ws.tomllib is None and expected is None:
        expected = False
    assert ws.declares_workspace(text) is expected
    if expected is not None:
        # The fallback for Python < 3.11 must agree on valid manifests.
        monkeypatch.setattr(ws, "tomllib", None)
        assert ws.declares_workspace(text) is expected


INSPECT_CASES = [
    ("missing", None, ["path:", "does not exist"]),
    ("file", "file", ["path:", "not a directory"]),
    ("no-manifest", {}, ["path:", "no Cargo.toml"]),
    ("no-workspace-table", {"Cargo.toml": '[package]\nname = "a"\n'}, ["path:", "no [workspace] table"]),
]


@pytest.mark.parametrize("layout, fragments", [c[1:] for c in INSPECT_CASES], ids=[c[0] for c in INSPECT_CASES])
def test_inspect_workspace_errors(tmp_path, layout: t.Any, fragments: t.List[str]) -> None:
    root = tmp_path / "ws"
    if layout == "file":
        root.write_text("")
    elif isinstance(layout, dict):
        root.mkdir()
        for name, text in layout.items():
            (root / name).write_text(text)
    with pytest.raises(ValueError) as info:
        ws.inspect_workspace(str(root))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_inspect_workspace_lockfile(tmp_path) -> None:
    (tmp_path / "Cargo.toml").write_text("[workspace]\n")
    assert ws.inspect_workspace(str(tmp_path)).has_lockfile is False
    (tmp_path / "Cargo.lock").write_text("")
    assert ws.inspect_workspace(str(tmp_path)).has_lockfile is True


def test_find_cargo(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert ws.find_cargo("cargo", home=str(tmp_path)) is None
    fallback = tmp_path / ".cargo" / "bin" / "cargo"
    fallback.parent.mkdir(parents=True)
    fallback.write_text("#!/bin/sh\n")
    fallback.chmod(0o755)
    assert ws.find_cargo("cargo", home=str(tmp_path)) == str(fallback)
    on_path = tmp_path / "bin" / "cargo"
    on_path.parent.mkdir()
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert ws.find_cargo("cargo", home=str(tmp_path)) == str(on_path)
    assert ws.find_cargo(str(fallback)) == str(fallback)
    assert ws.find_cargo(str(tmp_path / "nope" / "cargo")) is None


def test_cargo_failure_message() -> None:
    message = ws.cargo_failure("/ws", 101, "  error: failed to parse manifest\n\n")
    assert message.startswith("path: cargo metadata failed for /ws/Cargo.toml: error: failed to parse manifest\n")
    assert "Fix Cargo.toml" in message
