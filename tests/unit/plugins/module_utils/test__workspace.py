"""module_utils/_workspace.py: Cargo roots of a project, service discovery on hand-written metadata, checks."""

from __future__ import annotations

import hashlib
import json
import os
import typing as t
from pathlib import Path

import pytest

from ansible_collections.cargohold.devenv.plugins.module_utils import _workspace as ws

from helpers import ROOT, cargo_root, dep, metadata, package, target, write_tree

WS_TOML = '[workspace]\nmembers = ["*"]\n'
PKG_TOML = '[package]\nname = "p"\nversion = "0.1.0"\n'


# --------------------------------------------------------------------------
# The project directory and its Cargo roots
# --------------------------------------------------------------------------

# (id, files under the project dir, roots option, expected root rels)
INSPECT_CASES = [
    ("workspace-at-top", {"Cargo.toml": WS_TOML}, None, ["."]),
    ("lone-package-at-top", {"Cargo.toml": PKG_TOML}, None, ["."]),
    ("top-manifest-wins-over-subdirs", {"Cargo.toml": PKG_TOML, "tools/x/Cargo.toml": PKG_TOML}, None, ["."]),
    ("two-roots-below", {"payments/Cargo.toml": PKG_TOML, "orders/Cargo.toml": PKG_TOML}, None,
     ["orders", "payments"]),
    ("depth-3-found", {"a/b/c/Cargo.toml": PKG_TOML}, None, ["a/b/c"]),
    ("mixed-depths-sorted", {"x/y/b/Cargo.toml": PKG_TOML, "a/Cargo.toml": PKG_TOML}, None, ["a", "x/y/b"]),
    ("members-below-a-found-root-not-listed",
     {"ws/Cargo.toml": WS_TOML, "ws/member/Cargo.toml": PKG_TOML, "ws/crates/lib/Cargo.toml": PKG_TOML}, None,
     ["ws"]),
    ("skipped-dirs",
     {"app/Cargo.toml": PKG_TOML, "target/debug/Cargo.toml": PKG_TOML, ".git/x/Cargo.toml": PKG_TOML,
      ".cargo/Cargo.toml": PKG_TOML, "node_modules/m/Cargo.toml": PKG_TOML, "vendor/v/Cargo.toml": PKG_TOML,
      "third_party/t/Cargo.toml": PKG_TOML, "deep/target/Cargo.toml": PKG_TOML}, None, ["app"]),
    ("explicit-order-kept", {"orders/Cargo.toml": PKG_TOML, "payments/Cargo.toml": PKG_TOML},
     ["payments", "orders"], ["payments", "orders"]),
    ("explicit-normalized", {"orders/Cargo.toml": PKG_TOML}, ["./orders/"], ["orders"]),
    ("explicit-normalized-dotdot-inside", {"orders/Cargo.toml": PKG_TOML}, [" orders/src/.. "], ["orders"]),
    ("explicit-subset", {"orders/Cargo.toml": PKG_TOML, "payments/Cargo.toml": PKG_TOML}, ["orders"], ["orders"]),
    ("explicit-deeper-than-search", {"a/b/c/d/Cargo.toml": PKG_TOML}, ["a/b/c/d"], ["a/b/c/d"]),
    ("explicit-dot", {"Cargo.toml": WS_TOML}, ["."], ["."]),
    ("explicit-package-inside-lone-package", {"Cargo.toml": PKG_TOML, "tools/x/Cargo.toml": PKG_TOML},
     [".", "tools/x"], [".", "tools/x"]),
]


@pytest.mark.parametrize("files, roots, expected", [c[1:] for c in INSPECT_CASES], ids=[c[0] for c in INSPECT_CASES])
def test_inspect_project(tmp_path: Path, files: dict, roots: t.Optional[list], expected: t.List[str]) -> None:
    project = write_tree(tmp_path / "proj", files)
    found = ws.inspect_project(str(project), roots)
    assert [r.rel for r in found] == expected
    assert [r.path for r in found] == [os.path.normpath(os.path.join(project, rel)) for rel in expected]
    assert all(r.metadata is None and r.has_lockfile is False for r in found)


