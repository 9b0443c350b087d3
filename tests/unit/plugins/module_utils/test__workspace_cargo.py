"""Cargo roots and plans against real `cargo metadata` output, not hand-written metadata.

cargo only reads manifests here (`metadata --no-deps --offline`): no network, no build. Fixtures are copied to a
temporary directory first; the shipped trees are never handed to cargo.
"""

from __future__ import annotations

import shutil
import typing as t
from pathlib import Path

import pytest

from ansible_collections.cargohold.devenv.plugins.module_utils import _docker as dk
from ansible_collections.cargohold.devenv.plugins.module_utils import _plan as pl
from ansible_collections.cargohold.devenv.plugins.module_utils import _workspace as ws

from helpers import (
    FIXTURES, MAIN_RS, PARAMS, REPO, RICH_WORKSPACE, SHAPE_CHECKS, by_name, cargo_metadata, copy_fixture,
    fixture_vars, manifest, options_from_vars, real_metadata, write_tree,
)

EXAMPLE = REPO / "examples" / "workspace"


def read_roots(cargo: str, project: Path, roots: t.Optional[t.Sequence[str]] = None) -> t.List[ws.Root]:
    """What the module does before planning: find the roots, run cargo in each, check each answer."""
    found = ws.inspect_project(str(project), roots)
    for root in found:
        root.metadata = ws.parse_metadata(cargo_metadata(cargo, Path(root.path)).stdout)
        ws.check_workspace_root(root.metadata, root.path, ran_cargo=True)
    return found


def render_real(cargo: str, project: Path, roots: t.Optional[t.Sequence[str]] = None, **params: t.Any) -> dict:
    found = read_roots(cargo, project, roots)
    result = pl.render(str(project), found, dict(PARAMS, **params), list(dk.DOCKER_OPTIONS))
    for container in result["containers"]:
        dk.create_body(container)
    return result


