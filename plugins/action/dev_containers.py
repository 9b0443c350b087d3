# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of cargohold.devenv.dev_containers: progress while the stack comes up.

A module cannot print while it runs. This plugin runs the module to converge (or restart) without waiting, then
calls it in short waiting steps (``state: status``, ``wait_step``) and prints one line for the whole stack on the
controller between them, from what each service's build and supervisor report: `0:42 1/4 serving; api: compiled
34/50 (tokio, hyper); auth, billing: waiting for another build (cargo's build lock)`. It works the same on remote
Docker hosts (the module reads the state files there). A failure (a compiler error with its file and line, a
service that exited with its last log lines) is returned as its message alone, which ansible-core prints as text.
"""

from __future__ import annotations

import time

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


class ActionModule(ActionBase):
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        state = args.get("state", "present")
        wait = boolean(args["wait"], strict=False) if args.get("wait") is not None else state != "status"
        if (state not in WAITING_STATES or not wait or self._task.check_mode
                or float(args.get("wait_step") or 0) > 0):
            try:
                result.update(self._execute_module(module_args=args, task_vars=task_vars))
            finally:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            return result
        try:
            result.update(self._wait_with_progress(args, task_vars or {}))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _wait_with_progress(self, args: dict, task_vars: dict) -> dict:
        host = task_vars.get("inventory_hostname", "")
        timeout = float(args.get("wait_timeout") or 900)
        started = time.monotonic()
        first = self._execute_module(module_args=dict(args, wait=False), task_vars=task_vars)
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
            step = self._execute_module(module_args=dict(poll, wait_timeout=max(1, int(remaining))),
                                        task_vars=task_vars)
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
                return dict(first, services=step.get("services", []), ready=True, seconds=round(elapsed, 2))
            if not pg.same_news(last, line) or time.monotonic() - last_at >= QUIET:
                _say(f"{host}: {line}")
                last, last_at = line, time.monotonic()

    @staticmethod
    def _shown(result: dict) -> dict:
        """A failure as its message alone: ansible-core prints that as text (a compiler error keeps its layout,
        file and line), and the rows it describes would only repeat it as JSON after it."""
        if result.get("failed"):
            result.pop("services", None)
        return result
