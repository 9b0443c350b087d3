# Copyright (c) cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: volume_labels
short_description: The labels of a project's shared volume
version_added: 0.2.0
description:
  - Returns the labels cargohold gives a project's cargo target or crate cache volume - the user's own, then the
    project and the volume kind, which a user label cannot override. The C(shared_volumes) role and
    M(cargohold.devenv.dev_containers) (which creates a volume removed since the last run) label volumes with
    the same function.
options:
  _input:
    description: The project name.
    type: str
    required: true
  kind:
    description: The volume's kind.
    type: str
    choices: [target, cache]
    required: true
  labels:
    description: The user's labels.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Label the target volume of the shop project
  ansible.builtin.debug:
    msg: "{{ 'shop' | cargohold.devenv.volume_labels('target', {'team': 'payments'}) }}"
# => {'team': 'payments', 'io.cargohold.project': 'shop', 'io.cargohold.volume': 'target'}
"""

RETURN = r"""
_value:
  description: The labels.
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cargohold.devenv.plugins.module_utils._docker import volume_labels as _volume_labels


def volume_labels(project, kind, labels=None):
    if kind not in ("target", "cache"):
        raise AnsibleFilterError(f"volume_labels: kind must be target or cache, not {kind!r}")
    return _volume_labels(str(project), kind, dict(labels or {}))


class FilterModule:
    def filters(self):
        return {"volume_labels": volume_labels}
