"""Helpers shared by the benchmark scripts: fresh-process timing, peak memory, tables."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


# Appended to each contender's RESULT line: its own peak resident memory. (The parent's
# RUSAGE_CHILDREN maximum only ever grows, so it cannot give one child's peak.)
PY_PEAK = "__import__('resource').getrusage(__import__('resource').RUSAGE_SELF).ru_maxrss // 1024"
R_PEAK = ('as.integer(sub("[^0-9]*([0-9]+).*", "\\\\1", grep("VmHWM", readLines("/proc/self/status"), '
          'value = TRUE))) %/% 1024')


def run(cmd: list[str], timeout: float | None = None, baseline: str | None = None) -> dict:
    """Run one contender in a fresh process; wall time and its RESULT line (with peak_mib).

    With ``baseline`` (a checkout of hierbayes), the process imports hierbayes from
    there instead (PYTHONPATH comes before the installed package), so an older
    version runs in the same run as this one and their times compare as ratios.
    """
    env = cwd = None
    if baseline is not None:
        env = {**os.environ, "PYTHONPATH": str(Path(baseline).resolve())}
        # `python -c` puts the working directory first on sys.path, ahead of PYTHONPATH:
        # run from this checkout, it would import this checkout's hierbayes, not the baseline's
        cwd = str(Path(baseline).resolve())
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        return {"status": f"stopped after {timeout:.0f} s", "wall_s": round(time.perf_counter() - t, 1)}
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        return {"status": "failed", "wall_s": round(wall, 2), "error": proc.stderr[-2000:]}
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT")), "RESULT {}")
    return {"status": "ok", "wall_s": round(wall, 2), **json.loads(line[len("RESULT "):])}


def python_peer(module: str, code: str, timeout: float | None = None) -> dict:
    """Run a Python peer in a fresh interpreter, or report that its package is missing."""
    if importlib.util.find_spec(module) is None:
        return {"status": "not installed"}
    return run([sys.executable, "-c", code], timeout)


def r_peer(code: str) -> dict:
    """Run an R peer through Rscript, or report that R is missing."""
    if shutil.which("Rscript") is None:
        return {"status": "Rscript not found"}
    return run(["Rscript", "-e", code])


def table(results: dict[str, dict], base: str, columns: list[tuple[str, str, str]]) -> str:
    """A markdown table; ``columns`` are (key, heading, format) beside wall time and ratio."""
    ref = results.get(base, {}).get("wall_s")
    head = ["contender", "status", "wall (s)", f"x {base}", *[h for _, h, _ in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        wall = r.get("wall_s")
        cells = [name, r["status"], f"{wall:.1f}" if wall else "",
                 f"{wall / ref:.2f}" if wall and ref and r["status"] == "ok" else ""]
        cells += [format(r[k], fmt) if k in r else "" for k, _, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def baseline_label(path: str) -> str:
    """``@ <commit>`` of a baseline checkout (or its folder name when it is not a git checkout)."""
    proc = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True)
    return f"@ {proc.stdout.strip() or Path(path).name}"


def save(name: str, record: dict) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(record, indent=2))
    return path
