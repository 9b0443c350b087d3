"""The project-wide settings of the dev_services role, held together: each public variable has one default
(defaults/main.yml) that its argument spec states, every option of the plan is fed by the role's one table
(vars/main.yml `_dev_services_workspace_args`) from the variable `_dev_services_names` says the user set, and
where role and module both give a literal default they agree. A setting added in one place and not the others
fails here, instead of being validated and then silently dropped (or documented with the wrong default)."""

from __future__ import annotations

import re
import typing as t

import pytest
import yaml

from helpers import REPO

from ansible_collections.cargohold.devenv.plugins.module_utils import _planning as planning
from ansible_collections.cargohold.devenv.plugins.module_utils import _stack

ROLE = REPO / "roles" / "dev_services"
# Plan options the role leaves to the module on purpose: the paths inside the containers, and a planner mode.
MODULE_ONLY = {"source_dir", "target_dir", "cache_dir", "roots_only"}


def load(path: t.Any) -> t.Any:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


DEFAULTS: dict = load(ROLE / "defaults" / "main.yml")
SPEC: dict = load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]
ROLE_VARS: dict = load(ROLE / "vars" / "main.yml")
WORKSPACE_ARGS: dict = ROLE_VARS["_dev_services_workspace_args"]
NAMES: dict = ROLE_VARS["_dev_services_names"]


def documented_anywhere() -> t.Set[str]:
    """Every variable some role's argument spec documents."""
    names: t.Set[str] = set()
    for path in sorted((REPO / "roles").glob("*/meta/argument_specs.yml")):
        for entry in (load(path)["argument_specs"] or {}).values():
            names.update(entry.get("options") or {})
    return names


def fed_by(option: str) -> t.Optional[str]:
    """The public variable a workspace option is the plain value of, if it is one."""
    match = re.fullmatch(r"\{\{ (dev_services_\w+) \}\}", str(WORKSPACE_ARGS[option]))
    return match.group(1) if match else None


def test_every_default_is_documented_and_every_documented_variable_has_a_default() -> None:
    main = SPEC["main"]["options"]
    assert sorted(set(DEFAULTS) - set(main)) == [], "in defaults/main.yml, not in meta/argument_specs.yml"
    assert sorted(set(main) - set(DEFAULTS)) == [], "in meta/argument_specs.yml, not in defaults/main.yml"
    for entry, spec in SPEC.items():
        assert spec["options"] == main, f"entry point {entry} documents other variables than main"


@pytest.mark.parametrize("variable", sorted(DEFAULTS))
def test_the_argument_spec_states_the_literal_default(variable: str) -> None:
    value = DEFAULTS[variable]
    if "{{" in str(value):
        return  # computed at run time; the spec describes it in words
    option = SPEC["main"]["options"][variable]
    assert "default" in option, f"{variable}: the spec gives no default, defaults/main.yml says {value!r}"
    assert option["default"] == value


def test_every_plan_option_is_fed_by_the_role() -> None:
    assert sorted(set(planning.ARGUMENT_SPEC) - set(WORKSPACE_ARGS) - MODULE_ONLY) == []
    assert sorted(set(WORKSPACE_ARGS) - set(planning.ARGUMENT_SPEC)) == []


@pytest.mark.parametrize("option", sorted(o for o in WORKSPACE_ARGS if fed_by(o)))
def test_an_option_fed_by_a_variable_names_it_for_errors(option: str) -> None:
    variable = fed_by(option)
    assert variable in DEFAULTS, f"{option}: {variable} is not a variable of the role"
    # An error about the option names what the user set: this variable, or the cargohold_* one its default reads.
    assert option in NAMES, f"{option}: missing from _dev_services_names, an error would name '{option}'"
    named = NAMES[option]
    assert named == variable or re.search(rf"\b{named}\b", str(DEFAULTS[variable])), f"{option}: names {named}"


@pytest.mark.parametrize("option", sorted(o for o in WORKSPACE_ARGS if fed_by(o)))
def test_role_and_module_agree_on_literal_defaults(option: str) -> None:
    role_default = DEFAULTS[fed_by(option)]
    module_default = planning.ARGUMENT_SPEC[option].get("default")
    if "{{" in str(role_default) or module_default is None:
        return
    assert role_default == module_default, f"{option}: role {role_default!r}, module {module_default!r}"


def test_names_map_module_options_to_documented_variables() -> None:
    options = set(planning.ARGUMENT_SPEC) | set(_stack.ARGUMENT_SPEC)
    assert sorted(set(NAMES) - options) == [], "_dev_services_names keys must be options of the modules"
    assert sorted(set(NAMES.values()) - documented_anywhere()) == [], "names must be documented variables"