def test_inspect_project_lockfile_per_root(tmp_path: Path) -> None:
    project = write_tree(tmp_path, {"orders/Cargo.toml": PKG_TOML, "orders/Cargo.lock": "",
                                    "payments/Cargo.toml": PKG_TOML})
    assert [(r.rel, r.has_lockfile) for r in ws.inspect_project(str(project))] == [
        ("orders", True), ("payments", False)]


def test_find_roots_skips_symlinked_dirs(tmp_path: Path) -> None:
    write_tree(tmp_path, {"elsewhere/pkg/Cargo.toml": PKG_TOML, "proj/app/Cargo.toml": PKG_TOML})
    (tmp_path / "proj" / "link").symlink_to(tmp_path / "elsewhere" / "pkg")
    assert ws.find_roots(str(tmp_path / "proj")) == ["app"]


# (id, files, roots option, fragments of the error)
INSPECT_ERRORS = [
    ("missing", None, None, ["path:", "does not exist"]),
    ("file", "file", None, ["path:", "not a directory"]),
    ("empty-dir", {}, None, ["path:", "no Cargo.toml", "depth 3", "roots"]),
    ("depth-4-not-searched", {"a/b/c/d/Cargo.toml": PKG_TOML}, None, ["path:", "no Cargo.toml", "depth 3"]),
    ("only-skipped-dirs", {"target/x/Cargo.toml": PKG_TOML, ".hidden/Cargo.toml": PKG_TOML}, None,
     ["path:", "no Cargo.toml"]),
    ("listed-root-without-manifest", {"orders/Cargo.toml": PKG_TOML, "payments/README.md": ""},
     ["orders", "payments"], ["roots[1]:", "payments has no Cargo.toml", "workspace root or a package"]),
    ("listed-root-missing", {"orders/Cargo.toml": PKG_TOML}, ["nope"], ["roots[0]:", "nope has no Cargo.toml"]),
    ("absolute", {"orders/Cargo.toml": PKG_TOML}, ["/etc"], ["roots[0]:", "'/etc'", "relative, no '..'"]),
    ("dotdot", {"orders/Cargo.toml": PKG_TOML}, ["orders", "../other"], ["roots[1]:", "'../other'", "no '..'"]),
    ("dotdot-after-normalizing", {"orders/Cargo.toml": PKG_TOML}, ["orders/../.."], ["roots[0]:", "no '..'"]),
    ("empty-string", {"orders/Cargo.toml": PKG_TOML}, ["  "], ["roots[0]:", "relative to path"]),
    ("not-a-string", {"orders/Cargo.toml": PKG_TOML}, [5], ["roots[0]:", "relative to path"]),
    ("listed-twice", {"orders/Cargo.toml": PKG_TOML}, ["orders", "orders"], ["roots[1]:", "listed twice"]),
    ("listed-twice-spelled-differently", {"orders/Cargo.toml": PKG_TOML}, ["./orders/", "orders/src/.."],
     ["roots[1]: 'orders' is listed twice"]),
    ("nested-in-top-workspace", {"Cargo.toml": WS_TOML, "member/Cargo.toml": PKG_TOML}, [".", "member"],
     ["roots:", "'member' is inside the Cargo workspace at '.'", "list only '.'"]),
    ("nested-in-workspace-below", {"ws/Cargo.toml": WS_TOML, "ws/member/Cargo.toml": PKG_TOML},
     ["ws/member", "ws"], ["roots:", "'ws/member' is inside the Cargo workspace at 'ws'"]),
    ("nested-in-workspace-with-subtable", {"ws/Cargo.toml": '[workspace.package]\nversion = "1.0.0"\n',
                                           "ws/m/Cargo.toml": PKG_TOML}, ["ws", "ws/m"], ["roots:", "'ws/m'"]),
]


