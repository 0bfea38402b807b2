"""Prebuilt stages: pack every built stage into one archive, unpack it elsewhere, and refuse an
archive that is tampered with, truncated, of another profile, or that would write outside the
stage folders, leaving the stages already on disk as they were."""
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from course_utils import config, stages
from course_utils.stage_archive import MANIFEST, ArchiveError, pack, unpack

TOKENIZER = json.dumps({"merges": [[1, 2]], "note": "a stand-in tokenizer file"})


def build_fake_chain(weights: bytes = b"\x01\x02" * 500) -> dict[str, Path]:
    """Three stages as save_stage writes them (a data stage, the tokenizer, a model), without training."""
    stages.save_stage("clean", {"train.jsonl": '{"text": "The capital of France is Paris."}\n'})
    stages.save_stage("tokenizer", {stages.TOKENIZER_FILE: TOKENIZER})
    stages.save_stage("base", {stages.TOKENIZER_FILE: TOKENIZER, stages.WEIGHTS_FILE: weights},
                      meta={"metrics": {"val_loss": 1.5}})
    return {name: stages.stage_dir(name) for name in ("clean", "tokenizer", "base")}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def archive(tmp_path):
    build_fake_chain()
    path = tmp_path / "stages-ci.tar.gz"
    pack(path)
    return path


@pytest.fixture
def other_home(tmp_path, monkeypatch):
    """A second machine: another COURSE_HOME, with a different tokenizer stage already on disk."""
    home = tmp_path / "laptop"
    monkeypatch.setenv("COURSE_HOME", str(home))
    stages.save_stage("tokenizer", {stages.TOKENIZER_FILE: json.dumps({"merges": [], "note": "the laptop's own"})})
    return home


