# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning a dev stack on the managed host: the options of cargohold.devenv.workspace_services (which
cargohold.devenv.dev_containers also takes as its ``workspace``), reading the Cargo roots with cargo, and
writing the plan file. The pure planning is _plan.py's; this adds what needs the host."""

from __future__ import annotations

import json
import os
import tempfile
import typing as t

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.cargohold.devenv.plugins.module_utils import _docker as dk
from ansible_collections.cargohold.devenv.plugins.module_utils import _plan as pl
from ansible_collections.cargohold.devenv.plugins.module_utils import _workspace as ws


ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    roots=dict(type="list", elements="str"),
    cargo=dict(type="str", default="cargo"),
    metadata=dict(type="raw"),
    project=dict(type="str"),
    mode=dict(type="str", choices=list(pl.MODES), default="per_service"),
    image=dict(type="str", required=True),
    network=dict(type="str"),
    user=dict(type="str"),
    uid=dict(type="str", default=""),
    gid=dict(type="str", default=""),
    fallback_uid=dict(type="int", default=1000),
    host_toolchain=dict(type="bool", default=False),
    no_cargo=dict(type="str", choices=["fail", "roots"], default="fail"),
    source_dir=dict(type="str", default="/workspace"),
    target_dir=dict(type="str", default="/cargo-target"),
    cache_dir=dict(type="str", default="/cargo-cache"),
    target_volume=dict(type="str", required=True),
    cache_volume=dict(type="str", required=True),
    state_dir=dict(type="path", required=True),
    port_base=dict(type="int", default=8080),
    container_port=dict(type="int", default=8080),
    bind_address=dict(type="str", default="127.0.0.1"),
    cargo_args=dict(type="list", elements="str", default=[]),
    watch_delay=dict(type="float", default=0.1),
    batch_builds=dict(type="bool", default=True),
    watch_ignore=dict(type="list", elements="str", default=[]),
    # Checked by the plan, whose error names the variable the user set (names).
    watcher=dict(type="str", default="cargo-watch"),
    poll=dict(type="bool", default=False),
    poll_interval=dict(type="str", default="500ms"),
    ready=dict(type="raw", default="port"),
    env=dict(type="dict", default={}),
    labels=dict(type="dict", default={}),
    # Keyed by service name, so suboptions cannot validate it; pl.SERVICE_OPTIONS does, entry by entry.
    services=dict(type="dict", default={}),
    names=dict(type="dict", default={}),
    roots_only=dict(type="bool", default=False),
    dest=dict(type="path"),
)


def load_metadata(module: t.Any, roots: list, params: t.Optional[dict] = None) -> None:
    """Fill each root's metadata: given (keyed by root, or bare for a single root), else from cargo."""
    params = module.params if params is None else params
    given = params["metadata"]
    if isinstance(given, (str, bytes)):
        try:
            given = json.loads(given)
        except ValueError:
            pass  # parse_metadata names the problem
    if given is not None:
        by_root = given if isinstance(given, dict) and "workspace_root" not in given else {".": given}
        if len(roots) == 1 and len(by_root) == 1:
            by_root = {roots[0].rel: next(iter(by_root.values()))}
        for root in roots:
            if root.rel not in by_root:
                raise ValueError(f"metadata: no entry for Cargo root '{root.rel}'; key it by root "
                                 f"({', '.join(r.rel for r in roots)})")
            root.metadata = ws.parse_metadata(by_root[root.rel])
            ws.check_workspace_root(root.metadata, root.path, ran_cargo=False)
        return
    cargo = ws.find_cargo(params["cargo"])
    if cargo is None:
        raise ValueError(f"cargo: '{params['cargo']}' not found on PATH or in ~/.cargo/bin; "
                         "the dev_services role reads the workspace with the dev image's cargo instead, "
                         "or pass metadata")
    for root in roots:
        rc, out, err = module.run_command(ws.metadata_command(cargo, root.path), cwd=root.path)
        if rc != 0:
            raise ValueError(ws.cargo_failure(root.path, rc, err))
        root.metadata = ws.parse_metadata(out)
        ws.check_workspace_root(root.metadata, root.path, ran_cargo=True)


