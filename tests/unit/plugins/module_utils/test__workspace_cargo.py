"""Service discovery against real `cargo metadata` output, not hand-written metadata."""

from __future__ import annotations

import shutil
import typing as t
from pathlib import Path

import pytest

from ansible_collections.cargohold.devenv.plugins.module_utils import _workspace as ws

from helpers import MAIN_RS, RICH_WORKSPACE, cargo_metadata, manifest, real_metadata, write_tree

PARAMS = {"image": "dev:latest", "user": "1000:1000", "target_volume": "t-vol", "cache_volume": "c-vol"}
EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "workspace"


def render_real(cargo: str, root: Path, **params: t.Any) -> dict:
    workspace = ws.inspect_workspace(str(root))
    md = ws.parse_metadata(cargo_metadata(cargo, root).stdout)
    ws.check_workspace_root(md, workspace.root, ran_cargo=True)
    return ws.render(md, workspace, dict(PARAMS, **params))


@pytest.fixture(scope="module")
def rich(cargo: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = write_tree(tmp_path_factory.mktemp("rich") / "Rich Shop", RICH_WORKSPACE)
    return {"root": root, "result": render_real(cargo, root)}


def services_of(result: dict) -> t.Dict[str, dict]:
    return {s["name"]: s for s in result["services"]}


def test_rich_service_set(rich: dict) -> None:
    # skeleton is excluded, manual's src/bin/ignored.rs is not auto-discovered (autobins = false),
    # the lib-only crates give nothing, jobs gives two.
    assert rich["result"]["all_services"] == ["api", "auth", "cron", "gated", "manual", "worker"]
    assert rich["result"]["project"] == "rich-shop"


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
    service = services_of(rich["result"])[name]
    assert (service["package"], service["bin"], service["package_dir"], service["required_features"]) == (
        package, name, package_dir, features)
    run = service["container"]["command"][-1]
    assert run.startswith(f"run -p {package} --bin {name}")
    assert ("--features " + ",".join(features) in run) == bool(features)


def test_rich_transitive_path_deps(rich: dict) -> None:
    # a -> b -> c, b's build-dependency gen included, a's dev-dependency testhelp not; no Cargo.lock yet.
    assert services_of(rich["result"])["api"]["watch"] == [
        "/workspace/Cargo.toml", "/workspace/crates/a", "/workspace/crates/b", "/workspace/crates/c",
        "/workspace/crates/gen", "/workspace/services/api",
    ]


def test_rich_shared_builder_features(cargo: str, rich: dict) -> None:
    result = render_real(cargo, rich["root"], mode="shared_builder")
    assert result["builder"]["command"][-1] == "cargohold-build build --workspace --bins --features gated/metrics,gated/tracing"


def test_path_dependency_outside_root(cargo: str, tmp_path: Path) -> None:
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


def test_member_directory_is_not_a_root(cargo: str, tmp_path: Path) -> None:
    write_tree(tmp_path, RICH_WORKSPACE)
    with pytest.raises(ValueError, match=r"path:.*no \[workspace\] table"):
        ws.inspect_workspace(str(tmp_path / "services" / "api"))
    # Had the module skipped that check, cargo would report the parent root.
    md = real_metadata(cargo, tmp_path / "services" / "api")
    with pytest.raises(ValueError, match="member of the workspace at"):
        ws.check_workspace_root(md, str(tmp_path / "services" / "api"), ran_cargo=True)


def test_no_binary_workspace(cargo: str, tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "Cargo.toml": '[workspace]\nmembers = ["lib"]\n',
        "lib/Cargo.toml": manifest("lib"),
        "lib/src/lib.rs": "",
    })
    with pytest.raises(ValueError, match="no binary target"):
        render_real(cargo, tmp_path)


@pytest.fixture(scope="module")
def example(cargo: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (EXAMPLE / "Cargo.toml").is_file():
        pytest.skip("examples/workspace is not in this checkout")
    # A copy keeps cargo from touching the shipped tree.
    root = tmp_path_factory.mktemp("example") / "workspace"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("target"))
    return root


def test_example_workspace(cargo: str, example: Path) -> None:
    result = render_real(cargo, example, cargo_args=["--locked"])
    services = services_of(result)
    assert result["all_services"] == ["api", "auth", "billing", "notify"]
    assert services["auth"]["package"] == "auth-service"
    assert services["notify"]["watch"] == [
        "/workspace/Cargo.lock", "/workspace/Cargo.toml", "/workspace/crates/common",
        "/workspace/crates/mailer", "/workspace/services/notify",
    ]
    assert services["api"]["container"]["command"][-1] == "run -p api --bin api --locked"
    assert [s["url"] for s in result["services"]] == [
        "http://127.0.0.1:8080/", "http://127.0.0.1:8081/", "http://127.0.0.1:8082/", "http://127.0.0.1:8083/"]
