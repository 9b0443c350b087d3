# Copyright (c) cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: stack_names
short_description: Every name of a project's dev stack
version_added: 0.2.0
description:
  - Returns the names cargohold gives a project's dev image, network, volumes and files on the Docker host, the
    ones the roles' defaults use and M(cargohold.devenv.workspace_services) falls back to. They are defined in one
    place, so a role never works one out by itself.
  - Paths start with C(~), the managed host's home; the modules expand it there.
options:
  _input:
    description: The project name (see the C(cargohold.devenv.project_name) filter).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Name the target volume of the shop project
  ansible.builtin.debug:
    msg: "{{ ('shop' | cargohold.devenv.stack_names).target_volume }}"
# => shop-cargo-target
"""

RETURN = r"""
_value:
  description: The names.
  type: dict
  contains:
    image_name:
      description: Repository of the dev image.
      type: str
      sample: cargohold/dev
    image_tag:
      description: Tag of the dev image.
      type: str
      sample: shop
    image:
      description: The dev image reference.
      type: str
      sample: cargohold/dev:shop
    network:
      description: The stack's network.
      type: str
      sample: shop-dev
    target_volume:
      description: The shared cargo target volume.
      type: str
      sample: shop-cargo-target
    cache_volume:
      description: The shared crate cache volume.
      type: str
      sample: shop-cargo-cache
    state_dir:
      description: Where the supervisors write each service's state.
      type: str
      sample: ~/.cache/cargohold/shop/run
    plan_file:
      description: The plan the last C(up) recorded.
      type: str
      sample: ~/.cache/cargohold/shop/plan.json
    build_dir:
      description: Build contexts of the dev images.
      type: str
      sample: ~/.cache/cargohold/build
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cargohold.devenv.plugins.module_utils._plan import stack_names as _stack_names
from ansible_collections.cargohold.devenv.plugins.module_utils._plan import validate_project


def stack_names(project):
    try:
        return _stack_names(validate_project(str(project), from_default=False))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"stack_names": stack_names}
