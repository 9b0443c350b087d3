#!/usr/bin/python
# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cargo_binaries
short_description: Compile Cargo binaries in a throwaway container of a builder image and copy them out
version_added: 0.2.0
description:
  - Creates one container from O(image) (a toolchain with the dependencies already compiled, such as the
    cargo-chef image the C(release_image) role builds), unpacks the source archive O(source) into
    O(workdir), runs one C(cargo build) per entry of O(builds) from that Cargo root's directory, copies each
    binary to its path in O(outputs) on the managed host and removes the container, also when the build fails.
  - Nothing is committed. On the classic builder each Dockerfile step commits a container, which on
    fuse-overlayfs costs seconds per step on a toolchain image; a container that is created, run and removed
    does not.
  - A container of the same name left by an interrupted run is removed first.
author:
  - cargohold developers (@cargohold)
extends_documentation_fragment:
  - community.docker.docker.api_documentation
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports a change when there is a binary to build; creates, compiles and writes nothing.
  diff_mode:
    support: none
  idempotent:
    description: Every run compiles the binaries it is given; the caller decides which are stale.
    support: none
  platform:
    platforms: posix
options:
  image:
    description: The builder image, with C(cargo) on its C(PATH).
    type: str
    required: true
  source:
    description: Path of an uncompressed tar of the source on the managed host, unpacked into O(workdir).
    type: path
    required: true
  workdir:
    description: Where the source is unpacked in the container; the Cargo roots are relative to it.
    type: str
    default: /src
  builds:
    description: One C(cargo build) per Cargo root; a root without binaries is skipped.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: The Cargo root, relative to the source (V(.) for the top).
        type: str
        default: .
      args:
        description: Arguments of C(cargo build) before the C(--bin) ones (profile, target, features, C(--locked)).
        type: list
        elements: str
        default: []
      bins:
        description: The binaries to build (C(--bin) names); names are unique across all builds.
        type: list
        elements: str
        required: true
  artifact_dir:
    description: Where cargo writes the binaries in the container, for example V(/src/target/release).
    type: str
    required: true
  outputs:
    description: Binary name to the directory on the managed host it is copied into, under its own name (created
      when missing; the file is replaced atomically, mode 0755).
    type: dict
    required: true
  env:
    description: Environment of the build (build arguments, proxy settings); not logged.
    type: dict
    default: {}
  project:
    description: Names the container (C(<project>-release-build)) and labels it.
    type: str
    required: true
requirements:
  - Docker API >= 1.41
"""

EXAMPLES = r"""
- name: Compile api and auth of the workspace in the cargo-chef image
  cargohold.devenv.cargo_binaries:
    image: cargohold/release-build:shop
    source: /var/cache/cargohold/shop/source.tar
    builds:
      - path: .
        args: [--release, --locked]
        bins: [api, auth]
    artifact_dir: /src/target/release
    outputs:
      api: /var/cache/cargohold/shop/runtime-api
      auth: /var/cache/cargohold/shop/runtime-auth
    project: shop
"""

RETURN = r"""
binaries:
  description: The binaries built (in check mode, that would be built).
  returned: always
  type: list
  elements: str
script:
  description: The script the container ran (or would run).
  returned: always
  type: str
timings:
  description: Seconds spent creating the container, unpacking the source, compiling, copying out and removing.
  returned: when a container was created
  type: dict
  sample: {create: 0.3, unpack: 0.4, compile: 9.6, copy out: 0.2, remove: 0.5}
output:
  description: On failure, the last lines of the build's output.
  returned: failure
  type: list
  elements: str
"""

import os
import traceback

from ansible_collections.community.docker.plugins.module_utils.common_api import (
    AnsibleDockerClient, RequestException)
from ansible_collections.community.docker.plugins.module_utils._api.errors import DockerException

from ansible_collections.cargohold.devenv.plugins.module_utils import _compile as cc


def main() -> None:
    client = AnsibleDockerClient(
        argument_spec=dict(
            image=dict(type="str", required=True),
            source=dict(type="path", required=True),
            workdir=dict(type="str", default="/src"),
            builds=dict(type="list", elements="dict", required=True, options=dict(
                path=dict(type="str", default="."),
                args=dict(type="list", elements="str", default=[]),
                bins=dict(type="list", elements="str", required=True),
            )),
            artifact_dir=dict(type="str", required=True),
            outputs=dict(type="dict", required=True),
            env=dict(type="dict", default={}, no_log=True),
            project=dict(type="str", required=True),
        ),
        supports_check_mode=True,
        min_docker_api_version="1.41",
    )
    module = client.module
    params = module.params
    try:
        builds = cc.parse_builds(params["builds"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
        return
    binaries = [b for build in builds for b in build.bins]
    missing = sorted(set(binaries) - set(params["outputs"]))
    if missing:
        module.fail_json(msg=f"outputs: no destination for {', '.join(missing)}; give each binary of builds a path")
        return
    script = cc.script(builds, params["workdir"], params["artifact_dir"])
    result = dict(changed=bool(binaries), binaries=binaries, script=script)
    if module.check_mode or not binaries:
        module.exit_json(**result)
    body = cc.create_body(params["image"], script, params["workdir"],
                          {str(k): str(v) for k, v in params["env"].items()}, params["project"])
    compiler = cc.Compiler(client)
    try:
        compiler.compile(cc.container_name(params["project"]), body, params["source"], params["workdir"],
                         {b: os.path.join(params["outputs"][b], b) for b in binaries})
    except cc.CompileError as exc:
        module.fail_json(msg=str(exc), output=exc.output, timings=compiler.timings, **result)
    except (DockerException, RequestException, OSError) as exc:
        module.fail_json(msg=f"Compiling in {params['image']} failed: {exc}", exception=traceback.format_exc(), **result)
    module.exit_json(timings=compiler.timings, **result)


if __name__ == "__main__":
    main()
