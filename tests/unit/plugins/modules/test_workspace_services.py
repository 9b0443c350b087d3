"""modules/workspace_services.py: main() through AnsibleModule on real projects, its helpers, and its docs."""

from __future__ import annotations

import contextlib
import json
import re
import typing as t
from pathlib import Path

import pytest
import yaml

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.cargohold.devenv.plugins.module_utils import _docker as dk
from ansible_collections.cargohold.devenv.plugins.module_utils import _plan as pl
from ansible_collections.cargohold.devenv.plugins.module_utils import _planning as planning
from ansible_collections.cargohold.devenv.plugins.module_utils import _stack
from ansible_collections.cargohold.devenv.plugins.module_utils import _workspace as ws
from ansible_collections.cargohold.devenv.plugins.modules import dev_containers, workspace_services

from helpers import MAIN_RS, manifest, metadata, package, plan, real_metadata, write_tree


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


@pytest.fixture
def two_roots(tmp_path: Path) -> Path:
    """No Cargo.toml at the top: two lone packages, one with a Cargo.lock."""
    return write_tree(tmp_path / "mono", {
        "orders/Cargo.toml": manifest("orders"),
        "orders/src/main.rs": MAIN_RS,
        "orders/Cargo.lock": "version = 3\n",
        "payments/Cargo.toml": manifest("payments"),
        "payments/src/main.rs": MAIN_RS,
        "docs/README.md": "",
    })


def run_module(args: dict, expect: type = ExitJson) -> dict:
    with set_module_args(args):
        with pytest.raises(expect) as info:
            workspace_services.main()
    return info.value.args[0]


def base_args(path: Path, cargo: str, **extra: t.Any) -> dict:
    return dict(path=str(path), cargo=cargo, image="dev:latest", user="1000:1000",
                target_volume="shop-target", cache_volume="shop-cache", state_dir=str(path.parent / "state"), **extra)


# --------------------------------------------------------------------------
# main() with real cargo
# --------------------------------------------------------------------------

def test_renders_without_change(workspace: Path, cargo: str) -> None:
    result = run_module(base_args(workspace, cargo, services={"auth": {"args": ["--verbose"]}}))
    assert result["changed"] is False
    assert result["project"] == "shop"
    assert result["roots"] == [{"path": ".", "lockfile": False}]
    assert [s["name"] for s in result["services"]] == ["api", "auth"]
    assert result["services"][1]["container"]["command"][-2:] == ["--", "--verbose"]
    assert result["services"][1]["container"]["mounts"][3]["source"] == str(workspace.parent / "state")
    assert "diff" not in result and "dest" not in result


def test_two_roots_found_and_planned(two_roots: Path, cargo: str) -> None:
    result = run_module(base_args(two_roots, cargo))
    assert result["roots"] == [{"path": "orders", "lockfile": True}, {"path": "payments", "lockfile": False}]
    assert result["lockfiles_missing"] == ["payments"]
    services = {s["name"]: s for s in result["services"]}
    assert services["payments"]["container"]["working_dir"] == "/workspace/payments"
    assert "--manifest-path /workspace/orders/Cargo.toml" in services["orders"]["container"]["command"][-2]


def test_lone_package(tmp_path: Path, cargo: str) -> None:
    project = write_tree(tmp_path / "kv", {"Cargo.toml": manifest("kv"), "src/main.rs": MAIN_RS,
                                           "src/bin/kvctl.rs": MAIN_RS})
    result = run_module(base_args(project, cargo, services={"kvctl": {"kind": "tool"}}))
    assert [(s["name"], s["kind"], s["package_dir"]) for s in result["services"]] == [
        ("kv", "service", "."), ("kvctl", "tool", ".")]
    assert [c["name"] for c in result["containers"]] == ["kv", "kv-kvctl"]  # no stutter


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
    assert first["changed"] is True and first["dest"] == str(dest)
    assert first["diff"]["before"] == ""
    assert first["diff"]["after"] == dest.read_text()
    written = json.loads(dest.read_text())
    assert written["services"] == first["services"]
    assert dest.read_text() == json.dumps(written, sort_keys=True, indent=2) + "\n"

    second = run_module(args)
    assert second["changed"] is False
    assert second["diff"]["before"] == second["diff"]["after"]

    third = run_module(dict(args, port_base=9000))
    assert third["changed"] is True
    assert '"host": 8080' in third["diff"]["before"] and '"host": 9000' not in third["diff"]["before"]
    assert '"host": 9000' in third["diff"]["after"]


