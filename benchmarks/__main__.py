"""``python -m benchmarks [--smoke] [--output DIR] [--only 1,3] [--update] [--reps N]``.

Runs every figure in this one process and writes ``RESULTS.md`` and ``results.json``.
Without ``--output`` a full run writes into ``benchmarks/``; a smoke run then writes into
a fresh temporary directory, so it never overwrites the committed results. With
``--update`` (and ``--only``), the figures run replace theirs in the existing
``results.json`` of the output directory and the others are kept, so a long benchmark can
be refreshed one figure at a time; each figure's ratios still come from one run.
``--reps`` overrides every figure's repetition count (fewer for a quick look on a busy
machine); ``--no-profile`` skips the pyinstrument profiles.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from benchmarks._backend import load_samples
from benchmarks._report import (
    Figure,
    Settings,
    machine_info,
    readme_table,
    update_readme,
    write_outputs,
)

FIGURES = (
    "fig1_dispatch",
    "fig2_fanout",
    "fig3_tokens",
    "fig4_assistants",
    "fig5_build",
    "fig6_throughput",
    "fig7_import",
)
HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny counts, no goal verdicts")
    parser.add_argument("--output", type=Path, help="directory for RESULTS.md and results.json")
    parser.add_argument("--only", help="comma-separated figure numbers, e.g. 1,3")
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the other figures of the existing results.json (with --only)",
    )
    parser.add_argument(
        "--reps", type=int, help="repetitions per figure instead of each figure's own count"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip pyinstrument profiles")
    return parser.parse_args(argv)


def _load_average() -> float | None:
    """The 1-minute load average, where the OS has one (a busy machine explains noise)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _kept_figures(out_dir: Path, smoke: bool, replaced: set[str]) -> tuple[list[Figure], float]:
    """Figures of an earlier run in ``out_dir`` that this run does not replace."""
    path = out_dir / "results.json"
    if not path.exists():
        return [], 0.0
    payload = json.loads(path.read_text(encoding="utf-8"))
    if bool(payload.get("smoke")) != smoke:
        raise SystemExit(f"--update: {path} is from a {'smoke' if not smoke else 'full'} run")
    kept = [Figure(**f) for f in payload.get("figures", []) if f.get("key") not in replaced]
    return kept, float(sum(f.seconds for f in kept))


def _failed(key: str, module: str, exc: BaseException) -> Figure:
    return Figure(
        key=key,
        title=module,
        ours="error",
        peers="",
        ratios="",
        goal="",
        met=False,
        notes=[f"The figure raised {type(exc).__name__}: {exc}"],
        details=traceback.format_exception_only(type(exc), exc),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; returns the process exit code (1 if a figure raised)."""
    args = _parse(argv)
    settings = Settings(
        smoke=args.smoke, profile=not args.no_profile and not args.smoke, repetitions=args.reps
    )
    wanted = {s.strip() for s in args.only.split(",")} if args.only else None
    if args.output is not None:
        out_dir = args.output
    elif args.smoke:
        out_dir = Path(tempfile.mkdtemp(prefix="mixpeek-openai-bench-"))
    else:
        out_dir = HERE
    started = time.perf_counter()
    samples = load_samples()
    figures: list[Figure] = []
    failed = False
    for index, module_name in enumerate(FIGURES, start=1):
        key = str(index)
        if wanted is not None and key not in wanted:
            continue
        print(f"[{key}/{len(FIGURES)}] {module_name} ...", flush=True)
        t0 = time.perf_counter()
        load = _load_average()
        try:
            module = importlib.import_module(f"benchmarks.{module_name}")
            figure: Figure = module.run(settings, samples)
        except Exception as exc:
            failed = True
            traceback.print_exc()
            figure = _failed(key, module_name, exc)
        figure.seconds = time.perf_counter() - t0
        if load is not None:
            figure.details.append(
                f"Load average (1 min) when the figure started: {load:.1f} on "
                f"{os.cpu_count()} cores (other processes share the machine)."
            )
        figures.append(figure)
        print(
            f"    {figure.ours} | {figure.ratios} | met: {figure.verdict} ({figure.seconds:.1f} s)",
            flush=True,
        )
    seconds = time.perf_counter() - started
    if args.update:
        kept, kept_seconds = _kept_figures(out_dir, args.smoke, {f.key for f in figures})
        figures = sorted([*kept, *figures], key=lambda f: int(f.key))
        seconds += kept_seconds
    for path in write_outputs(figures, out_dir, smoke=args.smoke, seconds=seconds):
        print(f"wrote {path}")
    if out_dir == HERE and not args.smoke and len(figures) == len(FIGURES):
        # The committed results and README's table come from the same full run.
        table = readme_table(figures, machine_info(), seconds)
        if update_readme(README, table):
            print(f"wrote the table in {README}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
