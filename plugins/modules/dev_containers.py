#!/usr/bin/python
# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dev_containers
short_description: Converge, wait for, report or remove all containers of a dev stack in one pass
version_added: 0.1.0
description:
  - Takes the plan that M(cargohold.devenv.workspace_services) computed (containers, network, start order,
    readiness, state directory) and talks to the Docker Engine API once for the whole project, not once per
    container.
  - O(state=present) lists the project's containers in one call, decides what to create, recreate, start or
    leave alone from a hash of each container's definition and the image it runs (like docker compose), checks
    that no other process holds a host port it is about to publish before it changes anything, removes orphans,
    then creates and starts containers in dependency order (independent ones concurrently) and waits until
    every service is ready, all at once.
  - The wait reads the state files each container's supervisor (C(cargohold-run)) writes on the Docker host,
    so it fails at once, with the compiler's error or the service's last log lines, when a build fails or a
    service exits, instead of running into the timeout.
  - O(state=status) reports every service in one call (with O(log_lines), their last log lines too; with
    O(wait=true), it waits until they are ready first, changing nothing). O(state=absent) stops and removes every
    container of the project concurrently and removes its network; volumes are never touched.
  - O(state=restarted) restarts the containers of O(services) (the supervisor, the watcher and the service
    process) and waits until those services are ready again. O(state=rebuilt) first removes the build
    artifacts of their packages (C(cargo clean -p)), so that their binaries are built afresh, then restarts them
    (and the builder in mode C(shared_builder)) and waits.
  - The action plugin of the same name does the waiting in short steps (O(wait_step)) and prints a progress line
    for the whole stack every few seconds (crates compiled of total, from cargo's own progress bar; which
    services wait for what), and prints a failure (a compiler error with its file and line) as text.
author:
  - cargohold developers (@cargohold)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - community.docker.docker.api_documentation
attributes:
  action:
    support: full
    details: The action plugin prints progress while it waits and the service table once done. On a local
      connection without C(become), a task C(environment) or C(async), it runs this module's code in the
      controller's process (no module payload is built, copied or started); C(cargohold_in_process=false) makes
      it run the module as usual.
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: The decisions are the real run's; nothing is created, started, restarted, cleaned, removed or
      waited for.
  diff_mode:
    support: full
    details: One line per container with what would happen to it.
  idempotent:
    description: A converged stack reports no change.
    support: full
  platform:
    platforms: posix