@pytest.mark.parametrize("files, roots, fragments", [c[1:] for c in INSPECT_ERRORS],
                         ids=[c[0] for c in INSPECT_ERRORS])
def test_inspect_project_errors(tmp_path: Path, files: t.Any, roots: t.Optional[list],
                                fragments: t.List[str]) -> None:
    project = tmp_path / "proj"
    if files == "file":
        project.write_text("")
    elif files is not None:
        project.mkdir()
        write_tree(project, files)
    with pytest.raises(ValueError) as info:
        ws.inspect_project(str(project), roots)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_root_slash_is_refused(tmp_path: Path) -> None:
    write_tree(tmp_path, {"Cargo.toml": PKG_TOML})
    with pytest.raises(ValueError, match=r"roots\[0\]:.*relative"):
        ws.inspect_project(str(tmp_path), ["/"])


# --------------------------------------------------------------------------
# Discovery on hand-written metadata
# --------------------------------------------------------------------------

def test_discover_services_one_root() -> None:
    root = cargo_root(".", package("api", "services/api", deps=[dep("common", "crates/common"), dep("serde")]),
                      package("auth-service", "services/auth", [target("auth")]),
                      package("common", "crates/common", [target("common", "lib")]))
    services = ws.discover_services([root])
    assert [(s.name, s.package, s.root, s.package_dir, s.local_dirs) for s in services] == [
        ("api", "api", ".", "services/api", ["crates/common", "services/api"]),
        ("auth", "auth-service", ".", "services/auth", ["services/auth"]),
    ]
    assert services[0].package_id == "path+file:///ws/services/api#api@0.1.0"


def test_discover_services_two_roots_project_relative() -> None:
    orders = f"{ROOT}/orders"
    roots = [
        cargo_root("orders", package("orders", ".", deps=[dep("shared", "../shared", root=orders)], root=orders),
                   package("admin", "tools/admin", root=orders)),
        cargo_root("billing/payments", package("payments", ".", [target("payments"), target("refund")],
                                               deps=[dep("fx", "crates/fx", root=f"{ROOT}/billing/payments")],
                                               root=f"{ROOT}/billing/payments"),
                   package("fx", "crates/fx", [target("fx", "lib")], root=f"{ROOT}/billing/payments")),
    ]
    services = {s.name: s for s in ws.discover_services(roots)}
    assert sorted(services) == ["admin", "orders", "payments", "refund"]
    assert [(n, s.root, s.package_dir, s.local_dirs) for n, s in sorted(services.items())] == [
        ("admin", "orders", "orders/tools/admin", ["orders/tools/admin"]),
        # a path dependency outside its root but inside the project is watched, project-relative
        ("orders", "orders", "orders", ["orders", "shared"]),
        ("payments", "billing/payments", "billing/payments", ["billing/payments", "billing/payments/crates/fx"]),
        ("refund", "billing/payments", "billing/payments", ["billing/payments", "billing/payments/crates/fx"]),
    ]


WATCH_DIR_CASES = [
    ("dev-dep-skipped-build-dep-kept",
     [package("api", "api", deps=[dep("t", "t", kind="dev"), dep("g", "g", kind="build")]),
      package("t", "t", [target("t", "lib")]), package("g", "g", [target("g", "lib")])],
     ["api", "g"]),
    ("transitive-chain-with-cycle",
     [package("api", "api", deps=[dep("a", "libs/a")]),
      package("a", "libs/a", [target("a", "lib")], deps=[dep("b", "libs/b")]),
      package("b", "libs/b", [target("b", "lib")], deps=[dep("c", "libs/c"), dep("a", "libs/a")]),
      package("c", "libs/c", [target("c", "lib")])],
     ["api", "libs/a", "libs/b", "libs/c"]),
    ("non-member-path-dep-inside-root", [package("api", "api", deps=[dep("vendored", "vendor/x")])],
     ["api", "vendor/x"]),
    ("root-package", [package("app", ".", deps=[dep("lib", "lib")]), package("lib", "lib", [target("lib", "lib")])],
     [".", "lib"]),
]


