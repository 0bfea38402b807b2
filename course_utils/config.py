"""Profiles, paths, device and seeds: the few knobs every chapter shares.

A *profile* changes sizes and step counts, never code paths:

- ``ci``  : the smallest sizes that still run every line (for the test suite),
- ``cpu`` : the learner's default; each chapter takes minutes on a 2-core laptop,
- ``gpu`` : bigger model and data, for Colab or a workstation.

Choose one with the environment variable ``COURSE_PROFILE``. With none set, the
profile is ``gpu`` when CUDA is available and ``cpu`` otherwise.

Each module states its own sizes with :func:`pick`, e.g.
``vocab_size = pick(ci=512, cpu=2048, gpu=8192)``, so the three profiles of a
stage sit side by side where the stage is defined.

A *smoke run* (``COURSE_SMOKE=1``) keeps every shape of the profile (the world, the
vocabulary, the model, the context) and cuts only the amount of work: step counts, batch
sizes, evaluation and sample sizes, and the part of the crawl that is cleaned. A number that
a smoke run cuts says so where it is chosen, with the same code either way:

- ``pick(ci=30, cpu=800, gpu=4000, smoke=2)``: 2 steps in a smoke run of any profile;
- ``budget(200_000, smoke=1024)``: a size that is not per profile;
- ``probes[:budget(None, smoke=4)]``: every probe, or the first 4.

Shapes never have a smoke value. ``COURSE_PROFILE=gpu COURSE_SMOKE=1`` is how the tests
run the gpu profile's whole chain on a CPU in minutes (``tests/test_gpu_profile.py``,
``benchmarks/gpu_smoke.py``). A smoke run keeps its stages apart, in ``<profile>-smoke``
folders, so its checkpoints are never mistaken for real ones.
"""
from __future__ import annotations

import os
import platform
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PROFILES = ("ci", "cpu", "gpu")
DEFAULT_SEED = 1337


class ProfileError(ValueError):
    """An unknown value in COURSE_PROFILE."""


def profile() -> str:
    """The active profile, read from ``COURSE_PROFILE`` each time it is asked."""
    name = os.environ.get("COURSE_PROFILE", "").strip().lower()
    if not name:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ProfileError(
            f"COURSE_PROFILE={os.environ['COURSE_PROFILE']!r} is not a profile. "
            f"Valid profiles: {', '.join(PROFILES)} (ci = tiny, for tests; cpu = the laptop default; "
            "gpu = larger, for Colab or a workstation)."
        )
    return name


def pick(*, ci, cpu, gpu, smoke=None):
    """Return the value for the active profile: ``pick(ci=1, cpu=10, gpu=100)``.

    ``smoke``, if given, is the value in a smoke run instead (see :func:`budget`)."""
    value = {"ci": ci, "cpu": cpu, "gpu": gpu}[profile()]
    return value if smoke is None else budget(value, smoke=smoke)


def smoke_run() -> bool:
    """Is this a smoke run (``COURSE_SMOKE=1``): the profile's shapes with the least work?"""
    return os.environ.get("COURSE_SMOKE", "").strip() not in ("", "0")


def budget(full, *, smoke):
    """How much work to do: ``full``, or ``smoke`` in a smoke run (``COURSE_SMOKE=1``).

    For step counts, batch, evaluation and sample sizes only, never for shapes.
    ``items[:budget(None, smoke=4)]`` keeps every item, or the first 4 in a smoke run."""
    return smoke if smoke_run() else full


# ----------------------------------------------------------------------------- paths

def home() -> Path:
    """Where checkpoints, generated data and run logs live.

    ``COURSE_HOME`` moves them all. By default it is the repository root; on Colab, where the
    package sits in site-packages and vanishes with the runtime, it is a folder on Google Drive
    when Drive is mounted, else ``/content/course_home`` (see :mod:`course_utils.colab`).
    """
    env = os.environ.get("COURSE_HOME")
    if env:
        return Path(env).expanduser().resolve()
    if in_colab():
        from .colab import default_home

        return default_home()
    return Path(__file__).resolve().parent.parent


def _profile_folder() -> str:
    # One folder per profile: a quick `ci` test run never overwrites the learner's `cpu`
    # checkpoints, and a smoke run never overwrites (or passes for) a real one.
    return profile() + ("-smoke" if smoke_run() else "")


def checkpoints_dir() -> Path:
    return home() / "checkpoints" / _profile_folder()


def data_dir() -> Path:
    return home() / "data" / _profile_folder()


def runs_dir() -> Path:
    return home() / "runs" / _profile_folder()


def notebooks_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "notebooks"


# ----------------------------------------------------------------------------- device and seeds

def device() -> torch.device:
    """CUDA if present, else CPU. Apple's MPS only when asked (``COURSE_DEVICE=mps``),
    because some operations the course uses are still missing or slow there."""
    wanted = os.environ.get("COURSE_DEVICE", "").strip().lower()
    if wanted:
        if wanted == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("COURSE_DEVICE=cuda but no CUDA device is available.")
        if wanted == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise RuntimeError("COURSE_DEVICE=mps but MPS is not available on this machine.")
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = DEFAULT_SEED) -> None:
    """Seed Python, NumPy and PyTorch so a rerun gives the same numbers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def in_colab() -> bool:
    return "google.colab" in sys.modules


# ----------------------------------------------------------------------------- setup

@dataclass(frozen=True)
class Setup:
    profile: str
    device: torch.device
    threads: int
    seed: int
    home: Path


def setup(seed: int = DEFAULT_SEED, verbose: bool = True) -> Setup:
    """The first call of every notebook: check the profile, seed, and say where we run."""
    active = profile()  # raises a clear error for a bad COURSE_PROFILE
    dev = device()
    seed_everything(seed)
    info = Setup(profile=active, device=dev, threads=torch.get_num_threads(), seed=seed, home=home())
    if verbose:
        import matplotlib

        print(f"profile  : {active}   (set COURSE_PROFILE=ci|cpu|gpu to change)")
        if smoke_run():
            print("smoke run: the profile's shapes with the least work (COURSE_SMOKE=1); numbers mean nothing")
        print(f"device   : {dev}   threads: {info.threads}")
        print(f"seed     : {seed}")
        print(f"home     : {info.home}")
        print(
            f"versions : python {platform.python_version()}, torch {torch.__version__}, "
            f"numpy {np.__version__}, matplotlib {matplotlib.__version__}"
        )
    return info
