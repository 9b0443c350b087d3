# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one image routine: hash an image's inputs, compare with the label of the image there is, build the stale ones.

Private to this collection: no compatibility guarantees. The first half is pure (specs, hashes, decisions, build
order) and unit-tested; ``Builder`` talks to the engine through community.docker's API client.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
import typing as t
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

JsonDict = t.Dict[str, t.Any]

LABEL = "io.cargohold.inputs"
BUILT, CURRENT, WOULD_BUILD, FAILED, SKIPPED = "built", "current", "would build", "failed", "not built"
OUTPUT_LINES = 40
# The name a dockerfile_content travels under in the context tar (the CLI's `-f -` does the same).
DOCKERFILE_IN_TAR = ".dockerfile.cargohold"
ESCAPE_DIRECTIVE = re.compile(r"(?:[ \t]*#[^\n]*\n)*?[ \t]*#[ \t]*escape[ \t]*=", re.IGNORECASE)


# --------------------------------------------------------------------------
# Hashes
# --------------------------------------------------------------------------

def input_hash(inputs: t.Any, bases: t.Optional[t.Mapping[str, str]] = None) -> str:
    """16 hex digits of sha256 over the inputs' JSON.

    Without ``bases`` the text is exactly what Ansible's ``to_json`` gives, so a role that hashed
    ``inputs | to_json | hash('sha256') | truncate(16, true, '')`` before keeps its images current.
    """
    value = inputs if not bases else {"inputs": inputs, "bases": dict(sorted(bases.items()))}
    return hashlib.sha256(json.dumps(value).encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------

@dataclass
class File:
    path: str
    content: str
    mode: int = 0o644


@dataclass
class Spec:
    ref: str
    context: str
    inputs: t.Any
    dockerfile: str = "Dockerfile"
    dockerfile_content: t.Optional[str] = None
    labels: t.Dict[str, str] = field(default_factory=dict)
    build_args: t.Dict[str, str] = field(default_factory=dict)
    files: t.List[File] = field(default_factory=list)
    depends_on: t.List[str] = field(default_factory=list)
    after: t.List[str] = field(default_factory=list)
    tags: t.List[str] = field(default_factory=list)
    hash: str = ""

    @property
    def needs(self) -> t.List[str]:
        return sorted(set(self.depends_on) | set(self.after))


def _mode(value: t.Any, option: str) -> int:
    if value is None:
        return 0o644
    try:
        mode = int(str(value), 8)
    except ValueError:
        raise ValueError(f"{option}: '{value}' is not an octal file mode such as '0644'") from None
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"{option}: '{value}' is not an octal file mode such as '0644'")
    return mode


def _rel_path(value: t.Any, option: str) -> str:
    path = os.path.normpath(str(value or ""))
    if not value or os.path.isabs(path) or path == "." or path == ".." or path.startswith("../"):
        raise ValueError(f"{option}: '{value}' must be a path inside the build context, e.g. Dockerfile")
    return path


def _strings(values: t.Optional[t.Mapping[str, t.Any]], option: str) -> t.Dict[str, str]:
    result = {}
    for key, value in (values or {}).items():
        if value is None or isinstance(value, (dict, list)):
            raise ValueError(f"{option}.{key}: must be a string, number or boolean")
        result[str(key)] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return result


