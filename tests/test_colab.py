"""Colab: one repository address for every install cell and badge, checkpoints never in
site-packages, and the install cell itself run as Colab would run it, offline, in a scratch venv."""
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import types
from pathlib import Path

import pytest

import course_utils
from course_utils import colab, config

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- one address, one version

def test_every_notebook_and_the_readme_agree_with_the_one_address():
    assert colab.check() == []


def test_pyproject_version_is_the_package_version():
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^version = "([^"]+)"', text, re.MULTILINE).group(1) == course_utils.__version__


def test_the_install_cell_pins_the_package_version(monkeypatch):
    cell = colab.install_cell()
    assert f"git+{colab.repo_url()}@v{course_utils.__version__}" in cell
    monkeypatch.setattr(colab, "__version__", "9.9.9")  # a new release without set-repo ...
    assert "@v9.9.9" in colab.install_cell()
    assert any("install cell differs" in p for p in colab.check())  # ... is caught


@pytest.mark.parametrize("given", ["https://github.com/acme/llm-course", "https://github.com/acme/llm-course.git",
                                   "git@github.com:acme/llm-course.git", "github.com/acme/llm-course/"])
def test_repository_addresses_are_normalised(given):
    assert colab.normalise_repo(given) == "https://github.com/acme/llm-course"


@pytest.mark.parametrize("given", ["https://gitlab.com/acme/llm-course", "https://github.com/acme",
                                   "https://github.com/acme/llm course", "file:///tmp/repo"])
def test_addresses_colab_cannot_open_are_refused(given):
    with pytest.raises(colab.ColabSetupError, match="GitHub"):
        colab.normalise_repo(given)


@pytest.fixture
def repo_copy(tmp_path, monkeypatch):
    """pyproject.toml, README.md and the notebooks, copied, with colab pointed at the copy."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, root / name)
    monkeypatch.setattr(colab, "REPO_ROOT", root)
    monkeypatch.setattr(colab, "PYPROJECT", root / "pyproject.toml")
    monkeypatch.setattr(colab, "README", root / "README.md")
    return root


def test_set_repo_rewrites_every_install_cell_and_badge(repo_copy):
    old = colab.repo_url()
    changed = colab.set_repo("git@github.com:acme/llm-course.git")
    assert colab.repo_url() == "https://github.com/acme/llm-course"
    notebooks = sorted((repo_copy / "notebooks").glob("*.ipynb"))
    assert set(changed) == {repo_copy / "pyproject.toml", repo_copy / "README.md", *notebooks}
    for path in notebooks:
        text = path.read_text(encoding="utf-8")
        assert "git+https://github.com/acme/llm-course@v" in text and old not in text, path.name
    readme = (repo_copy / "README.md").read_text(encoding="utf-8")
    old_path = old.removeprefix("https://github.com/")
    assert f"colab.research.google.com/github/{old_path}/" not in readme
    assert readme.count("colab.research.google.com/github/acme/llm-course/blob/v") == len(notebooks)
    assert colab.check() == []
    assert colab.set_repo("https://github.com/acme/llm-course") == []  # a second run changes nothing


def test_check_finds_a_notebook_that_drifted(repo_copy):
    path = repo_copy / "notebooks" / "03_transformer.ipynb"
    path.write_text(path.read_text(encoding="utf-8").replace("@v0", "@main-v0"), encoding="utf-8")
    assert [p for p in colab.check() if p.startswith("03_transformer.ipynb")]


def test_set_repo_refuses_a_bad_address_and_changes_nothing(repo_copy):
    before = {p: p.read_bytes() for p in repo_copy.rglob("*") if p.is_file()}
    assert colab.main(["set-repo", "https://example.com/x/y"]) == 2
    assert {p: p.read_bytes() for p in repo_copy.rglob("*") if p.is_file()} == before


# ----------------------------------------------------------------------------- COURSE_HOME on Colab

@pytest.fixture
def fake_colab(tmp_path, monkeypatch):
    """This process plays Colab: google.colab is imported, /content is a scratch folder, and Drive
    mounts there (or refuses, when ``fake_colab.refuse`` is set)."""
    root = tmp_path / "content"
    root.mkdir()
    monkeypatch.setenv("COURSE_COLAB_ROOT", str(root))
    monkeypatch.delenv("COURSE_HOME", raising=False)
    state = types.SimpleNamespace(root=root, refuse=False, mounts=0)

    def mount(mountpoint):
        state.mounts += 1
        if state.refuse:
            raise RuntimeError("the user declined")
        (Path(mountpoint) / "MyDrive").mkdir(parents=True)

    google = types.ModuleType("google.colab")
    google.drive = types.SimpleNamespace(mount=mount)
    monkeypatch.setitem(sys.modules, "google.colab", google)
    return state


def test_off_colab_the_home_is_still_the_repository(monkeypatch):
    monkeypatch.delenv("COURSE_HOME", raising=False)
    assert not config.in_colab()
    assert config.home() == REPO
    assert colab.keep_on_drive() is None


def test_on_colab_without_drive_the_home_is_the_runtime_disk(fake_colab):
    assert config.in_colab()
    assert config.home() == fake_colab.root / "course_home"
    assert "site-packages" not in str(config.home()) and Path(course_utils.__file__).parent.parent not in (
        config.home(), *config.home().parents)


def test_on_colab_keep_on_drive_mounts_drive_and_the_home_moves_there(fake_colab, capsys):
    home = colab.keep_on_drive()
    assert home == fake_colab.root / "drive" / "MyDrive" / colab.DRIVE_FOLDER == config.home()
    assert config.checkpoints_dir() == home / "checkpoints" / "ci"
    assert "on Google Drive" in capsys.readouterr().out
    colab.keep_on_drive()
    assert fake_colab.mounts == 1  # already mounted: not asked again


def test_on_colab_a_refused_drive_leaves_the_runtime_disk(fake_colab, capsys):
    fake_colab.refuse = True
    assert colab.keep_on_drive() == fake_colab.root / "course_home"
    out = capsys.readouterr().out
    assert "not mounted" in out and "lost when it ends" in out


def test_an_explicit_course_home_wins_on_colab(fake_colab, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_HOME", str(tmp_path / "mine"))
    assert config.home() == tmp_path / "mine"


# ----------------------------------------------------------------------------- the install cell, run as on Colab

# Runs in the scratch venv: the kernel of a Colab runtime (google.colab imported, Drive mountable
# under COURSE_COLAB_ROOT), which runs the install cell exactly as the notebooks hold it.
PLAY_COLAB = r'''
import json, os, sys, types
from pathlib import Path

def mount(mountpoint):
    if os.environ.get("FAKE_DRIVE") == "refuse":
        raise RuntimeError("the user declined")
    (Path(mountpoint) / "MyDrive").mkdir(parents=True)

google, colab = types.ModuleType("google"), types.ModuleType("google.colab")
google.__path__, colab.drive = [], types.SimpleNamespace(mount=mount)
sys.modules.update({"google": google, "google.colab": colab})

from IPython.core.interactiveshell import InteractiveShell
result = InteractiveShell.instance().run_cell(Path(sys.argv[1]).read_text())
if not result.success:
    sys.exit(3)
import course_utils
from course_utils import config
print("RESULT " + json.dumps({"file": course_utils.__file__, "version": course_utils.__version__,
                              "home": str(config.home()), "checkpoints": str(config.checkpoints_dir())}))
'''


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The working tree as a git repository tagged with this version: what GitHub would serve."""
    tmp = tmp_path_factory.mktemp("colab_install")
    repo = tmp / "repo"
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "release"],
                 ["tag", colab.release_ref()]):
        subprocess.run(git + args, cwd=repo, check=True, capture_output=True)
    script = tmp / "play_colab.py"
    script.write_text(PLAY_COLAB)
    return types.SimpleNamespace(repo=repo, script=script)


