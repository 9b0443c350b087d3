"""The filters the roles take names and the container user from: thin shells over module_utils/_plan.py."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cargohold.devenv.plugins.filter.container_user import FilterModule as UserFilters
from ansible_collections.cargohold.devenv.plugins.filter.stack_names import FilterModule as NameFilters
from ansible_collections.cargohold.devenv.plugins.filter.volume_labels import FilterModule as VolumeFilters
from ansible_collections.cargohold.devenv.plugins.module_utils import _docker as dk
from ansible_collections.cargohold.devenv.plugins.module_utils import _plan as pl

stack_names = NameFilters().filters()["stack_names"]
container_user = UserFilters().filters()["container_user"]
volume_labels = VolumeFilters().filters()["volume_labels"]


def test_stack_names_is_the_plans_function() -> None:
    assert stack_names("shop") == pl.stack_names("shop")


def test_stack_names_refuses_a_name_docker_cannot_use() -> None:
    with pytest.raises(AnsibleFilterError, match="project: 'My Shop' is not a valid container name prefix"):
        stack_names("My Shop")


@pytest.mark.parametrize("stat, uid, gid, fallback, expected", [
    ({"uid": 1000, "gid": 1000}, "", "", 1000, "1000:1000"),
    ({"uid": 0, "gid": 0}, "", "", "1500", "1500:1500"),
    ({"uid": 1000, "gid": 1000}, 2000, "", 1000, "2000:1000"),
])
def test_container_user_applies_the_plans_rule(stat: dict, uid: object, gid: object, fallback: object,
                                               expected: str) -> None:
    assert container_user(stat, uid, gid, fallback) == expected


def test_container_user_names_the_variable() -> None:
    with pytest.raises(AnsibleFilterError, match="^dev_image_uid: is 0: set a numeric id above 0"):
        container_user({"uid": 1000, "gid": 1000}, "0", "", 1000)


def test_volume_labels_is_the_modules_function() -> None:
    assert volume_labels("shop", "target", {"team": "pay"}) == dk.volume_labels("shop", "target", {"team": "pay"}) == {
        "team": "pay", "io.cargohold.project": "shop", "io.cargohold.volume": "target"}
    assert volume_labels("shop", "cache") == {"io.cargohold.project": "shop", "io.cargohold.volume": "cache"}
    with pytest.raises(AnsibleFilterError, match="kind must be target or cache"):
        volume_labels("shop", "usr")
