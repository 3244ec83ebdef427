"""Every example script and notebook runs offline (no keys, no network).

Scripts run in-process (``runpy``, fast, one test each) and once more all together in a
fresh interpreter, as a user would run them. Notebooks run with nbclient on a kernel of
this interpreter (not whatever ``python3`` kernelspec the machine has).
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import nbformat
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
KEYS = ("OPENAI_API_KEY", "MIXPEEK_API_KEY", "MIXPEEK_NAMESPACE", "OPENAI_BASE_URL")


def offline_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in KEYS}


def test_the_examples_are_there() -> None:
    names = {p.name for p in SCRIPTS}
    assert {
        "chat_by_hand.py",
        "run_chat.py",
        "responses.py",
        "assistants_polling.py",
        "assistants_streaming.py",
        "async_fanout.py",
        "custom_model.py",
        "exploration.py",
    } <= names
    assert {p.name for p in NOTEBOOKS} >= {
        "quickstart.ipynb",
        "assistants.ipynb",
        "custom_models.ipynb",
    }


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_runs_offline(
    script: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", [str(script)])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "offline" in out
    assert "Answer" in out or "Found" in out


def test_scripts_run_in_a_fresh_interpreter() -> None:
    # One interpreter for all scripts: importing the mixpeek package takes seconds.
    runner = (
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(EXAMPLES)!r})\n"
        "for path in sys.argv[1:]:\n"
        "    sys.argv = [path]\n"
        "    runpy.run_path(path, run_name='__main__')\n"
        "    print('EXAMPLE-OK', path, flush=True)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", runner, *map(str, SCRIPTS)],
        capture_output=True,
        text=True,
        timeout=180,
        env=offline_env(),
        cwd=EXAMPLES,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.count("EXAMPLE-OK") == len(SCRIPTS)


def test_notebooks_are_committed_without_outputs() -> None:
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], path.name
                assert cell.execution_count is None, path.name


def _kernel_manager_class() -> Any:
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class ThisInterpreter(AsyncKernelManager):  # type: ignore[misc]
        """A kernel running this interpreter, whatever kernelspecs the machine has."""

        @property
        def kernel_spec(self) -> KernelSpec:
            return KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name="Python 3",
                language="python",
            )

    return ThisInterpreter


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_offline(notebook: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    for key in KEYS:  # the kernel inherits this environment
        monkeypatch.delenv(key, raising=False)
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb,
        kernel_manager_class=_kernel_manager_class(),
        timeout=120,
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    with warnings.catch_warnings():
        # jupyter_client's own deprecation notices (platformdirs, zmq) are not ours.
        warnings.simplefilter("ignore", DeprecationWarning)
        client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "offline" in text
