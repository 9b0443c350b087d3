#!/usr/bin/python
# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: images
short_description: Build the images whose inputs changed, concurrently
version_added: 0.1.0
description:
  - The one image routine of the collection. Each image of O(images) has a hash of its inputs; the module reads
    the label O(label) of the image there is under the same reference and builds the image only when it is
    missing or labelled with another hash. A tag that merely exists or is missing never triggers a build.
  - The hash is the first 16 hex digits of the SHA-256 of the JSON of O(images[].inputs) (the text Ansible's
    C(to_json) filter gives), so a role that hashed its inputs with C(to_json | hash('sha256')) keeps its
    current images. With O(images[].depends_on) the hashes of those images are folded in too, so a rebuilt base
    rebuilds what is made from it.
  - Stale images are built concurrently, at most O(workers) at a time, each after the images of the same call it
    depends on (O(images[].depends_on), O(images[].after)); an image whose base failed is not attempted. Builds
    use the classic builder through the Engine API (no BuildKit, no C(docker) CLI), with C(.dockerignore)
    honoured as the CLI does.
  - O(images[].files) are written into the build context before the image is built, and only then, so a
    context that is expensive to prepare (a root filesystem) can be prepared after a first call with
    O(state=query) said the image is stale.
author:
  - cargohold developers (@cargohold)
extends_documentation_fragment:
  - community.docker.docker.api_documentation
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the labels and reports each stale image as V(would build); writes and builds nothing.
  diff_mode:
    support: full
    details: The inputs label of each image that is (or would be) built, before and after.
  idempotent:
    description: A second run with the same inputs builds nothing and reports no change.
    support: full
  platform:
    platforms: posix
