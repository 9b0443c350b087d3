"""Fixtures for the tests of the dev image's supervisor scripts (cargohold-run, cargohold-build)."""

from __future__ import annotations

import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

# Make `runner_support` importable from the tests without packaging tests.
sys.path.insert(0, os.path.dirname(__file__))

from runner_support import HERE, Supervisor, find_rustc  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="session")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rustc = find_rustc()
    if rustc is None:
        pytest.skip("rustc not found on PATH or in ~/.cargo/bin")
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run([rustc, "-O", "--edition", "2021", "-o", str(out), str(HERE / "probe.rs")], check=True)
    return out


@pytest.fixture
def supervisors(tmp_path: Path, probe: Path) -> t.Iterator[t.Callable[..., Supervisor]]:
    made: t.List[Supervisor] = []

    def make(name: str = "svc") -> Supervisor:
        supervisor = Supervisor(tmp_path, probe, name)
        made.append(supervisor)
        return supervisor

    yield make
    for supervisor in made:
        supervisor.cleanup()
