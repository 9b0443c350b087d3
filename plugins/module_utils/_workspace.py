# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Read a project's Cargo roots as cargo sees them: which roots, which service binaries, which local dirs.

Private to this collection: no compatibility guarantees. Pure logic (plus reading Cargo.toml files): it never
imports AnsibleModule and reports problems by raising ``ValueError`` whose message starts with the option at
fault (``path: ...``) and says how to fix it; the module rewrites option names into the variables the user set.

A *project* is one directory (bind-mounted into every container). It holds one or more Cargo *roots*: a
workspace root, or a lone package, which cargo treats as its own root. Several roots share one target dir,
crate cache, network and dev image.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import typing as t
from dataclasses import dataclass, field

try:
    import tomllib
except ImportError:  # Python < 3.11 on the managed host
    tomllib = None  # type: ignore[assignment]


JsonDict = t.Dict[str, t.Any]

# Directories never searched for Cargo roots: build output, vendored or foreign trees.
SKIP_DIRS = ("target", "node_modules", "vendor", "third_party")
ROOT_SEARCH_DEPTH = 3
LOCKED_FLAGS = ("--locked", "--frozen")


@dataclass
class Root:
    """One Cargo root inside the project directory."""

    rel: str  # relative to the project directory, '.' for the project directory itself
    path: str  # absolute on the managed host
    has_lockfile: bool
    metadata: t.Optional[JsonDict] = None


@dataclass
class Service:
    """One binary target of a member of a Cargo root, as cargo sees it."""

    name: str
    package: str
    package_id: str
    root: str  # the Cargo root, relative to the project directory
    package_dir: str  # relative to the project directory, '.' for a root package at the top
    required_features: t.List[str]
    local_dirs: t.List[str] = field(default_factory=list)  # package_dir + path deps, project-relative


# --------------------------------------------------------------------------
# The project directory and its Cargo roots
# --------------------------------------------------------------------------

def inspect_project(path: str, roots: t.Optional[t.Sequence[str]] = None) -> t.List[Root]:
    """The Cargo roots of the project at ``path``: as given in ``roots``, else found."""
    if not os.path.exists(path):
        raise ValueError(f"path: {path} does not exist; point it at your project (the directory with "
                         "Cargo.toml, or one holding several Cargo roots)")
    if not os.path.isdir(path):
        raise ValueError(f"path: {path} is not a directory; point it at your project directory")
    rels = [_given_root(path, rel, index) for index, rel in enumerate(roots)] if roots else find_roots(path)
    seen: t.Dict[str, int] = {}
    for index, rel in enumerate(rels):
        if rel in seen:
            raise ValueError(f"roots[{index}]: '{rel}' is listed twice; list each Cargo root once")
        seen[rel] = index
    for rel in rels:
        for other in rels:
            if other != rel and other != "." and (rel == "." or _is_within(other, rel)):
                if declares_workspace(_read(os.path.join(path, rel, "Cargo.toml"))):
                    raise ValueError(f"roots: '{other}' is inside the Cargo workspace at '{rel}'; list only "
                                     f"'{rel}' (cargo builds its members)")
    return [Root(rel, os.path.normpath(os.path.join(path, rel)),
                 os.path.isfile(os.path.join(path, rel, "Cargo.lock"))) for rel in rels]


def _given_root(project: str, rel: t.Any, index: int) -> str:
    option = f"roots[{index}]"
    if not isinstance(rel, str) or not rel.strip():
        raise ValueError(f"{option}: must be a directory relative to path, e.g. 'orders'")
    norm = posixpath.normpath(rel.strip())
    if norm.startswith("/") or _is_outside(norm):
        raise ValueError(f"{option}: '{rel}' must be a directory inside path {project} (relative, no '..'): "
                         "only the project directory is mounted into the containers")
    if not os.path.isfile(os.path.join(project, norm, "Cargo.toml")):
        raise ValueError(f"{option}: {os.path.join(project, norm)} has no Cargo.toml; list directories that "
                         "hold a Cargo.toml (a workspace root or a package)")
    return norm