options:
  images:
    description: The images, in any order.
    type: list
    elements: dict
    required: true
    suboptions:
      ref:
        description: Image reference to build and tag, for example V(cargohold/runtime-base:trixie).
        type: str
        required: true
      context:
        description: Absolute path of the build context directory on the managed host (created when missing).
        type: path
        required: true
      dockerfile:
        description: Dockerfile, relative to O(images[].context) or absolute.
        type: str
        default: Dockerfile
      dockerfile_content:
        description:
          - The Dockerfile's text, sent with the context without being written into it (so a context whose
            files are hashed stays unchanged); excludes O(images[].dockerfile).
        type: str
      inputs:
        description:
          - Everything the image is made from (base image, versions, the Dockerfile text, files' contents or
            checksums, settings); any JSON value. Only what is here (and the O(images[].depends_on) hashes)
            decides whether the image is rebuilt.
        type: raw
        required: true
      labels:
        description: Labels of the built image besides O(label).
        type: dict
        default: {}
      build_args:
        description:
          - Build arguments. Values stay in the image history of the stages that declare them with C(ARG),
            except Docker's predefined proxy arguments.
        type: dict
        default: {}
      files:
        description: Files written into the context before a build, only when the image is to be built.
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: Path inside the context.
            type: str
            required: true
          content:
            description: The file's text.
            type: str
            required: true
          mode:
            description: Octal mode.
            type: str
            default: "0644"
      depends_on:
        description:
          - References of other images of O(images) this one is built from (its C(FROM) or C(COPY --from)). It is
            built after them, and their hashes are part of its hash.
        type: list
        elements: str
        default: []
      after:
        description:
          - References of other images of O(images) this one must be built after when they are built in the same
            run, without their hash being part of its own (a build image whose hash changes with every source
            change, while this image's own inputs say what it takes from it). A reference that is not in
            O(images) is ignored, so the same list serves a call without that image.
        type: list
        elements: str
        default: []
      tags:
        description:
          - Further references (C(repository:tag)) that must name this image after the run - created or moved to
            it, whether it was built now or is current. Moving a tag is a change; the tag list is not an input.
        type: list
        elements: str
        default: []
  state:
    description:
      - V(present) builds the stale images.
      - V(query) only reports which are stale (RV(stale)), as check mode would, and never reports a change;
        use it to prepare expensive contexts for those images only.
    type: str
    choices: [present, query]
    default: present
  workers:
    description: At most this many builds at a time.
    type: int
    default: 4
  label:
    description: The label that carries the inputs hash.
    type: str
    default: io.cargohold.inputs
requirements:
  - Docker API >= 1.41
seealso:
  - module: community.docker.docker_image_build
"""

EXAMPLES = r"""
- name: Ask which base images are stale
  cargohold.devenv.images:
    state: query
    images:
      - ref: cargohold/runtime-base:trixie
        context: /var/cache/cargohold/runtime-base
        inputs: {suite: trixie, packages: [ca-certificates, tini]}
  register: base

- name: Build the stale ones and everything made from them, four at a time
  cargohold.devenv.images:
    images:
      - ref: cargohold/runtime-base:trixie
        context: /var/cache/cargohold/runtime-base
        inputs: {suite: trixie, packages: [ca-certificates, tini]}
        dockerfile_content: "FROM scratch\nADD rootfs.tar /\n"
      - ref: shop/api:0.1.0
        context: /var/cache/cargohold/runtime-api
        inputs: {binary: "{{ api_checksum }}"}
        depends_on: [cargohold/runtime-base:trixie]
        labels: {org.opencontainers.image.version: 0.1.0}
        files:
          - {path: api, content: "{{ lookup('ansible.builtin.file', 'dist/api.sh') }}", mode: "0755"}
        dockerfile_content: "FROM cargohold/runtime-base:trixie\nCOPY api /usr/local/bin/api\n"
"""

RETURN = r"""
images:
  description: One entry per image, in the order of O(images).
  returned: always
  type: list
  elements: dict
  contains:
    ref:
      description: The image reference.
      type: str
    hash:
      description: The inputs hash (the value of O(label)).
      type: str
    action:
      description: V(built), V(current), V(would build) (check mode or O(state=query)), V(failed) or V(not built)
        (an image it depends on failed).
      type: str
    id:
      description: Image ID after the run (before it, for an image that would be built); V(null) when none.
      type: str
    before:
      description: The inputs hash the image had before the run; V(null) when there was no image or label.
      type: str
stale:
  description: References of the images that were (or would be) built.
  returned: always
  type: list
  elements: str
built:
  description: References of the images built in this run.
  returned: always
  type: list
  elements: str
tagged:
  description: The O(images[].tags) created or moved in this run (in check mode, that would be).
  returned: always
  type: list
  elements: str
output:
  description: On failure, the last lines of the failed build's output.
  returned: failure
  type: list
  elements: str
"""

import traceback

from ansible_collections.community.docker.plugins.module_utils.common_api import (
    AnsibleDockerClient, RequestException)
from ansible_collections.community.docker.plugins.module_utils._api.errors import DockerException

from ansible_collections.cargohold.devenv.plugins.module_utils import _image as im


def tag(builder: im.Builder, specs: list, rows: list, query: bool) -> list:
    """Point every tag at its image; a query (or check mode) only says which it would set."""
    wanted = [s for s in specs if s.tags]
    if not wanted:
        return []
    ids = {r["ref"]: r["id"] for r in rows if r["action"] in (im.BUILT, im.CURRENT)}
    # An image that would be built gets a new ID: each of its tags would move.
    moving = {r["ref"] for r in rows if r["action"] == im.WOULD_BUILD}
    tag_ids = {t: builder.image_id(t) for s in wanted for t in s.tags}
    todo = im.tags_to_set(wanted, ids, tag_ids) + [(s.ref, t) for s in wanted if s.ref in moving for t in s.tags]
    if not query:
        for ref, tag_ref in todo:
            builder.tag(ref, tag_ref)
    return [tag_ref for _ref, tag_ref in todo]


def main() -> None:
    client = AnsibleDockerClient(
        argument_spec=dict(
            images=dict(type="list", elements="dict", required=True, options=dict(
                ref=dict(type="str", required=True),
                context=dict(type="path", required=True),
                dockerfile=dict(type="str", default="Dockerfile"),
                dockerfile_content=dict(type="str"),
                inputs=dict(type="raw", required=True),
                labels=dict(type="dict", default={}),
                build_args=dict(type="dict", default={}, no_log=True),
                files=dict(type="list", elements="dict", default=[], options=dict(
                    path=dict(type="str", required=True),
                    content=dict(type="str", required=True),
                    mode=dict(type="str", default="0644"),
                )),
                depends_on=dict(type="list", elements="str", default=[]),
                after=dict(type="list", elements="str", default=[]),
                tags=dict(type="list", elements="str", default=[]),
            )),
            state=dict(type="str", choices=["present", "query"], default="present"),
            workers=dict(type="int", default=4),
            label=dict(type="str", default=im.LABEL),
        ),
        supports_check_mode=True,
        min_docker_api_version="1.41",
    )
    module = client.module
    label = module.params["label"]
    try:
        specs = im.parse_specs(module.params["images"], label)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
        return
    builder = im.Builder(client, label)
    query = module.check_mode or module.params["state"] == "query"
    try:
        existing = {s.ref: builder.inspect(s.ref) for s in specs}
        stale = im.stale(specs, existing, label)
        done, errors = {}, []
        if not query and stale:
            order = [s for s in im.build_order(specs) if s.ref in stale]
            done, errors = im.run(order, builder.build, module.params["workers"])
    except (DockerException, RequestException, OSError) as exc:
        module.fail_json(msg=f"Reading or building images failed: {exc}", exception=traceback.format_exc())
        return
    rows = im.report(specs, existing, done, query, label, [e.ref for e in errors])
    try:
        tagged = tag(builder, specs, rows, query)
    except (DockerException, RequestException) as exc:
        module.fail_json(msg=f"Tagging images failed: {exc}", exception=traceback.format_exc(), images=rows)
        return
    # A query never changes anything, in check mode neither: what it reports is in stale.
    changed = module.params["state"] != "query" and bool(done or tagged or (module.check_mode and stale))
    result = dict(changed=changed, images=rows, stale=stale,
                  built=[r for r in stale if r in done], tagged=tagged)
    if module._diff:  # pylint: disable=protected-access
        result["diff"] = im.diff(rows, label)
    if errors:
        first = errors[0]
        others = "".join(f"; {e}" for e in errors[1:])
        module.fail_json(msg=f"{first}{others}", output=first.output, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
