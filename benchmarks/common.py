"""What the benchmarks share: logging, the error that stops a run, latencies in milliseconds, and the description of
the machine, the command and the code that the recorded results carry."""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


class BenchError(Exception):
    """The run cannot give an honest figure (wrong data, a failed call, a missing service): it stops."""


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def milliseconds(values: Sequence[float] | np.ndarray, per_second: float = 1e9) -> np.ndarray:
    """Durations (nanoseconds by default; ``per_second=1`` for seconds) in milliseconds."""
    return np.asarray(values, dtype=np.float64) * (1e3 / per_second)


def percentile(values: Sequence[float] | np.ndarray, q: float, per_second: float = 1e9) -> float:
    """The ``q`` percentile of these durations, in milliseconds."""
    return float(np.percentile(milliseconds(values, per_second), q))


def machine(packages: Iterable[str] = (), *extra: str) -> str:
    """Cores, CPU, memory, system, Python and the versions of ``packages`` (then anything in ``extra``)."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    memory = next((int(line.split()[1]) // 2**20 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    parts = [f"{os.cpu_count()} cores ({cpu}), {memory} GiB", f"{platform.system()} {platform.release()}",
             f"Python {platform.python_version()}", *(f"{p} {version(p)}" for p in packages), *extra]
    return ", ".join(parts)


def loadavg() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def command_line() -> str:
    """How this run was started, relative to the repository."""
    python = Path(sys.executable)
    shown = os.path.relpath(python, ROOT) if python.is_relative_to(ROOT) else str(python)
    return shlex.join([shown, os.path.relpath(Path(sys.argv[0]).resolve(), ROOT), *sys.argv[1:]])


def revision() -> str:
    """The code measured: the commit, and which tracked files differ from it (with a digest of the difference)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""
    commit = git("rev-parse", "--short", "HEAD").strip()
    if not commit:
        return "unknown"
    code = ["--", ".", ":(exclude)benchmarks/results"]  # what was measured, not what it wrote
    diff = git("diff", "HEAD", *code)
    if not diff:
        return commit
    paths = git("diff", "HEAD", "--name-only", *code).split()
    shown = ", ".join(paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
    return f"{commit} with uncommitted changes to {shown} (diff {hashlib.sha256(diff.encode()).hexdigest()[:10]})"
