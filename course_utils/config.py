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


def pick(*, ci, cpu, gpu):
    """Return the value for the active profile: ``pick(ci=1, cpu=10, gpu=100)``."""
    return {"ci": ci, "cpu": cpu, "gpu": gpu}[profile()]


# ----------------------------------------------------------------------------- paths

def home() -> Path:
    """Where checkpoints, generated data and run logs live.

    ``COURSE_HOME`` moves them all (on Colab, point it at your Google Drive so
    checkpoints survive a runtime reset). By default it is the repository root.
    """
    env = os.environ.get("COURSE_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parent.parent


def checkpoints_dir() -> Path:
    # One folder per profile: a quick `ci` test run never overwrites the
    # learner's `cpu` checkpoints.
    return home() / "checkpoints" / profile()


def data_dir() -> Path:
    return home() / "data" / profile()


def runs_dir() -> Path:
    return home() / "runs" / profile()


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
        print(f"device   : {dev}   threads: {info.threads}")
        print(f"seed     : {seed}")
        print(f"home     : {info.home}")
        print(
            f"versions : python {platform.python_version()}, torch {torch.__version__}, "
            f"numpy {np.__version__}, matplotlib {matplotlib.__version__}"
        )
    return info
