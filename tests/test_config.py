import pytest
import torch

from course_utils import config


def test_profile_from_environment(monkeypatch):
    for name in config.PROFILES:
        monkeypatch.setenv("COURSE_PROFILE", name)
        assert config.profile() == name
    monkeypatch.setenv("COURSE_PROFILE", " CPU ")
    assert config.profile() == "cpu"


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "laptop")
    with pytest.raises(config.ProfileError) as err:
        config.profile()
    message = str(err.value)
    assert "laptop" in message and all(p in message for p in config.PROFILES)
    with pytest.raises(config.ProfileError):
        config.setup(verbose=False)


def test_default_profile_follows_cuda(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE")
    assert config.profile() == ("gpu" if torch.cuda.is_available() else "cpu")


def test_pick_chooses_the_active_profile(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    assert config.pick(ci=1, cpu=2, gpu=3) == 2
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    assert config.pick(ci=1, cpu=2, gpu=3) == 1


def test_paths_live_under_course_home_and_split_by_profile(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    assert config.checkpoints_dir() == tmp_path / "checkpoints" / "ci"
    assert config.data_dir() == tmp_path / "data" / "ci"
    assert config.runs_dir() == tmp_path / "runs" / "ci"
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    assert config.checkpoints_dir() == tmp_path / "checkpoints" / "cpu"


def test_device_is_cpu_without_cuda_and_mps_only_when_asked(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert config.device().type == "cpu"
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="CUDA"):
        config.device()


def test_seed_everything_repeats_random_numbers():
    config.seed_everything(7)
    first = torch.rand(3)
    config.seed_everything(7)
    assert torch.equal(first, torch.rand(3))


def test_setup_prints_profile_device_and_versions(capsys):
    info = config.setup(seed=3)
    out = capsys.readouterr().out
    assert info.profile == "ci" and info.seed == 3
    for word in ("profile", "device", "threads", "torch"):
        assert word in out


def test_a_smoke_run_cuts_budgets_and_keeps_shapes(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    monkeypatch.delenv("COURSE_SMOKE", raising=False)
    assert not config.smoke_run()
    assert config.pick(ci=1, cpu=2, gpu=3, smoke=0) == 3 and config.budget(200, smoke=4) == 200
    assert [1, 2, 3][:config.budget(None, smoke=1)] == [1, 2, 3]
    monkeypatch.setenv("COURSE_SMOKE", "1")
    assert config.smoke_run() and config.profile() == "gpu"
    assert config.pick(ci=1, cpu=2, gpu=3, smoke=0) == 0 and config.budget(200, smoke=4) == 4
    assert config.pick(ci=1, cpu=2, gpu=3) == 3  # a shape: no smoke value, the profile's own
    assert [1, 2, 3][:config.budget(None, smoke=1)] == [1]
    monkeypatch.setenv("COURSE_SMOKE", "0")
    assert not config.smoke_run()


def test_a_smoke_run_keeps_its_stages_apart(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    monkeypatch.setenv("COURSE_SMOKE", "1")
    assert config.checkpoints_dir() == tmp_path / "checkpoints" / "gpu-smoke"
    assert config.data_dir() == tmp_path / "data" / "gpu-smoke"
    monkeypatch.delenv("COURSE_SMOKE")
    assert config.checkpoints_dir() == tmp_path / "checkpoints" / "gpu"
