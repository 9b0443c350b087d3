# Copyright (c) cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: table
short_description: Lay out rows as an aligned text table
version_added: 0.1.0
description:
  - Turns a list of rows (lists of cells) into a list of lines whose columns line up, headed by O(header).
  - Made for C(ansible.builtin.debug) output such as the dev stack's service table.
options:
  _input:
    description: The rows, each a list of cells; cells are turned into strings, C(None) into C(-).
    type: list
    elements: list
    required: true
  header:
    description: The column titles.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Print the services
  ansible.builtin.debug:
    msg: "{{ [['api', 'http://127.0.0.1:8080/', 'running']] | cargohold.devenv.table(['SERVICE', 'URL', 'STATE']) }}"
# => ['SERVICE  URL                     STATE', 'api      http://127.0.0.1:8080/  running']
"""

RETURN = r"""
_value:
  description: One string a line, header first.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.cargohold.devenv.plugins.module_utils import _progress


def table(rows, header):
    try:
        return _progress.table(rows, header)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"table": table}