def normalize_services(services: dict) -> dict:
    """Validate each entry of the free-form services dict against the one table of settings."""
    validator = ArgumentSpecValidator(pl.service_argument_spec())
    docker_validator = ArgumentSpecValidator(dk.docker_argument_spec())
    result = {}
    for name, settings in services.items():
        if settings is not None and not isinstance(settings, dict):
            raise ValueError(f"services.{name}: must be a dict of settings, got {settings!r}")
        unknown = sorted(set(settings or {}) - set(pl.SERVICE_OPTIONS))
        if unknown:
            raise ValueError(f"services.{name}: unknown setting(s) {', '.join(unknown)}; valid ones are: "
                             f"{', '.join(pl.SERVICE_OPTIONS)}")
        docker = (settings or {}).get("docker") or {}
        unknown = sorted(set(docker) - set(dk.DOCKER_OPTIONS)) if isinstance(docker, dict) else []
        if unknown:
            raise ValueError(f"services.{name}.docker: unsupported option(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(dk.DOCKER_OPTIONS)}")
        validated = validator.validate(settings or {})
        if validated.error_messages:
            raise ValueError(f"services.{name}: {'; '.join(validated.error_messages)}")
        params = validated.validated_parameters
        if params.get("docker"):
            checked = docker_validator.validate(params["docker"])
            if checked.error_messages:
                raise ValueError(f"services.{name}.docker: {'; '.join(checked.error_messages)}")
            params["docker"] = {k: v for k, v in checked.validated_parameters.items() if v is not None}
        result[name] = params
    return result


def write_dest(module: t.Any, dest: str, content: str) -> bool:
    """Write content to dest atomically unless unchanged or in check mode; return whether it changes."""
    before = read_text(dest)
    if before == content:
        return False
    if not module.check_mode:
        directory = os.path.dirname(dest)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(dest)}.")
        module.add_cleanup_file(tmp)
        with os.fdopen(fd, "wb") as handle:
            handle.write(to_bytes(content))
        module.atomic_move(tmp, dest)
    return True


def read_text(path: str) -> str:
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def host_toolchain(module: t.Any) -> dict:
    rustc = ws.find_cargo("rustc")
    if rustc is None:
        return {"sysroot": "", "checksum": ""}
    rc, out, _err = module.run_command([rustc, "--print", "sysroot"])
    return ws.toolchain_identity(out.strip()) if rc == 0 and out.strip() else {"sysroot": "", "checksum": ""}


def render(module: t.Any, params: t.Optional[dict] = None) -> dict:
    """The plan (or, without cargo under no_cargo=roots, the roots) for the workspace_services options."""
    params = module.params if params is None else params
    root = os.path.abspath(params["path"])
    roots = ws.inspect_project(root, params["roots"])
    owner = os.stat(root)
    found = {"workspace_owner": {"uid": owner.st_uid, "gid": owner.st_gid}}
    if params["host_toolchain"]:
        found["host_toolchain"] = host_toolchain(module)
    found["user"] = params["user"] or pl.container_user(owner.st_uid, owner.st_gid, params["uid"], params["gid"],
                                                        params["fallback_uid"])
    cargo_missing = (params["no_cargo"] == "roots" and params["metadata"] is None
                     and ws.find_cargo(params["cargo"]) is None)
    if params["roots_only"] or cargo_missing:
        found.update(project_dir=root, roots=[{"path": r.rel, "lockfile": r.has_lockfile} for r in roots])
        return dict(found, cargo_missing=True) if cargo_missing else found
    user = found["user"]
    load_metadata(module, roots, params)
    params = dict(params, user=user, services=normalize_services(params["services"]))
    plan = pl.render(root, roots, params, list(dk.DOCKER_OPTIONS))
    plan.update(found)
    for container in plan["containers"]:
        dk.create_body(container)  # every container option converts, or the plan fails here
    plan["packages"] = [p for r in roots for p in ws.packages(r)]
    return plan


def validated(options: t.Any, option: str) -> dict:
    """The options of workspace_services given as one dict (``option`` names it in errors), with defaults."""
    if not isinstance(options, dict):
        raise ValueError(f"{option}: must be a dict of workspace_services options")
    # A null value means "not given", as an omitted module option: Jinja cannot omit a key of a dict.
    checked = ArgumentSpecValidator(ARGUMENT_SPEC).validate({k: v for k, v in options.items() if v is not None})
    if checked.error_messages:
        raise ValueError(f"{option + ': ' if option else ''}{'; '.join(checked.error_messages)}")
    return checked.validated_parameters


def plan(module: t.Any, params: t.Optional[dict] = None) -> t.Tuple[dict, bool]:
    """(result, changed): the plan, written to params['dest'] when set (not in check mode), with its diff
    when the module runs with --diff. Raises ValueError in the words of params['names']."""
    params = module.params if params is None else params
    try:
        result = render(module, params)
    except ValueError as exc:
        raise ValueError(pl.user_words(str(exc), params["names"])) from exc
    changed = False
    dest = params["dest"]
    if dest and "containers" in result:
        dest = os.path.abspath(dest)
        content = pl.to_json(result)
        before = read_text(dest)
        changed = write_dest(module, dest, content)
        result["dest"] = dest
        if module._diff:  # pylint: disable=protected-access
            result["diff"] = dict(before=before, after=content, before_header=dest, after_header=dest)
    return result, changed
