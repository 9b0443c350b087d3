#!/usr/bin/python
# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: workspace_services
short_description: Plan the whole dev stack of a project of Cargo roots
version_added: 0.1.0
description:
  - Reads every Cargo root of a project as cargo sees it (C(cargo metadata --format-version 1 --no-deps)) and
    computes, once, the whole dev stack - names, network, volumes, state directory, one container definition per
    service binary, readiness checks and the start order - for M(cargohold.devenv.dev_containers) to converge.
  - A project is one directory, bind-mounted into every container at O(source_dir). It holds one Cargo root
    (a workspace root or a lone package, which cargo treats as its own root) or several (O(roots), or found in
    its subdirectories when the directory itself has no C(Cargo.toml)). All roots share one network, one dev
    image, one target volume and one crate cache.
  - A service is every binary target (C(kind) contains C(bin)) of every member, so glob members, C(exclude),
    C([[bin]]) renames, C(src/bin/*.rs) auto-discovery and C(autobins = false) are all honoured.
  - Every container runs C(cargohold-run) (from the dev image), which supervises the service binary - it
    restarts it when a new build replaces it or, with backoff, when it crashes, and writes its state to the
    project's state directory on the Docker host. In O(mode=per_service) the container also runs
    the O(watcher) over the service's package, its local path dependencies (transitively, build dependencies
    included, dev-dependencies not) and its root's C(Cargo.toml) and C(Cargo.lock), building only its binary.
    In O(mode=shared_builder) one builder container builds all binaries of all roots.
  - The module never talks to Docker and changes nothing, except the O(dest) file when that is set.
    Every problem is reported, in the words of O(names), before any container would be touched.
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
    description: Running it twice with the same project and options gives the same result.
    support: full
  platform:
    platforms: posix
options:
  path:
    description:
      - The project directory on the managed host (bind-mounted into every container at O(source_dir)).
      - Required, unless O(options) is given.
    type: path
  options:
    description:
      - All the other options as one dict, instead of one by one (and then exclusive of them). A role can so keep
        one table of them and pass it to this module and to M(cargohold.devenv.dev_containers)' C(workspace).
    type: dict
  roots:
    description:
      - The Cargo roots inside O(path), relative to it (for example V([orders, payments])).
      - Default - V(.) when O(path) has a C(Cargo.toml), else every shallowest directory below it (depth 3,
        hidden, C(target), C(vendor) and C(node_modules) skipped) that has one.
    type: list
    elements: str
  cargo:
    description:
      - Cargo executable. A bare name is looked up on E(PATH), then in C(~/.cargo/bin).
      - Ignored when O(metadata) is given.
    type: str
    default: cargo
  metadata:
    description:
      - Output of C(cargo metadata --format-version 1 --no-deps), collected elsewhere (for example inside a
        container when the host has no cargo) - a dict keyed by root (as in O(roots)), or one document for a
        project with one root. cargo is then not run.
      - Its C(workspace_root) may differ from the root's path (a container path) as long as every member's
        C(Cargo.toml) exists at the same relative place.
    type: raw
  project:
    description:
      - Prefix for container names (C(PROJECT-SERVICE), or the binary's name alone when it starts with
        C(PROJECT-)) and the default network.
      - Defaults to the base name of O(path), lowercased, with characters outside C([a-z0-9_.-]) replaced by C(-)
        and leading non-alphanumerics stripped.
    type: str
  mode:
    description:
      - V(per_service) builds and runs each service in its own container.
      - V(shared_builder) builds all binaries in one builder container (returned as RV(builder)); service
        containers run the built binaries.
    type: str
    choices: [per_service, shared_builder]
    default: per_service
  image:
    description:
      - Dev image reference used for every container. It must provide cargo, the O(watcher),
        C(cargohold-run) and, with O(poll), C(cargohold-poll).
      - Required, unless O(options) is given.
    type: str
  network:
    description: Docker network the containers join. Defaults to C(PROJECT-dev).
    type: str
  user:
    description:
      - Numeric C(UID:GID) the containers run as. UID 0 is refused.
      - Default - O(uid) and O(gid) when set, else the owner of O(path) (the source tree and the volumes stay
        writable by the developer), else, for a root-owned O(path), O(fallback_uid) for both.
    type: str
  uid:
    description: The container user's uid when O(user) is not given; empty takes the owner of O(path).
    type: str
    default: ""
  gid:
    description: The container user's gid when O(user) is not given; empty takes the group of O(path).
    type: str
    default: ""
  fallback_uid:
    description: uid and gid of the container user when O(path) is owned by root and neither O(user) nor
      O(uid)/O(gid) say otherwise.
    type: int
    default: 1000
  host_toolchain:
    description:
      - Also identify the host's active rustup toolchain (C(rustc --print sysroot), with C(rustc) looked up as
        O(cargo) is, and the checksum of its channel manifest), returned as RV(host_toolchain). The dev image
        copies that toolchain in when its base source is C(host).
    type: bool
    default: false
  source_dir:
    description: Absolute container path where the project is mounted.
    type: str
    default: /workspace
  target_dir:
    description:
      - Absolute container path of the shared cargo target directory (E(CARGO_TARGET_DIR)); not inside
        O(source_dir).
    type: str
    default: /cargo-target
  cache_dir:
    description: Absolute container path of the shared crate download cache. Must not be inside O(source_dir).
    type: str
    default: /cargo-cache
  target_volume:
    description:
      - Named volume mounted at O(target_dir).
      - Required, unless O(options) is given.
    type: str
  cache_volume:
    description:
      - Named volume mounted at O(cache_dir). Must differ from O(target_volume).
      - Required, unless O(options) is given.
    type: str
  state_dir:
    description:
      - Directory on the Docker host where each container's supervisor writes its state (one subdirectory per
        service, C(builder) for the builder); mounted at C(/run/cargohold).
      - Required, unless O(options) is given.
    type: path
  port_base:
    description:
      - Service number I(i) (0-based, enabled services with their own network in name order) is published on
        host port O(port_base) + I(i), unless its O(services) entry sets C(ports).
    type: int
    default: 8080
  container_port:
    description: Port a service listens on inside its container unless its C(port) says otherwise; E(PORT).
    type: int
    default: 8080
  bind_address:
    description: Host address ports are published on (IPv4 or IPv6, for example V(::1)).
    type: str
    default: 127.0.0.1
  cargo_args:
    description:
      - Extra arguments for every C(cargo build), for example V(--locked) (refused when a root has no
        C(Cargo.lock)).
      - V(--release), V(--profile) and V(--target) also decide where the supervisor finds the binaries.
    type: list
    elements: str
    default: []
  watch_delay:
    description: Seconds the watcher waits after a change before rebuilding (C(cargo watch --delay),
      C(watchexec --debounce)).
    type: float
    default: 0.1
  batch_builds:
    description:
      - In O(mode=per_service), the builds that one edit starts in several containers (a change to a shared
        crate) are made by one cargo, which links the binaries in parallel, instead of one cargo per container
        queueing on the build lock. Cargo then unifies the features of the packages it builds together, as a
        C(cargo build) at the root does; set V(false) to build each service with only its own features.
      - A shared build that fails is made again service by service, so one service's compile error stops no
        other service's reload.
    type: bool
    default: true
  watch_ignore:
    description:
      - Globs, relative to O(path), whose changes never trigger a build (C(cargo watch -i)), for every service;
        for example a file a build script writes into the source tree.
    type: list
    elements: str
    default: []
  watcher:
    description:
      - The file watcher that runs the builds, V(cargo-watch) or V(watchexec); the dev image must provide it.
      - V(cargo-watch) (C(cargo watch)) had its final release; V(watchexec) is the maintained alternative. Both
        watch the same paths with the same ignore globs, and a change during a build restarts the build.
    type: str
    default: cargo-watch
  poll:
    description:
      - Poll the source tree instead of relying on inotify events, which bind mounts from Docker Desktop (macOS,
        Windows), WSL2 on C(/mnt) and network file systems do not deliver.
      - One poller per project (in the builder in mode V(shared_builder), else in a C(<project>-poller)
        container) lists the watched paths every O(poll_interval) and replays each change in a mirror tree on
        the cache volume; the watchers watch the mirror, so what rebuilds stays the same.
    type: bool
    default: false
  poll_interval:
    description: How often O(poll) lists the source tree, for example V(500ms) or V(2s) (50ms to 60s).
    type: str
    default: 500ms
  ready:
    description: The readiness check of every service without its own C(ready) (see O(services)).
    type: raw
    default: port
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
      - Per-service settings, keyed by service (binary) name; unknown names and keys are an error. Each value is
        a dict with these optional keys.
      - C(enabled) (bool, default V(true)) - V(false) leaves the service out; it is still listed in
        RV(all_services) and RV(disabled).
      - C(kind) (V(service) or V(tool), default V(service)) - V(tool) is a binary that runs once after each build
        and exits (a CLI) - no port, not waited for, never restarted.
      - C(args) (list of str) - command-line arguments for the service binary.
      - C(env) (dict) - environment for this service; wins over O(env).
      - C(working_dir) (str) - working directory, relative to O(source_dir) unless absolute; defaults to the
        service's Cargo root (where C(cargo run) would start), so cwd-relative assets are found.
      - C(port) (int) - the port the service listens on in its container (E(PORT)); defaults to
        O(container_port). The automatic host port maps to it.
      - C(listen) (str) - the address the service binds when its code fixes it. V(127.0.0.1) or V(::1) makes
        the container forward its port to that loopback address, so the published port and other services
        reach it.
      - C(ports) (list of int or str) - host port mappings replacing the automatic one. Each is an int host port
        (mapped to C(port)), C(HOST:CONTAINER) or C(IP:HOST:CONTAINER) (IPv6 in brackets), optionally with
        C(/tcp) or C(/udp). An empty list publishes nothing. A host port may be used only once.
      - >-
        C(ready) - when the service counts as ready. V(port) (the default) - something listens on C(port) in the
        container's network namespace, whatever the protocol. C({http: PATH}) - any HTTP answer to PATH (a 404
        counts). C({http: PATH, status: 200}) - that status. C({log: REGEX}) - a line of its output matches.
        V(healthcheck) - the Docker healthcheck in C(docker.healthcheck) reports healthy. V(none) - running is
        enough.
      - C(network_mode) (str) - V(service:NAME) shares service NAME's network namespace, loopback included
        (NAME starts first; the ports are published on NAME's container). Any other value is a Docker network
        mode, for example V(host).
      - C(mounts) (list of dict) - extra mounts after the project and the two volumes, each with C(target)
        (absolute container path), C(source) (host path, relative to O(path) unless absolute, or volume name;
        none for tmpfs), C(type) (V(bind), V(volume) or V(tmpfs), default V(bind)) and C(read_only) (bool).
        V(/) and the Docker socket are refused as source or target.
      - C(depends_on) (list of str) - enabled services created and started before this one; cycles are
        an error.
      - C(watch_ignore) (list of str) - globs, relative to O(path), whose changes do not rebuild this service,
        added to O(watch_ignore).
      - C(docker) (dict) - further container options. Allowed keys are C(cap_add), C(cap_drop), C(cpus),
        C(memory), C(memory_reservation), C(shm_size), C(ulimits), C(devices), C(dns_servers), C(etc_hosts),
        C(tmpfs), C(security_opts), C(sysctls), C(healthcheck), C(log_driver), C(log_options), C(hostname),
        C(privileged) and C(groups), with the meaning of the M(community.docker.docker_container) options of
        the same names.
    type: dict
    default: {}
  names:
    description:
      - The variables the user set, by the option they feed (for example C(services) to
        C(dev_services_overrides)), so that an error names the variable, not the option.
    type: dict
    default: {}
  roots_only:
    description:
      - Only find the Cargo roots (RV(roots)) and return; cargo is not run and nothing else is checked. The
        C(dev_services) role uses it to read the roots with the dev image's cargo when the host has none.
    type: bool
    default: false
  no_cargo:
    description:
      - What to do when O(metadata) is not given and cargo is not found on the managed host.
      - V(fail) fails. V(roots) returns only RV(roots) with RV(cargo_missing), as O(roots_only) does, so that the
        caller can read the metadata with another cargo (the dev image's) and call again with O(metadata).
    type: str
    choices: [fail, roots]
    default: fail
  dest:
    description:
      - Also write the plan as JSON (sorted keys, indent 2) to this file on the managed host, atomically,
        creating parent directories. The task is changed only when the content changes.
    type: path
notes:
  - Requires cargo on the managed host unless O(metadata) is given. C(cargo metadata --no-deps) needs no network.
seealso:
  - module: cargohold.devenv.dev_containers
"""

EXAMPLES = r"""
- name: Plan the dev stack of a project with two Cargo roots
  cargohold.devenv.workspace_services:
    path: /home/me/src/shop
    roots: [orders, payments]
    image: cargohold/dev:shop
    user: "1000:1000"
    target_volume: shop-cargo-target
    cache_volume: shop-cargo-cache
    state_dir: /home/me/.cache/cargohold/shop/run
    watch_ignore: [orders/src/generated.rs]
    services:
      orders:
        env: {PAYMENTS_URL: "http://payments:8080"}
        ready: {http: /version}
      payments:
        port: 7000
        listen: 127.0.0.1
  register: plan

- name: Converge it
  cargohold.devenv.dev_containers:
    plan: "{{ plan }}"
"""

RETURN = r"""
project:
  description: Container name prefix.
  returned: success
  type: str
  sample: shop
project_dir:
  description: Absolute project directory on the managed host (the bind mount source).
  returned: success
  type: str
  sample: /home/me/src/shop
workspace_root:
  description: Same as RV(project_dir) (kept for earlier consumers).
  returned: success
  type: str
  sample: /home/me/src/shop
roots:
  description: The Cargo roots, relative to the project, with whether each has a C(Cargo.lock).
  returned: success
  type: list
  elements: dict
  sample: [{path: orders, lockfile: true}, {path: payments, lockfile: false}]
packages:
  description: Every workspace member of every root, with its version and its targets' source files relative to
    its Cargo root.
  returned: success, unless O(roots_only)
  type: list
  elements: dict
  sample: [{root: ., name: api, version: 0.1.0, targets: [services/api/src/main.rs]}]
lockfiles_missing:
  description: Roots without a C(Cargo.lock); the C(dev_services) role generates each once before any service starts.
  returned: success
  type: list
  elements: str
  sample: [payments]
network:
  description: Docker network name.
  returned: success
  type: str
  sample: shop-dev
volumes:
  description: The C(target) and C(cache) volume names.
  returned: success
  type: dict
  sample: {target: shop-cargo-target, cache: shop-cargo-cache}
state_dir:
  description: The O(state_dir).
  returned: success
  type: str
  sample: /home/me/.cache/cargohold/shop/run
image:
  description: The O(image).
  returned: success
  type: str
  sample: cargohold/dev:shop
user:
  description: The container user, O(user) or the one chosen from O(uid), O(gid) and the owner of O(path).
  returned: success
  type: str
  sample: "1000:1000"
workspace_owner:
  description: The uid and gid that own O(path) (not C(owner), which Ansible sets to the owner of O(dest));
    a uid of V(0) means the container user can read the source
    but not write it.
  returned: always
  type: dict
  sample: {uid: 1000, gid: 1000}
host_toolchain:
  description: With O(host_toolchain), the active rustup toolchain's directory and the SHA-1 of its channel
    manifest; empty strings when there is no C(rustc) (or it is not rustup's, for the checksum).
  returned: when O(host_toolchain) is set
  type: dict
  sample: {sysroot: /home/me/.rustup/toolchains/stable-x86_64-unknown-linux-gnu, checksum: 8d1c...}
cargo_missing:
  description: With O(no_cargo=roots), V(true) when cargo was not found (only RV(roots) and RV(project_dir)
    are then returned besides it).
  returned: when O(no_cargo=roots)
  type: bool
mode:
  description: The O(mode) used.
  returned: success
  type: str
  sample: per_service
all_services:
  description: Every service name in the project, disabled ones included, sorted.
  returned: success
  type: list
  elements: str
  sample: [orders, payments]
disabled:
  description: Names of services whose O(services) entry has C(enabled=false).
  returned: success
  type: list
  elements: str
  sample: []
order:
  description: Enabled services in start order (C(depends_on) and C(network_mode=service:X) first, ties by name).
  returned: success
  type: list
  elements: str
  sample: [orders, payments]
services:
  description: Enabled services sorted by name.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Service name (the binary's name).
      type: str
    kind:
      description: V(service) or V(tool).
      type: str
    package:
      description: Cargo package that builds the binary.
      type: str
    bin:
      description: Binary target name.
      type: str
    root:
      description: The service's Cargo root, relative to the project.
      type: str
    package_dir:
      description: Package directory relative to the project (V(.) for a root package at the top).
      type: str
    local_dirs:
      description: The package dir and its local path dependencies, relative to the project.
      type: list
      elements: str
    required_features:
      description: The binary's C(required-features), passed to cargo as C(--features).
      type: list
      elements: str
    watch:
      description: Container paths C(cargo watch) watches for this service.
      type: list
      elements: str
    watch_ignore:
      description: Globs whose changes do not rebuild it.
      type: list
      elements: str
    port:
      description: The port it listens on in its container; V(null) for a tool.
      type: int
    address:
      description: C(HOST:PORT) where the host reaches it, or V(null) when it publishes no port.
      type: str
      sample: "127.0.0.1:8080"
    url:
      description: The URL of its HTTP readiness check on the host, when it has one.
      type: str
      sample: http://127.0.0.1:8080/version
    ready:
      description: Its readiness check, C(type) (port, http, log, healthcheck, none) with C(port), C(path),
        C(status) and C(pattern).
      type: dict
    depends_on:
      description: Services to start first (from the service's C(depends_on)).
      type: list
      elements: str
    network_target:
      description: The service whose network namespace it shares, if any.
      type: str
    state_dir:
      description: Where its supervisor writes its state on the Docker host.
      type: str
    container:
      description: Its container definition, which M(cargohold.devenv.dev_containers) turns into an Engine API
        create body.
      type: dict
builder:
  description: In O(mode=shared_builder), the builder container's definition; V(null) in O(mode=per_service).
  returned: success
  type: dict
  sample: null
containers:
  description: Every container definition (the builder, or with O(poll) the poller, first) in start order.
  returned: success
  type: list
  elements: dict
dest:
  description: The O(dest) path, when set.
  returned: when O(dest) is set
  type: str
  sample: /srv/src/shop/.cargohold/plan.json
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cargohold.devenv.plugins.module_utils._planning import ARGUMENT_SPEC, plan, validated


# The planning options, given one by one or as one dict; either way ARGUMENT_SPEC checks them (its required ones
# included) once they are together.
MODULE_ARGUMENT_SPEC = dict({k: dict(v, required=False) for k, v in ARGUMENT_SPEC.items()},
                            options=dict(type="dict"))


def main() -> None:
    module = AnsibleModule(argument_spec=MODULE_ARGUMENT_SPEC, supports_check_mode=True)
    given = {k: module.params[k] for k in ARGUMENT_SPEC if module.params[k] != ARGUMENT_SPEC[k].get("default")}
    options = module.params["options"]
    if options is not None and given:
        module.fail_json(msg=f"options: give the options either in options or one by one, not both ({', '.join(given)})")
        return
    try:
        params = validated(options, "options") if options is not None else validated(given, "")
        result, changed = plan(module, params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
        return
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
