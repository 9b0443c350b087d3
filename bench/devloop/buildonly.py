#!/usr/bin/env python
"""Build-only side-by-side experiment behind the tuning section of docs/benchmarks.md.

Times `cargo build --workspace --bins` after a shared-crate edit and after a one-service edit, in rounds that
interleave the variants, for: host cargo, and long-lived containers of the dev image with the target dir on a
named volume, with variations (the toolchain read from the image's fuse-overlayfs or from a named volume; debug
info; split-debuginfo; incremental; mold). Time is measured inside the container (no `docker exec` overhead).
Everything it creates is named devloop-exp-* and removed at the end.

    .venv/bin/python bench/devloop/buildonly.py --rounds 5 --variants host,fuse,voltc,voltc-lto
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import docker  # type: ignore[import-not-found]
from docker.errors import NotFound  # type: ignore[import-not-found]

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import devloop  # noqa: E402  pylint: disable=wrong-import-position

IMAGE = f"cargohold/dev:{devloop.DEV_TAG}"
MOLD_IMAGE = "cargohold-devloop/dev-mold:latest"
LTO = {"CARGO_PROFILE_DEV_DEBUG": "line-tables-only"}
RUST = "/usr/local/rust"
VARIANTS = {
    # name: (where, the image's directory read from a named volume (copied there on first mount) or None, env)
    "host": ("host", None, {}),
    "fuse": ("ctr", None, {}),
    "voltc": ("ctr", RUST, {}),
    # All of /usr: the toolchain, and the C compiler, linker and libc that rustc links with.
    "volusr": ("ctr", "/usr", {}),
    "fuse-lto": ("ctr", None, LTO),
    "voltc-lto": ("ctr", RUST, LTO),
    "voltc-nodebug": ("ctr", RUST, {"CARGO_PROFILE_DEV_DEBUG": "0"}),
    "voltc-split": ("ctr", RUST, {"CARGO_PROFILE_DEV_SPLIT_DEBUGINFO": "unpacked"}),
    "voltc-noincr": ("ctr", RUST, {"CARGO_INCREMENTAL": "0"}),
    "voltc-mold": ("mold", RUST, {"RUSTFLAGS": "-C link-arg=-fuse-ld=mold"}),
    "voltc-lto-mold": ("mold", RUST, dict(LTO, RUSTFLAGS="-C link-arg=-fuse-ld=mold")),
    "host-lto": ("host", None, LTO),
}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", default="host,fuse,voltc,voltc-lto")
    parser.add_argument("--image", default=IMAGE, help=f"the dev image (default {IMAGE}, made by bench/devloop/run)")
    args = parser.parse_args()
    names = args.variants.split(",")
    client = docker.from_env(timeout=600)
    devloop.host_cgroup(True)  # host cargo competes for the CPU like one more container (see devloop.py)
    tmp = tempfile.mkdtemp(prefix="cargohold-devloop-exp-")
    containers, volumes = [], []
    results = {n: {"shared": [], "one": []} for n in names}
    try:
        if any(VARIANTS[n][0] == "mold" for n in names):
            ctx = os.path.join(tmp, "mold")
            os.makedirs(ctx)
            with open(os.path.join(ctx, "Dockerfile"), "w", encoding="utf-8") as handle:
                handle.write(f"FROM {args.image}\nUSER root\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive "
                             "apt-get install -y --no-install-recommends mold && rm -rf /var/lib/apt/lists/*\n"
                             "USER 1000:1000\n")
            devloop.log("building the mold variant image")
            client.images.build(path=ctx, tag=MOLD_IMAGE, rm=True, pull=False)
        host_env = {}
        for name in names:
            where, on_volume, env = VARIANTS[name]
            ws = os.path.join(tmp, name)
            devloop.copy_workspace(ws, devloop.UID if where != "host" else None)
            if where == "host":
                sysroot = sh(["rustc", "--print", "sysroot"],
                             env=dict(os.environ, PATH=os.path.expanduser("~/.cargo/bin") + ":" + os.environ["PATH"])
                             ).stdout.strip()
                host_env[name] = dict(os.environ, PATH=f"{sysroot}/bin:{os.environ['PATH']}",
                                      CARGO_HOME=os.path.join(tmp, f"{name}-home"),
                                      CARGO_TARGET_DIR=os.path.join(tmp, f"{name}-target"), **env)
                continue
            mounts = {ws: {"bind": "/workspace", "mode": "rw"},
                      f"devloop-exp-{name}-target": {"bind": "/cargo-target", "mode": "rw"},
                      f"devloop-exp-{name}-cache": {"bind": "/cargo-cache", "mode": "rw"}}
            if on_volume:
                mounts[f"devloop-exp-{name}-rust"] = {"bind": on_volume, "mode": "rw"}
            for vol in mounts:
                if not vol.startswith("/"):
                    client.volumes.create(vol)
                    volumes.append(vol)
                    client.containers.run("cargohold/rust-base:host", ["chown", "1000:1000", "/v"], remove=True,
                                          user="0:0", network_mode="none", volumes={vol: {"bind": "/v"}}) \
                        if not vol.endswith("-rust") else None
            containers.append(client.containers.run(
                MOLD_IMAGE if where == "mold" else args.image, ["sleep", "infinity"], name=f"devloop-exp-{name}",
                detach=True, volumes=mounts, environment=env, user="1000:1000",
                # docker-init is mounted at /sbin, which is /usr/sbin, inside a /usr volume: none there.
                init=on_volume != "/usr"))

        def build(name: str) -> float:
            where = VARIANTS[name][0]
            script = ("a=$(date +%s%N); cargo build --workspace --bins -q >/tmp/b.log 2>&1 || { cat /tmp/b.log; "
                      "exit 1; }; b=$(date +%s%N); echo $(( (b - a) / 1000000 ))")
            if where == "host":
                out = sh(["bash", "-c", script], cwd=os.path.join(tmp, name), env=host_env[name],
                         preexec_fn=devloop.join_host_cgroup).stdout
            else:
                container = client.containers.get(f"devloop-exp-{name}")
                rc, raw = container.exec_run(["bash", "-c", script], workdir="/workspace")
                out = raw.decode()
                if rc != 0:
                    raise RuntimeError(f"{name}: {out}")
            return int(out.strip().splitlines()[-1]) / 1000

        devloop.log("cold builds (not compared)")
        for name in names:
            devloop.log(f"  {name}: {build(name):.1f} s")
        version = 1
        for r in range(args.rounds + 1):
            version += 1
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                ws = os.path.join(tmp, name)
                devloop.edit(os.path.join(ws, devloop.COMMON_RS), r'VERSION_TAG: &str = "v\d+";',
                             f'VERSION_TAG: &str = "v{version}";')
                s = build(name)
                devloop.edit(os.path.join(ws, devloop.API_RS), r'MARKER: &str = "api-\d+";',
                             f'MARKER: &str = "api-{version}";')
                o = build(name)
                if r > 0:  # the first round is a warm-up
                    results[name]["shared"].append(s)
                    results[name]["one"].append(o)
                devloop.log(f"round {r} {name}: shared {s:.2f} s, one {o:.2f} s")
        print(f"\nbuild-only (cargo build --workspace --bins), {args.rounds} rounds, medians [min-max], "
              f"load average {os.getloadavg()[0]:.1f}")
        ref = names[0]
        for name in names:
            line = f"{name:16}"
            for key in ("shared", "one"):
                vals = results[name][key]
                line += (f"  {key} {statistics.median(vals):.2f} [{min(vals):.2f}-{max(vals):.2f}]"
                         f" ({statistics.median(vals) / statistics.median(results[ref][key]):.2f}x {ref})")
            print(line)
        os.makedirs(os.path.join(devloop.REPO, "bench", "results"), exist_ok=True)
        path = os.path.join(devloop.REPO, "bench", "results", f"buildonly-{time.strftime('%Y%m%d-%H%M%S')}.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
        print(f"raw: {path}")
        return 0
    finally:
        for container in containers:
            try:
                container.remove(force=True)
            except NotFound:
                pass
        for vol in volumes:
            try:
                client.volumes.get(vol).remove(force=True)
            except NotFound:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
        devloop.remove_host_cgroup()


if __name__ == "__main__":
    sys.exit(main())
