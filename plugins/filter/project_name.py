# Copyright (c) cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: project_name
short_description: The project name cargohold derives from a workspace path
version_added: 0.1.0
description:
  - Returns the name that prefixes a workspace's containers, network, volumes and dev image tag, derived from
    the workspace directory exactly as the M(cargohold.devenv.workspace_services) module derives it.
options:
  _input:
    description: Path of the workspace root.
    type: path
    required: true
"""

EXAMPLES = r"""
- name: Name the project after the workspace directory
  ansible.builtin.set_fact:
    cargohold_project: "{{ '/home/me/src/My Shop' | cargohold.devenv.project_name }}"
# => my-shop
"""

RETURN = r"""
_value:
  description: A name that is valid in Docker container, network and volume names.
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cargohold.devenv.plugins.module_utils._plan import default_project, validate_project


def project_name(path):
    try:
        return validate_project(default_project(str(path)), from_default=True)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"project_name": project_name}