def parse_specs(images: t.Sequence[t.Mapping[str, t.Any]], label: str = LABEL) -> t.List[Spec]:
    """Validated specs with their hashes, in the order given; errors name ``images[i]``."""
    specs: t.List[Spec] = []
    seen: t.Dict[str, int] = {}
    for index, raw in enumerate(images):
        option = f"images[{index}]"
        ref = str(raw.get("ref") or "")
        if not ref or any(c.isspace() for c in ref):
            raise ValueError(f"{option}.ref: '{ref}' is not an image reference such as cargohold/api:0.1.0")
        if ref in seen:
            raise ValueError(f"{option}.ref: {ref} is also images[{seen[ref]}]; name each image once")
        seen[ref] = index
        context = str(raw.get("context") or "")
        if not os.path.isabs(context):
            raise ValueError(f"{option}.context: '{context}' must be an absolute directory on the Docker host's side")
        if "inputs" not in raw or raw["inputs"] is None:
            raise ValueError(f"{option}.inputs: required; list everything the image is made from")
        labels = _strings(raw.get("labels"), f"{option}.labels")
        if label in labels:
            raise ValueError(f"{option}.labels: {label} is set by this module from the inputs; drop it")
        files = []
        for number, item in enumerate(raw.get("files") or []):
            where = f"{option}.files[{number}]"
            if item.get("content") is None:
                raise ValueError(f"{where}.content: required")
            files.append(File(_rel_path(item.get("path"), f"{where}.path"), str(item["content"]),
                              _mode(item.get("mode"), f"{where}.mode")))
        dockerfile = str(raw.get("dockerfile") or "Dockerfile")
        if not os.path.isabs(dockerfile):
            dockerfile = _rel_path(dockerfile, f"{option}.dockerfile")
        content = raw.get("dockerfile_content")
        if content is not None and raw.get("dockerfile") not in (None, "Dockerfile"):
            raise ValueError(f"{option}.dockerfile_content: set either dockerfile or dockerfile_content")
        specs.append(Spec(
            ref=ref, context=os.path.normpath(context), inputs=raw["inputs"], dockerfile=dockerfile,
            dockerfile_content=None if content is None else str(content),
            labels=labels, build_args=_strings(raw.get("build_args"), f"{option}.build_args"), files=files,
            depends_on=[str(r) for r in raw.get("depends_on") or []], after=[str(r) for r in raw.get("after") or []],
            tags=[_tag_ref(r, f"{option}.tags") for r in raw.get("tags") or []],
        ))
    by_ref = {s.ref: s for s in specs}
    tagged = {tag: index for index, spec in enumerate(specs) for tag in spec.tags}
    for tag, index in tagged.items():
        if tag in by_ref:
            raise ValueError(f"images[{index}].tags: {tag} is also an image of this call; tag it from one place")
    for index, spec in enumerate(specs):
        for key in ("depends_on", "after"):
            for dep in getattr(spec, key):
                if dep == spec.ref:
                    raise ValueError(f"images[{index}].{key}: an image cannot wait for itself")
                if dep not in by_ref and key == "depends_on":
                    raise ValueError(f"images[{index}].{key}: {dep} is not one of the images; "
                                     f"name one of {', '.join(sorted(by_ref))}")
        # An image to wait for that is not in this call is not built in it: nothing to wait for.
        spec.after = [dep for dep in spec.after if dep in by_ref]
    order = build_order(specs)
    for spec in order:  # bases first, so their hashes are known
        spec.hash = input_hash(spec.inputs, {dep: by_ref[dep].hash for dep in spec.depends_on})
    return specs


def split_ref(ref: str) -> t.Tuple[str, str]:
    """``registry:5000/ns/app:1.0`` -> (``registry:5000/ns/app``, ``1.0``); no tag means ``latest``."""
    name, _sep, last = ref.rpartition("/")
    if ":" in last:
        repository, tag = last.rsplit(":", 1)
        return (f"{name}/{repository}" if name else repository), tag
    return ref, "latest"


def _tag_ref(value: t.Any, option: str) -> str:
    ref = str(value or "")
    repository, tag = split_ref(ref)
    if not ref or "@" in ref or any(c.isspace() for c in ref) or not repository or not tag:
        raise ValueError(f"{option}: '{ref}' is not an image reference to tag, such as registry:5000/shop/api:1a2b3c")
    return ref


def tags_to_set(specs: t.Sequence[Spec], ids: t.Mapping[str, t.Optional[str]],
                tag_ids: t.Mapping[str, t.Optional[str]]) -> t.List[t.Tuple[str, str]]:
    """(image ref, tag ref) for every tag that is missing or names another image than the image's ID after
    the run; an image without an ID (not built) is not tagged."""
    return [(s.ref, tag) for s in specs if ids.get(s.ref) for tag in s.tags if tag_ids.get(tag) != ids[s.ref]]


def build_order(specs: t.Sequence[Spec]) -> t.List[Spec]:
    """Topological order over depends_on and after, ties in the order given; a cycle is refused."""
    by_ref = {s.ref: s for s in specs}
    state: t.Dict[str, int] = {}
    order: t.List[Spec] = []

    def visit(spec: Spec, trail: t.List[str]) -> None:
        if state.get(spec.ref) == 2:
            return
        if state.get(spec.ref) == 1:
            cycle = " -> ".join(trail[trail.index(spec.ref):] + [spec.ref])
            raise ValueError(f"images: the images wait for each other in a cycle ({cycle}); break it")
        state[spec.ref] = 1
        for dep in spec.needs:
            visit(by_ref[dep], trail + [spec.ref])
        state[spec.ref] = 2
        order.append(spec)

    for spec in specs:
        visit(spec, [])
    return order


# --------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------

def current_hash(image: t.Optional[JsonDict], label: str = LABEL) -> t.Optional[str]:
    """The inputs label of an image inspect result, None when there is no image or no label."""
    if not image:
        return None
    labels = (image.get("Config") or {}).get("Labels") or {}
    return labels.get(label)


def stale(specs: t.Sequence[Spec], existing: t.Mapping[str, t.Optional[JsonDict]], label: str = LABEL) -> t.List[str]:
    """Refs whose image is missing or labelled with other inputs; a tag's presence alone never builds."""
    return [s.ref for s in specs if current_hash(existing.get(s.ref), label) != s.hash]