def find_roots(project: str) -> t.List[str]:
    """'.' when the project has a Cargo.toml; else the shallowest Cargo.toml dirs below it (depth <= 3)."""
    if os.path.isfile(os.path.join(project, "Cargo.toml")):
        return ["."]
    found: t.List[str] = []
    for depth in range(1, ROOT_SEARCH_DEPTH + 1):
        for rel in _dirs_at_depth(project, depth):
            if any(_is_within(rel, kept) for kept in found):
                continue
            if os.path.isfile(os.path.join(project, rel, "Cargo.toml")):
                found.append(rel)
    if not found:
        raise ValueError(
            f"path: {project} has no Cargo.toml, and none was found in its subdirectories (depth "
            f"{ROOT_SEARCH_DEPTH}); point it at your Cargo workspace or package, or list the Cargo roots "
            "inside it in roots")
    return sorted(found)


def _dirs_at_depth(project: str, depth: int) -> t.List[str]:
    level = ["."]
    for _level in range(depth):
        following = []
        for rel in level:
            try:
                entries = sorted(os.listdir(os.path.join(project, rel)))
            except OSError:
                continue
            for entry in entries:
                if entry.startswith(".") or entry in SKIP_DIRS:
                    continue
                child = posixpath.normpath(posixpath.join(rel, entry))
                if os.path.isdir(os.path.join(project, child)) and not os.path.islink(os.path.join(project, child)):
                    following.append(child)
        level = following
    return level


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return ""


def declares_workspace(manifest_text: str) -> t.Optional[bool]:
    """Whether a Cargo.toml has a [workspace] table; None if it is not valid TOML.

    Invalid TOML is left to cargo, whose error message is the useful one.
    """
    if tomllib is not None:
        try:
            return "workspace" in tomllib.loads(manifest_text)
        except tomllib.TOMLDecodeError:
            return None
    return bool(re.search(r"^\s*\[\s*workspace\s*[\].]", manifest_text, re.MULTILINE))


def check_locked(roots: t.Sequence[Root], cargo_args: t.Sequence[str]) -> None:
    flags = [a for a in cargo_args if a in LOCKED_FLAGS]
    missing = [r.rel for r in roots if not r.has_lockfile]
    if flags and missing:
        raise ValueError(
            f"cargo_args: {flags[0]} needs a Cargo.lock, but {', '.join(missing)} has none; commit one "
            f"(`cargo generate-lockfile` there) or drop {flags[0]} and cargohold generates it once")


# --------------------------------------------------------------------------
# cargo metadata
# --------------------------------------------------------------------------

def find_cargo(cargo: str, home: t.Optional[str] = None) -> t.Optional[str]:
    """Resolve the cargo executable: as given if it has a '/', else PATH, else ~/.cargo/bin."""
    if "/" in cargo:
        return cargo if os.access(cargo, os.X_OK) else None
    found = shutil.which(cargo)
    if found:
        return found
    candidate = os.path.join(home or os.path.expanduser("~"), ".cargo", "bin", cargo)
    return candidate if os.access(candidate, os.X_OK) else None


TOOLCHAIN_MANIFEST = "lib/rustlib/multirust-channel-manifest.toml"


def toolchain_identity(sysroot: str) -> JsonDict:
    """A rustup toolchain's directory and the SHA-1 of its channel manifest (which changes with every update);
    an empty checksum for a toolchain that is not rustup's."""
    checksum = ""
    try:
        with open(os.path.join(sysroot, TOOLCHAIN_MANIFEST), "rb") as handle:
            checksum = hashlib.sha1(handle.read()).hexdigest()  # nosec - an identity, as stat's checksum was
    except OSError:
        pass
    return {"sysroot": sysroot, "checksum": checksum}


def metadata_command(cargo: str, root: str) -> t.List[str]:
    return [cargo, "metadata", "--format-version", "1", "--no-deps",
            "--manifest-path", os.path.join(root, "Cargo.toml")]


