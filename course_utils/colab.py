"""Google Colab: the install cell of every notebook, the README's "Open in Colab" badges, and where
checkpoints go on Colab.

The repository's address is written in one place, ``[project.urls] Repository`` in
``pyproject.toml``. The install cells and the badges are made from it and from the package's
version, and one command rewrites them all::

    python -m course_utils.colab set-repo https://github.com/<owner>/<repo>
    python -m course_utils.colab check        # exit 1 if a notebook or the README disagrees

The install cell installs the tag ``v<version>`` of that repository, the package the notebook was
written for: publishing a version means pushing that tag (``git tag v0.1.0 && git push --tags``).
Raising the version in the package makes ``check`` (and ``tests/test_colab.py``) fail until
``set-repo`` has rewritten the cells.

On Colab the package lives in site-packages, which vanishes with the runtime, and each notebook
runs on its own runtime. So checkpoints go to Google Drive when it is mounted (the next chapter
then finds them), else to ``/content/course_home``: see :func:`default_home` and
:func:`keep_on_drive`, the one line every chapter's install cell calls.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from . import __version__, config

PACKAGE = "course-utils"
DRIVE_FOLDER = "chat-course"  # under MyDrive
REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = REPO_ROOT / "pyproject.toml"
README = REPO_ROOT / "README.md"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# The first line of every install cell: how set-repo finds the cell to rewrite (the older wording
# too, so a notebook copied from an older chapter is brought up to date).
INSTALL_MARKER = "# On Colab: install the course package"
_OLD_MARKERS = ("# Colab only: install the course package",)

_REPO_LINE = re.compile(r'^(Repository\s*=\s*)"([^"]*)"', re.MULTILINE)
_GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9][A-Za-z0-9-]{0,38})/([A-Za-z0-9._-]{1,100})$")
_BADGE_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^)\s]*?/notebooks/([0-9]{2}_[A-Za-z0-9_]+\.ipynb)")


class ColabSetupError(ValueError):
    """A repository address that cannot be used, or a repository whose files disagree with it."""


# ----------------------------------------------------------------------------- where checkpoints go

def colab_root() -> Path:
    # Colab's disk is /content. COURSE_COLAB_ROOT moves it, only so that tests can play Colab in a
    # scratch folder (tests/test_colab.py).
    return Path(os.environ.get("COURSE_COLAB_ROOT", "/content"))


def drive_dir() -> Path:
    """Where a mounted Google Drive shows the learner's files."""
    return colab_root() / "drive" / "MyDrive"


def default_home() -> Path:
    """``COURSE_HOME`` on Colab when none is set: Drive if mounted, else the runtime's own disk."""
    if drive_dir().is_dir():
        return drive_dir() / DRIVE_FOLDER
    return colab_root() / "course_home"


def keep_on_drive() -> Path | None:
    """On Colab, mount Google Drive so that checkpoints outlive the runtime and the next chapter,
    on its own runtime, finds them. Elsewhere, do nothing. Returns where checkpoints will go.

    Colab asks for permission; if it is refused, checkpoints stay on the runtime's disk and every
    chapter rebuilds what it needs.
    """
    if not config.in_colab():
        return None
    if not drive_dir().is_dir():
        try:
            from google.colab import drive

            drive.mount(str(drive_dir().parent))
        except Exception as exc:  # refused, timed out, or Drive unavailable: the course still runs
            print(f"Google Drive is not mounted ({type(exc).__name__}: {exc}).")
    home = config.home()
    where = "on Google Drive" if drive_dir() in home.parents else "on this runtime only (lost when it ends)"
    print(f"checkpoints and data: {home}  ({where})")
    return home


# ----------------------------------------------------------------------------- the one address

def repo_url() -> str:
    """The repository's address, from ``[project.urls] Repository`` in pyproject.toml."""
    pyproject = PYPROJECT
    match = _REPO_LINE.search(pyproject.read_text(encoding="utf-8"))
    if not match:
        raise ColabSetupError(f'{pyproject} has no line `Repository = "https://github.com/<owner>/<repo>"` '
                              "under [project.urls].")
    return match.group(2)


def release_ref() -> str:
    """The git tag the install cell pins: the version this package (and so this notebook) has."""
    return f"v{__version__}"


def normalise_repo(url: str) -> str:
    """``https://github.com/owner/repo`` from the forms people paste; anything else is refused,
    because Colab opens notebooks from GitHub only."""
    url = url.strip().rstrip("/")
    url = re.sub(r"^(?:git@github\.com:|http://github\.com/|github\.com/)", "https://github.com/", url)
    url = re.sub(r"\.git$", "", url)
    if not _GITHUB.match(url):
        raise ColabSetupError(f"{url!r} is not a GitHub repository address like https://github.com/<owner>/<repo>: "
                              "Colab opens notebooks from GitHub only.")
    return url


