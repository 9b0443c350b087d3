"""module_utils/_stack.py: the parts that need no Docker engine (log demuxing, port checks, state files)."""

from __future__ import annotations

import socket
import typing as t
from pathlib import Path

import pytest

from ansible_collections.cargohold.devenv.plugins.module_utils import _docker as dk
from ansible_collections.cargohold.devenv.plugins.module_utils import _stack as dc

from helpers import cargo_root, package, plan


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


DEMUX_CASES = [
    ("stdout-and-stderr", frame(1, b"listening on 8080\n") + frame(2, b"warning: slow\n") + frame(1, b"ok\n"),
     b"listening on 8080\nwarning: slow\nok\n"),
    ("stdin-stream-and-empty-frame", frame(0, b"") + frame(1, b"x"), b"x"),
    ("large-frame", frame(1, b"a" * 70000), b"a" * 70000),
    ("truncated-last-frame", frame(1, b"full\n") + frame(2, b"partial line")[:-4], b"full\npartial "),
    ("tty-stream-is-plain", b"plain output\n", b"plain output\n"),
    ("empty", b"", b""),
    ("too-short-for-a-header", b"\x01\x00\x00", b"\x01\x00\x00"),
]


@pytest.mark.parametrize("raw, expected", [c[1:] for c in DEMUX_CASES], ids=[c[0] for c in DEMUX_CASES])
def test_demux(raw: bytes, expected: bytes) -> None:
    assert dk.demux(raw) == expected


# --------------------------------------------------------------------------
# Host ports
# --------------------------------------------------------------------------

def free_port(family: int = socket.AF_INET, ip: str = "127.0.0.1") -> int:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((ip, 0))
        return sock.getsockname()[1]


