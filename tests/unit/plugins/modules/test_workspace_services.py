"""The module's main() through AnsibleModule, against a real workspace and real cargo."""

from __future__ import annotations

import contextlib
import json
import typing as t
from pathlib import Path

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.cargohold.devenv.plugins.module_utils import _workspace as ws
from ansible_collections.cargohold.devenv.plugins.modules import workspace_services

from helpers import MAIN_RS, manifest, real_metadata, write_tree


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


@contextlib.contextmanager
def set_module_args(args: dict) -> t.Iterator[None]:
    try:
        from ansible.module_utils.testing import patch_module_args
    except ImportError:  # ansible-core < 2.19
        patch_module_args = None
    if patch_module_args is not None:
        with patch_module_args(args):
            yield
        return
    old = basic._ANSIBLE_ARGS
    basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    try:
        yield
    finally:
        basic._ANSIBLE_ARGS = old


@pytest.fixture(autouse=True)
def patch_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    def exit_json(self, **kwargs):  # pylint: disable=unused-argument
        raise ExitJson(kwargs)

    def fail_json(self, **kwargs):  # pylint: disable=unused-argument
        raise FailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "shop", {
        "Cargo.toml": '[workspace]\nresolver = "2"\nmembers = ["services/*", "crates/*"]\n',
        "services/api/Cargo.toml": manifest("api", '[dependencies]\ncommon = { path = "../../crates/common" }\n'),
        "services/api/src/main.rs": MAIN_RS,
        "services/auth/Cargo.toml": manifest("auth-service", '[[bin]]\nname = "auth"\npath = "src/main.rs"\n'),
        "services/auth/src/main.rs": MAIN_RS,
        "crates/common/Cargo.toml": manifest("common"),
        "crates/common/src/lib.rs": "",
    })


def run_module(args: dict, expect: type = ExitJson) -> dict:
    with set_module_args(args):
        with pytest.raises(expect) as info:
            workspace_services.main()
    return info.value.args[0]


def base_args(workspace: Path, cargo: str, **extra: t.Any) -> dict:
    return dict(path=str(workspace), cargo=cargo, image="dev:latest", user="1000:1000",
                target_volume="shop-target", cache_volume="shop-cache", **extra)


def test_renders_without_change(workspace: Path, cargo: str) -> None:
    result = run_module(base_args(workspace, cargo, services={"auth": {"args": ["--verbose"]}}))
    assert result["changed"] is False
    assert result["project"] == "shop"
    assert [s["name"] for s in result["services"]] == ["api", "auth"]
    assert result["services"][1]["container"]["command"][-1] == "run -p auth-service --bin auth -- --verbose"
    assert "diff" not in result


def test_check_mode_runs_cargo_and_changes_nothing(workspace: Path, cargo: str) -> None:
    dest = workspace / "out" / "services.json"
    result = run_module(base_args(workspace, cargo, dest=str(dest), _ansible_check_mode=True))
    assert result["changed"] is True
    assert [s["name"] for s in result["services"]] == ["api", "auth"]
    assert not dest.exists()


def test_dest_written_then_idempotent_with_diff(workspace: Path, cargo: str) -> None:
    dest = workspace / ".cargohold" / "nested" / "services.json"
    args = base_args(workspace, cargo, dest=str(dest), _ansible_diff=True)
    first = run_module(args)
    assert first["changed"] is True
    assert first["diff"]["before"] == ""
    assert first["diff"]["after"] == dest.read_text()
    written = json.loads(dest.read_text())
    assert written["services"] == first["services"]
    assert dest.read_text().endswith("}\n")
    assert dest.read_text() == json.dumps(written, sort_keys=True, indent=2) + "\n"

    second = run_module(args)
    assert second["changed"] is False
    assert second["diff"]["before"] == second["diff"]["after"]

    third = run_module(dict(args, port_base=9000))
    assert third["changed"] is True
    assert '"127.0.0.1:8080:8080"' in third["diff"]["before"]
    assert '"127.0.0.1:9000:8080"' in third["diff"]["after"]


def test_metadata_option_skips_cargo(workspace: Path, cargo: str) -> None:
    md = real_metadata(cargo, workspace)
    md_text = json.dumps(md).replace(json.dumps(str(workspace))[1:-1], "/workspace")
    result = run_module(base_args(workspace, "/nonexistent/cargo", metadata=md_text))
    assert [s["name"] for s in result["services"]] == ["api", "auth"]
    assert result["services"][0]["container"]["mounts"][0]["source"] == str(workspace)


FAILURE_CASES = [
    ("unknown-service", {"services": {"web": {}}},
     "services: web not found in the workspace; valid service names are: api, auth"),
    ("bad-service-setting-type", {"services": {"api": {"enabled": "maybe"}}}, "services.api:"),
    ("unknown-docker-option", {"services": {"api": {"docker": {"pid_mode": "host"}}}}, "services.api.docker"),
    ("root-user", {"user": "0:1000"}, "non-root uid"),
    ("cargo-missing", {"cargo": "/nonexistent/cargo"}, "cargo: '/nonexistent/cargo' not found"),
]


@pytest.mark.parametrize("extra, fragment", [c[1:] for c in FAILURE_CASES], ids=[c[0] for c in FAILURE_CASES])
def test_failures(workspace: Path, cargo: str, extra: dict, fragment: str) -> None:
    result = run_module(dict(base_args(workspace, cargo), **extra), expect=FailJson)
    assert fragment in result["msg"]


def test_malformed_manifest_fails_with_cargo_stderr(workspace: Path, cargo: str) -> None:
    (workspace / "services" / "api" / "Cargo.toml").write_text('[package]\nname = "api"\nversion = \n')
    dest = workspace / "services.json"
    result = run_module(base_args(workspace, cargo, dest=str(dest)), expect=FailJson)
    assert result["msg"].startswith("path: cargo metadata failed for")
    assert "services/api/Cargo.toml" in result["msg"]
    assert "Fix Cargo.toml" in result["msg"]
    assert not dest.exists()


def test_argument_spec_defaults_match_options() -> None:
    # The module documents defaults; the pure logic applies them when used directly.
    spec = workspace_services.ARGUMENT_SPEC
    for name, field in ws.Options.__dataclass_fields__.items():  # pylint: disable=no-member
        if "default" in spec[name]:
            default = field.default_factory() if callable(field.default_factory) else field.default
            assert default == spec[name]["default"], name
