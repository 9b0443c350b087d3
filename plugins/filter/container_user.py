# Copyright (c) cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: container_user
short_description: The uid:gid the dev containers run as
version_added: 0.2.0
description:
  - The uid and gid set, else the owner of the workspace (so the source tree and the volumes stay writable by the
    developer), else, for a root-owned workspace, the fallback for both. The same rule
    M(cargohold.devenv.workspace_services) applies when it is not given a user.
options:
  _input:
    description: The result of M(ansible.builtin.stat) on the workspace (its C(uid) and C(gid) are read).
    type: dict
    required: true
  uid:
    description: The uid set, or empty.
    type: raw
    default: ""
  gid:
    description: The gid set, or empty.
    type: raw
    default: ""
  fallback:
    description: uid and gid for a root-owned workspace.
    type: int
    default: 1000
"""

EXAMPLES = r"""
- name: Choose the container user
  ansible.builtin.set_fact:
    user: "{{ workspace_stat.stat | cargohold.devenv.container_user(uid='', gid='', fallback=1000) }}"
# => "1000:1000" for a workspace owned by uid 1000
"""

RETURN = r"""
_value:
  description: C(UID:GID).
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cargohold.devenv.plugins.module_utils._plan import container_user as _container_user


def container_user(stat, uid="", gid="", fallback=1000):
    try:
        return _container_user(stat["uid"], stat["gid"], uid, gid, int(fallback))
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"dev_image_{exc}") from exc


class FilterModule:
    def filters(self):
        return {"container_user": container_user}