def report(specs: t.Sequence[Spec], existing: t.Mapping[str, t.Optional[JsonDict]], done: t.Mapping[str, str],
           check_mode: bool, label: str = LABEL, failed: t.Collection[str] = ()) -> t.List[JsonDict]:
    """One row per image: {ref, hash, action, id, before}."""
    rows = []
    todo = set(stale(specs, existing, label))
    for spec in specs:
        image = existing.get(spec.ref) or {}
        before = current_hash(existing.get(spec.ref), label)
        if spec.ref in done:
            action, image_id = BUILT, done[spec.ref]
        elif spec.ref not in todo:
            action, image_id = CURRENT, image.get("Id")
        elif check_mode:
            action, image_id = WOULD_BUILD, image.get("Id")
        elif spec.ref in failed:
            action, image_id = FAILED, image.get("Id")
        else:
            action, image_id = SKIPPED, image.get("Id")
        rows.append({"ref": spec.ref, "hash": spec.hash, "action": action, "id": image_id, "before": before})
    return rows


def diff(rows: t.Sequence[JsonDict], label: str = LABEL) -> JsonDict:
    """Before/after of the inputs label of every image that is (or would be) built."""
    changing = [r for r in rows if r["action"] in (BUILT, WOULD_BUILD)]
    before = "".join(f"{r['ref']} {label}={r['before'] or '(no image)'}\n" for r in changing)
    after = "".join(f"{r['ref']} {label}={r['hash']}\n" for r in changing)
    return {"before": before, "after": after, "before_header": "images", "after_header": "images"}


def label_instruction(labels: t.Mapping[str, str]) -> t.Optional[str]:
    """All labels as ONE Dockerfile ``LABEL`` instruction, or None when a value cannot be written in one.

    The classic builder turns the API's ``labels`` parameter into one LABEL step per label, and every step
    creates and commits a container: about 1.4 s each on a small base and 5-10 s on the toolchain image with
    fuse-overlayfs (measured). One instruction is one step. ``$`` is escaped because LABEL substitutes
    variables; a newline has no spelling inside a Dockerfile string, so such labels go through the API.
    """
    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'

    if any(ch in text for item in labels.items() for text in item for ch in "\r\n"):
        return None
    return "LABEL " + " ".join(f"{quote(k)}={quote(v)}" for k, v in labels.items())


def build_params(spec: Spec, dockerfile: str, label: str = LABEL, api_labels: bool = True) -> JsonDict:
    """Query parameters of POST /build (classic builder; the inputs label last so every other label is seen).

    ``api_labels=False`` when the labels were written into the Dockerfile (``label_instruction``)."""
    params: JsonDict = {
        "t": spec.ref, "q": False, "nocache": False, "rm": True, "forcerm": True, "pull": False,
        "dockerfile": dockerfile,
    }
    if api_labels:
        params["labels"] = json.dumps(all_labels(spec, label), sort_keys=True)
    if spec.build_args:
        params["buildargs"] = json.dumps(spec.build_args, sort_keys=True)
    return params


def all_labels(spec: Spec, label: str = LABEL) -> t.Dict[str, str]:
    """The spec's labels in sorted order, then the inputs label."""
    labels = {k: spec.labels[k] for k in sorted(spec.labels)}  # parse_specs refuses the inputs label among them
    labels[label] = spec.hash
    return labels


def dockerfile_with_labels(text: str, spec: Spec, label: str = LABEL) -> t.Optional[str]:
    """The Dockerfile with every label added by one LABEL instruction at its end (the final stage)."""
    line = label_instruction(all_labels(spec, label))
    # Another escape character would change what the quoting above means.
    if line is None or ESCAPE_DIRECTIVE.match(text):
        return None
    return text + ("" if text.endswith("\n") else "\n") + line + "\n"


def output_lines(chunks: t.Iterable[JsonDict], keep: int = OUTPUT_LINES) -> t.Tuple[t.List[str], t.Optional[str]]:
    """The builder's last ``keep`` output lines and its error message, if any."""
    lines: t.List[str] = []
    error = None
    for chunk in chunks:
        text = chunk.get("stream") or chunk.get("status") or ""
        lines.extend(line for line in text.splitlines() if line.strip())
        if chunk.get("error") or chunk.get("errorDetail"):
            error = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error")
        del lines[:-keep]
    return lines, error


def dockerignore(context: str) -> t.Optional[t.List[str]]:
    path = os.path.join(context, ".dockerignore")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle.read().splitlines() if line.strip() and not line.startswith("#")]


