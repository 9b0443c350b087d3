from __future__ import annotations

import os
import sys

import pytest

# Make `helpers` importable from every test directory without packaging tests.
sys.path.insert(0, os.path.dirname(__file__))

from helpers import find_cargo  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="session")
def cargo() -> str:
    path = find_cargo()
    if path is None:
        pytest.skip("cargo not found on PATH or in ~/.cargo/bin")
    return path
