"""module_utils/_image.py: hashes, specs, decisions and the bounded, ordered build pool (no engine)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import typing as t

import pytest

from ansible_collections.cargohold.devenv.plugins.module_utils import _image as im


def image(ref: str, **extra: t.Any) -> dict:
    return dict({"ref": ref, "context": f"/ctx/{ref.replace('/', '_')}", "inputs": {"ref": ref}}, **extra)


def inspected(hash_value: t.Optional[str], image_id: str = "sha256:old") -> dict:
    return {"Id": image_id, "Config": {"Labels": {im.LABEL: hash_value} if hash_value else None}}


# --------------------------------------------------------------------------
# Hashes
# --------------------------------------------------------------------------

def test_hash_is_what_ansible_to_json_and_hash_sha256_give() -> None:
    inputs = {"suite": "trixie", "packages": ["ca-certificates", "tini"], "uid": 10001, "recipe": "FROM scratch"}
    # `inputs | to_json | hash('sha256') | truncate(16, true, '')`, as the roles computed it before.
    expected = hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:16]
    assert im.input_hash(inputs) == expected
    assert len(expected) == 16


def test_hash_follows_every_input_and_base() -> None:
    base = im.input_hash({"a": 1})
    assert im.input_hash({"a": 2}) != base
    assert im.input_hash({"a": 1}, {"x:1": "0123"}) != base
    assert im.input_hash({"a": 1}, {"x:1": "0123"}) != im.input_hash({"a": 1}, {"x:1": "4567"})
    assert im.input_hash({"a": 1}, {"x:1": "0", "y:1": "1"}) == im.input_hash({"a": 1}, {"y:1": "1", "x:1": "0"})


# --------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------

def test_parse_specs_folds_base_hashes_in_and_not_after_hashes() -> None:
    specs = im.parse_specs([
        image("app:1", depends_on=["base:1"], after=["build:1"]),
        image("base:1"),
        image("build:1"),
    ])
    by_ref = {s.ref: s for s in specs}
    assert [s.ref for s in specs] == ["app:1", "base:1", "build:1"]
    assert by_ref["base:1"].hash == im.input_hash({"ref": "base:1"})
    assert by_ref["app:1"].hash == im.input_hash({"ref": "app:1"}, {"base:1": by_ref["base:1"].hash})
    changed = {s.ref: s for s in im.parse_specs([
        image("app:1", depends_on=["base:1"], after=["build:1"]),
        image("base:1", inputs={"ref": "base:1", "new": True}),
        image("build:1", inputs={"other": 1}),
    ])}
    assert changed["app:1"].hash != by_ref["app:1"].hash  # a new base rebuilds what is made from it
    unchanged = {s.ref: s for s in im.parse_specs([
        image("app:1", depends_on=["base:1"], after=["build:1"]),
        image("base:1"),
        image("build:1", inputs={"other": 1}),
    ])}
    assert unchanged["app:1"].hash == by_ref["app:1"].hash  # `after` only orders
    (alone,) = im.parse_specs([image("app:1", after=["build:1"])])
    assert alone.after == [] and alone.hash == im.input_hash({"ref": "app:1"})


def test_parse_specs_normalizes_files_labels_and_args() -> None:
    files = [{"path": "./sub/../Dockerfile", "content": "FROM x", "mode": "0600"}]
    (spec,) = im.parse_specs([image("a:1", files=files, labels={"n": 1, "b": True}, build_args={"X": 2})])
    assert spec.files == [im.File("Dockerfile", "FROM x", 0o600)]
    assert spec.labels == {"n": "1", "b": "true"}
    assert spec.build_args == {"X": "2"}
    assert spec.dockerfile == "Dockerfile"


BAD_SPECS = [
    ("no-ref", [{"context": "/c", "inputs": 1}], r"images\[0\]\.ref"),
    ("space-in-ref", [image("a b")], r"images\[0\]\.ref"),
    ("twice", [image("a:1"), image("a:1")], r"images\[1\]\.ref: a:1 is also images\[0\]"),
    ("relative-context", [image("a:1", context="ctx")], r"images\[0\]\.context"),
    ("no-inputs", [{"ref": "a:1", "context": "/c"}], r"images\[0\]\.inputs: required"),
    ("label-is-ours", [image("a:1", labels={im.LABEL: "x"})], r"images\[0\]\.labels"),
    ("file-outside", [image("a:1", files=[{"path": "../x", "content": ""}])], r"images\[0\]\.files\[0\]\.path"),
    ("file-absolute", [image("a:1", files=[{"path": "/etc/x", "content": ""}])], r"files\[0\]\.path"),
    ("file-no-content", [image("a:1", files=[{"path": "x"}])], r"files\[0\]\.content"),
    ("bad-mode", [image("a:1", files=[{"path": "x", "content": "", "mode": "rw"}])], r"files\[0\]\.mode"),
    ("unknown-base", [image("a:1", depends_on=["b:1"])], r"images\[0\]\.depends_on: b:1 is not one of"),
    ("self", [image("a:1", after=["a:1"])], r"images\[0\]\.after: an image cannot wait for itself"),
    ("cycle", [image("a:1", depends_on=["b:1"]), image("b:1", after=["a:1"])], r"cycle \(a:1 -> b:1 -> a:1\)"),
    ("dict-label", [image("a:1", labels={"x": {"y": 1}})], r"images\[0\]\.labels\.x"),
]


@pytest.mark.parametrize("images, error", [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS])
def test_parse_specs_refuses(images: list, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        im.parse_specs(images)


def test_build_order_puts_bases_first_and_keeps_the_given_order_otherwise() -> None:
    specs = im.parse_specs([image("c:1", depends_on=["b:1"]), image("b:1", after=["a:1"]), image("a:1"),
                            image("d:1")])
    assert [s.ref for s in im.build_order(specs)] == ["a:1", "b:1", "c:1", "d:1"]


# --------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------

def test_stale_is_missing_or_other_label_never_a_tag() -> None:
    specs = im.parse_specs([image("cur:1"), image("old:1"), image("none:1"), image("nolabel:1")])
    h = {s.ref: s.hash for s in specs}
    existing = {"cur:1": inspected(h["cur:1"]), "old:1": inspected("0" * 16), "none:1": None,
                "nolabel:1": inspected(None)}
    assert im.stale(specs, existing) == ["old:1", "none:1", "nolabel:1"]


def test_report_and_diff() -> None:
    specs = im.parse_specs([image("cur:1"), image("old:1"), image("dep:1", depends_on=["old:1"])])
    h = {s.ref: s.hash for s in specs}
    existing = {"cur:1": inspected(h["cur:1"], "sha256:c"), "old:1": inspected("f" * 16, "sha256:o"), "dep:1": None}
    checked = im.report(specs, existing, {}, check_mode=True)
    assert [(r["ref"], r["action"], r["id"], r["before"]) for r in checked] == [
        ("cur:1", "current", "sha256:c", h["cur:1"]), ("old:1", "would build", "sha256:o", "f" * 16),
        ("dep:1", "would build", None, None)]
    built = im.report(specs, existing, {"old:1": "sha256:new"}, check_mode=False)
    assert [(r["action"], r["id"]) for r in built] == [("current", "sha256:c"), ("built", "sha256:new"),
                                                       ("not built", None)]
    failed = im.report(specs, existing, {}, check_mode=False, failed=["old:1"])
    assert [r["action"] for r in failed] == ["current", "failed", "not built"]
    text = im.diff(checked)
    assert text["before"] == f"old:1 {im.LABEL}={'f' * 16}\ndep:1 {im.LABEL}=(no image)\n"
    assert text["after"] == f"old:1 {im.LABEL}={h['old:1']}\ndep:1 {im.LABEL}={h['dep:1']}\n"
    assert im.diff(im.report(specs[:1], existing, {}, True)) == {
        "before": "", "after": "", "before_header": "images", "after_header": "images"}


def test_build_params_carry_the_label_and_args() -> None:
    (spec,) = im.parse_specs([image("a:1", labels={"x": "1"}, build_args={"TOKEN": "t"})])
    params = im.build_params(spec, ".dockerfile.abc")
    assert json.loads(params["labels"]) == {"x": "1", im.LABEL: spec.hash}
    assert json.loads(params["buildargs"]) == {"TOKEN": "t"}
    assert params["t"] == "a:1" and params["dockerfile"] == ".dockerfile.abc" and params["pull"] is False
    (bare,) = im.parse_specs([image("b:1")])
    assert "buildargs" not in im.build_params(bare, "Dockerfile")
    assert "labels" not in im.build_params(spec, ".dockerfile.abc", api_labels=False)


def test_labels_are_one_instruction_at_the_end_with_the_inputs_label_last() -> None:
    (spec,) = im.parse_specs([image("a:1", labels={"z": "last?", "a": 'say "$HOME" \\ ok', "empty": ""})])
    text = im.dockerfile_with_labels("FROM x AS b\nFROM y", spec)
    assert text == ('FROM x AS b\nFROM y\nLABEL "a"="say \\"\\$HOME\\" \\\\ ok" "empty"="" "z"="last?" '
                    f'"{im.LABEL}"="{spec.hash}"\n')
    assert im.dockerfile_with_labels("FROM y\n", spec).count("\n") == 2


@pytest.mark.parametrize("dockerfile, labels", [
    ("# escape=`\nFROM x\n", {}),
    ("# syntax=docker/dockerfile:1\n  #  ESCAPE = `\nFROM x\n", {}),
    ("FROM x\n", {"multi": "line\none"}),
])
def test_labels_go_through_the_api_when_a_dockerfile_string_cannot_carry_them(dockerfile: str, labels: dict) -> None:
    (spec,) = im.parse_specs([image("a:1", labels=labels)])
    assert im.dockerfile_with_labels(dockerfile, spec) is None


def test_an_escape_word_after_the_first_instruction_is_not_a_directive() -> None:
    (spec,) = im.parse_specs([image("a:1")])
    assert im.dockerfile_with_labels("FROM x\n# escape=`\n", spec) is not None


def test_output_lines_keeps_the_tail_and_the_error() -> None:
    chunks = [{"stream": f"Step {i}/50\n"} for i in range(50)] + [
        {"stream": "error: linking failed\n"},
        {"error": "returned a non-zero code: 101", "errorDetail": {"message": "The command returned 101"}}]
    lines, error = im.output_lines(chunks, keep=3)
    assert lines == ["Step 48/50", "Step 49/50", "error: linking failed"]
    assert error == "The command returned 101"
    assert im.output_lines([{"status": "ok"}, {"aux": {"ID": "sha256:x"}}]) == (["ok"], None)


def test_write_files_writes_only_what_differs(tmp_path) -> None:
    (spec,) = im.parse_specs([image("a:1", context=str(tmp_path / "ctx"),
                                    files=[{"path": "Dockerfile", "content": "FROM x\n"},
                                           {"path": "bin/run", "content": "#!/bin/sh\n", "mode": "0755"}])])
    im.write_files(spec)
    assert (tmp_path / "ctx" / "Dockerfile").read_text() == "FROM x\n"
    assert oct((tmp_path / "ctx" / "bin" / "run").stat().st_mode & 0o7777) == "0o755"
    stamp = (tmp_path / "ctx" / "Dockerfile").stat().st_mtime_ns
    time.sleep(0.01)
    im.write_files(spec)
    assert (tmp_path / "ctx" / "Dockerfile").stat().st_mtime_ns == stamp
    assert sorted(os.listdir(tmp_path / "ctx")) == ["Dockerfile", "bin"]


def test_dockerignore(tmp_path) -> None:
    assert im.dockerignore(str(tmp_path)) is None
    (tmp_path / ".dockerignore").write_text("# comment\ntarget\n\n*.tar\n")
    assert im.dockerignore(str(tmp_path)) == ["target", "*.tar"]


# --------------------------------------------------------------------------
# The pool
# --------------------------------------------------------------------------

class FakeBuilds:
    def __init__(self, fail: t.Collection[str] = (), seconds: float = 0.05):
        self.fail = set(fail)
        self.seconds = seconds
        self.lock = threading.Lock()
        self.running: t.Set[str] = set()
        self.peak = 0
        self.started: t.List[str] = []
        self.finished: t.List[str] = []

    def __call__(self, spec: im.Spec) -> str:
        with self.lock:
            self.running.add(spec.ref)
            self.peak = max(self.peak, len(self.running))
            self.started.append(spec.ref)
            early = [d for d in spec.needs if d in self.running]
        assert not early, f"{spec.ref} started while {early} ran"
        time.sleep(self.seconds)
        with self.lock:
            self.running.discard(spec.ref)
            self.finished.append(spec.ref)
        if spec.ref in self.fail:
            raise im.BuildError(spec.ref, "boom", ["line"])
        return "sha256:" + spec.ref


def test_run_is_concurrent_but_bounded() -> None:
    specs = im.parse_specs([image(f"s{i}:1") for i in range(7)])
    builds = FakeBuilds()
    done, errors = im.run(specs, builds, workers=3)
    assert errors == [] and sorted(done) == sorted(s.ref for s in specs)
    assert builds.peak == 3


def test_run_waits_for_bases_and_skips_what_a_failed_base_feeds() -> None:
    specs = im.parse_specs([
        image("app1:1", depends_on=["base:1"], after=["build:1"]),
        image("app2:1", depends_on=["base:1"], after=["build:1"]),
        image("base:1"), image("build:1", depends_on=["chef:1"]), image("chef:1"), image("other:1"),
    ])
    builds = FakeBuilds(fail={"chef:1"})
    done, errors = im.run(im.build_order(specs), builds, workers=4)
    assert [e.ref for e in errors] == ["chef:1"] and "building chef:1 failed: boom" in str(errors[0])
    assert sorted(done) == ["base:1", "other:1"]
    assert "build:1" not in builds.started and "app1:1" not in builds.started


def test_run_only_waits_for_bases_that_are_built_in_this_run() -> None:
    specs = im.parse_specs([image("app:1", depends_on=["base:1"]), image("base:1")])
    builds = FakeBuilds()
    done, errors = im.run([specs[0]], builds, workers=2)
    assert done == {"app:1": "sha256:app:1"} and errors == []


def test_run_reports_unexpected_errors_with_the_image() -> None:
    def explode(spec: im.Spec) -> str:
        raise OSError("disk full")
    done, errors = im.run(im.parse_specs([image("a:1")]), explode, workers=1)
    assert done == {} and str(errors[0]) == "building a:1 failed: disk full"


# --------------------------------------------------------------------------
# Tags
# --------------------------------------------------------------------------

@pytest.mark.parametrize("ref, expected", [
    ("app", ("app", "latest")),
    ("app:1.0", ("app", "1.0")),
    ("ns/app:1a2b", ("ns/app", "1a2b")),
    ("registry:5000/ns/app", ("registry:5000/ns/app", "latest")),
    ("registry:5000/ns/app:0.1.0", ("registry:5000/ns/app", "0.1.0")),
])
def test_split_ref(ref: str, expected: tuple) -> None:
    assert im.split_ref(ref) == expected


def test_tags_to_set_creates_missing_and_moves_stale_tags_only() -> None:
    specs = im.parse_specs([image("a:1", tags=["a:c0ffee", "a:latest"]), image("b:1", tags=["b:c0ffee"]),
                            image("c:1", tags=["c:c0ffee"])])
    ids = {"a:1": "sha256:a", "b:1": "sha256:b", "c:1": None}
    tag_ids = {"a:c0ffee": "sha256:a", "a:latest": "sha256:old", "b:c0ffee": None, "c:c0ffee": None}
    assert im.tags_to_set(specs, ids, tag_ids) == [("a:1", "a:latest"), ("b:1", "b:c0ffee")]


@pytest.mark.parametrize("images, error", [
    ([image("a:1", tags=["bad tag"])], r"images\[0\]\.tags: 'bad tag'"),
    ([image("a:1", tags=["a@sha256:00"])], r"images\[0\]\.tags"),
    ([image("a:1", tags=["b:1"]), image("b:1")], r"images\[0\]\.tags: b:1 is also an image of this call"),
])
def test_tags_are_checked(images: list, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        im.parse_specs(images)