def install_cell(url: str | None = None, ref: str | None = None) -> str:
    """The source of every notebook's install cell. ``url`` may be any address pip can clone
    (the tests use a ``file://`` one)."""
    url = repo_url() if url is None else url
    ref = release_ref() if ref is None else ref
    return (f"{INSTALL_MARKER} this notebook was written for (elsewhere `make lab` did).\n"
            "import sys\n"
            'if "google.colab" in sys.modules:\n'
            f'    %pip install -q "{PACKAGE} @ git+{url}@{ref}"\n'
            "# On Colab: keep checkpoints on Google Drive so the next chapter finds them. Elsewhere: nothing.\n"
            "from course_utils.colab import keep_on_drive\n"
            "keep_on_drive()")


def colab_link(notebook: str, url: str | None = None, ref: str | None = None) -> str:
    owner_repo = normalise_repo(repo_url() if url is None else url).removeprefix("https://github.com/")
    ref = release_ref() if ref is None else ref
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{ref}/notebooks/{notebook}"


def badge(notebook: str, url: str | None = None, ref: str | None = None) -> str:
    """The README's "Open in Colab" badge for one notebook."""
    return f"[![Open in Colab]({BADGE_IMAGE})]({colab_link(notebook, url, ref)})"


# ----------------------------------------------------------------------------- rewriting the repository

def notebook_paths() -> list[Path]:
    return sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _install_cell_index(nb, path: Path) -> int:
    found = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and c.source.startswith((INSTALL_MARKER, *_OLD_MARKERS))]
    if len(found) != 1:
        raise ColabSetupError(f"{path.name}: expected one install cell starting with {INSTALL_MARKER!r}, "
                              f"found {len(found)}.")
    return found[0]


def _rewrite_readme(text: str, url: str, ref: str) -> str:
    return _BADGE_LINK.sub(lambda m: colab_link(m.group(1), url, ref), text)


def set_repo(url: str) -> list[Path]:
    """Point everything at ``url``: pyproject.toml, every notebook's install cell, the README's
    badges. Returns the files that changed."""
    import nbformat

    url = normalise_repo(url)
    changed = []
    text = PYPROJECT.read_text(encoding="utf-8")
    repo_url()  # fails with a clear message when the line is missing
    new = _REPO_LINE.sub(lambda m: f'{m.group(1)}"{url}"', text, count=1)
    if new != text:
        PYPROJECT.write_text(new, encoding="utf-8")
        changed.append(PYPROJECT)
    cell = install_cell(url)
    for path in notebook_paths():
        nb = nbformat.read(path, as_version=4)
        i = _install_cell_index(nb, path)
        if nb.cells[i].source != cell:
            nb.cells[i].source = cell
            nbformat.write(nb, path)
            changed.append(path)
    text = README.read_text(encoding="utf-8")
    new = _rewrite_readme(text, url, release_ref())
    if new != text:
        README.write_text(new, encoding="utf-8")
        changed.append(README)
    return changed


def check() -> list[str]:
    """Every way the notebooks and the README disagree with the one address and the version."""
    import nbformat

    problems = []
    url = repo_url()
    try:
        normalise_repo(url)
    except ColabSetupError as exc:
        problems.append(f"pyproject.toml: {exc}")
    cell = install_cell(url)
    for path in notebook_paths():
        nb = nbformat.read(path, as_version=4)
        try:
            i = _install_cell_index(nb, path)
        except ColabSetupError as exc:
            problems.append(str(exc))
            continue
        if nb.cells[i].source != cell:
            problems.append(f"{path.name}: the install cell differs from colab.install_cell()")
    readme = README.read_text(encoding="utf-8")
    for path in notebook_paths():
        if badge(path.name, url) not in readme:
            problems.append(f"README.md: no Open-in-Colab badge {colab_link(path.name, url)}")
    if _rewrite_readme(readme, url, release_ref()) != readme:
        problems.append("README.md: a Colab link points at another repository or version")
    return problems


def main(argv: list[str]) -> int:
    usage = ("usage: python -m course_utils.colab set-repo https://github.com/<owner>/<repo>\n"
             "       python -m course_utils.colab check")
    if argv[:1] == ["set-repo"] and len(argv) == 2:
        try:
            changed = set_repo(argv[1])
        except ColabSetupError as exc:
            print(exc, file=sys.stderr)
            return 2
        for path in changed:
            print("rewrote", path.relative_to(REPO_ROOT))
        print(f"Install cells and badges point at {repo_url()} tag {release_ref()}"
              f"{'' if changed else ' (nothing to change)'}. Push that tag so Colab can install it.")
        return 0
    if argv == ["check"]:
        problems = check()
        for p in problems:
            print(p)
        if problems:
            print("Run: python -m course_utils.colab set-repo <url>", file=sys.stderr)
        return 1 if problems else 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
