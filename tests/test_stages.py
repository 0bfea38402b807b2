"""The checkpoint chain must fail loudly and lose nothing."""
import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_model

from course_utils import config, stages


class TinyNet(torch.nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.embed = torch.nn.Embedding(10, width)
        self.head = torch.nn.Linear(width, 10, bias=False)
        self.head.weight = self.embed.weight  # tied, like the course's GPT


def save_tiny(name="base", width=4, tokenizer_text='{"tok": 1}', seed=0):
    torch.manual_seed(seed)
    net = TinyNet(width)
    files = {"model.safetensors": lambda p: save_model(net, str(p))}
    if tokenizer_text is not None:
        files["tokenizer.json"] = tokenizer_text
    stages.save_stage(name, files, meta={"model_config": {"width": width}, "metrics": {"loss": 1.5}})
    return net


def test_round_trip_keeps_weights_meta_and_ties():
    net = save_tiny()
    stage = stages.load_stage("base")
    assert stage.metrics == {"loss": 1.5} and stage.model_config == {"width": 4}
    assert stage.meta["profile"] == "ci" and stage.meta["parents"] == ["tokenizer", "clean"]
    fresh = TinyNet()
    stage.load_weights(fresh)
    assert torch.equal(fresh.embed.weight, net.embed.weight)
    assert fresh.head.weight is fresh.embed.weight


def test_missing_stage_names_the_notebook():
    with pytest.raises(stages.StageMissingError) as err:
        stages.load_stage("base")
    assert "04_pretraining.ipynb" in str(err.value) and "ensure_stage" in str(err.value)


def test_corrupted_file_is_detected():
    save_tiny()
    path = stages.stage_dir("base") / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(stages.StageCorruptError, match="checksum"):
        stages.load_stage("base")


def test_truncated_file_is_detected():
    save_tiny()
    path = stages.stage_dir("base") / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(stages.StageCorruptError, match="truncated"):
        stages.load_stage("base")


def test_unreadable_manifest_is_detected():
    save_tiny()
    (stages.stage_dir("base") / "stage.json").write_text("{not json")
    with pytest.raises(stages.StageCorruptError, match="unreadable"):
        stages.load_stage("base")


def test_mismatched_tokenizer_hash_is_detected():
    stages.save_stage("tokenizer", {"tokenizer.json": '{"tok": 2}'})
    save_tiny(tokenizer_text='{"tok": 1}')
    with pytest.raises(stages.StageMismatchError, match="different tokenizer"):
        stages.load_stage("base")
    stages.save_stage("tokenizer", {"tokenizer.json": '{"tok": 1}'})
    stages.load_stage("base")  # the same tokenizer again: fine


def test_mismatched_shape_is_detected():
    save_tiny(width=4)
    stage = stages.load_stage("base")
    with pytest.raises(stages.StageMismatchError, match="shape"):
        stage.load_weights(TinyNet(width=8))


def test_other_profile_is_detected(monkeypatch):
    save_tiny()
    manifest = stages.stage_dir("base") / "stage.json"
    meta = json.loads(manifest.read_text())
    meta["profile"] = "gpu"
    manifest.write_text(json.dumps(meta))
    with pytest.raises(stages.StageMismatchError, match="profile"):
        stages.load_stage("base")


def test_stage_from_an_older_recipe_is_detected_and_rebuilt(monkeypatch):
    """A learner who updates the course keeps their checkpoints; those made by an older data
    generator or recipe must not be used as if they were current."""
    save_tiny()
    stages.load_stage("base")  # current: fine
    newer = replace(stages.spec("base"), recipe_version=stages.spec("base").recipe_version + 1)
    monkeypatch.setitem(stages.STAGES, "base", newer)
    with pytest.raises(stages.StageMismatchError, match="04_pretraining.ipynb"):
        stages.load_stage("base")
    assert not stages.stage_exists("base")
    rebuilt = []
    monkeypatch.setattr(stages, "_builder", lambda name: lambda: rebuilt.append(name) or save_tiny(name))
    stages.ensure_stage("base")
    assert rebuilt[-1] == "base" and stages.load_stage("base").meta["recipe_version"] == newer.recipe_version


def test_interrupted_save_keeps_the_old_stage():
    original = save_tiny(seed=0)

    def crash(path):
        path.write_bytes(b"half a file")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stages.save_stage("base", {"model.safetensors": crash})
    stage = stages.load_stage("base")
    fresh = TinyNet()
    stage.load_weights(fresh)
    assert torch.equal(fresh.embed.weight, original.embed.weight)
    leftovers = [p.name for p in config.checkpoints_dir().iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_stop_between_renames_is_recovered():
    save_tiny()
    final = stages.stage_dir("base")
    final.rename(final.parent / ".old-base")  # as if stopped right after moving the old one aside
    assert stages.load_stage("base").metrics == {"loss": 1.5}


def test_ensure_stage_rebuilds_missing_parents_in_order(monkeypatch):
    built = []

    def fake_builder(name):
        def build():
            built.append(name)
            stages.save_stage(name, {"data.txt": name})
        return build

    monkeypatch.setattr(stages, "_builder", fake_builder)
    stages.save_stage("clean", {"data.txt": "clean"})
    stage = stages.ensure_stage("base")
    assert built == ["tokenizer", "base"]
    assert stage.name == "base"
    assert stages.ensure_stage("base").name == "base" and built == ["tokenizer", "base"]  # nothing rebuilt


def test_ensure_stage_moves_a_corrupt_stage_aside(monkeypatch):
    monkeypatch.setattr(stages, "_builder", lambda name: lambda: stages.save_stage(name, {"data.txt": "new"}))
    stages.save_stage("clean", {"data.txt": "old"})
    (stages.stage_dir("clean") / "data.txt").write_text("OLD")
    stages.ensure_stage("clean")
    aside = [p for p in stages.stage_dir("clean").parent.iterdir() if p.name.startswith("clean.corrupt-")]
    assert len(aside) == 1 and (aside[0] / "data.txt").read_text() == "OLD"


def test_unwritten_chapter_says_which_notebook_to_run(monkeypatch):
    monkeypatch.setitem(stages.STAGES, "future", stages.StageSpec(
        "future", "99_future.ipynb", (), "course_utils.not_written_yet:build"))
    with pytest.raises(stages.StageMissingError, match="99_future.ipynb"):
        stages.ensure_stage("future")


def test_status_lists_every_stage_with_its_state():
    save_tiny()
    rows = {row["stage"]: row for row in stages.status()}
    assert set(rows) == set(stages.STAGES)
    assert rows["base"]["state"] == "ready" and rows["clean"]["state"] == "missing"
