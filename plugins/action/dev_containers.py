# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of cargohold.devenv.dev_containers: progress while the stack comes up.

A module cannot print while it runs. This plugin runs the module to converge (or restart) without waiting, then
calls it in short waiting steps (``state: status``, ``wait_step``) and prints one line for the whole stack on the
controller between them, from what each service's build and supervisor report: `0:42 1/4 serving; api: compiled
34/50 (tokio, hyper); auth, billing: waiting for another build (cargo's build lock)`. It works the same on remote
Docker hosts (the module reads the state files there). A failure (a compiler error with its file and line, a
service that exited with its last log lines) is returned as its message alone, which ansible-core prints as text.
Once done, it prints the module's service table as plain lines (the roles have no task of their own for it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.cargohold.devenv.plugins.module_utils import _progress as pg

display = Display()


def _say(line: str) -> None:
    # On stderr: a terminal shows it among the task output, and stdout stays the callback's alone (the json
    # callback's output must remain parseable).
    display.display(line, stderr=True)


# Seconds one waiting step of the module lasts: a progress line at most this often, readable while cargo compiles.
STEP = 4.0
# A line that says nothing new is printed again after this many seconds, so a long quiet step shows life.
QUIET = 30.0
WAITING_STATES = ("present", "restarted", "rebuilt")


def waiting_step(args: dict) -> bool:
    """Whether the task is one of this plugin's own waiting steps (it reads the stack and returns)."""
    return float(args.get("wait_step") or 0) > 0


def table_text(args: dict, result: dict, task_vars: dict) -> str:
    """What the task prints once done: the service table as the user reads it, its lines each led by the host's
    name when the play has several hosts (printed in one call, so the tables of hosts run in parallel do not
    interleave). Nothing for a failure (its message says it), a waiting step, or print_table=false."""
    if (result.get("failed") or not result.get("table") or waiting_step(args)
            or not boolean(args.get("print_table", True), strict=False)):
        return ""
    if len(task_vars.get("ansible_play_hosts_all") or ()) > 1:
        host = task_vars.get("inventory_hostname", "")
        return "\n".join(f"{host}: {line}" for line in result["table"])
    return "\n".join(result["table"])


class _Options:  # pylint: disable=too-few-public-methods
    """The connection options for community.docker's plugin client, which reads them as a plugin's options."""

    def __init__(self, params: dict):
        self.params = params

    def get_option(self, name: str):
        return self.params[name]


class _InProcess:
    """What ``_stack.run`` and the planner use of an AnsibleModule, for a run in the controller's process."""

    def __init__(self, params: dict, check_mode: bool, diff: bool):
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self._cleanup: list = []

    @staticmethod
    def run_command(args: list, cwd=None) -> tuple:
        done = subprocess.run(args, cwd=cwd, capture_output=True, check=False)
        return done.returncode, to_text(done.stdout, errors="surrogate_or_replace"), to_text(
            done.stderr, errors="surrogate_or_replace")

    def add_cleanup_file(self, path: str) -> None:
        self._cleanup.append(path)

    @staticmethod
    def atomic_move(src: str, dest: str) -> None:
        # The modes AnsibleModule.atomic_move gives: the replaced file's, else the umask's.
        if os.path.exists(dest):
            shutil.copymode(dest, src)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(src, 0o666 & ~umask)
        os.replace(src, dest)

    def cleanup(self) -> None:
        for path in self._cleanup:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def run_in_process(args: dict, check_mode: bool, diff: bool) -> dict:
    """The module's result for args, computed in this process: validated as AnsibleModule would, run by
    ``_stack.run``, and made JSON as a module's result is."""
    # Imported here, not above: a remote run (the module path) does not need the API client on the controller.
    # pylint: disable=import-outside-toplevel
    from ansible_collections.cargohold.devenv.plugins.module_utils import _stack
    from ansible_collections.community.docker.plugins.module_utils.util import (
        DOCKER_COMMON_ARGS, DOCKER_MUTUALLY_EXCLUSIVE, DOCKER_REQUIRED_TOGETHER)
    from ansible_collections.community.docker.plugins.plugin_utils.common_api import AnsibleDockerClient
    checked = ArgumentSpecValidator(
        dict(DOCKER_COMMON_ARGS, **_stack.ARGUMENT_SPEC), mutually_exclusive=DOCKER_MUTUALLY_EXCLUSIVE,
        required_together=DOCKER_REQUIRED_TOGETHER, required_one_of=_stack.REQUIRED_ONE_OF).validate(args)
    if checked.error_messages:
        return dict(failed=True, msg=", ".join(checked.error_messages))
    module = _InProcess(checked.validated_parameters, check_mode, diff)
    try:
        client = AnsibleDockerClient(_Options(module.params), min_docker_api_version=_stack.MIN_DOCKER_API_VERSION)
        result = _stack.run(module, client)
    except _stack.Failure as exc:
        result = dict(exc.result, failed=True, msg=exc.msg)
    except AnsibleConnectionFailure as exc:  # the client's own failures (engine unreachable, API too old)
        result = dict(failed=True, msg=str(exc))
    finally:
        module.cleanup()
    return json.loads(json.dumps(result))


class ActionModule(ActionBase):
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        state = args.get("state", "present")
        wait = boolean(args["wait"], strict=False) if args.get("wait") is not None else state != "status"
        try:
            if state not in WAITING_STATES or not wait or self._task.check_mode or waiting_step(args):
                result.update(self._run_module(module_args=args, task_vars=task_vars))
            else:
                result.update(self._wait_with_progress(args, task_vars or {}))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        text = table_text(args, result, task_vars or {})
        if text:
            _say(text)
        return result

    def _wait_with_progress(self, args: dict, task_vars: dict) -> dict:
        host = task_vars.get("inventory_hostname", "")
        timeout = float(args.get("wait_timeout") or 900)
        started = time.monotonic()
        first = self._run_module(module_args=dict(args, wait=False), task_vars=task_vars)
        # current=false: the record of the images and volumes did not match and nothing was done.
        if first.get("failed") or first.get("ready") or first.get("current") is False:
            return self._shown(first)
        moved = [a for a in first.get("actions", []) if a.get("action") != "keep"]
        if moved:
            done = {}
            for action in moved:
                done.setdefault(action["action"], []).append(action["name"])
            waited = "every service" if not args.get("services") else " and ".join(args["services"])
            _say(f"{host}: " + "; ".join(f"{verb} {', '.join(names)}" for verb, names in done.items())
                 + f"; waiting until {waited} serve{'' if len(args.get('services') or []) > 1 else 's'}"
                 f" (at most {pg.clock(timeout)})")
        poll = {k: v for k, v in args.items() if k in ("plan", "plan_file", "names", "services")}
        if first.get("plan"):
            # The module planned from its workspace options: the waiting steps read that plan, not plan again.
            poll["plan"] = first["plan"]
        poll.update(state="status", wait=True, wait_step=STEP)
        if args.get("state", "present") == "present":
            poll.pop("services", None)
        last, last_at = None, 0.0
        while True:
            remaining = timeout - (time.monotonic() - started)
            step = self._run_module(module_args=dict(poll, wait_timeout=max(1, int(remaining))), task_vars=task_vars)
            elapsed = time.monotonic() - started
            if step.get("failed"):
                # The rows are in the message already: the failure the user reads is that message, not a list.
                failed = dict(changed=first.get("changed", False), failed=True, msg=step.get("msg", ""),
                              seconds=round(elapsed, 2))
                return self._shown(failed)
            line = pg.stack_line(step.get("services", []), elapsed)
            if step.get("ready"):
                if last is not None:
                    _say(f"{host}: {line}")
                return dict(first, services=step.get("services", []), table=step.get("table", []), ready=True,
                            seconds=round(elapsed, 2))
            if not pg.same_news(last, line) or time.monotonic() - last_at >= QUIET:
                _say(f"{host}: {line}")
                last, last_at = line, time.monotonic()

    def _run_module(self, module_args: dict, task_vars: dict) -> dict:
        if self._in_process(task_vars):
            return run_in_process(module_args, bool(self._task.check_mode), bool(self._task.diff))
        return self._execute_module(module_args=module_args, task_vars=task_vars)

    def _in_process(self, task_vars: dict) -> bool:
        """Whether the module's code may run here: the managed host is this host, as this user, with this
        environment, and the user has not said no."""
        if (self._connection.transport != "local" or self._play_context.become or self._task.async_val
                or not boolean(task_vars.get("cargohold_in_process", True), strict=False)):
            return False
        environment: dict = {}
        self._compute_environment_string(environment)
        return not environment

    @staticmethod
    def _shown(result: dict) -> dict:
        """A failure as its message alone: ansible-core prints that as text (a compiler error keeps its layout,
        file and line), and the rows it describes would only repeat it as JSON after it."""
        if result.get("failed"):
            result.pop("services", None)
        return result