@pytest.mark.parametrize("packages, expected", [c[1:] for c in WATCH_DIR_CASES], ids=[c[0] for c in WATCH_DIR_CASES])
def test_local_dirs(packages: t.List[dict], expected: t.List[str]) -> None:
    (service,) = [s for s in ws.discover_services([cargo_root(".", *packages)]) if s.name in ("api", "app")]
    assert service.local_dirs == expected


def test_non_member_packages_are_ignored() -> None:
    api, stray = package("api", "api"), package("stray", "stray")
    root = cargo_root(".", api, stray, members=[api["id"]])
    assert [s.name for s in ws.discover_services([root])] == ["api"]


def test_required_features_kept() -> None:
    root = cargo_root(".", package("gated", "gated", [target("gated", required_features=["metrics", "otel"])]))
    assert ws.discover_services([root])[0].required_features == ["metrics", "otel"]


# (id, roots, fragments)
DISCOVERY_ERRORS = [
    ("no-binary", [cargo_root(".", package("common", "crates/common", [target("common", "lib")]))],
     ["path:", ROOT, "no binary target", "[[bin]]"]),
    ("no-binary-in-any-root",
     [cargo_root("a", package("a", ".", [target("a", "lib")], root=f"{ROOT}/a")),
      cargo_root("b", package("b", ".", [target("b", "lib")], root=f"{ROOT}/b"))],
     ["path: a, b has no binary target"]),
    ("duplicate-bin-in-one-root",
     [cargo_root(".", package("x", "a", [target("tool")]), package("y", "b", [target("tool")]))],
     ["services:", "'tool'", "package 'x' and package 'y'", "[[bin]]", 'name = "y-tool"']),
    ("duplicate-bin-across-roots",
     [cargo_root("orders", package("orders", ".", [target("orders"), target("migrate")], root=f"{ROOT}/orders")),
      cargo_root("payments", package("payments", ".", [target("payments"), target("migrate")],
                                     root=f"{ROOT}/payments"))],
     ["services:", "'migrate'", "package 'orders' (root orders)", "package 'payments' (root payments)",
      'name = "payments-migrate"']),
    ("path-dep-outside-project", [cargo_root(".", package("api", "api", deps=[dep("ext", "/elsewhere/ext")]))],
     ["services:", "service 'api'", "'ext'", "/elsewhere/ext", "outside the project directory"]),
    ("path-dep-outside-project-from-a-root",
     [cargo_root("orders", package("orders", ".", deps=[dep("ext", "../../ext", root=f"{ROOT}/orders")],
                                   root=f"{ROOT}/orders"))],
     ["service 'orders'", "'ext'", "outside the project directory"]),
    ("path-dep-outside-project-transitive",
     [cargo_root(".", package("api", "api", deps=[dep("lib", "lib")]),
                 package("lib", "lib", [target("lib", "lib")], deps=[dep("ext", "../ext")]))],
     ["service 'api'", "via package 'lib'", "'ext'"]),
    ("path-dep-outside-project-unused-lib",
     [cargo_root(".", package("api", "api"),
                 package("lib", "lib", [target("lib", "lib")], deps=[dep("ext", "../ext")]))],
     ["services:", "package 'lib'", "'ext'", "outside the project directory"]),
    ("member-without-package-entry",
     [cargo_root(".", package("api", "api"), members=[package("api", "api")["id"], "path+file:///ws/ghost#0.1.0"])],
     ["metadata:", "ghost"]),
]


