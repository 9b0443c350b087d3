"""Inject a fault, then time what follows: await.py SPEC-JSON.

SPEC: {"timeout": seconds (each step), "interval": seconds, "inject": [argv...] (optional, run at t0),
       "since_mtime": path (optional: t0 is that file's modification time, e.g. the edit that caused the fault),
       "steps": [{"file": path, "match": regex} | {"http": url, "match": regex}, ...]}.
A step may add "above": N: then the regex's first group must be a number above N (a growing restart count).
Steps are awaited in order; each records the seconds since t0 and what matched. Prints one JSON object:
{"ok": bool, "t0": epoch, "inject": {...}, "steps": [{"seconds", "value"}], "error": text}. Every wait is bounded.
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request


def read_file(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError as exc:
        return f"<{exc.strerror}>"


def read_http(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return f"{answer.status} {answer.read().decode('utf-8', 'replace')}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.read().decode('utf-8', 'replace')}"
    except (OSError, ValueError) as exc:
        return f"<{exc}>"


def main():
    spec = json.loads(sys.argv[1])
    timeout = float(spec.get("timeout", 60))
    interval = float(spec.get("interval", 0.05))
    out = {"ok": False, "steps": [], "error": ""}
    start = time.monotonic()
    out["t0"] = time.time()
    if spec.get("since_mtime"):
        out["t0"] = os.stat(spec["since_mtime"]).st_mtime
        start -= time.time() - out["t0"]
    if spec.get("inject"):
        done = subprocess.run(spec["inject"], capture_output=True, text=True, timeout=60, check=False)
        out["inject"] = {"rc": done.returncode, "stdout": done.stdout.strip(), "stderr": done.stderr.strip()}
        if done.returncode != 0:
            out["error"] = f"the fault could not be injected: {out['inject']}"
            print(json.dumps(out))
            return 1
    for step in spec["steps"]:
        pattern = re.compile(step["match"])
        deadline = time.monotonic() + timeout
        while True:
            value = read_file(step["file"]) if "file" in step else read_http(step["http"])
            found = pattern.search(value)
            if found and ("above" not in step or int(found.group(1)) > int(step["above"])):
                out["steps"].append({"seconds": round(time.monotonic() - start, 2), "value": value})
                break
            if time.monotonic() > deadline:
                where = step.get("file") or step.get("http")
                out["error"] = f"{where} did not match /{step['match']}/ within {timeout:g} s; last: {value!r}"
                print(json.dumps(out))
                return 1
            time.sleep(interval)
    out["ok"] = True
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