# --------------------------------------------------------------------------
# One workspace with every discovery rule
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rich(cargo: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = write_tree(tmp_path_factory.mktemp("rich") / "Rich Shop", RICH_WORKSPACE)
    return {"root": root, "result": render_real(cargo, root)}


def test_rich_service_set(rich: dict) -> None:
    # skeleton is excluded, manual's src/bin/ignored.rs is not auto-discovered (autobins = false),
    # the lib-only crates give nothing, jobs gives two.
    assert rich["result"]["all_services"] == ["api", "auth", "cron", "gated", "manual", "worker"]
    assert rich["result"]["project"] == "rich-shop"
    assert rich["result"]["roots"] == [{"path": ".", "lockfile": False}]


DISCOVERY_CASES = [
    ("glob-member", "api", "api", "services/api", []),
    ("bin-rename", "auth", "auth-service", "services/auth", []),
    ("autobins-false", "manual", "manual", "services/manual", []),
    ("required-features", "gated", "gated", "services/gated", ["metrics", "tracing"]),
    ("src-bin-autodiscovery-1", "cron", "jobs", "tools/jobs", []),
    ("src-bin-autodiscovery-2", "worker", "jobs", "tools/jobs", []),
]


@pytest.mark.parametrize("name, package, package_dir, features", [c[1:] for c in DISCOVERY_CASES],
                         ids=[c[0] for c in DISCOVERY_CASES])
def test_rich_discovery(rich: dict, name: str, package: str, package_dir: str, features: t.List[str]) -> None:
    service = by_name(rich["result"])[name]
    assert (service["package"], service["bin"], service["package_dir"], service["required_features"]) == (
        package, name, package_dir, features)
    build = service["container"]["command"][-2]
    assert f"-p {package} --bin {name}" in build
    assert ("--features " + ",".join(f"{package}/{f}" for f in features) in build) == bool(features)


def test_rich_transitive_path_deps(rich: dict) -> None:
    # a -> b -> c, b's build-dependency gen included, a's dev-dependency testhelp not.
    api = by_name(rich["result"])["api"]
    assert api["local_dirs"] == ["crates/a", "crates/b", "crates/c", "crates/gen", "services/api"]
    assert api["watch"] == [
        "/workspace/Cargo.lock", "/workspace/Cargo.toml", "/workspace/crates/a", "/workspace/crates/b",
        "/workspace/crates/c", "/workspace/crates/gen", "/workspace/services/api",
    ]


def test_rich_shared_builder_features(cargo: str, rich: dict) -> None:
    command = render_real(cargo, rich["root"], mode="shared_builder")["builder"]["command"]
    assert command[-1] == ("cargohold-build build --manifest-path /workspace/Cargo.toml --workspace --bins "
                           "--features gated/metrics,gated/tracing")


# --------------------------------------------------------------------------
# Roots
# --------------------------------------------------------------------------

def test_lone_package(cargo: str, tmp_path: Path) -> None:
    project = write_tree(tmp_path / "kv", {"Cargo.toml": manifest("kv"), "src/lib.rs": "", "src/main.rs": MAIN_RS,
                                           "src/bin/kvctl.rs": MAIN_RS, "Cargo.lock": "version = 3\n"})
    result = render_real(cargo, project)
    assert result["roots"] == [{"path": ".", "lockfile": True}]
    assert [(s["name"], s["package"], s["root"], s["package_dir"]) for s in result["services"]] == [
        ("kv", "kv", ".", "."), ("kvctl", "kv", ".", ".")]
    assert [s["watch"] for s in result["services"]] == [["/workspace"], ["/workspace"]]


def test_two_roots_found_below_a_dir_without_manifest(cargo: str, tmp_path: Path) -> None:
    project = write_tree(tmp_path / "mono", {
        "orders/Cargo.toml": manifest("orders"), "orders/src/main.rs": MAIN_RS,
        "billing/Cargo.toml": '[workspace]\nmembers = ["svc", "fx"]\n',
        "billing/svc/Cargo.toml": manifest("payments", '[dependencies]\nfx = { path = "../fx" }\n'),
        "billing/svc/src/main.rs": MAIN_RS,
        "billing/fx/Cargo.toml": manifest("fx"), "billing/fx/src/lib.rs": "",
        "billing/target/debug/Cargo.toml": "not a manifest", ".git/x/Cargo.toml": "not a manifest",
    })
    result = render_real(cargo, project)
    assert result["roots"] == [{"path": "billing", "lockfile": False}, {"path": "orders", "lockfile": False}]
    services = by_name(result)
    assert (services["payments"]["root"], services["payments"]["package_dir"], services["payments"]["local_dirs"]) == (
        "billing", "billing/svc", ["billing/fx", "billing/svc"])
    assert services["payments"]["watch"] == ["/workspace/billing/Cargo.lock", "/workspace/billing/Cargo.toml",
                                             "/workspace/billing/fx", "/workspace/billing/svc"]
    assert services["payments"]["container"]["working_dir"] == "/workspace/billing"
    build = services["payments"]["container"]["command"][-2]
    assert "-p payments --bin payments -- build --manifest-path /workspace/billing/Cargo.toml" in build
    assert services["orders"]["container"]["working_dir"] == "/workspace/orders"


def test_duplicate_binary_across_roots(cargo: str, tmp_path: Path) -> None:
    project = write_tree(tmp_path, {
        "a/Cargo.toml": manifest("a", '[[bin]]\nname = "migrate"\npath = "src/main.rs"\n'), "a/src/main.rs": MAIN_RS,
        "b/Cargo.toml": manifest("b", '[[bin]]\nname = "migrate"\npath = "src/main.rs"\n'), "b/src/main.rs": MAIN_RS,
    })
    with pytest.raises(ValueError) as info:
        render_real(cargo, project)
    assert "'migrate'" in str(info.value)
    assert "package 'a' (root a) and package 'b' (root b)" in str(info.value)


def test_member_directory_is_not_a_root(cargo: str, tmp_path: Path) -> None:
    write_tree(tmp_path, RICH_WORKSPACE)
    # A member has a Cargo.toml, so it passes for a lone package; cargo then names its real root.
    with pytest.raises(ValueError, match=r"^path: .*services/api is a member of the workspace at"):
        render_real(cargo, tmp_path / "services" / "api")


def test_member_listed_next_to_its_workspace(cargo: str, tmp_path: Path) -> None:
    write_tree(tmp_path, RICH_WORKSPACE)
    with pytest.raises(ValueError, match=r"^roots: 'services/api' is inside the Cargo workspace at '\.'"):
        read_roots(cargo, tmp_path, [".", "services/api"])


def test_path_dependency_outside_project(cargo: str, tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "outside/Cargo.toml": manifest("outside"),
        "outside/src/lib.rs": "",
        "ws/Cargo.toml": '[workspace]\nmembers = ["api"]\n',
        "ws/api/Cargo.toml": manifest("api", '[dependencies]\noutside = { path = "../../outside" }\n'),
        "ws/api/src/main.rs": MAIN_RS,
    })
    with pytest.raises(ValueError) as info:
        render_real(cargo, tmp_path / "ws")
    assert "service 'api'" in str(info.value) and "'outside'" in str(info.value)
    assert "outside the project directory" in str(info.value)


def test_path_dependency_in_a_sibling_of_the_root(cargo: str, tmp_path: Path) -> None:
    project = write_tree(tmp_path / "mono", {
        "shared/Cargo.toml": manifest("shared"), "shared/src/lib.rs": "",
        "orders/Cargo.toml": manifest("orders", '[dependencies]\nshared = { path = "../shared" }\n'),
        "orders/src/main.rs": MAIN_RS,
    })
    result = render_real(cargo, project, ["orders"])
    assert by_name(result)["orders"]["watch"] == ["/workspace/orders", "/workspace/shared"]