def rewrite(src: Path, dest: Path, change) -> Path:
    """Copy an archive member by member; ``change(name, data)`` returns new bytes, or None to drop it."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dest, "w:gz") as tout:
        for m in tin.getmembers():
            data = change(m.name, tin.extractfile(m).read())
            if data is not None:
                info = tarfile.TarInfo(m.name)
                info.size = len(data)
                tout.addfile(info, io.BytesIO(data))
    return dest


def assert_refused(path: Path, home: Path, match: str):
    before = snapshot(home)
    with pytest.raises(ArchiveError, match=match):
        unpack(path)
    assert snapshot(home) == before, "a refused archive changed the stages on disk"
    assert not list(home.glob(".unpack-*")), "a refused archive left its staging folder behind"


def test_pack_then_unpack_restores_every_stage_and_ensure_rebuilds_nothing(archive, other_home, monkeypatch):
    originals = {}
    monkeypatch.setenv("COURSE_HOME", str(archive.parent / "course_home"))  # the machine that packed
    for name in ("clean", "tokenizer", "base"):
        originals[name] = snapshot(stages.stage_dir(name))
    monkeypatch.setenv("COURSE_HOME", str(other_home))

    assert sorted(unpack(archive)) == ["base", "clean", "tokenizer"]

    def no_rebuild(name):
        raise AssertionError(f"ensure_stage tried to rebuild {name!r}")

    monkeypatch.setattr(stages, "_builder", no_rebuild)
    for name in ("clean", "tokenizer", "base"):
        assert snapshot(stages.stage_dir(name)) == originals[name]
        assert stages.build_plan(name) == []
        assert stages.ensure_stage(name).name == name
    assert stages.load_stage("base").metrics == {"val_loss": 1.5}
    assert stages.stage_dir("clean").parent == config.data_dir()  # the data stage goes to the data folder
    assert not list(other_home.glob(".unpack-*"))


def test_the_archive_lists_every_file_with_its_checksum(archive):
    with tarfile.open(archive, "r:gz") as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile(MANIFEST).read())
    assert manifest["profile"] == "ci" and set(manifest["stages"]) == {"clean", "tokenizer", "base"}
    listed = {f"{e['root']}/{name}/{f}" for name, e in manifest["stages"].items() for f in e["files"]}
    assert names == listed | {MANIFEST}
    assert "data/clean/train.jsonl" in names and "checkpoints/base/model.safetensors" in names


def test_pack_skips_stages_that_do_not_load(tmp_path):
    build_fake_chain()
    (stages.stage_dir("base") / stages.WEIGHTS_FILE).write_bytes(b"corrupted")
    manifest = pack(tmp_path / "a.tar.gz")
    assert set(manifest["stages"]) == {"clean", "tokenizer"}


def test_pack_with_nothing_built_says_what_to_run(tmp_path):
    with pytest.raises(ArchiveError, match="No built stages"):
        pack(tmp_path / "a.tar.gz")
    assert not (tmp_path / "a.tar.gz").exists()


def test_a_changed_byte_is_refused(archive, other_home):
    def flip(name, data):
        return data[:-1] + bytes([data[-1] ^ 1]) if name.endswith(stages.WEIGHTS_FILE) else data

    assert_refused(rewrite(archive, archive.with_name("tampered.tar.gz"), flip), other_home, "checksum")


def test_a_tampered_stage_manifest_is_refused(archive, other_home):
    def edit(name, data):
        if name == "checkpoints/base/stage.json":
            return data.replace(b'"val_loss": 1.5', b'"val_loss": 0.1')
        return data

    assert_refused(rewrite(archive, archive.with_name("tampered.tar.gz"), edit), other_home, "altered")


def test_a_truncated_archive_is_refused(archive, other_home):
    cut = archive.with_name("cut.tar.gz")
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert_refused(cut, other_home, "truncated")


def test_a_missing_or_unlisted_member_is_refused(archive, other_home):
    dropped = rewrite(archive, archive.with_name("dropped.tar.gz"),
                      lambda n, d: None if n.endswith(stages.WEIGHTS_FILE) else d)
    assert_refused(dropped, other_home, "does not match its own list")


def test_another_profiles_archive_is_refused(archive, other_home, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    stages.save_stage("tokenizer", {stages.TOKENIZER_FILE: TOKENIZER})  # something of cpu's own on disk
    assert_refused(archive, other_home, "profile 'ci'.*COURSE_PROFILE=ci")
    assert not stages.stage_dir("base").exists()


def test_a_stage_of_another_recipe_version_is_refused(archive, other_home):
    def older(name, data):
        if name == MANIFEST:
            manifest = json.loads(data)
            manifest["stages"]["base"]["recipe_version"] += 1
            return json.dumps(manifest).encode()
        return data

    assert_refused(rewrite(archive, archive.with_name("old.tar.gz"), older), other_home, "another version")


def crafted(path: Path, members: list[tarfile.TarInfo], datas: list[bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in zip(members, datas):
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "checkpoints/../../evil.txt",
                                  "checkpoints/base/../../../evil.txt", "checkpoints/base/sub/evil.txt",
                                  "checkpoints/base/..", "runs/base/evil.txt"])
def test_members_that_would_write_outside_the_stage_folders_are_refused(archive, other_home, name):
    with tarfile.open(archive, "r:gz") as tar:
        good = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    evil = tarfile.TarInfo(name)
    evil.size = 4
    path = crafted(archive.with_name("evil.tar.gz"), [m for m, _ in good] + [evil], [d for _, d in good] + [b"evil"])
    assert_refused(path, other_home, "outside the stage folders")
    assert not (other_home.parent / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


def test_links_are_refused(archive, other_home):
    link = tarfile.TarInfo("checkpoints/base/model.safetensors")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    path = crafted(archive.with_name("link.tar.gz"), [link], [b""])
    assert_refused(path, other_home, "not a plain file")


def test_the_command_line(archive, tmp_path):
    env = {**os.environ, "COURSE_HOME": str(tmp_path / "cli_home"), "COURSE_PROFILE": "ci"}
    run = subprocess.run([sys.executable, "-m", "course_utils.stages", "unpack", str(archive)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "restored 3 stages" in run.stdout and "base" in run.stdout
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not an archive")
    run = subprocess.run([sys.executable, "-m", "course_utils.stages", "unpack", str(bad)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 1 and "not an archive of stages" in run.stderr
