"""action/dev_containers.py: when the module's code runs in the controller's process, and the stand-in for
AnsibleModule it then runs with. The runs themselves are the Molecule scenarios' (default in-process; faults, whose
tasks set an environment, through the module)."""

from __future__ import annotations

import os
import stat
import types
import typing as t
from pathlib import Path

import pytest

from ansible_collections.cargohold.devenv.plugins.action import dev_containers as action
from ansible_collections.cargohold.devenv.plugins.module_utils import _planning as planning
from ansible_collections.cargohold.devenv.plugins.module_utils import _stack


def plugin(transport: str = "local", become: bool = False, environment: t.Any = None, async_val: int = 0,
           env_string: str = "") -> action.ActionModule:
    """An ActionModule with just what _in_process reads."""
    obj = action.ActionModule.__new__(action.ActionModule)
    obj._connection = types.SimpleNamespace(transport=transport)
    obj._play_context = types.SimpleNamespace(become=become)
    obj._task = types.SimpleNamespace(environment=environment, async_val=async_val)

    def compute(out: dict) -> str:
        out.update(environment or {})
        return env_string

    obj._compute_environment_string = compute
    return obj


@pytest.mark.parametrize("kwargs, task_vars, expected", [
    ({}, {}, True),
    ({"transport": "ssh"}, {}, False),
    ({"transport": "community.docker.docker"}, {}, False),
    ({"become": True}, {}, False),
    ({"async_val": 30}, {}, False),
    ({"environment": {"DOCKER_HOST": "tcp://build:2375"}}, {}, False),
    ({}, {"cargohold_in_process": False}, False),
    ({}, {"cargohold_in_process": "no"}, False),
    ({}, {"cargohold_in_process": "yes"}, True),
], ids=["local", "ssh", "docker", "become", "async", "environment", "off", "off-str", "on-str"])
def test_in_process_only_where_the_module_would_run_here_alike(kwargs: dict, task_vars: dict, expected: bool) -> None:
    assert plugin(**kwargs)._in_process(task_vars) is expected


TABLE = ["SERVICE  STATUS", "api      serving"]


@pytest.mark.parametrize("args, result, task_vars, printed", [
    ({}, {"table": TABLE}, {}, "SERVICE  STATUS\napi      serving"),
    ({}, {"table": TABLE}, {"ansible_play_hosts_all": ["dev"], "inventory_hostname": "dev"},
     "SERVICE  STATUS\napi      serving"),
    ({}, {"table": TABLE}, {"ansible_play_hosts_all": ["a", "b"], "inventory_hostname": "b"},
     "b: SERVICE  STATUS\nb: api      serving"),
    ({"print_table": False}, {"table": TABLE}, {}, ""),
    ({"print_table": "no"}, {"table": TABLE}, {}, ""),
    ({"wait_step": 4.0}, {"table": TABLE}, {}, ""),
    ({}, {"table": TABLE, "failed": True, "msg": "api: error[E0308]"}, {}, ""),
    ({}, {"current": False}, {}, ""),
], ids=["one-host", "one-named-host", "two-hosts", "off", "off-str", "waiting-step", "failed", "no-table"])
def test_the_table_is_printed_once_done_unless_asked_not_to(args: dict, result: dict, task_vars: dict,
                                                            printed: str) -> None:
    assert action.table_text(args, result, task_vars) == printed


@pytest.mark.parametrize("args, words", [
    ({}, "one of the following is required: plan, plan_file, workspace"),
    ({"plan_file": "/nowhere", "state": "gone"}, "state"),
    ({"plan_file": "/nowhere", "wait_timeout": "soon"}, "wait_timeout"),
])
def test_bad_options_fail_as_the_module_would_before_any_engine_call(args: dict, words: str) -> None:
    result = action.run_in_process(args, check_mode=False, diff=False)
    assert result["failed"] is True
    assert words in result["msg"]


def test_stand_in_writes_atomically_with_the_modes_ansible_module_gives(tmp_path: Path) -> None:
    module = action._InProcess({}, check_mode=False, diff=False)
    umask = os.umask(0o022)
    try:
        new = tmp_path / "state" / "plan.json"
        assert planning.write_dest(module, str(new), "{}") is True
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        new.chmod(0o600)
        assert planning.write_dest(module, str(new), '{"a": 1}') is True
        assert stat.S_IMODE(new.stat().st_mode) == 0o600
        assert new.read_text() == '{"a": 1}'
        assert planning.write_dest(module, str(new), '{"a": 1}') is False
    finally:
        os.umask(umask)
    module.cleanup()
    assert [p.name for p in new.parent.iterdir()] == ["plan.json"]


def test_stand_in_writes_nothing_in_check_mode(tmp_path: Path) -> None:
    module = action._InProcess({}, check_mode=True, diff=False)
    assert planning.write_dest(module, str(tmp_path / "plan.json"), "{}") is True
    assert not (tmp_path / "plan.json").exists()


def test_stand_in_runs_commands_as_run_command_does(tmp_path: Path) -> None:
    rc, out, err = action._InProcess.run_command(["sh", "-c", "pwd; echo oops >&2; exit 3"], cwd=str(tmp_path))
    assert (rc, out.strip(), err.strip()) == (3, str(tmp_path), "oops")


def test_failure_carries_the_rest_of_the_result() -> None:
    exc = _stack.Failure("Not every service came up", services=[{"service": "api"}])
    assert (exc.msg, exc.result) == ("Not every service came up", {"services": [{"service": "api"}]})