def test_malformed_manifest_reports_cargo_error(cargo: str, tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "Cargo.toml": '[workspace]\nmembers = ["api"]\n',
        "api/Cargo.toml": '[package]\nname = "api"\nversion = "0.1.0"\nedition = "2021"\nbogus = [\n',
        "api/src/main.rs": MAIN_RS,
    })
    proc = cargo_metadata(cargo, tmp_path)
    assert proc.returncode != 0
    message = ws.cargo_failure(str(tmp_path), proc.returncode, proc.stderr)
    assert "api/Cargo.toml" in message and "Fix Cargo.toml" in message


def test_no_binary_workspace(cargo: str, tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "Cargo.toml": '[workspace]\nmembers = ["lib"]\n',
        "lib/Cargo.toml": manifest("lib"),
        "lib/src/lib.rs": "",
    })
    with pytest.raises(ValueError, match="no binary target"):
        render_real(cargo, tmp_path)


# --------------------------------------------------------------------------
# The shipped example and the four fixture shapes
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def example(cargo: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (EXAMPLE / "Cargo.toml").is_file():
        pytest.skip("examples/workspace is not in this checkout")
    root = tmp_path_factory.mktemp("example") / "workspace"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("target"))
    return root


def test_example_workspace(cargo: str, example: Path) -> None:
    result = render_real(cargo, example, cargo_args=["--locked"])
    services = by_name(result)
    assert result["all_services"] == ["api", "auth", "billing", "notify"]
    assert services["auth"]["package"] == "auth-service"
    assert services["notify"]["watch"] == [
        "/workspace/Cargo.lock", "/workspace/Cargo.toml", "/workspace/crates/common",
        "/workspace/crates/mailer", "/workspace/services/notify",
    ]
    assert services["api"]["container"]["command"][-2].endswith("-- build --manifest-path /workspace/Cargo.toml --locked")
    assert [s["address"] for s in result["services"]] == [
        "127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"]


SHAPE_NAMES = ["single", "roots", "buildrs", "nolock"]


@pytest.fixture(scope="module")
def shapes(cargo: str, tmp_path_factory: pytest.TempPathFactory) -> t.Dict[str, Path]:
    scratch = tmp_path_factory.mktemp("shapes")
    return {name: copy_fixture(name, scratch) for name in SHAPE_NAMES}


def test_fixtures_are_all_covered() -> None:
    assert sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) == sorted(SHAPE_NAMES) == sorted(SHAPE_CHECKS)


@pytest.mark.parametrize("name", SHAPE_NAMES)
def test_fixture_with_its_dev_yml(cargo: str, shapes: t.Dict[str, Path], name: str) -> None:
    options = options_from_vars(fixture_vars(name))
    roots = options.pop("roots", None)
    result = render_real(cargo, shapes[name], roots, **options)
    assert result["project"] == name
    SHAPE_CHECKS[name](result)


def test_fixture_roots_found_without_listing_them(cargo: str, shapes: t.Dict[str, Path]) -> None:
    # dev.yml lists [orders, payments]; finding them gives the same roots
    assert [r.rel for r in read_roots(cargo, shapes["roots"])] == ["orders", "payments"]


def test_fixture_single_is_one_package_without_workspace(cargo: str, shapes: t.Dict[str, Path]) -> None:
    assert ws.declares_workspace((shapes["single"] / "Cargo.toml").read_text()) is False
    md = real_metadata(cargo, shapes["single"])
    targets = {(tuple(tg["kind"]), tg["name"]) for tg in md["packages"][0]["targets"]}
    assert {(("lib",), "kvd"), (("bin",), "kvd"), (("bin",), "kvctl")} <= targets


def test_fixture_nolock_metadata_writes_no_lockfile(cargo: str, shapes: t.Dict[str, Path]) -> None:
    (root,) = read_roots(cargo, shapes["nolock"])
    assert root.has_lockfile is False
    assert not (shapes["nolock"] / "Cargo.lock").exists()
    with pytest.raises(ValueError, match=r"^cargo_args: --locked needs a Cargo.lock, but \. has none"):
        render_real(cargo, shapes["nolock"], cargo_args=["--locked"])


def test_fixture_buildrs_proto_build_script_is_no_service(cargo: str, shapes: t.Dict[str, Path]) -> None:
    result = render_real(cargo, shapes["buildrs"])
    assert result["all_services"] == ["backend", "gateway"]
    assert "/workspace/crates/proto" in by_name(result)["gateway"]["watch"]
