"""module_utils/_docker.py: create bodies, config hashes, decisions, and reading the supervisors' state."""

from __future__ import annotations

import copy
import json
import typing as t

import pytest

from ansible_collections.cargohold.devenv.plugins.module_utils import _docker as dk

from helpers import by_name, cargo_root, package, plan

HASH = dk.HASH_LABEL


def container(**changes: t.Any) -> dict:
    """A planned container as _plan renders one (keys and shapes), written out so the body can be checked."""
    base = {
        "name": "ws-api",
        "image": "dev:latest",
        "command": ["cargohold-run", "--", "--port", "1"],
        "env": {"PORT": "8080", "A": "1"},
        "working_dir": "/workspace/api",
        "user": "1000:1000",
        "init": True,
        "mounts": [
            {"type": "bind", "source": "/ws", "target": "/workspace", "read_only": False},
            {"type": "volume", "source": "ws-target", "target": "/cargo-target", "read_only": False},
            {"type": "tmpfs", "source": None, "target": "/scratch", "read_only": True},
        ],
        "published_ports": [{"ip": "127.0.0.1", "host": 8081, "container": 8080, "proto": "tcp"},
                            {"ip": "::1", "host": 8082, "container": 8080, "proto": "tcp"},
                            {"ip": "0.0.0.0", "host": 5353, "container": 53, "proto": "udp"}],
        "networks": [{"name": "ws-dev", "aliases": ["api"]}],
        "network_mode": None,
        "sysctls": {"net.ipv6.conf.lo.disable_ipv6": "0"},
        "labels": {"io.cargohold.project": "ws", "io.cargohold.role": "service", "io.cargohold.service": "api"},
        "stop_signal": "SIGINT",
        "stop_timeout": 3,
        "restart_policy": "unless-stopped",
        "extra": {},
    }
    base.update(changes)
    return base


def stack(**services: t.Any) -> dict:
    """A plan of backend (sharing gateway's network), gateway and zeta."""
    return plan([cargo_root(".", package("backend", "b"), package("gateway", "g"), package("zeta", "z"))],
                services=dict({"backend": {"network_mode": "service:gateway", "port": 7001}}, **services))


# --------------------------------------------------------------------------
# Create bodies
# --------------------------------------------------------------------------

def test_create_body_service() -> None:
    body = dk.create_body(container())
    assert body == {
        "Image": "dev:latest",
        "Cmd": ["cargohold-run", "--", "--port", "1"],
        "Env": ["A=1", "PORT=8080"],
        "WorkingDir": "/workspace/api",
        "User": "1000:1000",
        "Labels": {"io.cargohold.project": "ws", "io.cargohold.role": "service", "io.cargohold.service": "api",
                   HASH: body["Labels"][HASH]},
        "StopSignal": "SIGINT",
        "StopTimeout": 3,
        "ExposedPorts": {"53/udp": {}, "8080/tcp": {}},
        "HostConfig": {
            "Init": True,
            "Mounts": [
                {"Type": "bind", "Source": "/ws", "Target": "/workspace", "ReadOnly": False},
                {"Type": "volume", "Source": "ws-target", "Target": "/cargo-target", "ReadOnly": False},
                {"Type": "tmpfs", "Target": "/scratch", "ReadOnly": True},
            ],
            "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8081"},
                                          {"HostIp": "::1", "HostPort": "8082"}],
                             "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "5353"}]},
            "RestartPolicy": {"Name": "unless-stopped"},
            "NetworkMode": "ws-dev",
            "Sysctls": {"net.ipv6.conf.lo.disable_ipv6": "0"},
        },
        "NetworkingConfig": {"EndpointsConfig": {"ws-dev": {"Aliases": ["api"]}}},
    }
    assert len(body["Labels"][HASH]) == 16 and body["Labels"][HASH] == dk.config_hash(body)


def test_create_body_does_not_change_the_plan() -> None:
    planned = container(extra={"sysctls": {"net.core.somaxconn": 1024}})
    before = copy.deepcopy(planned)
    dk.create_body(planned)
    assert planned == before


def test_create_body_network_sharer_and_builder() -> None:
    result = stack()
    backend = dk.create_body(by_name(result)["backend"]["container"])
    assert backend["HostConfig"]["NetworkMode"] == "container:ws-gateway"
    assert "NetworkingConfig" not in backend and "Sysctls" not in backend["HostConfig"]
    assert backend["HostConfig"]["PortBindings"] == {} and backend["ExposedPorts"] == {}
    gateway = dk.create_body(by_name(result)["gateway"]["container"])
    assert gateway["HostConfig"]["PortBindings"] == {
        "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8081"}],
        "7001/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
    assert gateway["ExposedPorts"] == {"7001/tcp": {}, "8080/tcp": {}}

    builder = plan([cargo_root(".", package("api", "a"))], mode="shared_builder")["builder"]
    body = dk.create_body(builder)
    assert body["Labels"]["io.cargohold.role"] == "builder" and dk.SERVICE_LABEL not in body["Labels"]
    assert body["HostConfig"]["PortBindings"] == {} and body["HostConfig"]["NetworkMode"] == "ws-dev"
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"ws-dev": {"Aliases": []}}}
    assert [m["Target"] for m in body["HostConfig"]["Mounts"]] == [
        "/workspace", "/cargo-target", "/cargo-cache", "/run/cargohold"]