@pytest.mark.parametrize("roots, fragments", [c[1:] for c in DISCOVERY_ERRORS], ids=[c[0] for c in DISCOVERY_ERRORS])
def test_discover_services_errors(roots: list, fragments: t.List[str]) -> None:
    with pytest.raises(ValueError) as info:
        ws.discover_services(roots)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_dev_dependency_outside_project_is_allowed() -> None:
    root = cargo_root(".", package("api", "api", deps=[dep("bench", "/elsewhere/bench", kind="dev")]))
    assert ws.discover_services([root])[0].local_dirs == ["api"]


# --------------------------------------------------------------------------
# --locked without a Cargo.lock
# --------------------------------------------------------------------------

LOCKED_CASES = [
    ("no-flag-no-lock", [], [False], None),
    ("locked-with-lock", ["--locked"], [True], None),
    ("offline-is-not-locked", ["--offline"], [False], None),
    ("locked-no-lock", ["--release", "--locked"], [False],
     ["cargo_args: --locked needs a Cargo.lock", ". has none", "cargo generate-lockfile", "drop --locked"]),
    ("frozen-no-lock", ["--frozen"], [False], ["cargo_args: --frozen", "drop --frozen"]),
    ("locked-one-of-two", ["--locked"], [True, False], ["cargo_args: --locked", "r1 has none"]),
    ("locked-none-of-two", ["--locked"], [False, False], ["r0, r1 has none"]),
]


@pytest.mark.parametrize("args, locks, fragments", [c[1:] for c in LOCKED_CASES], ids=[c[0] for c in LOCKED_CASES])
def test_check_locked(args: t.List[str], locks: t.List[bool], fragments: t.Optional[t.List[str]]) -> None:
    roots = [ws.Root("." if len(locks) == 1 else f"r{i}", f"/p/r{i}", lock) for i, lock in enumerate(locks)]
    if fragments is None:
        ws.check_locked(roots, args)
        return
    with pytest.raises(ValueError) as info:
        ws.check_locked(roots, args)
    for fragment in fragments:
        assert fragment in str(info.value)


# --------------------------------------------------------------------------
# Metadata input and root checks
# --------------------------------------------------------------------------

METADATA_INPUT_ERRORS = [
    ("not-json", "{nope", ["metadata:", "not valid JSON"]),
    ("not-object", "[1, 2]", ["metadata:", "JSON object"]),
    ("not-object-python", [1, 2], ["metadata:", "JSON object"]),
    ("missing-keys", {"packages": []}, ["metadata:", "workspace_members", "workspace_root"]),
]


@pytest.mark.parametrize("raw, fragments", [c[1:] for c in METADATA_INPUT_ERRORS],
                         ids=[c[0] for c in METADATA_INPUT_ERRORS])
def test_parse_metadata_errors(raw: t.Any, fragments: t.List[str]) -> None:
    with pytest.raises(ValueError) as info:
        ws.parse_metadata(raw)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_parse_metadata_accepts_text_bytes_and_dict() -> None:
    md = metadata(package("api", "api"))
    assert ws.parse_metadata(json.dumps(md)) == md
    assert ws.parse_metadata(json.dumps(md).encode()) == md
    assert ws.parse_metadata(md) is md


def test_member_of_other_workspace() -> None:
    md = metadata(package("api", "services/api"))
    with pytest.raises(ValueError) as info:
        ws.check_workspace_root(md, "/ws/services/api", ran_cargo=True)
    assert str(info.value).startswith("path: /ws/services/api is a member of the workspace at /ws")


def test_same_root_accepted() -> None:
    ws.check_workspace_root(metadata(package("api", "api")), "/ws/", ran_cargo=True)