def test_metadata_option_skips_cargo(workspace: Path, cargo: str) -> None:
    md = real_metadata(cargo, workspace)
    md_text = json.dumps(md).replace(json.dumps(str(workspace))[1:-1], "/workspace")
    for given in (md_text, json.loads(md_text), {".": json.loads(md_text)}):
        result = run_module(base_args(workspace, "/nonexistent/cargo", metadata=given))
        assert [s["name"] for s in result["services"]] == ["api", "auth"]
        assert result["services"][0]["container"]["mounts"][0]["source"] == str(workspace)


def test_metadata_keyed_by_root(two_roots: Path, cargo: str) -> None:
    given = {rel: real_metadata(cargo, two_roots / rel) for rel in ("payments", "orders")}
    result = run_module(base_args(two_roots, "/nonexistent/cargo", metadata=given))
    assert result["all_services"] == ["orders", "payments"]


FAILURE_CASES = [
    ("unknown-service", {"services": {"web": {}}},
     "services: web not found in the project; valid service names are: api, auth"),
    ("unknown-service-in-users-words", {"services": {"web": {}}, "names": {"services": "dev_services_overrides"}},
     "dev_services_overrides: web not found in the project"),
    ("unknown-setting", {"services": {"api": {"prot": 1}}},
     "services.api: unknown setting(s) prot; valid ones are: " + ", ".join(pl.SERVICE_OPTIONS)),
    ("bad-service-setting-type", {"services": {"api": {"enabled": "maybe"}}}, "services.api: argument 'enabled'"),
    ("unknown-docker-option", {"services": {"api": {"docker": {"pid_mode": "host"}}}},
     "services.api.docker: unsupported option(s) pid_mode; allowed: " + ", ".join(dk.DOCKER_OPTIONS)),
    ("docker-option-not-convertible", {"services": {"api": {"docker": {"memory": "lots"}}}},
     "services.api.docker.memory:"),
    ("docker-option-in-users-words", {"services": {"api": {"docker": {"ulimits": ["nofile"]}}},
                                      "names": {"services": "dev_services_overrides"}},
     "dev_services_overrides.api.docker.ulimits:"),
    ("root-user", {"user": "0:1000"}, "non-root uid"),
    ("cargo-missing", {"cargo": "/nonexistent/cargo"}, "cargo: '/nonexistent/cargo' not found"),
    ("listed-root-missing", {"roots": [".", "nope"], "names": {"roots": "cargohold_roots"}},
     "cargohold_roots[1]: "),
    ("metadata-missing-a-root", {"metadata": {"orders": {}, "payments": {}}}, "metadata: no entry for Cargo root '.'"),
    ("locked-without-lockfile", {"cargo_args": ["--locked"], "names": {"cargo_args": "dev_services_cargo_args"}},
     "dev_services_cargo_args: --locked needs a Cargo.lock, but . has none"),
]


@pytest.mark.parametrize("extra, fragment", [c[1:] for c in FAILURE_CASES], ids=[c[0] for c in FAILURE_CASES])
def test_failures(workspace: Path, cargo: str, extra: dict, fragment: str) -> None:
    result = run_module(dict(base_args(workspace, cargo), **extra), expect=FailJson)
    assert fragment in result["msg"]


def test_state_dir_is_required(workspace: Path, cargo: str) -> None:
    args = base_args(workspace, cargo)
    del args["state_dir"]
    assert "state_dir" in run_module(args, expect=FailJson)["msg"]


def test_malformed_manifest_fails_with_cargo_stderr(workspace: Path, cargo: str) -> None:
    (workspace / "services" / "api" / "Cargo.toml").write_text('[package]\nname = "api"\nversion = \n')
    dest = workspace / "services.json"
    result = run_module(base_args(workspace, cargo, dest=str(dest)), expect=FailJson)
    assert result["msg"].startswith("path: cargo metadata failed for")
    assert "Cargo.toml" in result["msg"] and "Fix Cargo.toml" in result["msg"]
    assert not dest.exists()