options:
  plan:
    description:
      - The result of M(cargohold.devenv.workspace_services) (its C(project), C(network), C(containers),
        C(services), C(state_dir), C(image), C(user) and C(order) keys).
      - Given, it is used as it is; O(plan_file) and O(workspace) are then not read.
    type: dict
  plan_file:
    description:
      - Read the plan from this file on the managed host, the one M(cargohold.devenv.workspace_services) wrote
        with its C(dest) when the stack was brought up, so the daily commands act on what runs (overrides
        included) without planning again. When the file is missing, the module plans from O(workspace), or
        fails saying that no plan was recorded.
    type: path
  workspace:
    description:
      - The options of M(cargohold.devenv.workspace_services) as one dict. When neither O(plan) nor a recorded
        O(plan_file) is there, the module plans the stack itself first, exactly as that module would (writing
        its C(dest) too), and returns the plan as RV(plan). One module run then plans and converges.
      - When cargo is missing on the managed host and the options say C(no_cargo=roots), the module returns that
        module's roots result as RV(plan), with RV(current=false), and does nothing else.
    type: dict
  current:
    description:
      - For O(state=present), a record on the managed host that lets a converged stack skip the image checks.
      - Without O(current.record), the module first compares the record with O(current.digest) (the caller's
        hash of the inputs of the images and volumes, to which the module adds what the plan read on the host -
        image, user, workspace owner, volumes, host toolchain), with the IDs the engine now gives each image
        the record lists (or O(current.images)), V(null) for an absent one. If any differs, or a Cargo root has
        no C(Cargo.lock) yet, it returns RV(current=false) at once, changing nothing, and the caller takes the
        long way (builds what is stale, creates volumes, generates lock files) and calls again with
        O(current.record=true).
      - Volumes of O(current.volumes) that no longer exist (removed by hand, or by C(docker volume prune)) are
        created in the same pass, labelled with O(current.volume_labels) and the project, as the long way
        creates them; a cold start on current images costs no image check.
      - With O(current.record=true), the module converges and then writes the record (not in check mode).
    type: dict
    suboptions:
      path:
        description: The record file.
        type: path
        required: true
      digest:
        description: Hash of the inputs the caller decides the images and volumes from.
        type: str
        required: true
      images:
        description: Image references whose IDs must be as recorded.
        type: list
        elements: str
        default: []
      volumes:
        description: The plan's volumes that must exist; a missing one is created.
        type: list
        elements: str
        default: []
      volume_labels:
        description: Labels of a volume created here, besides the project and the volume kind.
        type: dict
        default: {}
      record:
        description: Converge, then write the record.
        type: bool
        default: false
  state:
    description:
      - V(present) converges and (with O(wait)) waits; V(status) only reports; V(absent) removes the containers
        and the network; V(restarted) restarts the containers of O(services); V(rebuilt) builds their binaries
        afresh and restarts them.
    type: str
    choices: [present, status, absent, restarted, rebuilt]
    default: present
  services:
    description:
      - The services that O(state=restarted), O(state=rebuilt), O(state=status) and the wait act on, by service
        name. Empty means every service.
    type: list
    elements: str
    default: []
  wait:
    description:
      - Wait until every service of O(services) (not tools) is ready. The default is V(true) for
        O(state=present), V(restarted) and V(rebuilt), V(false) for O(state=status).
    type: bool
  wait_timeout:
    description: Seconds to wait for readiness before failing with each service's state.
    type: int
    default: 900
  wait_step:
    description:
      - Return after waiting this many seconds even if not every service is ready yet, with C(ready=false)
        (the action plugin calls the module again and prints progress in between). V(0) waits up to
        O(wait_timeout) in one call.
    type: float
    default: 0
  log_lines:
    description: With O(state=status), also return the last this many lines of each service's container log.
    type: int
    default: 0
  volumes:
    description: With O(state=status), also return the project's volumes and their sizes (one disk-usage query
      to the engine, which sizes every volume it has; seconds on a large cache).
    type: bool
    default: false
  print_table:
    description: Whether the action plugin prints RV(table) on the controller once the task is done (plain lines,
      on standard error like the progress lines, each led by the host's name when the play has several hosts).
      The module itself prints nothing.
    type: bool
    default: true
  recreate:
    description: Service names whose containers are recreated even when unchanged.
    type: list
    elements: str
    default: []
  names:
    description: Option names as the user spells them (for example V(port_base) -> V(dev_services_port_base)),
      used in error messages.
    type: dict
    default: {}
requirements:
  - Docker API >= 1.41
  - The module runs on the Docker host, where the plan's state directory and bind mount sources live.
seealso:
  - module: cargohold.devenv.workspace_services
"""

EXAMPLES = r"""
- name: Plan the stack
  cargohold.devenv.workspace_services:
    path: /home/me/src/shop
    image: cargohold/dev:shop
    user: "1000:1000"
    target_volume: shop-cargo-target
    cache_volume: shop-cargo-cache
    state_dir: /home/me/.cache/cargohold/shop/run
  register: plan

- name: Converge it and wait until every service serves
  cargohold.devenv.dev_containers:
    plan: "{{ plan }}"

- name: Tell what every service is doing
  cargohold.devenv.dev_containers:
    plan: "{{ plan }}"
    state: status
  register: status
"""

RETURN = r"""
actions:
  description: What happened (or would happen) to each planned container, in start order.
  returned: always
  type: list
  elements: dict
  sample: [{name: shop-api, action: keep, reason: ""}, {name: shop-auth, action: recreate, reason: its definition changed}]
removed:
  description: Containers of the project that are no longer planned (orphans), removed.
  returned: always
  type: list
  elements: str
  sample: [shop-old]
table:
  description: RV(services) (and, with O(volumes), RV(volumes)) laid out as the lines the action plugin prints, columns
    aligned.
  returned: success, unless RV(current) is V(false)
  type: list
  elements: str
  sample: ["SERVICE  STATUS   ADDRESS         CONTAINER  DETAIL", "api      serving  127.0.0.1:8080  shop-api"]
created_volumes:
  description: Volumes of O(current.volumes) that were missing, created (or, in check mode, to be created).
  returned: when a volume was missing
  type: list
  elements: str
  sample: [shop-cargo-target]
services:
  description: One row per service with C(service), C(status) (serving, starting, building, build failed,
    crashed, exited, stopped, missing), C(address), C(container), C(detail), C(progress) (what a running
    build does, from cargo's progress bar), C(ready), C(failed), and with O(log_lines) C(logs).
  returned: success
  type: list
  elements: dict
  sample: [{service: api, status: serving, address: "127.0.0.1:8080", container: shop-api, detail: "",
            progress: null, ready: true, failed: false}]
volumes:
  description: With O(volumes), the project's volumes, by name, with C(name) and C(size) (bytes; -1 when the
    engine has not computed it).
  returned: with O(state=status) and O(volumes=true)
  type: list
  elements: dict
  sample: [{name: shop-target, size: 171234567}]
plan:
  description: The plan the module made from O(workspace) (not returned when it read O(plan) or O(plan_file)).
  returned: when the module planned from O(workspace)
  type: dict
current:
  description: With O(current), whether the record matched (or, with O(current.record), was written); when
    V(false) without O(current.record), nothing else was done.
  returned: when O(current) is set
  type: bool
  sample: true
ready:
  description: Whether every waited-for service is ready (false when O(wait_step) ended a wait early).
  returned: always
  type: bool
  sample: true
seconds:
  description: Seconds spent waiting for readiness.
  returned: always
  type: float
  sample: 4.2
"""

from ansible_collections.community.docker.plugins.module_utils.common_api import AnsibleDockerClient

from ansible_collections.cargohold.devenv.plugins.module_utils import _stack


def main() -> None:
    client = AnsibleDockerClient(argument_spec=_stack.ARGUMENT_SPEC, supports_check_mode=True,
                                 min_docker_api_version=_stack.MIN_DOCKER_API_VERSION,
                                 required_one_of=_stack.REQUIRED_ONE_OF)
    try:
        client.module.exit_json(**_stack.run(client.module, client))
    except _stack.Failure as exc:
        client.module.fail_json(msg=exc.msg, **exc.result)


if __name__ == "__main__":
    main()