def test_create_body_defaults() -> None:
    body = dk.create_body(container(networks=[], sysctls={}, restart_policy=None, stop_signal=None,
                                    stop_timeout=None, init=False, published_ports=[], working_dir=None))
    host = body["HostConfig"]
    assert (host["NetworkMode"], host["RestartPolicy"], host["Init"]) == ("default", {"Name": "no"}, False)
    assert "Sysctls" not in host and "NetworkingConfig" not in body
    assert (body["StopSignal"], body["StopTimeout"], body["WorkingDir"]) == ("SIGTERM", 10, "")


# (docker option, value, where in the body, expected)
OPTION_CASES = [
    ("cap_add", ["NET_ADMIN"], ("HostConfig", "CapAdd"), ["NET_ADMIN"]),
    ("cap_drop", ["ALL"], ("HostConfig", "CapDrop"), ["ALL"]),
    ("cpus", 1.5, ("HostConfig", "NanoCpus"), 1_500_000_000),
    ("memory", "512m", ("HostConfig", "Memory"), 512 * 1024 * 1024),
    ("memory_reservation", "1g", ("HostConfig", "MemoryReservation"), 1024 ** 3),
    ("shm_size", "64m", ("HostConfig", "ShmSize"), 64 * 1024 * 1024),
    ("ulimits", ["nofile:1024:2048", "core:-1"], ("HostConfig", "Ulimits"),
     [{"Name": "nofile", "Soft": 1024, "Hard": 2048}, {"Name": "core", "Soft": -1, "Hard": -1}]),
    ("devices", ["/dev/fuse", "/dev/sda:/dev/xvda:r"], ("HostConfig", "Devices"),
     [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"},
      {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "r"}]),
    ("dns_servers", ["1.1.1.1"], ("HostConfig", "Dns"), ["1.1.1.1"]),
    ("etc_hosts", {"db": "10.0.0.2", "cache": "10.0.0.3"}, ("HostConfig", "ExtraHosts"),
     ["cache:10.0.0.3", "db:10.0.0.2"]),
    ("tmpfs", ["/tmp:size=64m", "/run/x"], ("HostConfig", "Tmpfs"), {"/tmp": "size=64m", "/run/x": ""}),
    ("security_opts", ["seccomp=unconfined"], ("HostConfig", "SecurityOpt"), ["seccomp=unconfined"]),
    ("sysctls", {"net.core.somaxconn": 1024}, ("HostConfig", "Sysctls"),
     {"net.ipv6.conf.lo.disable_ipv6": "0", "net.core.somaxconn": "1024"}),
    ("healthcheck", {"test": "curl -fs localhost:8080/ready", "interval": "1m30s", "timeout": "500ms",
                     "start_period": 2, "retries": 3}, ("", "Healthcheck"),
     {"Test": ["CMD-SHELL", "curl -fs localhost:8080/ready"], "Interval": 90_000_000_000,
      "Timeout": 500_000_000, "StartPeriod": 2_000_000_000, "Retries": 3}),
    ("log_driver", "local", ("HostConfig", "LogConfig"), {"Type": "local"}),
    ("log_options", {"max-size": "10m", "max-file": 3}, ("HostConfig", "LogConfig"),
     {"Config": {"max-size": "10m", "max-file": "3"}}),
    ("hostname", "api.local", ("", "Hostname"), "api.local"),
    ("privileged", True, ("HostConfig", "Privileged"), True),
    ("groups", [999, "audio"], ("HostConfig", "GroupAdd"), ["999", "audio"]),
]


def test_every_docker_option_has_a_case() -> None:
    assert sorted(c[0] for c in OPTION_CASES) == sorted(dk.DOCKER_OPTIONS)