def test_argument_spec_defaults_match_options() -> None:
    # The module documents defaults; the pure logic applies them when used directly.
    spec = planning.ARGUMENT_SPEC
    for name, option in pl.Options.__dataclass_fields__.items():  # pylint: disable=no-member
        assert name in spec, name
        # The module chooses the user (from the workspace owner) before the plan, which then requires it.
        if "default" in spec[name] and name != "user":
            default = option.default_factory() if callable(option.default_factory) else option.default
            assert default == spec[name]["default"], name


# --------------------------------------------------------------------------
# load_metadata
# --------------------------------------------------------------------------

class FakeModule:
    """What load_metadata uses of AnsibleModule: params and run_command."""

    def __init__(self, metadata: t.Any = None, cargo: str = "cargo", outputs: t.Optional[dict] = None):
        self.params = {"metadata": metadata, "cargo": cargo}
        self.outputs = outputs or {}
        self.commands: t.List[t.Tuple[t.List[str], str]] = []

    def run_command(self, command: t.List[str], cwd: str) -> t.Tuple[int, str, str]:
        self.commands.append((command, cwd))
        return self.outputs[cwd]


def md_at(path: str, name: str) -> dict:
    return metadata(package(name, ".", root=path), root=path)


def roots_of(*rels: str, project: str = "/p") -> t.List[ws.Root]:
    return [ws.Root(rel, project if rel == "." else f"{project}/{rel}", True) for rel in rels]


# (id, roots, given metadata, {root: package name} expected)
LOAD_CASES = [
    ("bare-dict-one-root", (".",), md_at("/p", "app"), {".": "app"}),
    ("bare-text-one-root", (".",), json.dumps(md_at("/p", "app")), {".": "app"}),
    ("bare-dict-one-root-below", ("orders",), md_at("/p/orders", "orders"), {"orders": "orders"}),
    ("keyed-one-root", ("orders",), {"orders": md_at("/p/orders", "orders")}, {"orders": "orders"}),
    ("keyed-one-root-other-key", ("orders",), {".": md_at("/p/orders", "orders")}, {"orders": "orders"}),
    ("keyed-two-roots", ("orders", "payments"),
     {"payments": md_at("/p/payments", "payments"), "orders": json.dumps(md_at("/p/orders", "orders"))},
     {"orders": "orders", "payments": "payments"}),
]


@pytest.mark.parametrize("rels, given, expected", [c[1:] for c in LOAD_CASES], ids=[c[0] for c in LOAD_CASES])
def test_load_metadata_given(rels: tuple, given: t.Any, expected: dict) -> None:
    module = FakeModule(given, cargo="/nonexistent/cargo")
    cargo_roots = roots_of(*rels)
    planning.load_metadata(module, cargo_roots)
    assert {r.rel: r.metadata["packages"][0]["name"] for r in cargo_roots} == expected
    assert module.commands == []


LOAD_ERRORS = [
    ("bare-for-two-roots", ("orders", "payments"), md_at("/p/orders", "orders"),
     "metadata: no entry for Cargo root 'orders'; key it by root (orders, payments)"),
    ("keyed-missing-one", ("orders", "payments"), {"orders": md_at("/p/orders", "orders")},
     "metadata: no entry for Cargo root 'payments'"),
    ("keyed-not-metadata", ("orders", "payments"), {"orders": md_at("/p/orders", "orders"), "payments": "{x"},
     "metadata: not valid JSON"),
    ("other-workspace", (".",), metadata(package("api", "services/api", root="/elsewhere"), root="/elsewhere"),
     "metadata: describes the workspace at /elsewhere"),
]


