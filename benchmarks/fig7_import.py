"""Figure 7: start-up cost - importing the package, and the command's first output.

Each measurement runs in a fresh interpreter (an import is only cold once per process),
with this checkout first on ``sys.path``:

* ``python -c pass``: the interpreter's own start, the unit of the ratios;
* ``import mixpeek_openai``: timed inside the child with ``perf_counter``, with the
  modules it loaded and whether ``openai`` / ``mixpeek`` / ``pydantic`` came with it;
* ``from mixpeek_openai import MixpeekTools``: what building tools needs first;
* the command's first output: wall time from starting ``python -m mixpeek_openai.cli
  demo`` to its first line on stdout (the child is then stopped), and ``--help`` to exit;
* references: ``import openai`` and ``import mixpeek`` (what a lazy import avoids).

Goal: ``import mixpeek_openai`` within 100 ms, loading neither ``openai`` nor ``mixpeek``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._backend import Samples
from benchmarks._report import Figure, Settings, Stat, fmt, fmt_ratio

__all__ = ["run"]

TITLE = "Start-up: import time and the command's first output"
GOAL = "import mixpeek_openai <= 100 ms, without openai or mixpeek"
GOAL_MS = 100.0
ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("openai", "mixpeek", "pydantic")

_TIMED_IMPORT = """
import json, sys, time
before = set(sys.modules)
start = time.perf_counter()
exec({statement!r})
ms = (time.perf_counter() - start) * 1000
new = set(sys.modules) - before
loaded = {{h: h in sys.modules for h in {heavy!r}}}
print(json.dumps({{"ms": ms, "modules": len(new), "loaded": loaded}}))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for key in ("OPENAI_API_KEY", "MIXPEEK_API_KEY", "MIXPEEK_NAMESPACE"):
        env.pop(key, None)
    return env


def _timed_import(statement: str) -> dict[str, Any]:
    code = _TIMED_IMPORT.format(statement=statement, heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=_env(),
        cwd=ROOT,
        timeout=300,
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _wall_to_exit(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        check=True,
        env=_env(),
        cwd=ROOT,
        timeout=300,
    )
    return (time.perf_counter() - start) * 1000


def _wall_to_first_line(argv: list[str]) -> float:
    start = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_env(),
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        elapsed = (time.perf_counter() - start) * 1000
        proc.kill()  # only the first output is measured
        proc.wait(timeout=30)
    if not line:
        raise RuntimeError(f"{argv} printed nothing")
    return elapsed


def run(settings: Settings, samples: Samples) -> Figure:
    """Measure figure 7."""
    reps = settings.pick(7, 1)
    ms: dict[str, list[float]] = {
        k: [] for k in ("start", "package", "tools", "demo", "help", "openai", "mixpeek")
    }
    facts: dict[str, dict[str, Any]] = {}
    for _ in range(reps):
        ms["start"].append(_wall_to_exit(["-c", "pass"]))
        for key, statement in (
            ("package", "import mixpeek_openai"),
            ("tools", "from mixpeek_openai import MixpeekTools"),
            ("openai", "import openai"),
            ("mixpeek", "import mixpeek"),
        ):
            result = _timed_import(statement)
            ms[key].append(float(result["ms"]))
            facts[key] = result
        ms["demo"].append(_wall_to_first_line(["-m", "mixpeek_openai.cli", "demo"]))
        ms["help"].append(_wall_to_exit(["-m", "mixpeek_openai.cli", "--help"]))

    stats = {k: Stat.of(v, "ms") for k, v in ms.items()}
    package = facts["package"]
    heavy_loaded = [h for h in ("openai", "mixpeek") if package["loaded"][h]]
    met = stats["package"].median <= GOAL_MS and not heavy_loaded
    start = stats["start"].median
    package_ms = stats["package"].median

    def loaded(key: str) -> str:
        names = [h for h in HEAVY if facts[key]["loaded"][h]]
        return f"{facts[key]['modules']:,} modules" + (f", with {'/'.join(names)}" if names else "")

    notes = [
        "Each number is a fresh interpreter; the command's first output includes the "
        f"interpreter's own start ({fmt(start)} ms here).",
    ]
    if heavy_loaded or stats["package"].median > GOAL_MS:
        notes.append(
            f"Missed: import mixpeek_openai took {stats['package'].short()} "
            f"(goal {GOAL_MS:.0f} ms) and loaded {loaded('package')}."
        )
    details = [
        f"interpreter start (python -c pass): {stats['start'].text()}",
        f"import mixpeek_openai: {stats['package'].text()}; {loaded('package')}",
        f"from mixpeek_openai import MixpeekTools: {stats['tools'].text()}; {loaded('tools')}",
        f"mixpeek-openai demo, first line on stdout: {stats['demo'].text()}",
        f"mixpeek-openai --help, to exit: {stats['help'].text()}",
        f"import openai: {stats['openai'].text()}; {loaded('openai')}",
        f"import mixpeek: {stats['mixpeek'].text()}; {loaded('mixpeek')}",
        f"{reps} fresh interpreters per row.",
    ]
    return Figure(
        key="7",
        title=TITLE,
        ours=(
            f"import {stats['package'].short()}; MixpeekTools {stats['tools'].short()}; "
            f"demo's first line {stats['demo'].short()}; --help {stats['help'].short()}"
        ),
        peers=(
            f"import openai {stats['openai'].short()}; import mixpeek "
            f"{stats['mixpeek'].short()}; python -c pass {stats['start'].short()}"
        ),
        ratios=(
            f"import / import mixpeek {fmt_ratio(package_ms / stats['mixpeek'].median)}; "
            f"demo's first line / interpreter start {fmt_ratio(stats['demo'].median / start)}"
        ),
        goal=GOAL,
        met=None if settings.smoke else met,
        notes=notes,
        details=details,
        data={
            "repetitions": reps,
            "ms": {k: s.__dict__ for k, s in stats.items()},
            "loaded": {k: v["loaded"] for k, v in facts.items()},
            "modules": {k: v["modules"] for k, v in facts.items()},
        },
    )