def listening(ip: str = "127.0.0.1", port: int = 0, family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((ip, port))
    sock.listen(1)
    return sock


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_bindable_free_port() -> None:
    assert dc.bindable("127.0.0.1", free_port(), "tcp") is True


def test_bindable_false_for_a_listening_port() -> None:
    with listening() as held:
        port = held.getsockname()[1]
        assert dc.bindable("127.0.0.1", port, "tcp") is False
    assert dc.bindable("127.0.0.1", port, "tcp") is True  # released


def test_bindable_false_for_a_wildcard_listener() -> None:
    with listening("0.0.0.0") as held:
        assert dc.bindable("127.0.0.1", held.getsockname()[1], "tcp") is False


def test_bindable_udp_is_separate() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        assert dc.bindable("127.0.0.1", port, "udp") is False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_bindable_ipv6() -> None:
    with listening("::1", family=socket.AF_INET6) as held:
        assert dc.bindable("::1", held.getsockname()[1], "tcp") is False
    assert dc.bindable("::1", free_port(socket.AF_INET6, "::1"), "tcp") is True


def _body(port: int, ip: str = "127.0.0.1", proto: str = "tcp") -> dict:
    return {"HostConfig": {"PortBindings": {f"8080/{proto}": [{"HostIp": ip, "HostPort": str(port)}]}}}


def _entry(name: str, project: str, port: int, proto: str = "tcp") -> dict:
    return {"Names": [f"/{name}"], "Labels": {dk.PROJECT_LABEL: project},
            "Ports": [{"PrivatePort": 8080, "PublicPort": port, "Type": proto}]}


def _action(name: str, action: str) -> dict:
    return {"name": name, "action": action, "reason": "", "id": f"id-{name}"}


def test_port_conflicts_with_another_projects_container() -> None:
    port = free_port()
    conflicts = dc.port_conflicts([("ws-api", _body(port))], [_action("ws-api", "create")],
                                  [_entry("other-web", "other", port)], "ws")
    assert conflicts == [("ws-api", "127.0.0.1", port, "other-web")]


def test_port_conflicts_with_another_process() -> None:
    with listening() as held:
        port = held.getsockname()[1]
        conflicts = dc.port_conflicts([("ws-api", _body(port))], [_action("ws-api", "start")], [], "ws")
    assert conflicts == [("ws-api", "127.0.0.1", port, "another process")]


PORT_CONFLICT_NONE_CASES = [
    ("free", "create", []),
    ("kept-container-is-not-checked", "keep", ["holder"]),
    ("restart-is-not-checked", "restart", ["holder"]),
    ("other-protocol", "create", ["udp-holder"]),
]


@pytest.mark.parametrize("action, holders", [c[1:] for c in PORT_CONFLICT_NONE_CASES],
                         ids=[c[0] for c in PORT_CONFLICT_NONE_CASES])
def test_no_port_conflict(action: str, holders: t.List[str]) -> None:
    port = free_port()
    everyone = [_entry("x", "other", port, "udp" if h == "udp-holder" else "tcp") for h in holders]
    assert dc.port_conflicts([("ws-api", _body(port))], [_action("ws-api", action)], everyone, "ws") == []


def test_recreating_own_container_is_no_conflict() -> None:
    with listening() as proxy:  # stands in for the docker-proxy of the running ws-api
        port = proxy.getsockname()[1]
        conflicts = dc.port_conflicts([("ws-api", _body(port))], [_action("ws-api", "recreate")],
                                      [_entry("ws-api", "ws", port)], "ws")
    assert conflicts == []


# --------------------------------------------------------------------------
# Rows from the state files on the Docker host
# --------------------------------------------------------------------------

def _stack(tmp_path: Path, mode: str = "per_service") -> dc.Stack:
    result = plan([cargo_root(".", package("api", "api"), package("cli", "cli"))], mode=mode,
                  state_dir=str(tmp_path), services={"cli": {"kind": "tool"}, "api": {"ready": {"http": "/v"}}})
    return dc.Stack(None, result, {})


def _write(tmp_path: Path, files: t.Mapping[str, str]) -> None:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


RUNNING = [{"Names": ["/ws-api"], "State": "running", "Status": "Up"},
           {"Names": ["/ws-cli"], "State": "running", "Status": "Up"}]


def test_rows_per_service(tmp_path: Path) -> None:
    _write(tmp_path, {"api/run": "ready since=1 pid=3 restarts=0 code=- ready=1\n", "api/build": "ok 1 10\n",
                      "cli/run": "exited since=1 pid=- restarts=0 code=2 ready=0\n", "cli/build": "ok 1 10\n"})
    rows = _stack(tmp_path).rows(RUNNING)
    assert [(r["service"], r["status"], r["ready"], r["failed"], r["address"]) for r in rows] == [
        ("api", "serving", True, False, "http://127.0.0.1:8080/v"), ("cli", "exited", True, False, "")]


def test_rows_shared_builder_read_the_builders_build(tmp_path: Path) -> None:
    _write(tmp_path, {"api/run": "ready since=1 ready=1", "api/build": "ok 1 1",
                      "builder/build": "failed 2 10", "builder/build.log": "error: boom\n"})
    rows = _stack(tmp_path, "shared_builder").rows(RUNNING[:1])
    assert [(r["service"], r["status"], r["detail"]) for r in rows] == [
        ("api", "build failed", "serving the last good build; error: boom"),
        ("cli", "missing", "no container; run dev.yml")]


def test_rows_building_shows_the_running_builds_progress(tmp_path: Path) -> None:
    _write(tmp_path, {"api/run": "ready since=1 ready=1", "api/build": "building 5",
                      "api/build.log": "   Compiling previous v0.0.1\n    Finished `dev` profile\n",
                      "api/build.log.partial": "   Compiling serde v1.0.0\n   Compiling api v0.1.0 (/workspace/api)\n"})
    (row,) = [r for r in _stack(tmp_path).rows(RUNNING) if r["service"] == "api"]
    assert row["status"] == "building"
    assert row["detail"] == "serving the last build; compiling api"
    assert row["progress"] == "compiling api"
    assert row["container"] == "ws-api"


def test_rows_building_reads_cargos_progress_bar(tmp_path: Path) -> None:
    _write(tmp_path, {"api/build": "building 5", "api/build.log.partial": "   Compiling serde v1.0.0\n",
                      "api/progress": "    Building [=====>      ] 34/50: tokio, hyper(build)          \n"})
    rows = _stack(tmp_path).rows(RUNNING, only=("api",))
    assert [(r["service"], r["status"], r["detail"], r["progress"]) for r in rows] == [
        ("api", "building", "compiled 34/50 (tokio, hyper(build))", "compiled 34/50 (tokio, hyper(build))")]


def test_rows_progress_only_while_building(tmp_path: Path) -> None:
    _write(tmp_path, {"api/run": "ready since=1 ready=1", "api/build": "ok 5 10",
                      "api/progress": "    Building [=====>      ] 34/50: tokio\n"})
    (row,) = _stack(tmp_path).rows(RUNNING, only=("api",))
    assert (row["status"], row["progress"]) == ("serving", None)


def test_selected_names_every_service_or_refuses_unknown_ones(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    assert stack.selected([]) == ("api", "cli")
    assert stack.selected(["cli", "api", "cli"]) == ("cli", "api")
    with pytest.raises(dc.StackError, match=r"^service: apx is not a service of .*; its services: api, cli$"):
        stack.selected(["apx"])


@pytest.mark.parametrize("cargo_args, expected", [
    ([], []),
    (["--release"], ["--release"]),
    (["--profile", "fast"], ["--profile", "fast"]),
    (["--profile=dev"], []),
    (["--target", "x86_64-unknown-linux-musl", "--release"], ["--release", "--target", "x86_64-unknown-linux-musl"]),
])
def test_clean_argv_cleans_the_profile_and_target_the_binary_is_built_for(cargo_args: list, expected: list) -> None:
    result = plan([cargo_root(".", package("api", "api"), package("worker", "jobs"))], cargo_args=cargo_args)
    (worker,) = [s for s in result["services"] if s["name"] == "worker"]
    assert dc.clean_argv(worker, result) == ["cargo", "clean", "--manifest-path", "/workspace/Cargo.toml",
                                             "-p", "worker"] + expected
