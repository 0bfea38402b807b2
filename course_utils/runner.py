"""Run the course headless: ``python -m course_utils.runner [notebook ...]`` (what ``make course`` calls).

Executes the notebooks in chapter order in the active profile, writes each executed copy to
``runs/<profile>/executed/`` and the wall time of each to ``runs/<profile>/times.json``.
The committed notebooks are never modified.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from . import config


def course_notebooks() -> list[Path]:
    return sorted(config.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def run_notebook(path: Path, out_dir: Path, timeout: int = 3600) -> float:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        seconds = time.perf_counter() - start
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / path.name)
    return seconds


def main(argv: list[str]) -> int:
    notebooks = [Path(a).resolve() for a in argv] or course_notebooks()
    out = config.runs_dir()
    times_path = out / "times.json"
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    print(f"Running {len(notebooks)} notebook(s) in profile '{config.profile()}'; executed copies go to {out / 'executed'}")
    for nb in notebooks:
        print(f"-> {nb.name} ...", flush=True)
        try:
            seconds = run_notebook(nb, out / "executed")
        except Exception as exc:  # report which chapter failed and where its output is
            print(f"FAILED {nb.name}: {type(exc).__name__}: {str(exc)[-2000:]}\n"
                  f"See the executed copy in {out / 'executed' / nb.name}")
            return 1
        times[nb.name] = round(seconds, 1)
        times_path.parent.mkdir(parents=True, exist_ok=True)
        times_path.write_text(json.dumps(times, indent=2, sort_keys=True))
        print(f"   done in {seconds / 60:.1f} min", flush=True)
    print(f"Wall times written to {times_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
