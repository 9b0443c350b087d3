# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Compile release binaries in a throwaway container of the builder image and copy them out.

Private to this collection: no compatibility guarantees. Why a container and not a build stage: on the classic
builder every Dockerfile step creates and commits a container, and a commit on fuse-overlayfs walks the whole
toolchain image (5-10 s a step, measured, against 0.5 s to create, run and remove a container). The compile
needs no layer: only its binaries go on. The first half is pure and unit-tested; ``Compiler`` does the I/O
through community.docker's API client and its ``copy`` helpers.
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
import time
import typing as t
from dataclasses import dataclass

from ansible_collections.cargohold.devenv.plugins.module_utils import _docker as dk

JsonDict = t.Dict[str, t.Any]

OUT = "/out"
OUTPUT_LINES = 40
BUILD_LABEL = "io.cargohold.release-build"
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class Build:
    path: str
    args: t.List[str]
    bins: t.List[str]


def parse_builds(builds: t.Sequence[t.Mapping[str, t.Any]]) -> t.List[Build]:
    """The builds asked for, checked: a root is a relative path inside the source, a binary a plain name."""
    result, seen = [], set()
    for index, item in enumerate(builds):
        path = os.path.normpath(str(item.get("path") or "."))
        if path.startswith("/") or path == ".." or path.startswith("../"):
            raise ValueError(f"builds[{index}].path: {item.get('path')!r} must be relative to the source root")
        bins = [str(b) for b in item.get("bins") or []]
        bad = [b for b in bins if not NAME.match(b)]
        if bad:
            raise ValueError(f"builds[{index}].bins: {', '.join(map(repr, bad))} is not a binary name")
        twice = sorted(seen.intersection(bins))
        if twice:
            raise ValueError(f"builds[{index}].bins: {', '.join(twice)} is built by another root too; binaries "
                             "share one output directory, so their names must differ")
        seen.update(bins)
        if bins:
            result.append(Build(path, [str(a) for a in item.get("args") or []], bins))
    return result


def script(builds: t.Sequence[Build], workdir: str, artifact_dir: str) -> str:
    """The shell script the container runs: one ``cargo build`` per root from its directory (where cargo looks
    for its ``.cargo/config.toml``, as ``cargo chef cook`` did), then the binaries moved to /out."""
    lines = ["set -eu", f"mkdir -p {OUT}"]
    for build in builds:
        directory = workdir if build.path == "." else f"{workdir}/{build.path}"
        command = ["cargo", "build", *build.args, *[a for b in build.bins for a in ("--bin", b)]]
        lines.append(f"cd {shlex.quote(directory)}")
        lines.append(shlex.join(command))
        lines.append(shlex.join(["mv", *[f"{artifact_dir}/{b}" for b in build.bins], f"{OUT}/"]))
    return "\n".join(lines) + "\n"


def create_body(image: str, command: str, workdir: str, env: t.Mapping[str, str], project: str) -> JsonDict:
    return {
        "Image": image, "Cmd": ["sh", "-c", command], "WorkingDir": workdir, "User": "0:0",
        "Env": [f"{k}={v}" for k, v in sorted(env.items())], "Tty": False,
        "Labels": {BUILD_LABEL: project},
    }


def container_name(project: str) -> str:
    return f"{project}-release-build"


def tail(text: str, keep: int = OUTPUT_LINES) -> t.List[str]:
    return [line for line in text.splitlines() if line.strip()][-keep:]


# --------------------------------------------------------------------------
# The engine side
# --------------------------------------------------------------------------

class CompileError(Exception):
    def __init__(self, message: str, output: t.List[str]):
        super().__init__(message)
        self.output = output


class Compiler:
    """One container from ``image``: the source tar unpacked into ``workdir``, the script run, the binaries out."""

    def __init__(self, client: t.Any):
        self.client = client
        self.timings: t.Dict[str, float] = {}
        self._last = time.monotonic()

    def _lap(self, name: str) -> None:
        now = time.monotonic()
        self.timings[name] = round(now - self._last, 2)
        self._last = now

    def remove(self, name: str) -> None:
        # pylint: disable-next=import-outside-toplevel
        from ansible_collections.community.docker.plugins.module_utils._api.errors import NotFound
        try:
            self.client.delete_call("/containers/{0}", name, params={"force": 1})
        except NotFound:
            pass

    def logs(self, container: str) -> str:
        res = self.client._get(self.client._url("/containers/{0}/logs", container),  # pylint: disable=protected-access
                               params={"stdout": 1, "stderr": 1, "tail": OUTPUT_LINES})
        return dk.demux(self.client._result(res, binary=True)).decode("utf-8", "replace")  # pylint: disable=protected-access

    def compile(self, name: str, body: JsonDict, source: str, workdir: str, outputs: t.Mapping[str, str]) -> None:
        # pylint: disable-next=import-outside-toplevel
        from ansible_collections.community.docker.plugins.module_utils.copy import _put_archive, fetch_file
        # One left by an interrupted run goes first; the name is per project, so two releases of one project
        # on one build host do not compile side by side.
        self._last = time.monotonic()
        self.remove(name)
        container = self.client.post_json_to_json("/containers/create", data=body, params={"name": name})["Id"]
        self._lap("create")
        try:
            with open(source, "rb") as handle:
                _put_archive(self.client, container, workdir, handle)
            self._lap("unpack")
            self.client.post_call("/containers/{0}/start", container)
            res = self.client._post(self.client._url("/containers/{0}/wait", container),  # pylint: disable=protected-access
                                    timeout=None)
            code = self.client._result(res, json=True).get("StatusCode")  # pylint: disable=protected-access
            if code != 0:
                raise CompileError(f"cargo build in {body['Image']} exited {code}", tail(self.logs(container)))
            self._lap("compile")
            for binary, dest in outputs.items():
                os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".cargohold-bin.")
                os.close(fd)
                try:
                    fetch_file(self.client, container, f"{OUT}/{binary}", tmp)
                    os.chmod(tmp, 0o755)
                    os.replace(tmp, dest)
                except BaseException:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                    raise
            self._lap("copy out")
        finally:
            self.remove(container)
            self._lap("remove")