@pytest.mark.parametrize("rels, given, fragment", [c[1:] for c in LOAD_ERRORS], ids=[c[0] for c in LOAD_ERRORS])
def test_load_metadata_given_errors(rels: tuple, given: t.Any, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        planning.load_metadata(FakeModule(given), roots_of(*rels))
    assert fragment in str(info.value)


def test_load_metadata_collected_in_a_container(tmp_path: Path) -> None:
    # Collected inside a container: paths under /workspace, accepted because the members exist on the host.
    write_tree(tmp_path, {"orders/Cargo.toml": "", "payments/svc/Cargo.toml": ""})
    given = {"orders": md_at("/workspace/orders", "orders"),
             "payments": metadata(package("svc", "svc", root="/workspace/payments"), root="/workspace/payments")}
    cargo_roots = roots_of("orders", "payments", project=str(tmp_path))
    planning.load_metadata(FakeModule(given), cargo_roots)
    services = ws.discover_services(cargo_roots)
    assert [(s.name, s.package_dir) for s in services] == [("orders", "orders"), ("svc", "payments/svc")]


def test_load_metadata_keyed_text() -> None:
    given = json.dumps({"orders": md_at("/p/orders", "orders"), "payments": md_at("/p/payments", "payments")})
    cargo_roots = roots_of("orders", "payments")
    planning.load_metadata(FakeModule(given), cargo_roots)
    assert [r.metadata["packages"][0]["name"] for r in cargo_roots] == ["orders", "payments"]


def test_load_metadata_runs_cargo_per_root(tmp_path: Path) -> None:
    fake_cargo = tmp_path / "cargo"
    fake_cargo.write_text("#!/bin/sh\n")
    fake_cargo.chmod(0o755)
    cargo_roots = roots_of("orders", "payments", project="/p")
    module = FakeModule(cargo=str(fake_cargo), outputs={
        "/p/orders": (0, json.dumps(md_at("/p/orders", "orders")), ""),
        "/p/payments": (0, json.dumps(md_at("/p/payments", "payments")), "")})
    planning.load_metadata(module, cargo_roots)
    assert module.commands == [(ws.metadata_command(str(fake_cargo), "/p/orders"), "/p/orders"),
                               (ws.metadata_command(str(fake_cargo), "/p/payments"), "/p/payments")]
    assert [r.metadata["packages"][0]["name"] for r in cargo_roots] == ["orders", "payments"]

    failing = FakeModule(cargo=str(fake_cargo), outputs={"/p/orders": (101, "", "error: bad manifest\n")})
    with pytest.raises(ValueError, match=r"^path: cargo metadata failed for /p/orders/Cargo.toml: error: bad manifest"):
        planning.load_metadata(failing, roots_of("orders"))

    member = FakeModule(cargo=str(fake_cargo), outputs={"/p/orders": (0, json.dumps(md_at("/p", "top")), "")})
    with pytest.raises(ValueError, match=r"^path: /p/orders is a member of the workspace at /p"):
        planning.load_metadata(member, roots_of("orders"))


# --------------------------------------------------------------------------
# normalize_services: the free-form services dict against the one table
# --------------------------------------------------------------------------

def test_normalize_services_fills_defaults_and_converts() -> None:
    result = planning.normalize_services({
        "api": None,
        "kvd": {"port": "7070", "enabled": "yes", "args": [1, "--x"], "listen": "::1",
                "mounts": [{"target": "/data", "source": "data"}],
                "docker": {"cpus": "1.5", "memory": 536870912, "ulimits": None}},
    })
    assert result["api"] == {name: option.get("default") for name, option in pl.SERVICE_OPTIONS.items()}
    kvd = result["kvd"]
    expected = (7070, True, ["1", "--x"], "::1", "service")
    assert (kvd["port"], kvd["enabled"], kvd["args"], kvd["listen"], kvd["kind"]) == expected
    assert kvd["mounts"] == [{"target": "/data", "source": "data", "type": "bind", "read_only": False}]
    assert kvd["docker"] == {"cpus": 1.5, "memory": "536870912"}  # None values dropped, types from DOCKER_OPTIONS
    # raw settings pass through untouched for the plan to check
    assert planning.normalize_services({"a": {"ready": {"http": "/v"}, "ports": [1, "2:3"]}})["a"][
        "ready"] == {"http": "/v"}


NORMALIZE_ERRORS = [
    ("not-a-dict", {"api": "yes"}, ["services.api: must be a dict of settings, got 'yes'"]),
    ("unknown-key", {"api": {"prot": 1, "enable": True}},
     ["services.api: unknown setting(s) enable, prot; valid ones are: " + ", ".join(pl.SERVICE_OPTIONS)]),
    ("bool", {"api": {"enabled": "maybe"}}, ["services.api:", "'enabled'", "maybe"]),
    ("int", {"api": {"port": "high"}}, ["services.api:", "'port'"]),
    ("choice", {"api": {"kind": "daemon"}}, ["services.api:", "kind", "service, tool", "daemon"]),
    ("list", {"api": {"depends_on": {"a": 1}}}, ["services.api:", "depends_on"]),
    ("mount-without-target", {"api": {"mounts": [{"source": "x"}]}}, ["services.api:", "target", "mounts"]),
    ("mount-bad-type", {"api": {"mounts": [{"target": "/x", "type": "nfs"}]}}, ["services.api:", "nfs"]),
    ("docker-not-a-dict", {"api": {"docker": "privileged"}}, ["services.api:", "docker"]),
    ("docker-unknown", {"api": {"docker": {"pid_mode": "host", "cpus": 1}}},
     ["services.api.docker: unsupported option(s) pid_mode; allowed: " + ", ".join(dk.DOCKER_OPTIONS)]),
    ("docker-type", {"api": {"docker": {"cpus": "many"}}}, ["services.api.docker:", "'cpus'"]),
    ("docker-bool", {"api": {"docker": {"privileged": "sometimes"}}}, ["services.api.docker:", "'privileged'"]),
]


@pytest.mark.parametrize("services, fragments", [c[1:] for c in NORMALIZE_ERRORS], ids=[c[0] for c in NORMALIZE_ERRORS])
def test_normalize_services_errors(services: dict, fragments: t.List[str]) -> None:
    with pytest.raises(ValueError) as info:
        planning.normalize_services(services)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_normalized_services_render() -> None:
    services = planning.normalize_services({"api": {"port": "7070", "kind": "service"}})
    result = plan([ws.Root(".", "/ws", True, metadata(package("api", "api")))], services=services)
    assert result["services"][0]["container"]["env"]["PORT"] == "7070"


# --------------------------------------------------------------------------
# The docs say what the tables say
# --------------------------------------------------------------------------

def docs(module: t.Any, section: str) -> t.Any:
    return yaml.safe_load(getattr(module, section))


@pytest.mark.parametrize("module, section", [(m, s) for m in (workspace_services, dev_containers)
                                             for s in ("DOCUMENTATION", "EXAMPLES", "RETURN")],
                         ids=lambda v: v if isinstance(v, str) else v.__name__.rsplit(".", 1)[-1])
def test_docs_are_yaml(module: t.Any, section: str) -> None:
    assert docs(module, section)


def test_documented_options_are_the_argument_spec() -> None:
    documented = docs(workspace_services, "DOCUMENTATION")["options"]
    spec = workspace_services.MODULE_ARGUMENT_SPEC
    assert sorted(documented) == sorted(spec)
    for name, option in spec.items():
        doc = documented[name]
        for key in ("type", "elements", "choices", "default"):
            assert doc.get(key) == option.get(key), f"{name}.{key}"
        assert bool(doc.get("required")) == bool(option.get("required")), name


def test_dev_containers_documents_its_argument_spec() -> None:
    documented = docs(dev_containers, "DOCUMENTATION")["options"]
    assert sorted(documented) == sorted(_stack.ARGUMENT_SPEC)
    for name, option in _stack.ARGUMENT_SPEC.items():
        for key in ("type", "elements", "choices", "default"):
            assert documented[name].get(key) == option.get(key), f"{name}.{key}"
        assert sorted(documented[name].get("suboptions") or {}) == sorted(option.get("options") or {}), name


def _services_doc_items() -> t.List[str]:
    return docs(workspace_services, "DOCUMENTATION")["options"]["services"]["description"]


def test_every_service_setting_is_documented() -> None:
    # One table: SERVICE_OPTIONS is the argument spec; each of its keys has an item in the services docs.
    described = {m.group(1) for item in _services_doc_items() for m in [re.match(r"C\((\w+)\) ", item)] if m}
    assert described == set(pl.SERVICE_OPTIONS)


def test_every_docker_option_is_documented() -> None:
    (item,) = [i for i in _services_doc_items() if i.startswith("C(docker) ")]
    assert set(re.findall(r"C\((\w+)\)", item)) - {"docker"} == set(dk.DOCKER_OPTIONS)


def test_documented_choices_and_defaults_of_service_settings() -> None:
    items = {re.match(r"C\((\w+)\)", i).group(1): i for i in _services_doc_items() if i.startswith("C(")}
    for name, option in pl.SERVICE_OPTIONS.items():
        for choice in option.get("choices") or []:
            assert f"V({choice})" in items[name], f"{name}: choice {choice}"
        if option.get("default") is not None and not isinstance(option["default"], bool):
            assert f"default V({option['default']})" in items[name], name


def test_every_plan_key_is_returned_in_the_docs() -> None:
    result = plan([ws.Root(".", "/ws", True, metadata(package("api", "api")))])
    documented = docs(workspace_services, "RETURN")
    assert set(result) <= set(documented), sorted(set(result) - set(documented))


# --------------------------------------------------------------------------
# What the plan reads on the host: the container user, the host toolchain, a host without cargo
# --------------------------------------------------------------------------

def test_user_is_the_owner_of_the_workspace_when_not_given(workspace: Path, cargo: str) -> None:
    args = base_args(workspace, cargo)
    del args["user"]
    result = run_module(args)
    owner = workspace.stat()
    expected = (f"{owner.st_uid}:{owner.st_gid}" if owner.st_uid != 0 else "1000:1000")
    assert result["user"] == expected
    assert result["workspace_owner"] == {"uid": owner.st_uid, "gid": owner.st_gid}
    assert {c["user"] for c in result["containers"]} == {expected}


def test_uid_and_gid_settings_win_over_the_owner(workspace: Path, cargo: str) -> None:
    args = base_args(workspace, cargo, uid="2000", gid="3000")
    del args["user"]
    assert run_module(args)["user"] == "2000:3000"


def test_a_root_uid_setting_is_refused_in_the_users_words(workspace: Path, cargo: str) -> None:
    args = base_args(workspace, cargo, uid="0", names={"uid": "dev_image_uid"})
    del args["user"]
    result = run_module(args, FailJson)
    assert result["msg"].startswith("dev_image_uid: is 0: set a numeric id above 0")


def test_host_toolchain_is_identified_on_request(workspace: Path, cargo: str) -> None:
    result = run_module(base_args(workspace, cargo, host_toolchain=True))
    rustc = ws.find_cargo("rustc")
    toolchain = result["host_toolchain"]
    if rustc is None:
        assert toolchain == {"sysroot": "", "checksum": ""}
    else:
        assert Path(toolchain["sysroot"], "bin").is_dir()
    assert "host_toolchain" not in run_module(base_args(workspace, cargo))


def test_no_cargo_roots_returns_the_roots_and_writes_no_plan(two_roots: Path, tmp_path: Path) -> None:
    dest = tmp_path / "plan.json"
    result = run_module(base_args(two_roots, "/nonexistent/cargo", no_cargo="roots", dest=str(dest)))
    assert result["cargo_missing"] is True
    assert result["changed"] is False
    assert result["roots"] == [{"path": "orders", "lockfile": True}, {"path": "payments", "lockfile": False}]
    assert "containers" not in result and not dest.exists()
    failed = run_module(base_args(two_roots, "/nonexistent/cargo"), FailJson)
    assert "not found" in failed["msg"]


def test_options_as_one_dict_plan_the_same(workspace: Path, cargo: str) -> None:
    args = base_args(workspace, cargo, services={"auth": {"args": ["--verbose"]}})
    assert run_module({"options": args}) == run_module(args)


def test_options_and_single_options_together_are_refused(workspace: Path, cargo: str) -> None:
    result = run_module({"options": base_args(workspace, cargo), "mode": "shared_builder"}, FailJson)
    assert result["msg"].startswith("options: give the options either in options or one by one, not both (mode)")


@pytest.mark.parametrize("wrap", [lambda a: a, lambda a: {"options": a}], ids=["one-by-one", "options"])
def test_required_options_are_still_required(workspace: Path, cargo: str, wrap: t.Callable[[dict], dict]) -> None:
    args = base_args(workspace, cargo)
    del args["image"], args["state_dir"]
    assert "missing required arguments: image, state_dir" in run_module(wrap(args), FailJson)["msg"]


def test_null_options_count_as_left_out(workspace: Path, cargo: str) -> None:
    args = base_args(workspace, cargo, roots=None, metadata=None, network=None, fallback_uid=None)
    assert run_module({"options": args})["network"] == "shop-dev"