def cargo_failure(root: str, rc: int, stderr: str) -> str:
    detail = (stderr or "").strip() or f"exit code {rc}"
    return (f"path: cargo metadata failed for {os.path.join(root, 'Cargo.toml')}: {detail}\n"
            "Fix Cargo.toml (run `cargo metadata --no-deps` there to reproduce).")


def parse_metadata(raw: t.Any) -> JsonDict:
    """Accept the JSON of ``cargo metadata`` as text or as an already decoded dict."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"metadata: not valid JSON ({exc}); pass the output of "
                             "`cargo metadata --format-version 1 --no-deps`") from exc
    if not isinstance(raw, dict):
        raise ValueError("metadata: expected a JSON object from "
                         "`cargo metadata --format-version 1 --no-deps`")
    missing = [k for k in ("packages", "workspace_members", "workspace_root") if k not in raw]
    if missing:
        raise ValueError(f"metadata: missing {', '.join(missing)}; pass the output of "
                         "`cargo metadata --format-version 1 --no-deps`")
    return raw


def packages(root: Root) -> t.List[JsonDict]:
    """The root's workspace members: name, version, and where each target's source is, relative to the Cargo
    root (what ``cargo chef prepare`` records of a package besides its manifest)."""
    meta = root.metadata or {}
    by_id = _packages_by_id(meta)
    base = meta.get("workspace_root") or root.path
    result = []
    for member in meta.get("workspace_members") or []:
        package = by_id[member]
        targets = sorted(posixpath.relpath(tg["src_path"], base) for tg in package.get("targets") or []
                         if tg.get("src_path"))
        result.append({"root": root.rel, "name": package["name"], "version": package.get("version", ""),
                       "targets": targets})
    return sorted(result, key=lambda p: (p["root"], p["name"]))


def check_workspace_root(metadata: JsonDict, root: str, ran_cargo: bool,
                         isfile: t.Callable[[str], bool] = os.path.isfile) -> None:
    """Make sure the metadata describes the Cargo root at ``root``.

    Metadata collected elsewhere (inside a container) legitimately carries a
    different root; it is accepted when every member's Cargo.toml exists at
    the same relative place under ``root``.
    """
    meta_root = metadata["workspace_root"]
    if _same_dir(meta_root, root):
        return
    if ran_cargo:
        raise ValueError(
            f"path: {root} is a member of the workspace at {meta_root}, not a Cargo root; "
            f"point path at {meta_root}, or give {root}/Cargo.toml its own [workspace] table")
    packages = _packages_by_id(metadata)
    missing = []
    for member in metadata["workspace_members"]:
        rel = posixpath.relpath(packages[member]["manifest_path"], meta_root)
        if rel.startswith("..") or not isfile(os.path.join(root, *rel.split("/"))):
            missing.append(rel)
    if missing:
        raise ValueError(
            f"metadata: describes the workspace at {meta_root}, but {', '.join(sorted(missing))} "
            f"do not exist under {root}; collect metadata from the same workspace")


def _same_dir(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


# --------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------

def _packages_by_id(metadata: JsonDict) -> t.Dict[str, JsonDict]:
    packages = {p["id"]: p for p in metadata["packages"]}
    unknown = [m for m in metadata["workspace_members"] if m not in packages]
    if unknown:
        raise ValueError(f"metadata: workspace_members {unknown} have no entry in packages")
    return packages


def _rel(path: str, root: str) -> str:
    return posixpath.normpath(posixpath.relpath(posixpath.normpath(path), posixpath.normpath(root)))


def _is_outside(rel: str) -> bool:
    return rel == ".." or rel.startswith("../")


def _is_within(path: str, parent: str) -> bool:
    return parent == "." or path == parent or path.startswith(parent.rstrip("/") + "/")


def _join(root_rel: str, rel: str) -> str:
    return posixpath.normpath(posixpath.join(root_rel, rel))


def discover_services(roots: t.Sequence[Root]) -> t.List[Service]:
    """Every binary target of every member of every root, sorted by name; names must be unique."""
    by_name: t.Dict[str, Service] = {}
    for root in roots:
        for service in _root_services(root):
            _add_unique(by_name, service)
    if not by_name:
        where = roots[0].path if len(roots) == 1 else ", ".join(r.rel for r in roots)
        raise ValueError(
            f"path: {where} has no binary target in any package; "
            "add a package with src/main.rs or a [[bin]] section")
    return [by_name[name] for name in sorted(by_name)]


def _root_services(root: Root) -> t.List[Service]:
    metadata = root.metadata
    if metadata is None:
        raise ValueError(f"metadata: none loaded for Cargo root '{root.rel}'")
    meta_root = metadata["workspace_root"]
    packages = _packages_by_id(metadata)
    services: t.Dict[str, Service] = {}
    for member in metadata["workspace_members"]:
        package = packages[member]
        package_dir = _rel(posixpath.dirname(package["manifest_path"]), meta_root)
        for target in package.get("targets", []):
            if "bin" not in target.get("kind", []):
                continue
            service = Service(
                name=target["name"], package=package["name"], package_id=member, root=root.rel,
                package_dir=_join(root.rel, package_dir),
                required_features=list(target.get("required-features") or []),
            )
            _add_unique(services, service)
    _attach_local_dirs(services, root, packages)
    return list(services.values())


def _add_unique(by_name: t.Dict[str, Service], service: Service) -> None:
    other = by_name.get(service.name)
    if other is not None:
        where = (f"package '{other.package}' and package '{service.package}'" if other.root == service.root
                 else f"package '{other.package}' (root {other.root}) and package '{service.package}' "
                      f"(root {service.root})")
        raise ValueError(
            f"services: binary '{service.name}' is built by both {where}; service names must be unique, "
            f"so rename one with a [[bin]] section, e.g. name = \"{service.package}-{service.name}\"")
    by_name[service.name] = service


def _attach_local_dirs(services: t.Dict[str, Service], root: Root, packages: t.Dict[str, JsonDict]) -> None:
    """Package dir + transitive path dependencies (build and normal, not dev), project-relative."""
    metadata = root.metadata or {}
    meta_root = metadata["workspace_root"]
    by_dir = {_rel(posixpath.dirname(p["manifest_path"]), meta_root): p for p in packages.values()}
    for service in services.values():
        seen: t.List[str] = []
        pending = [_rel(posixpath.join(meta_root, _rel_to_root(service.package_dir, root.rel)), meta_root)]
        while pending:
            rel = pending.pop()
            if rel in seen:
                continue
            seen.append(rel)
            package = by_dir.get(rel)
            if package is None:  # a path dependency cargo --no-deps does not describe
                continue
            for dep in package.get("dependencies", []):
                if not dep.get("path") or dep.get("kind") == "dev":
                    continue
                dep_rel = _rel(dep["path"], meta_root)
                if _is_outside(_join(root.rel, dep_rel)):
                    raise ValueError(
                        f"services: service '{service.name}' depends (via package "
                        f"'{package['name']}') on '{dep['name']}' at {dep['path']}, outside the project "
                        "directory; only the project directory is mounted into the container, so move that "
                        "crate into it (or vendor it)")
                pending.append(dep_rel)
        service.local_dirs = sorted(_join(root.rel, rel) for rel in seen)
    _check_non_service_path_deps(root, packages)


def _rel_to_root(project_rel: str, root_rel: str) -> str:
    return project_rel if root_rel == "." else posixpath.relpath(project_rel, root_rel)


def _check_non_service_path_deps(root: Root, packages: t.Dict[str, JsonDict]) -> None:
    # cargo loads every member to resolve the workspace, so a library nobody
    # uses that points outside the project still breaks every build in a container.
    metadata = root.metadata or {}
    meta_root = metadata["workspace_root"]
    for member in metadata["workspace_members"]:
        for dep in packages[member].get("dependencies", []):
            if (dep.get("path") and dep.get("kind") != "dev"
                    and _is_outside(_join(root.rel, _rel(dep["path"], meta_root)))):
                raise ValueError(
                    f"services: package '{packages[member]['name']}' depends on '{dep['name']}' at "
                    f"{dep['path']}, outside the project directory; cargo in the container cannot load it, "
                    "so move that crate into the project (or vendor it)")
