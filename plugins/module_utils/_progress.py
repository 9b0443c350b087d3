# Copyright: cargohold developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a running build is doing, from cargo's own messages, in words a person reads while waiting.

Private to this collection: no compatibility guarantees. Pure logic. ``cargohold-build`` (in the dev image) forces
cargo's progress bar on (it prints none when its output is not a terminal) and keeps the bar out of the build
log: the last bar goes to the ``progress`` file of the build's state directory, every other line to
``build.log.partial``. The ``dev_containers`` module reads both; its action plugin prints one line for the whole
stack every few seconds while it waits.
"""

from __future__ import annotations

import re
import typing as t

from ansible.module_utils.common.text.formatters import bytes_to_human

JsonDict = t.Dict[str, t.Any]

# `    Building [=======>      ] 34/50: tokio, futures-util` (the names may end in an ellipsis when cut)
BAR_RE = re.compile(r"^\s*(?:Building|Checking)\s+\[[^\]]*\]\s+(\d+)/(\d+)(?::\s*(.*))?$")
# ` Downloading 37 crates, remaining bytes: 1.1MiB` (cargo's download bar)
DOWNLOAD_RE = re.compile(r"^\s*Downloading\s+(\d+)\s+crates?\b")

# The last matching log line, newest first, says what cargo does: (prefix, what the user reads).
PHASES = (
    # cargohold-build --batch: another service's watcher builds for this edit; its cargo may build this one too.
    ("cargohold: waiting for the build in progress", "waiting for another build (it may build this one too)"),
    ("cargohold: building", "compiling"),
    ("Blocking waiting for file lock on build directory", "waiting for another build (cargo's build lock)"),
    ("Blocking waiting for file lock on artifact directory", "waiting for another build (cargo's build lock)"),
    ("Blocking waiting for file lock on package cache", "waiting for another cargo (package cache lock)"),
    ("Blocking waiting for file lock", "waiting for another cargo's lock"),
    ("Finished", "finishing"),
    ("Compiling", "compiling"),
    ("Checking", "compiling"),
    ("Downloaded", "downloading crates"),
    ("Downloading", "downloading crates"),
    ("Locking", "resolving dependencies"),
    ("Updating", "updating the crate index"),
)


def parse_bar(text: t.Optional[str]) -> t.Optional[JsonDict]:
    """The last progress bar in ``text``: {done, total, active: [unit, ...]} (build) or {downloading: n}."""
    for line in reversed((text or "").splitlines()):
        match = BAR_RE.match(line.rstrip())
        if match:
            names = [n.strip().rstrip("\u2026").strip() for n in (match.group(3) or "").split(",")]
            return {"done": int(match.group(1)), "total": int(match.group(2)), "active": [n for n in names if n]}
        match = DOWNLOAD_RE.match(line)
        if match:
            return {"downloading": int(match.group(1))}
    return None


def describe(log: str, progress_bar: t.Optional[str] = None) -> t.Optional[str]:
    """One phrase for a build in progress, e.g. `compiled 34/50 (tokio, futures-util)`; None before cargo speaks.

    A bar is newer than any log line: cargo draws it only once it holds the build lock and has work to do.
    """
    parsed = parse_bar(progress_bar)
    if parsed and "done" in parsed:
        active = parsed["active"][:3]
        return f"compiled {parsed['done']}/{parsed['total']}" + (f" ({', '.join(active)})" if active else "")
    if parsed and parsed["downloading"]:  # `Downloading 0 crates` is cargo's last word on downloads: the log says more
        return f"downloading {parsed['downloading']} crate{'s' if parsed['downloading'] != 1 else ''}"
    for line in reversed(log.splitlines()):
        stripped = line.strip()
        for prefix, words in PHASES:
            if stripped.startswith(prefix):
                if prefix in ("Compiling", "Checking"):
                    name = stripped.split()[1] if len(stripped.split()) > 1 else ""
                    return f"compiling {name}".rstrip()
                return words
    return None


def clock(seconds: float) -> str:
    """Elapsed time as m:ss (h:mm:ss past an hour)."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def phrase(row: JsonDict) -> str:
    """What one service that is not ready yet is doing, for the progress line."""
    if row.get("progress"):
        return str(row["progress"])
    if row.get("detail") and row.get("status") in ("building", "starting"):
        return f"{row['status']}: {row['detail']}" if row["status"] == "starting" else str(row["detail"])
    return str(row.get("status") or "starting")


def stack_line(rows: t.Sequence[JsonDict], seconds: float) -> str:
    """One line for the whole stack while it comes up, services with the same phrase grouped, e.g.

    `1:05 0/4 serving; api: compiled 34/50 (tokio, hyper); auth, billing, notify: waiting for another build ...`
    """
    waited = [r for r in rows if r.get("kind", "service") != "tool"]
    ready = [r for r in waited if r.get("ready")]
    groups: t.Dict[str, t.List[str]] = {}
    for row in waited:
        if not row.get("ready"):
            groups.setdefault(phrase(row), []).append(str(row["service"]))
    parts = [f"{', '.join(names)}: {words}" for words, names in groups.items()]
    return "; ".join([f"{clock(seconds)} {len(ready)}/{len(waited)} serving"] + parts)


def same_news(previous: t.Optional[str], line: str) -> bool:
    """Whether two progress lines differ only in their clock (then the second is not worth printing)."""
    if previous is None:
        return False
    return previous.split(" ", 1)[-1] == line.split(" ", 1)[-1]


def table(rows: t.Sequence[t.Sequence[t.Any]], header: t.Sequence[str]) -> t.List[str]:
    """Rows laid out under header with their columns lined up, one string a line (None shows as `-`)."""
    lines = [list(header)] + [["-" if cell is None else str(cell) for cell in row] for row in rows]
    if any(len(line) != len(header) for line in lines):
        raise ValueError(f"table: every row needs {len(header)} cells, one per header column")
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]


def report(services: t.Sequence[JsonDict], volumes: t.Optional[t.Sequence[JsonDict]] = None) -> t.List[str]:
    """The lines printed after every command: the service table and, when asked for, the volume table
    (sizes as ansible.builtin.human_readable gives them, `-` for one the engine has not computed yet). Made by
    the module, so a daily command spends no templating on it. Nothing when there is nothing to show (down)."""
    if not services and not volumes:
        return []
    lines = table([[r["service"], r["status"], r["address"], r["container"], r["detail"]] for r in services],
                  ["SERVICE", "STATUS", "ADDRESS", "CONTAINER", "DETAIL"])
    if volumes:
        sizes = [[v["name"], bytes_to_human(v["size"]) if v["size"] >= 0 else None] for v in volumes]
        lines += [""] + table(sizes, ["VOLUME", "SIZE"])
    return lines