def test_foreign_metadata_rebased_when_members_exist() -> None:
    md = metadata(package("api", "services/api", root="/workspace"), root="/workspace")
    ws.check_workspace_root(md, "/home/dev/shop", ran_cargo=False,
                            isfile=lambda p: p == "/home/dev/shop/services/api/Cargo.toml")
    (service,) = ws.discover_services([ws.Root(".", "/home/dev/shop", True, md)])
    assert (service.package_dir, service.local_dirs) == ("services/api", ["services/api"])


def test_foreign_metadata_rejected_when_members_missing() -> None:
    md = metadata(package("api", "services/api", root="/workspace"), root="/workspace")
    with pytest.raises(ValueError, match=r"metadata:.*services/api/Cargo.toml.*/home/dev/shop"):
        ws.check_workspace_root(md, "/home/dev/shop", ran_cargo=False, isfile=lambda p: False)


MANIFEST_CASES = [
    ("workspace-table", '[workspace]\nmembers = ["a"]\n', True),
    ("workspace-subtable-only", '[workspace.package]\nversion = "1.0.0"\n', True),
    ("package-only", '[package]\nname = "a"\n', False),
    ("empty", "", False),
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


def test_find_cargo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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


def test_metadata_command_per_root() -> None:
    assert ws.metadata_command("/bin/cargo", "/p/orders") == [
        "/bin/cargo", "metadata", "--format-version", "1", "--no-deps", "--manifest-path", "/p/orders/Cargo.toml"]


CARGO_FAILURE_CASES = [
    ("stderr", "  error: failed to parse manifest\n\n",
     "path: cargo metadata failed for /ws/Cargo.toml: error: failed to parse manifest\n"),
    ("no-stderr", "", "path: cargo metadata failed for /ws/Cargo.toml: exit code 101\n"),
]


@pytest.mark.parametrize("stderr, start", [c[1:] for c in CARGO_FAILURE_CASES], ids=[c[0] for c in CARGO_FAILURE_CASES])
def test_cargo_failure_message(stderr: str, start: str) -> None:
    message = ws.cargo_failure("/ws", 101, stderr)
    assert message.startswith(start)
    assert "Fix Cargo.toml" in message


# --------------------------------------------------------------------------
# The packages of a root, as the release's dependency image reads them
# --------------------------------------------------------------------------

def test_packages_are_members_with_versions_and_root_relative_target_sources() -> None:
    api = package("api", "services/api", [dict(target("api"), src_path=f"{ROOT}/orders/services/api/src/main.rs")],
                  root=f"{ROOT}/orders")
    api["version"] = "1.2.0"
    lib = package("common", "crates/common", [dict(target("common", "lib"), src_path=f"{ROOT}/orders/crates/common/src/lib.rs"),
                                              target("bench-only")], root=f"{ROOT}/orders")
    outsider = package("serde", "/registry/serde", root=f"{ROOT}/orders")
    meta = metadata(lib, api, outsider, root=f"{ROOT}/orders", members=[api["id"], lib["id"]])
    root = ws.Root(rel="orders", path=f"{ROOT}/orders", has_lockfile=True, metadata=meta)
    assert ws.packages(root) == [
        {"root": "orders", "name": "api", "version": "1.2.0", "targets": ["services/api/src/main.rs"]},
        {"root": "orders", "name": "common", "version": "", "targets": ["crates/common/src/lib.rs"]},
    ]


def test_toolchain_identity_is_the_sha1_of_the_channel_manifest(tmp_path: Path) -> None:
    manifest_file = tmp_path / ws.TOOLCHAIN_MANIFEST
    manifest_file.parent.mkdir(parents=True)
    manifest_file.write_bytes(b"[pkg.rustc]\nversion = \"1.91.0\"\n")
    assert ws.toolchain_identity(str(tmp_path)) == {
        "sysroot": str(tmp_path), "checksum": hashlib.sha1(b"[pkg.rustc]\nversion = \"1.91.0\"\n").hexdigest()}
    assert ws.toolchain_identity(str(tmp_path / "none")) == {"sysroot": str(tmp_path / "none"), "checksum": ""}
