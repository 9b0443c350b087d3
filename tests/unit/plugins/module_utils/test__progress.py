"""module_utils/_progress.py: what a running build does, from cargo's messages, and the stack's progress line."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.cargohold.devenv.plugins.module_utils import _progress as pg

# Cargo's own bars, as cargohold-build keeps the last one (CARGO_TERM_PROGRESS_WHEN=always, width 120).
BAR = "    Building [=================>         ] 34/50: tokio, futures-util, hyper, serde_core(build)       \n"
CUT = "    Building [====>                      ] 11/50: futures-core, by\u2026\n"
DOWNLOAD = " Downloading 37 crates, remaining bytes: 1.1MiB                \n"

PARSE_CASES = [
    ("bar", BAR, {"done": 34, "total": 50, "active": ["tokio", "futures-util", "hyper", "serde_core(build)"]}),
    ("cut-name", CUT, {"done": 11, "total": 50, "active": ["futures-core", "by"]}),
    ("no-names", "    Building [>   ] 0/50\n", {"done": 0, "total": 50, "active": []}),
    ("check", "    Checking [==>  ] 3/9: syn\n", {"done": 3, "total": 9, "active": ["syn"]}),
    ("download", DOWNLOAD, {"downloading": 37}),
    ("one-crate", " Downloading 1 crate\n", {"downloading": 1}),
    ("the-last-bar-counts", DOWNLOAD + BAR, {"done": 34, "total": 50,
                                             "active": ["tokio", "futures-util", "hyper", "serde_core(build)"]}),
    ("a-message-is-no-bar", "   Compiling serde v1.0.0\n", None),
    ("empty", "", None),
    ("none", None, None),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES])
def test_parse_bar(text: t.Optional[str], expected: t.Optional[dict]) -> None:
    assert pg.parse_bar(text) == expected


LOCK = "    Blocking waiting for file lock on build directory\n"
DESCRIBE_CASES = [
    ("bar-wins", "   Compiling serde v1.0.0\n", BAR, "compiled 34/50 (tokio, futures-util, hyper)"),
    ("bar-without-names", "", "    Building [>   ] 0/50\n", "compiled 0/50"),
    ("downloading-bar", "    Updating crates.io index\n", DOWNLOAD, "downloading 37 crates"),
    ("one-crate", "", " Downloading 1 crate\n", "downloading 1 crate"),
    ("downloads-done-the-log-says-more", "  Downloaded a v1\n    Blocking waiting for file lock on artifact directory\n",
     " Downloading 0 crates\n", "waiting for another build (cargo's build lock)"),
    ("compiling-line", "    Updating crates.io index\n   Compiling serde v1.0.0\n", "", "compiling serde"),
    ("waiting-for-the-lock", LOCK, "", "waiting for another build (cargo's build lock)"),
    ("lock-then-compiling", LOCK + "   Compiling api v0.1.0 (/workspace/api)\n", "", "compiling api"),
    ("package-cache", "    Blocking waiting for file lock on package cache\n", None,
     "waiting for another cargo (package cache lock)"),
    ("updating", "    Updating crates.io index\n", None, "updating the crate index"),
    ("downloaded-lines", "  Downloaded serde v1.0.0\n", None, "downloading crates"),
    ("locking", "     Locking 40 packages to latest compatible versions\n", None, "resolving dependencies"),
    ("finished", "   Compiling api v0.1.0\n    Finished `dev` profile\n", None, "finishing"),
    ("warnings-are-skipped", "   Compiling api v0.1.0\nwarning: unused variable: `x`\n  --> src/main.rs:3:9\n", None,
     "compiling api"),
    ("nothing-yet", "", "", None),
]


@pytest.mark.parametrize("log, progress_bar, expected", [c[1:] for c in DESCRIBE_CASES], ids=[c[0] for c in DESCRIBE_CASES])
def test_describe(log: str, progress_bar: t.Optional[str], expected: t.Optional[str]) -> None:
    assert pg.describe(log, progress_bar) == expected


@pytest.mark.parametrize("seconds, expected", [(0, "0:00"), (5.9, "0:05"), (65, "1:05"), (3600 + 62, "1:01:02"),
                                               (-1, "0:00")])
def test_clock(seconds: float, expected: str) -> None:
    assert pg.clock(seconds) == expected


def row(service: str, status: str, ready: bool = False, progress: t.Optional[str] = None, detail: str = "",
        kind: str = "service") -> dict:
    return {"service": service, "status": status, "ready": ready, "progress": progress, "detail": detail,
            "kind": kind}


STACK_CASES = [
    ("per-service-cold-build",
     [row("api", "building", progress="compiled 34/50 (tokio, hyper)"),
      row("auth", "building", progress="waiting for another build (cargo's build lock)"),
      row("billing", "building", progress="waiting for another build (cargo's build lock)"),
      row("notify", "serving", ready=True)],
     42, "0:42 1/4 serving; api: compiled 34/50 (tokio, hyper); "
         "auth, billing: waiting for another build (cargo's build lock)"),
    ("shared-builder-one-phrase",
     [row(s, "building", progress="compiled 3/9 (syn)") for s in ("a", "b")], 5,
     "0:05 0/2 serving; a, b: compiled 3/9 (syn)"),
    ("waiting-for-the-first-build-and-starting",
     [row("api", "building", detail="waiting for the first build"), row("auth", "starting"),
      row("web", "starting", detail="Up 1 second")], 3,
     "0:03 0/3 serving; api: waiting for the first build; auth: starting; web: starting: Up 1 second"),
    ("tools-are-not-waited-for", [row("cli", "exited", ready=True, kind="tool"), row("api", "serving", ready=True)],
     61, "1:01 1/1 serving"),
]


@pytest.mark.parametrize("rows, seconds, expected", [c[1:] for c in STACK_CASES], ids=[c[0] for c in STACK_CASES])
def test_stack_line(rows: t.List[dict], seconds: float, expected: str) -> None:
    assert pg.stack_line(rows, seconds) == expected


def test_same_news_ignores_the_clock() -> None:
    assert pg.same_news("0:04 0/1 serving; api: compiling serde", "0:08 0/1 serving; api: compiling serde")
    assert not pg.same_news("0:04 0/1 serving; api: compiling serde", "0:08 0/1 serving; api: compiling tokio")
    assert not pg.same_news(None, "0:08 0/1 serving")


def test_table_lines_up_columns_and_shows_none_as_a_dash() -> None:
    assert pg.table([["api", None, "serving"], ["billing-long", "127.0.0.1:8082", ""]], ["A", "B", "C"]) == [
        "A             B               C",
        "api           -               serving",
        "billing-long  127.0.0.1:8082",
    ]


def test_table_refuses_a_row_of_another_width() -> None:
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        pg.table([["a"]], ["A", "B"])


def _svc(name: str, status: str, detail: str = "") -> dict:
    return {"service": name, "status": status, "address": f"127.0.0.1:{8080 if name == 'api' else 8081}",
            "container": f"shop-{name}", "detail": detail}


REPORT_CASES = [
    ("services-only", [_svc("api", "serving"), _svc("auth", "build failed", "serving the last good build")], None,
     ["SERVICE  STATUS        ADDRESS         CONTAINER  DETAIL",
      "api      serving       127.0.0.1:8080  shop-api",
      "auth     build failed  127.0.0.1:8081  shop-auth  serving the last good build"]),
    ("with-volumes-one-not-sized-yet", [_svc("api", "serving")],
     [{"name": "shop-cargo-cache", "size": -1}, {"name": "shop-cargo-target", "size": 123456789}],
     ["SERVICE  STATUS   ADDRESS         CONTAINER  DETAIL",
      "api      serving  127.0.0.1:8080  shop-api",
      "",
      "VOLUME             SIZE",
      "shop-cargo-cache   -",
      "shop-cargo-target  117.74 MB"]),
    # down: no row, so no lone header printed after it
    ("no-services-no-volumes", [], [], []),
    ("no-services-no-volumes-asked", [], None, []),
]


@pytest.mark.parametrize("services, volumes, expected", [c[1:] for c in REPORT_CASES],
                         ids=[c[0] for c in REPORT_CASES])
def test_report(services: list, volumes: t.Optional[list], expected: t.List[str]) -> None:
    assert pg.report(services, volumes) == expected