@pytest.mark.parametrize("name, value, where, expected", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_docker_option(name: str, value: t.Any, where: t.Tuple[str, str], expected: t.Any) -> None:
    body = dk.create_body(container(extra={name: value}))
    section, key = where
    assert (body["HostConfig"] if section == "HostConfig" else body)[key] == expected
    plain = dk.create_body(container())
    assert body["Labels"][HASH] != plain["Labels"][HASH]


HEALTHCHECK_CASES = [
    ("list-test", {"test": ["CMD", "true"]}, {"Test": ["CMD", "true"]}),
    ("numbers-are-seconds", {"test": "true", "interval": 0.5, "timeout": 3}, {
        "Test": ["CMD-SHELL", "true"], "Interval": 500_000_000, "Timeout": 3_000_000_000}),
    ("hours-and-fractions", {"test": "true", "interval": "1h", "timeout": "1.5s"}, {
        "Test": ["CMD-SHELL", "true"], "Interval": 3_600_000_000_000, "Timeout": 1_500_000_000}),
]


@pytest.mark.parametrize("value, expected", [c[1:] for c in HEALTHCHECK_CASES], ids=[c[0] for c in HEALTHCHECK_CASES])
def test_healthcheck_conversion(value: dict, expected: dict) -> None:
    assert dk.create_body(container(extra={"healthcheck": value}))["Healthcheck"] == expected


def test_log_driver_and_options_together() -> None:
    body = dk.create_body(container(extra={"log_options": {"max-size": "1m"}, "log_driver": "json-file"}))
    assert body["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}


OPTION_ERRORS = [
    ("unknown", {"volumes": ["/:/host"]}, ["services.api.docker: unsupported option volumes; allowed: cap_add"]),
    ("memory-words", {"memory": "lots"}, ["services.api.docker.memory:"]),
    ("cpus-word", {"cpus": "many"}, ["services.api.docker.cpus:"]),
    ("ulimit-no-limit", {"ulimits": ["nofile"]}, ["services.api.docker.ulimits:", "NAME:SOFT[:HARD]"]),
    ("ulimit-word", {"ulimits": ["nofile:lots"]}, ["services.api.docker.ulimits:", "'nofile:lots'"]),
    ("healthcheck-no-test", {"healthcheck": {"interval": "1s"}}, ["services.api.docker.healthcheck:", "needs test"]),
    ("healthcheck-unitless-string", {"healthcheck": {"test": "true", "interval": "10"}},
     ["services.api.docker.healthcheck:", "'10' is not a duration"]),
    ("healthcheck-bad-unit", {"healthcheck": {"test": "true", "timeout": "5sec"}},
     ["services.api.docker.healthcheck:", "'5sec'"]),
]


@pytest.mark.parametrize("extra, fragments", [c[1:] for c in OPTION_ERRORS], ids=[c[0] for c in OPTION_ERRORS])
def test_docker_option_errors(extra: dict, fragments: t.List[str]) -> None:
    with pytest.raises(ValueError) as info:
        dk.create_body(container(extra=extra))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_option_errors_name_the_builder() -> None:
    builder = container(labels={"io.cargohold.role": "builder"}, extra={"memory": "x"})
    with pytest.raises(ValueError, match=r"^plan\.builder\.docker\.memory:"):
        dk.create_body(builder, option="plan")


def test_docker_argument_spec() -> None:
    spec = dk.docker_argument_spec()
    assert list(spec) == list(dk.DOCKER_OPTIONS)
    assert all("type" in s for s in spec.values())


# --------------------------------------------------------------------------
# The config hash
# --------------------------------------------------------------------------

# (id, change to the planned container)
HASH_CHANGES = [
    ("image", {"image": "dev:other"}),
    ("command", {"command": ["cargohold-run", "--"]}),
    ("env-value", {"env": {"PORT": "8081", "A": "1"}}),
    ("env-added", {"env": {"PORT": "8080", "A": "1", "B": ""}}),
    ("working-dir", {"working_dir": "/workspace"}),
    ("user", {"user": "1001:1001"}),
    ("init", {"init": False}),
    ("mount-read-only", {"mounts": [{"type": "bind", "source": "/ws", "target": "/workspace", "read_only": True}]}),
    ("mount-source", {"mounts": [{"type": "bind", "source": "/other", "target": "/workspace", "read_only": False}]}),
    ("published-host-port",
     {"published_ports": [{"ip": "127.0.0.1", "host": 9000, "container": 8080, "proto": "tcp"}]}),
    ("published-ip", {"published_ports": [{"ip": "0.0.0.0", "host": 8081, "container": 8080, "proto": "tcp"}]}),
    ("networks", {"networks": [{"name": "other", "aliases": ["api"]}]}),
    ("alias", {"networks": [{"name": "ws-dev", "aliases": []}]}),
    ("network-mode", {"network_mode": "container:ws-x", "networks": []}),
    ("sysctls", {"sysctls": {}}),
    ("label-added", {"labels": {"io.cargohold.project": "ws", "io.cargohold.role": "service",
                                "io.cargohold.service": "api", "team": "core"}}),
    ("stop-signal", {"stop_signal": "SIGTERM"}),
    ("stop-timeout", {"stop_timeout": 10}),
    ("restart-policy", {"restart_policy": "no"}),
    ("extra", {"extra": {"memory": "1g"}}),
    ("extra-value", {"extra": {"cpus": 2}}),
]


def test_every_planned_key_is_hashed() -> None:
    changed = {key for _id, change in HASH_CHANGES for key in change}
    assert changed == set(container()) - {"name"}  # the name is the identity, not part of the definition


@pytest.mark.parametrize("change", [c[1] for c in HASH_CHANGES], ids=[c[0] for c in HASH_CHANGES])
def test_hash_changes_with_the_definition(change: dict) -> None:
    base = container(extra={"cpus": 1})
    assert dk.create_body(container(**dict({"extra": {"cpus": 1}}, **change)))["Labels"][HASH] != \
        dk.create_body(base)["Labels"][HASH]


def test_hash_is_stable() -> None:
    first = dk.create_body(container())["Labels"][HASH]
    reordered = container(env={"A": "1", "PORT": "8080"},
                          labels={"io.cargohold.service": "api", "io.cargohold.role": "service",
                                  "io.cargohold.project": "ws"})
    assert dk.create_body(reordered)["Labels"][HASH] == first
    assert dk.create_body(container(name="ws-renamed"))["Labels"][HASH] == first
    # A plan rendered twice gives the same bodies
    assert [dk.create_body(c) for c in stack()["containers"]] == [dk.create_body(c) for c in stack()["containers"]]


def test_hash_ignores_its_own_label() -> None:
    body = dk.create_body(container())
    stale = dict(body, Labels=dict(body["Labels"], **{HASH: "0000000000000000"}))
    assert dk.config_hash(stale) == body["Labels"][HASH]


# --------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------

IMAGE = "sha256:image"


def planned_bodies(**services: t.Any) -> t.List[t.Tuple[str, dict]]:
    return [(c["name"], dk.create_body(c)) for c in stack(**services)["containers"]]


def listed(name: str, body: dict, state: str = "running", image: str = IMAGE, **labels: str) -> dict:
    return {"Id": f"id-{name}", "Names": [f"/{name}"], "State": state, "ImageID": image,
            "Labels": dict(body["Labels"], **labels)}


PLANNED = planned_bodies()
BODIES = dict(PLANNED)
ALL_RUNNING = [listed(n, b) for n, b in PLANNED]


def everything_but(name: str, entry: t.Optional[dict]) -> t.List[dict]:
    return [(entry if n == name else listed(n, b)) for n, b in PLANNED if not (n == name and entry is None)]


# (id, existing containers, image id, unhealthy, force, {container: (action, reason)} for the ones not kept)
DECIDE_CASES = [
    ("all-missing", [], IMAGE, (), (), {
        "ws-gateway": ("create", "not there"), "ws-backend": ("create", "not there"),
        "ws-zeta": ("create", "not there")}),
    ("unchanged", ALL_RUNNING, IMAGE, (), (), {}),
    ("image-unknown-in-check-mode", ALL_RUNNING, None, (), (), {}),
    ("one-missing", everything_but("ws-zeta", None), IMAGE, (), (), {"ws-zeta": ("create", "not there")}),
    ("definition-changed", everything_but("ws-zeta", listed("ws-zeta", BODIES["ws-zeta"], **{HASH: "old"})), IMAGE,
     (), (), {"ws-zeta": ("recreate", "its definition changed")}),
    ("no-hash-label", everything_but("ws-zeta", dict(listed("ws-zeta", BODIES["ws-zeta"]), Labels={})), IMAGE, (), (),
     {"ws-zeta": ("recreate", "its definition changed")}),
    ("image-rebuilt", everything_but("ws-zeta", listed("ws-zeta", BODIES["ws-zeta"], image="sha256:old")), IMAGE,
     (), (), {"ws-zeta": ("recreate", "the dev image was rebuilt")}),
    ("sharer-of-recreated-namespace",
     everything_but("ws-gateway", listed("ws-gateway", BODIES["ws-gateway"], **{HASH: "old"})), IMAGE, (), (),
     {"ws-gateway": ("recreate", "its definition changed"),
      "ws-backend": ("recreate", "it shares the network of ws-gateway, which is recreated")}),
    ("sharer-of-created-namespace", everything_but("ws-gateway", None), IMAGE, (), (),
     {"ws-gateway": ("create", "not there"),
      "ws-backend": ("recreate", "it shares the network of ws-gateway, which is recreated")}),
    ("sharer-alone-changes", everything_but("ws-backend", listed("ws-backend", BODIES["ws-backend"], **{HASH: "x"})),
     IMAGE, (), (), {"ws-backend": ("recreate", "its definition changed")}),
    ("stopped", everything_but("ws-zeta", listed("ws-zeta", BODIES["ws-zeta"], state="exited")), IMAGE, (), (),
     {"ws-zeta": ("start", "it was exited")}),
    ("created-never-started", everything_but("ws-zeta", listed("ws-zeta", BODIES["ws-zeta"], state="created")), IMAGE,
     (), (), {"ws-zeta": ("start", "it was created")}),
    ("crashed", ALL_RUNNING, IMAGE, ("ws-zeta",), (), {"ws-zeta": ("restart", "its service had crashed")}),
    ("crashed-and-stopped", everything_but("ws-zeta", listed("ws-zeta", BODIES["ws-zeta"], state="exited")), IMAGE,
     ("ws-zeta",), (), {"ws-zeta": ("start", "it was exited")}),
    ("forced", ALL_RUNNING, IMAGE, (), ("ws-zeta",), {"ws-zeta": ("recreate", "asked for")}),
    ("forced-namespace-owner", ALL_RUNNING, IMAGE, (), ("ws-gateway",), {
        "ws-gateway": ("recreate", "asked for"),
        "ws-backend": ("recreate", "it shares the network of ws-gateway, which is recreated")}),
    ("changed-beats-forced", everything_but("ws-zeta", listed("ws-zeta", BODIES["ws-zeta"], **{HASH: "old"})), IMAGE,
     (), ("ws-zeta",), {"ws-zeta": ("recreate", "its definition changed")}),
]


@pytest.mark.parametrize("existing, image_id, unhealthy, force, expected", [c[1:] for c in DECIDE_CASES],
                         ids=[c[0] for c in DECIDE_CASES])
def test_decide(existing: list, image_id: t.Optional[str], unhealthy: tuple, force: tuple, expected: dict) -> None:
    actions, orphans = dk.decide(PLANNED, existing, image_id, unhealthy, force)
    assert [a["name"] for a in actions] == ["ws-gateway", "ws-backend", "ws-zeta"]  # start order
    assert {a["name"]: (a["action"], a["reason"]) for a in actions if a["action"] != "keep"} == expected
    ids = {e["Names"][0][1:]: e["Id"] for e in existing}
    assert all(a["id"] == ids.get(a["name"]) for a in actions)
    assert all(a["reason"] == "" for a in actions if a["action"] == "keep")
    assert orphans == []


def test_decide_orphans() -> None:
    old = {"Id": "id-old", "Names": ["/ws-old"], "State": "running", "Labels": {}}
    nameless = {"Id": "id-anon", "Names": [], "State": "exited", "Labels": {}}
    aliased = dict(listed("ws-zeta", BODIES["ws-zeta"]), Names=["/ws-zeta", "/other/alias"])
    actions, orphans = dk.decide(PLANNED, ALL_RUNNING[:2] + [aliased, old, nameless], IMAGE)
    assert [a["action"] for a in actions] == ["keep", "keep", "keep"]
    assert orphans == [{"name": "ws-old", "id": "id-old"}, {"name": "id-anon", "id": "id-anon"}]


def test_decide_sharer_follows_a_restarted_namespace() -> None:
    actions, _orphans = dk.decide(PLANNED, ALL_RUNNING, IMAGE, unhealthy=("ws-gateway",))
    decided = {a["name"]: a["action"] for a in actions}
    assert decided["ws-gateway"] == "restart"
    assert decided["ws-backend"] != "keep"


def test_container_names() -> None:
    assert dk.container_names({"Names": ["/a", "b"]}) == ["a", "b"]
    assert dk.container_names({}) == []


def _act(name: str) -> dict:
    return {"name": name, "action": "create", "reason": "", "id": None}


# (id, actions in start order, needs, expected waves)
WAVES_CASES = [
    ("independent", ["a", "b", "c"], {}, [["a", "b", "c"]]),
    ("chain", ["a", "b", "c"], {"b": {"a"}, "c": {"b"}}, [["a"], ["b"], ["c"]]),
    ("fan-in", ["a", "b", "c", "d"], {"c": {"a", "b"}}, [["a", "b", "d"], ["c"]]),
    ("need-not-changing", ["b", "c"], {"b": {"a"}, "c": {"b"}}, [["b"], ["c"]]),
    ("mixed-depths", ["gw", "be", "zeta", "api"], {"be": {"gw"}, "api": {"be", "zeta"}},
     [["gw", "zeta"], ["be"], ["api"]]),
    ("empty", [], {"a": {"b"}}, []),
]


@pytest.mark.parametrize("names, needs, expected", [c[1:] for c in WAVES_CASES], ids=[c[0] for c in WAVES_CASES])
def test_waves(names: t.List[str], needs: dict, expected: t.List[t.List[str]]) -> None:
    assert [[a["name"] for a in wave] for wave in dk.waves([_act(n) for n in names], needs)] == expected


def test_held_ports() -> None:
    entries = [
        {"Names": ["/web"], "Ports": [{"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "0.0.0.0"},
                                      {"PrivatePort": 80, "PublicPort": 8080, "Type": "tcp", "IP": "::"},
                                      {"PrivatePort": 443, "Type": "tcp"}]},
        {"Names": ["/dns"], "Ports": [{"PrivatePort": 53, "PublicPort": 5353, "Type": "udp"}]},
        {"Names": [], "Ports": [{"PrivatePort": 1, "PublicPort": 9000}]},
        {"Names": ["/quiet"]},
    ]
    assert dk.held_ports(entries) == {(8080, "tcp"): "web", (5353, "udp"): "dns", (9000, "tcp"): "?"}


# --------------------------------------------------------------------------
# The supervisors' state
# --------------------------------------------------------------------------

STATE_LINE_CASES = [
    ("ready", "ready since=1700000000 pid=7 restarts=0 code=- ready=1\n",
     {"state": "ready", "since": 1700000000, "pid": 7, "restarts": 0, "code": None, "ready": 1}),
    ("crashed", "crashed since=5 pid=- restarts=3 code=101 ready=0",
     {"state": "crashed", "since": 5, "pid": None, "restarts": 3, "code": 101, "ready": 0}),
    ("negative-code", "exited since=5 pid=- restarts=0 code=-1 ready=0",
     {"state": "exited", "since": 5, "pid": None, "restarts": 0, "code": -1, "ready": 0}),
    ("build-running", "building 1700000000", {"state": "building", "epoch": 1700000000}),
    ("build-ended", "failed 1700000100 5234", {"state": "failed", "epoch": 1700000100}),
    ("text-value", "waiting since=1 note=first", {"state": "waiting", "since": 1, "note": "first"}),
    ("empty", "", {}),
    ("blank", "  \n", {}),
    ("none", None, {}),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in STATE_LINE_CASES], ids=[c[0] for c in STATE_LINE_CASES])
def test_parse_state_line(text: t.Optional[str], expected: dict) -> None:
    assert dk.parse_state_line(text) == expected


FAILED_BUILD = """\
    Updating crates.io index
   Compiling proto v0.1.0 (/workspace/crates/proto)
   Compiling gateway v0.1.0 (/workspace/crates/gateway)
warning: unused variable: `x`
 --> crates/gateway/src/main.rs:3:9
  |
3 |     let x = 1;
  |         ^ help: if this is intentional, prefix it with an underscore: `_x`

error[E0425]: cannot find value `VERSON` in this scope
  --> crates/gateway/src/main.rs:48:52
   |
48 |         (Some("GET"), Some("/version")) => ("200 OK", VERSON.to_string()),
   |                                                    ^^^^^^ help: a constant with a similar name exists: `VERSION`

For more information about this error, try `rustc --explain E0425`.
warning: `gateway` (bin "gateway") generated 1 warning
error: could not compile `gateway` (bin "gateway") due to 1 previous error; 1 warning emitted
"""

LINKER_FAILURE = """\
   Compiling kvd v0.1.0 (/workspace)
error: linking with `cc` failed: exit status: 1
  |
  = note: collect2: fatal error: ld terminated with signal 9 [Killed]
"""

GOOD_BUILD = """\
   Compiling common v0.1.0 (/workspace/crates/common)
   Compiling catalog v0.1.0 (/workspace/services/catalog)
    Finished `dev` profile [unoptimized + debuginfo] target(s) in 3.21s
"""

FIRST_ERROR_CASES = [
    ("compiler-error", FAILED_BUILD, 3, [
        "error[E0425]: cannot find value `VERSON` in this scope",
        "  --> crates/gateway/src/main.rs:48:52",
        "   |"]),
    ("linker", LINKER_FAILURE, 12, LINKER_FAILURE.splitlines()[1:]),
    ("no-error-line-gives-the-tail", GOOD_BUILD, 2, GOOD_BUILD.splitlines()[-2:]),
    ("empty", "", 12, []),
]


@pytest.mark.parametrize("log, lines, expected", [c[1:] for c in FIRST_ERROR_CASES],
                         ids=[c[0] for c in FIRST_ERROR_CASES])
def test_first_error(log: str, lines: int, expected: t.List[str]) -> None:
    assert dk.first_error(log, lines) == expected


LAST_PROGRESS_CASES = [
    ("compiling", "    Updating crates.io index\n  Downloaded serde v1.0.0\n   Compiling serde v1.0.0\n",
     "Compiling serde v1.0.0"),
    ("failed-build", FAILED_BUILD, "Compiling gateway v0.1.0 (/workspace/crates/gateway)"),
    ("finished-is-not-progress", GOOD_BUILD, "Compiling catalog v0.1.0 (/workspace/services/catalog)"),
    ("downloading", "    Updating crates.io index\n Downloading crates ...\n", "Downloading crates ..."),
    ("nothing", "warning: x\n", None),
    ("empty", "", None),
]


@pytest.mark.parametrize("log, expected", [c[1:] for c in LAST_PROGRESS_CASES], ids=[c[0] for c in LAST_PROGRESS_CASES])
def test_last_progress(log: str, expected: t.Optional[str]) -> None:
    assert dk.last_progress(log) == expected


def _service(kind: str = "service", ready: str = "port", url: t.Optional[str] = None) -> dict:
    return {"name": "api", "kind": kind, "address": "127.0.0.1:8080", "url": url, "ready": {"type": ready}}


RUNNING = {"State": "running", "Status": "Up 2 minutes"}

# (id, service, container entry, run line, build line, build log, expected row fields)
STATUS_CASES = [
    ("missing", _service(), None, "", "", "", dict(status="missing", ready=False, failed=False,
                                                   detail="no container; run dev.yml")),
    ("stopped", _service(), {"State": "exited", "Status": "Exited (137) 5 seconds ago"}, "ready since=1 ready=1",
     "ok 1", "", dict(status="stopped", ready=False, failed=False, detail="Exited (137) 5 seconds ago")),
    ("dead", _service(), {"State": "dead", "Status": "Dead"}, "", "", "",
     dict(status="stopped", ready=False, failed=False, detail="Dead")),
    ("just-created", _service(), {"State": "created", "Status": "Created"}, "ready since=1 ready=1", "ok 1", "",
     dict(status="starting", ready=False, failed=False, detail="Created")),
    ("restarting", _service(), {"State": "restarting", "Status": "Restarting (2) 1 second ago"}, "", "", "",
     dict(status="starting", ready=False, failed=False, detail="Restarting (2) 1 second ago")),
    ("state-not-reported-yet", _service(), {}, "", "", "", dict(status="starting", ready=False, failed=False,
                                                                detail="")),
    ("stale-state-of-a-previous-container", _service(), dict(RUNNING, Created=200),
     "stopped since=100 pid=- restarts=0 code=0 ready=1", "", "",
     dict(status="starting", ready=False, failed=False, detail="")),
    ("stopped-line-in-a-running-container", _service(), dict(RUNNING, Created=100),
     "stopped since=200 pid=- restarts=0 code=0 ready=1", "", "",
     dict(status="starting", ready=False, failed=False, detail="")),
    ("waiting-for-first-build", _service(), RUNNING, "waiting since=1 pid=- restarts=0 code=- ready=0", "", "",
     dict(status="building", ready=False, failed=False, detail="waiting for the first build")),
    ("building-with-progress", _service(), RUNNING, "waiting since=1 ready=0", "building 1", FAILED_BUILD,
     dict(status="building", ready=False, failed=False,
          detail="Compiling gateway v0.1.0 (/workspace/crates/gateway)")),
    ("rebuilding-while-serving", _service(), RUNNING, "ready since=1 ready=1", "building 2", GOOD_BUILD,
     dict(status="building", ready=False, failed=False,
          detail="serving the last build; Compiling catalog v0.1.0 (/workspace/services/catalog)")),
    ("build-failed", _service(), RUNNING, "waiting since=1 ready=0", "failed 2 100", FAILED_BUILD,
     dict(status="build failed", ready=False, failed=True,
          detail="error[E0425]: cannot find value `VERSON` in this scope | --> crates/gateway/src/main.rs:48:52 | "
                 "48 |         (Some(\"GET\"), Some(\"/version\")) => (\"200 OK\", VERSON.to_string()),")),
    ("build-failed-serving-last-good", _service(), RUNNING, "ready since=1 ready=1", "failed 2 100", LINKER_FAILURE,
     dict(status="build failed", ready=False, failed=True,
          detail="serving the last good build; error: linking with `cc` failed: exit status: 1 | "
                 "= note: collect2: fatal error: ld terminated with signal 9 [Killed]")),
    ("starting", _service(), RUNNING, "starting since=1 pid=9 ready=0", "ok 1 10", GOOD_BUILD,
     dict(status="starting", ready=False, failed=False, detail="")),
    ("ready", _service(), RUNNING, "ready since=1 pid=9 restarts=0 code=- ready=1", "ok 1 10", GOOD_BUILD,
     dict(status="serving", ready=True, failed=False, detail="")),
    ("tool-exited-is-done", _service(kind="tool"), RUNNING, "exited since=1 pid=- code=2 ready=0", "ok 1 10", "",
     dict(status="exited", ready=True, failed=False, detail="exit code 2")),
    ("service-exited-failed", _service(), RUNNING, "exited since=1 pid=- code=0 ready=0", "ok 1 10", "",
     dict(status="exited", ready=False, failed=True, detail="exit code 0")),
    ("crashed-before-ready", _service(), RUNNING, "crashed since=1 pid=- restarts=2 code=101 ready=0", "ok 1", "",
     dict(status="crashed", ready=False, failed=True, detail="exit code 101, restarted 2 times")),
    ("crashed-after-ready", _service(), RUNNING, "crashed since=1 pid=- restarts=1 code=101 ready=1", "ok 1", "",
     dict(status="crashed", ready=False, failed=False, detail="exit code 101, restarted 1 times")),
    ("started-again-after-a-crash", _service(), RUNNING, "starting since=1 pid=9 restarts=3 code=3 ready=0", "ok 1", "",
     dict(status="crashed", ready=False, failed=True, detail="exit code 3, restarted 3 times; starting again")),
    ("started-again-after-a-rebuild", _service(), RUNNING, "starting since=1 pid=9 restarts=0 code=- ready=0", "ok 1",
     "", dict(status="starting", ready=False, failed=False, detail="")),
    ("no-state-yet", _service(), RUNNING, "", "", "", dict(status="starting", ready=False, failed=False, detail="")),
    ("unknown-state-passed-through", _service(), RUNNING, "paused since=1", "ok 1", "",
     dict(status="paused", ready=False, failed=False, detail="")),
    ("healthy", _service(ready="healthcheck"), {"State": "running", "Status": "Up 1 minute (healthy)"},
     "ready since=1 ready=1", "ok 1", "", dict(status="serving", ready=True, failed=False, detail="healthy")),
    ("health-starting", _service(ready="healthcheck"),
     {"State": "running", "Status": "Up 3 seconds (health: starting)"},
     "ready since=1 ready=1", "ok 1", "",
     dict(status="starting", ready=False, failed=False, detail="health: starting")),
    ("unhealthy", _service(ready="healthcheck"), {"State": "running", "Status": "Up 1 minute (unhealthy)"},
     "ready since=1 ready=1", "ok 1", "", dict(status="starting", ready=False, failed=False, detail="unhealthy")),
    ("healthcheck-no-status-yet", _service(ready="healthcheck"), {"State": "running"}, "", "", "",
     dict(status="starting", ready=False, failed=False, detail="starting")),
]


@pytest.mark.parametrize("service, entry, run, build, log, expected", [c[1:] for c in STATUS_CASES],
                         ids=[c[0] for c in STATUS_CASES])
def test_service_status(service: dict, entry: t.Optional[dict], run: str, build: str, log: str,
                        expected: dict) -> None:
    row = dk.service_status(service, entry, dk.parse_state_line(run), dk.parse_state_line(build), log)
    assert row == dict({"service": "api", "address": "127.0.0.1:8080", "kind": service["kind"]}, **expected)


def test_service_status_address_prefers_url() -> None:
    row = dk.service_status(_service(url="http://127.0.0.1:8080/version"), None, {}, {}, "")
    assert row["address"] == "http://127.0.0.1:8080/version"
    tool = {"name": "kvctl", "kind": "tool", "address": None, "url": None, "ready": {"type": "none"}}
    assert dk.service_status(tool, None, {}, {}, "")["address"] == ""


# --------------------------------------------------------------------------
# The record of a converged stack's images and volumes
# --------------------------------------------------------------------------

IDS = {"cargohold/dev:shop": "sha256:d", "cargohold/rust-base:host": "sha256:b", "rust:1-slim": None}
RECORD = dk.current_record("digest-1", IDS, ["shop-cargo-target", "shop-cargo-cache"])

RECORD_CASES = [
    # (id, record, digest, ids now, reason or None)
    ("unchanged", RECORD, "digest-1", IDS, None),
    ("no-record", None, "digest-1", IDS, "no record of a converged stack"),
    ("empty-record", {}, "digest-1", IDS, "no record of a converged stack"),
    ("not-a-dict", ["x"], "digest-1", IDS, "no record of a converged stack"),
    ("input-changed", RECORD, "digest-2", IDS, "an input of the images or volumes changed"),
    ("dev-image-rebuilt", RECORD, "digest-1", dict(IDS, **{"cargohold/dev:shop": "sha256:e"}),
     "image cargohold/dev:shop changed"),
    ("dev-image-removed", RECORD, "digest-1", dict(IDS, **{"cargohold/dev:shop": None}),
     "image cargohold/dev:shop changed"),
    ("official-image-pulled", RECORD, "digest-1", dict(IDS, **{"rust:1-slim": "sha256:r"}),
     "image rust:1-slim changed"),
    ("image-not-in-record", RECORD, "digest-1", dict(IDS, **{"other:1": None}), "image other:1 changed"),
]


@pytest.mark.parametrize("record, digest, ids, reason", [c[1:] for c in RECORD_CASES],
                         ids=[c[0] for c in RECORD_CASES])
def test_record_differs(record: t.Any, digest: str, ids: dict, reason: t.Optional[str]) -> None:
    assert dk.record_differs(record, digest, ids) == reason


VOLUME_PLAN = {"project": "shop", "volumes": {"target": "shop-cargo-target", "cache": "shop-cargo-cache"}}

VOLUME_CASES = [
    # (id, missing, extra labels, expected bodies)
    ("none-missing", [], {}, []),
    ("target-missing", ["shop-cargo-target"], {},
     [{"Name": "shop-cargo-target", "Labels": {"io.cargohold.project": "shop", "io.cargohold.volume": "target"}}]),
    ("both-with-user-labels", ["shop-cargo-target", "shop-cargo-cache"], {"team": "pay"},
     [{"Name": "shop-cargo-target",
       "Labels": {"team": "pay", "io.cargohold.project": "shop", "io.cargohold.volume": "target"}},
      {"Name": "shop-cargo-cache",
       "Labels": {"team": "pay", "io.cargohold.project": "shop", "io.cargohold.volume": "cache"}}]),
    # A user label cannot take the project's volume out of the project (down, status and prune find it by it).
    ("user-label-cannot-rename-the-project", ["shop-cargo-cache"], {"io.cargohold.project": "other"},
     [{"Name": "shop-cargo-cache", "Labels": {"io.cargohold.project": "shop", "io.cargohold.volume": "cache"}}]),
    ("not-a-planned-volume", ["someone-elses"], {}, []),
]


@pytest.mark.parametrize("missing, labels, expected", [c[1:] for c in VOLUME_CASES],
                         ids=[c[0] for c in VOLUME_CASES])
def test_volume_bodies(missing: list, labels: dict, expected: list) -> None:
    assert dk.volume_bodies(VOLUME_PLAN, missing, labels) == expected


def test_current_record_is_json_and_sorted() -> None:
    assert json.loads(json.dumps(RECORD)) == {"digest": "digest-1", "images": IDS,
                                              "volumes": ["shop-cargo-cache", "shop-cargo-target"]}


@pytest.mark.parametrize("volumes, expected", [
    # Another project's volume, an unlabelled one and one the engine has not sized are told apart.
    ([{"Name": "shop-cargo-target", "Labels": {"io.cargohold.project": "shop"}, "UsageData": {"Size": 2048}},
      {"Name": "other-cargo-target", "Labels": {"io.cargohold.project": "other"}, "UsageData": {"Size": 1}},
      {"Name": "anonymous", "Labels": None, "UsageData": {"Size": 7}},
      {"Name": "shop-cargo-cache", "Labels": {"io.cargohold.project": "shop"}, "UsageData": None}],
     [{"name": "shop-cargo-cache", "size": -1}, {"name": "shop-cargo-target", "size": 2048}]),
    (None, []),
])
def test_project_volumes_are_the_projects_own_by_name(volumes: t.Any, expected: list) -> None:
    assert dk.project_volumes({"Volumes": volumes, "Images": []}, "shop") == expected


@pytest.mark.parametrize("user, driver, owns", [
    ("1000:1000", "fuse-overlayfs", True), ("dev", "fuse-overlayfs", True), ("1000", "fuse-overlayfs", True),
    ("", "fuse-overlayfs", False), ("0", "fuse-overlayfs", False), ("0:0", "fuse-overlayfs", False),
    ("root", "fuse-overlayfs", False), ("root:root", "fuse-overlayfs", False),
    ("1000:1000", "overlay2", False), ("1000:1000", "btrfs", False), ("1000:1000", "", False),
])
def test_own_root_argv_only_for_a_user_other_than_root_on_fuse_overlayfs(user: str, driver: str, owns: bool) -> None:
    argv = dk.own_root_argv(user, driver)
    assert argv == (["chown", user, "/"] if owns else None)


@pytest.mark.parametrize("output, user, expected", [
    (True, None, {"AttachStdin": False, "AttachStdout": True, "AttachStderr": True, "Tty": False, "Cmd": ["id"]}),
    (False, "0", {"AttachStdin": False, "AttachStdout": False, "AttachStderr": False, "Tty": False, "Cmd": ["id"],
                  "User": "0"}),
], ids=["read-as-the-container-user", "detached-as-root"])
def test_exec_body(output: bool, user: t.Optional[str], expected: dict) -> None:
    assert dk.exec_body(["id"], output, user) == expected
