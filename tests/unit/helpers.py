"""Shared test helpers: hand-written cargo metadata, real workspaces on disk, cargo lookup."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import typing as t
from pathlib import Path

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
