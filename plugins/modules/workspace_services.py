#!/usr/bin/python
# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: workspace_services
short_description: Render one dev container definition per service of a Cargo workspace
version_added: 0.1.0
description:
  - Reads a Cargo workspace as cargo sees it (C(cargo metadata --format-version 1 --no-deps)) and renders
    one M(community.docker.docker_container) definition per service binary, for the C(dev_services) role to loop over.
  - A service is every binary target (C(kind) contains C(bin)) of every workspace member, so glob members,
    C(exclude), C([[bin]]) renames, C(src/bin/*.rs) auto-discovery and C(autobins = false) are all honoured.
    The service name is the binary's name.
  - Every container bind-mounts the workspace at O(source_dir), shares the named volume O(target_volume) as the
    cargo target directory at O(target_dir) and O(cache_volume) as the crate download cache at O(cache_dir).
  - In O(mode=per_service) each container runs C(cargo watch ... -x "run -p PACKAGE --bin BIN"), watching the
    service's package, its local path dependencies (transitively, build dependencies included, dev-dependencies
    not), the workspace C(Cargo.toml) and C(Cargo.lock).
  - In O(mode=shared_builder) one builder container runs C(cargo watch ... -s "cargohold-build build --workspace --bins") and each
    service container runs the built binary with C(cargohold-run), which the dev image provides.
  - The module never talks to Docker and changes nothing, except the O(dest) file when that is set.
    Every problem is reported before any container would be touched.
author:
  - cargohold developers (@cargohold)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: C(cargo metadata) is read-only and runs in check mode too; O(dest) is not written.
  diff_mode:
    support: full
    details: Only the O(dest) file has a diff; without O(dest) there is nothing to diff.
  idempotent:
    description: Running it twice with the same workspace and options gives the same result.
    support: full
  platform:
    platforms: posix
options:
  path:
    description:
      - Workspace root on the managed host, the directory whose C(Cargo.toml) has a C([workspace]) table.
      - Bind-mounted into every container at O(source_dir).
    type: path
    required: true
  cargo:
    description:
      - Cargo executable. A bare name is looked up on E(PATH), then in C(~/.cargo/bin).
      - Ignored when O(metadata) is given.
    type: str
    default: cargo
  metadata:
    description:
      - Output of C(cargo metadata --format-version 1 --no-deps) for the workspace, as a JSON string or a dict,
        collected elsewhere (for example inside a container when the host has no cargo). cargo is then not run.
      - Its C(workspace_root) may differ from O(path) (a container path) as long as every member's
        C(Cargo.toml) exists at the same relative place under O(path).
    type: raw
  project:
    description:
      - Prefix for container names (C(PROJECT-SERVICE)) and the default network.
      - Defaults to the base name of O(path), lowercased, with characters outside C([a-z0-9_.-]) replaced by C(-)
        and leading non-alphanumerics stripped.
      - Must match C(^[a-z0-9][a-z0-9_.-]{0,62}$).
    type: str
  mode:
    description:
      - V(per_service) compiles and runs each service in its own container with C(cargo watch).
      - V(shared_builder) compiles all binaries in one builder container (returned as RV(builder)); service
        containers run the built binaries.
    type: str
    choices: [per_service, shared_builder]
    default: per_service
  image:
    description: Dev image reference used for every container. It must provide cargo and C(cargo-watch).
    type: str
    required: true
  network:
    description: Docker network the containers join. Defaults to C(PROJECT-dev).
    type: str
  user:
    description:
      - Numeric C(UID:GID) the containers run as, normally the owner of the source tree so files written into
        the bind mount stay yours. UID 0 is refused.
    type: str
    required: true
  source_dir:
    description: Absolute container path where the workspace is mounted.
    type: str
    default: /workspace
  target_dir:
    description:
      - Absolute container path of the shared cargo target directory (E(CARGO_TARGET_DIR)).
      - Must not be inside O(source_dir) - a volume nested under the bind mount makes Docker create root-owned
        directories in the source tree, and some Docker Desktop versions silently detach it.
    type: str
    default: /cargo-target
  cache_dir:
    description:
      - Absolute container path of the shared crate download cache. Must not be inside O(source_dir).
    type: str
    default: /cargo-cache
  target_volume:
    description: Named volume mounted at O(target_dir).
    type: str
    required: true
  cache_volume:
    description: Named volume mounted at O(cache_dir). Must differ from O(target_volume).
    type: str
    required: true
  port_base:
    description:
      - Service number I(i) (0-based, enabled services in name order) is published on host port O(port_base) + I(i),
        unless its O(services) entry sets C(ports) or C(network_mode).
    type: int
    default: 8080
  container_port:
    description: Port every service listens on inside its container; passed as E(PORT).
    type: int
    default: 8080
  bind_address:
    description: Host address ports are published on, unless a port mapping names its own.
    type: str
    default: 127.0.0.1
  cargo_args:
    description:
      - Extra arguments for every C(cargo run) / C(cargo build), for example V(--locked).
      - In O(mode=shared_builder), V(--release), V(--profile) and V(--target) also decide where the runners
        look for the binaries.
    type: list
    elements: str
    default: []
  watch_delay:
    description: Seconds C(cargo watch) waits after a change before rebuilding (C(--delay)).
    type: float
    default: 0.1
  env:
    description: Environment for every container; wins over the module's own variables, loses to a service's C(env).
    type: dict
    default: {}
  labels:
    description: Extra labels for every container. Keys starting with C(io.cargohold.) are reserved.
    type: dict
    default: {}
  services:
    description:
      - Per-service settings, keyed by service (binary) name; unknown names are an error. Each value is a dict
        with these optional keys.
      - C(enabled) (bool, default V(true)) - V(false) leaves the service out; it is still listed in
        RV(all_services) and RV(disabled).
      - C(args) (list of str) - command-line arguments for the service binary.
      - C(env) (dict) - environment for this service; wins over O(env).
      - C(working_dir) (str) - container working directory, relative to O(source_dir) unless absolute; defaults to
        O(source_dir). In O(mode=per_service) it must be inside O(source_dir), where cargo finds the workspace.
      - C(ports) (list of int or str) - host port mappings replacing the automatic one. Each is an int host port
        (mapped to O(container_port)), C(HOST:CONTAINER) or C(IP:HOST:CONTAINER), optionally with C(/tcp) or
        C(/udp). An empty list publishes nothing. A host port may be used only once across services.
      - C(network_mode) (str) - Docker network mode, for example V(host). The container then joins no network and
        publishes no ports. With V(host), E(PORT) is the service's host port so services do not collide.
      - C(mounts) (list of dict) - extra mounts after the workspace and the two volumes, each with C(target)
        (absolute container path), C(source) (host path, relative to O(path) unless absolute, or volume name;
        none for tmpfs), C(type) (V(bind), V(volume) or V(tmpfs), default V(bind)) and C(read_only) (bool).
        V(/) and the Docker socket are refused as source or target.
      - C(depends_on) (list of str) - enabled services to start before this one; cycles are an error.
      - C(docker) (dict) - further M(community.docker.docker_container) options, returned under
        C(container.extra). Allowed keys are C(cap_add), C(cap_drop), C(cpus), C(memory), C(memory_reservation),
        C(shm_size), C(ulimits), C(devices), C(dns_servers), C(etc_hosts), C(tmpfs), C(security_opts), C(sysctls),
        C(healthcheck), C(log_driver), C(log_options), C(hostname), C(privileged) and C(groups).
    type: dict
    default: {}
  dest:
    description:
      - Also write the rendered result as JSON (sorted keys, indent 2) to this file on the managed host,
        atomically, creating parent directories. The task is changed only when the content changes.
    type: path
notes:
  - Requires cargo on the managed host unless O(metadata) is given. C(cargo metadata --no-deps) needs no network.
seealso:
  - module: community.docker.docker_container
"""

EXAMPLES = r"""
- name: Render the dev containers of the workspace
  cargohold.devenv.workspace_services:
    path: "{{ playbook_dir }}/../examples/workspace"
    image: localhost/cargohold-dev:latest
    user: "{{ ansible_user_uid }}:{{ ansible_user_gid }}"
    target_volume: workspace-target
    cache_volume: cargo-cache
    cargo_args: [--locked]
    env:
      RUST_LOG: debug
    services:
      notify:
        depends_on: [auth]
        ports: ["127.0.0.1:9000:8080"]
      billing:
        enabled: false
  register: ws

- name: Run them
  community.docker.docker_container:
    name: "{{ item.container.name }}"
    image: "{{ item.container.image }}"
    command: "{{ item.container.command }}"
    env: "{{ item.container.env }}"
    mounts: "{{ item.container.mounts }}"
    published_ports: "{{ item.container.published_ports | default(omit) }}"
    networks: "{{ item.container.networks | default(omit) }}"
    network_mode: "{{ item.container.network_mode | default(omit) }}"
  loop: "{{ ws.services }}"
  loop_control:
    label: "{{ item.name }}"

- name: One builder, services run the built binaries; metadata collected inside a container
  cargohold.devenv.workspace_services:
    path: /srv/src/shop
    metadata: "{{ container_metadata.stdout }}"
    mode: shared_builder
    image: localhost/cargohold-dev:latest
    user: "1000:1000"
    target_volume: shop-target
    cache_volume: cargo-cache
    dest: /srv/src/shop/.cargohold/services.json
"""

RETURN = r"""
project:
  description: Container name prefix.
  returned: success
  type: str
  sample: workspace
workspace_root:
  description: Absolute workspace root on the managed host (the bind mount source).
  returned: success
  type: str
  sample: /home/dev/src/workspace
network:
  description: Docker network name.
  returned: success
  type: str
  sample: workspace-dev
mode:
  description: The O(mode) used.
  returned: success
  type: str
  sample: per_service
all_services:
  description: Every service name in the workspace, disabled ones included, sorted.
  returned: success
  type: list
  elements: str
  sample: [api, auth, billing, notify]
disabled:
  description: Names of services whose O(services) entry has C(enabled=false).
  returned: success
  type: list
  elements: str
  sample: [billing]
services:
  description: Enabled services sorted by name.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Service name (the binary's name).
      type: str
      sample: auth
    package:
      description: Cargo package that builds the binary.
      type: str
      sample: auth-service
    bin:
      description: Binary target name.
      type: str
      sample: auth
    package_dir:
      description: Package directory relative to the workspace root (V(.) for a root package).
      type: str
      sample: services/auth
    required_features:
      description: The binary's C(required-features), passed to cargo as C(--features).
      type: list
      elements: str
      sample: []
    watch:
      description: Container paths C(cargo watch) watches for this service.
      type: list
      elements: str
      sample: [/workspace/Cargo.lock, /workspace/Cargo.toml, /workspace/crates/common, /workspace/services/auth]
    url:
      description: URL of the service on the host, or V(null) when it publishes no port.
      type: str
      sample: http://127.0.0.1:8081/
    depends_on:
      description: Services to start first (from the service's C(depends_on)).
      type: list
      elements: str
      sample: []
    container:
      description:
        - Options for M(community.docker.docker_container); every key except C(extra) is an option of that module.
        - C(published_ports) and C(networks) are absent when C(network_mode) is set, and the other way around.
        - C(extra) holds the service's C(docker) options from O(services).
      type: dict
      sample:
        name: workspace-auth
        image: localhost/cargohold-dev:latest
        command: [cargo, watch, --delay, "0.1", -w, /workspace/Cargo.lock, -w, /workspace/Cargo.toml,
                  -w, /workspace/crates/common, -w, /workspace/services/auth, -x, run -p auth-service --bin auth]
        env: {CARGO_TARGET_DIR: /cargo-target, PORT: "8080", SERVICE_NAME: auth}
        working_dir: /workspace
        user: "1000:1000"
        init: true
        mounts:
          - {type: bind, source: /home/dev/src/workspace, target: /workspace, read_only: false}
          - {type: volume, source: workspace-target, target: /cargo-target, read_only: false}
          - {type: volume, source: cargo-cache, target: /cargo-cache, read_only: false}
        published_ports: ["127.0.0.1:8081:8080"]
        networks: [{name: workspace-dev}]
        labels: {io.cargohold.project: workspace, io.cargohold.service: auth, io.cargohold.role: service,
                 io.cargohold.mode: per_service}
        stop_signal: SIGINT
        stop_timeout: 2
        restart_policy: unless-stopped
        extra: {}
builder:
  description:
    - In O(mode=shared_builder), the builder container's options (like RV(services[].container), role label
      V(builder), no published ports, no service label); V(null) in O(mode=per_service).
  returned: success
  type: dict
  sample: null
dest:
  description: The O(dest) path, when set.
  returned: when O(dest) is set
  type: str
  sample: /srv/src/shop/.cargohold/services.json
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.cargohold.devenv.plugins.module_utils import _workspace as ws


SERVICE_OPTIONS = dict(
    enabled=dict(type="bool", default=True),
    args=dict(type="list", elements="str"),
    env=dict(type="dict"),
    working_dir=dict(type="str"),
    ports=dict(type="list", elements="raw"),
    network_mode=dict(type="str"),
    mounts=dict(type="list", elements="dict", options=dict(
        source=dict(type="str"),
        target=dict(type="str", required=True),
        type=dict(type="str", choices=["bind", "volume", "tmpfs"], default="bind"),
        read_only=dict(type="bool", default=False),
    )),
    depends_on=dict(type="list", elements="str"),
    docker=dict(type="dict"),
)

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    cargo=dict(type="str", default="cargo"),
    metadata=dict(type="raw"),
    project=dict(type="str"),
    mode=dict(type="str", choices=list(ws.MODES), default="per_service"),
    image=dict(type="str", required=True),
    network=dict(type="str"),
    user=dict(type="str", required=True),
    source_dir=dict(type="str", default="/workspace"),
    target_dir=dict(type="str", default="/cargo-target"),
    cache_dir=dict(type="str", default="/cargo-cache"),
    target_volume=dict(type="str", required=True),
    cache_volume=dict(type="str", required=True),
    port_base=dict(type="int", default=8080),
    container_port=dict(type="int", default=8080),
    bind_address=dict(type="str", default="127.0.0.1"),
    cargo_args=dict(type="list", elements="str", default=[]),
    watch_delay=dict(type="float", default=0.1),
    env=dict(type="dict", default={}),
    labels=dict(type="dict", default={}),
    # Keyed by service name, so suboptions cannot validate it; _workspace does.
    services=dict(type="dict", default={}),
    dest=dict(type="path"),
)


def load_metadata(module: AnsibleModule, root: str) -> dict:
    if module.params["metadata"] is not None:
        metadata = ws.parse_metadata(module.params["metadata"])
        ws.check_workspace_root(metadata, root, ran_cargo=False)
        return metadata
    cargo = ws.find_cargo(module.params["cargo"])
    if cargo is None:
        raise ValueError(f"cargo: '{module.params['cargo']}' not found on PATH or in ~/.cargo/bin; "
                         "install Rust (rustup) on the host, set cargo to its path, or pass metadata")
    rc, out, err = module.run_command(ws.metadata_command(cargo, root), cwd=root)
    if rc != 0:
        raise ValueError(ws.cargo_failure(root, rc, err))
    metadata = ws.parse_metadata(out)
    ws.check_workspace_root(metadata, root, ran_cargo=True)
    return metadata


def normalize_services(services: dict) -> dict:
    """Apply SERVICE_OPTIONS to each entry of the free-form services dict."""
    validator = ArgumentSpecValidator(SERVICE_OPTIONS)
    result = {}
    for name, settings in services.items():
        if settings is not None and not isinstance(settings, dict):
            raise ValueError(f"services.{name}: must be a dict of settings, got {settings!r}")
        validated = validator.validate(settings or {})
        if validated.error_messages:
            raise ValueError(f"services.{name}: {'; '.join(validated.error_messages)}")
        result[name] = validated.validated_parameters
    return result


def write_dest(module: AnsibleModule, dest: str, content: str) -> bool:
    """Write content to dest atomically unless unchanged or in check mode; return whether it changes."""
    before = read_text(dest)
    if before == content:
        return False
    if not module.check_mode:
        directory = os.path.dirname(dest)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".workspace_services.")
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


def render(module: AnsibleModule) -> dict:
    root = os.path.abspath(module.params["path"])
    workspace = ws.inspect_workspace(root)
    metadata = load_metadata(module, root)
    params = dict(module.params, services=normalize_services(module.params["services"]))
    return ws.render(metadata, workspace, params)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = render(module)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
        return

    changed = False
    dest = module.params["dest"]
    if dest:
        dest = os.path.abspath(dest)
        content = ws.to_json(result)
        before = read_text(dest)
        changed = write_dest(module, dest, content)
        result["dest"] = dest
        if module._diff:
            result["diff"] = dict(before=before, after=content, before_header=dest, after_header=dest)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
