"""Every test runs in the `ci` profile with its own empty COURSE_HOME, so tests never touch
the learner's checkpoints and never depend on each other's files."""
import pytest
import torch

# Test models are tiny: one thread is faster than two for them (no synchronisation),
# and it keeps timings sane when the machine is busy.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_course_home(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_HOME", str(tmp_path / "course_home"))
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return tmp_path / "course_home"