def write_files(spec: Spec) -> None:
    """Write the spec's files into its context (atomically, only when different)."""
    os.makedirs(spec.context, mode=0o700, exist_ok=True)
    for item in spec.files:
        path = os.path.join(spec.context, item.path)
        data = item.content.encode("utf-8")
        if os.path.exists(path):
            with open(path, "rb") as handle:
                same = handle.read() == data
            if same and stat.S_IMODE(os.stat(path).st_mode) == item.mode:
                continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".cargohold-image.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, item.mode)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


# --------------------------------------------------------------------------
# The engine side
# --------------------------------------------------------------------------

class BuildError(Exception):
    def __init__(self, ref: str, message: str, output: t.List[str]):
        super().__init__(f"building {ref} failed: {message}")
        self.ref = ref
        self.output = output


def run(todo: t.Sequence[Spec], build: t.Callable[[Spec], str], workers: int) -> t.Tuple[t.Dict[str, str], t.List[BuildError]]:
    """Build ``todo`` with at most ``workers`` at a time, each after the images it needs that are also in
    ``todo``; an image whose base failed is not attempted. Returns {ref: id} of the built ones and the errors."""
    pending = {s.ref: s for s in todo}
    done: t.Dict[str, str] = {}
    failed: t.Set[str] = set()
    errors: t.List[BuildError] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        running: t.Dict[t.Any, str] = {}
        while pending or running:
            skipped = [r for r, s in pending.items() if any(d in failed for d in s.needs)]
            while skipped:  # to a fixed point: what a skipped image feeds is skipped too
                for ref in skipped:
                    failed.add(ref)
                    del pending[ref]
                skipped = [r for r, s in pending.items() if any(d in failed for d in s.needs)]
            ready = [s for s in pending.values() if not any(d in pending or d in running.values() for d in s.needs)]
            for spec in ready[:max(0, workers - len(running))]:
                running[pool.submit(build, spec)] = spec.ref
                del pending[spec.ref]
            if not running:
                break
            finished = wait(list(running), return_when=FIRST_COMPLETED).done
            for future in finished:
                ref = running.pop(future)
                try:
                    image_id = future.result()
                except BuildError as exc:
                    failed.add(ref)
                    errors.append(exc)
                    continue
                except Exception as exc:  # pylint: disable=broad-exception-caught
                    failed.add(ref)
                    errors.append(BuildError(ref, str(exc), []))
                    continue
                done[ref] = image_id
    return done, errors


class Builder:
    """Reads labels and builds images through an ``AnsibleDockerClient``."""

    def __init__(self, client: t.Any, label: str = LABEL):
        self.client = client
        self.label = label

    def inspect(self, ref: str) -> t.Optional[JsonDict]:
        # pylint: disable-next=import-outside-toplevel
        from ansible_collections.community.docker.plugins.module_utils._api.errors import NotFound
        try:
            return self.client.get_json("/images/{0}/json", ref)
        except NotFound:
            return None

    def image_id(self, ref: str) -> t.Optional[str]:
        image = self.inspect(ref)
        return image["Id"] if image else None

    def tag(self, ref: str, tag_ref: str) -> None:
        repository, tag = split_ref(tag_ref)
        self.client.post_call("/images/{0}/tag", ref, params={"repo": repository, "tag": tag, "force": 1})

    def build(self, spec: Spec) -> str:
        # pylint: disable-next=import-outside-toplevel
        from ansible_collections.community.docker.plugins.module_utils._api.utils.build import tar
        write_files(spec)
        if spec.dockerfile_content is not None:
            text = spec.dockerfile_content
        else:
            with open(os.path.join(spec.context, spec.dockerfile), encoding="utf-8") as handle:
                text = handle.read()
        labelled = dockerfile_with_labels(text, spec, self.label)
        dockerfile = (DOCKERFILE_IN_TAR, text if labelled is None else labelled)
        context = tar(spec.context, exclude=dockerignore(spec.context), dockerfile=dockerfile, gzip=False)
        try:
            headers = {"Content-Type": "application/tar"}
            self.client._set_auth_headers(headers)  # pylint: disable=protected-access
            response = self.client._post(  # pylint: disable=protected-access
                self.client._url("/build"), data=context,  # pylint: disable=protected-access
                params=build_params(spec, dockerfile[0], self.label, api_labels=labelled is None), headers=headers, stream=True, timeout=None)
            self.client._raise_for_status(response)  # pylint: disable=protected-access
            lines, error = output_lines(self.client._stream_helper(response, decode=True))  # pylint: disable=protected-access
        finally:
            context.close()
        if error:
            raise BuildError(spec.ref, error, lines)
        image = self.inspect(spec.ref)
        if current_hash(image, self.label) != spec.hash:
            raise BuildError(spec.ref, "the engine reported success but the image does not carry the new inputs "
                             "label", lines)
        return image["Id"]