@pytest.fixture
def runtime(published, tmp_path):
    """A fresh Colab runtime: a scratch venv that sees the course's dependencies but not the course."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # torch, numpy, IPython, pip and setuptools from the course's own environment, added as a plain
    # folder: its .pth files (the editable install of course_utils among them) are not run.
    (site / "course_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return types.SimpleNamespace(tmp=tmp_path, repo=published.repo, script=published.script,
                                 python=venv / "bin" / "python", site=site)


def run_install_cell(runtime, cell: str, name: str, **env):
    (runtime.tmp / f"{name}.py").write_text(cell)
    root = runtime.tmp / f"content-{name}"
    root.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(runtime.tmp)),
           "COURSE_COLAB_ROOT": str(root), "COURSE_PROFILE": "ci", "TQDM_DISABLE": "1",
           # Offline and quick: no index, no dependencies (they are visible already), no isolated build
           # environment (pip reads PIP_NO_BUILD_ISOLATION=0 as --no-build-isolation), and no attempt to
           # replace the course install of the environment the dependencies come from.
           "PIP_NO_INDEX": "1", "PIP_NO_DEPS": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_IGNORE_INSTALLED": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", **env}
    run = subprocess.run([str(runtime.python), str(runtime.script), str(runtime.tmp / f"{name}.py")],
                         cwd=runtime.tmp, env=env, capture_output=True, text=True, timeout=600)
    found = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    return run, (json.loads(found[0][7:]) if found else None), root


def test_the_install_cell_installs_the_pinned_version_and_keeps_checkpoints_on_drive(runtime):
    cell = colab.install_cell(url=f"file://{runtime.repo}")
    assert cell.replace(f"file://{runtime.repo}", colab.repo_url()) == colab.install_cell()  # the notebooks' cell
    run, result, root = run_install_cell(runtime, cell, "drive")
    assert run.returncode == 0 and result, run.stdout + run.stderr
    assert Path(result["file"]).is_relative_to(runtime.site)  # installed here, importable at once
    assert result["version"] == course_utils.__version__
    assert result["home"] == str(root / "drive" / "MyDrive" / colab.DRIVE_FOLDER)
    assert result["checkpoints"] == str(root / "drive" / "MyDrive" / colab.DRIVE_FOLDER / "checkpoints" / "ci")
    assert "on Google Drive" in run.stdout


def test_without_drive_checkpoints_go_to_the_runtime_disk_not_site_packages(runtime):
    run, result, root = run_install_cell(runtime, colab.install_cell(url=f"file://{runtime.repo}"),
                                         "no_drive", FAKE_DRIVE="refuse")
    assert run.returncode == 0 and result, run.stdout + run.stderr
    assert result["home"] == str(root / "course_home")
    assert "site-packages" not in result["home"]


def test_an_install_cell_pinned_to_a_missing_version_fails(runtime):
    run, result, _ = run_install_cell(runtime, colab.install_cell(url=f"file://{runtime.repo}", ref="v0.0.0-missing"),
                                      "missing_tag")
    assert run.returncode == 3 and result is None
