"""course_map is the one source of each chapter's run times: every notebook's top cell and the
README's chapter table must say what it says. Every chapter also reads the same way: what you will
learn at the top, exercises with answers to reveal at the end."""
import json
import re
from pathlib import Path

import pytest

from course_utils import colab, course_map

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
README = (REPO / "README.md").read_text(encoding="utf-8")

# Chapters another change is rewriting: strict, so the test says when they start to agree.
NOT_YET: dict[str, str] = {}


def number(path: Path) -> int:
    return int(path.name[:2])


def cells(path: Path) -> list[dict]:
    return [{"type": c["cell_type"], "source": "".join(c["source"])}
            for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]


def chapters(check):
    """Parametrise over the notebooks; the ones in NOT_YET must fail (strict xfail)."""
    marks = {p.name: pytest.mark.xfail(strict=True, reason=NOT_YET[p.name]) for p in NOTEBOOKS if p.name in NOT_YET}
    return pytest.mark.parametrize("path", [pytest.param(p, id=p.name, marks=marks.get(p.name, ())) for p in NOTEBOOKS])(
        check)


def test_every_notebook_is_a_chapter_with_run_times():
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        ch = course_map.chapter(number(path))
        assert ch.cpu is not None and ch.gpu is not None, f"course_map has no run times for {path.name}"


@chapters
def test_top_cell_states_what_you_will_learn_and_the_run_time(path):
    top = cells(path)[0]
    assert top["type"] == "markdown"
    expected = course_map.run_time_line(course_map.chapter(number(path)))
    assert expected in top["source"], f"{path.name}: the first cell must carry, word for word:\n{expected}"
    assert "**You will learn**" in top["source"], f"{path.name}: no '**You will learn**' list in the first cell"
    after = top["source"].split("**You will learn**", 1)[1].strip().split("\n\n")[0]
    bullets = [line for line in after.splitlines() if line.startswith("- ")]
    assert 3 <= len(bullets) <= 5, f"{path.name}: {len(bullets)} things to learn; say 3 to 5"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_readme_table_agrees_with_course_map(path):
    ch = course_map.chapter(number(path))
    row = next((line for line in README.splitlines() if line.startswith(f"| {ch.number:02d} ")), None)
    assert row, f"README's chapter table has no row for {path.name}"
    columns = [c.strip() for c in row.strip("|").split("|")]
    assert columns[3:6] == [course_map.readme_time(ch.cpu), course_map.readme_time(ch.gpu), colab.badge(path.name)], (
        f"README row of {path.name}: cpu, gpu and Colab columns must be "
        f"{course_map.readme_time(ch.cpu)!r}, {course_map.readme_time(ch.gpu)!r}, the badge")


def test_estimates_are_marked_as_estimates():
    est = course_map.Estimate(6.0)
    assert course_map.readme_time(est).endswith("(est.)") and "estimated" in course_map.run_time_line(
        course_map.Chapter(99, "x", "", "data", cpu=1.0, gpu=est))
    assert "(est.)" not in course_map.readme_time(4.2) and course_map.readme_time(4.2) == "4.2 min"
    assert course_map.readme_time(40 / 60) == "~40 s"
    assert "about 4 minutes" in course_map.run_time_line(course_map.Chapter(99, "x", "", "data", cpu=4.2, gpu=est))


@chapters
def test_chapter_ends_with_exercises_that_have_answers_to_reveal(path):
    nb = cells(path)
    summary = max((i for i, c in enumerate(nb) if c["type"] == "markdown" and "## Summary" in c["source"]),
                  default=None)
    assert summary is not None, f"{path.name}: no '## Summary' cell"
    tail = nb[summary + 1:]
    assert all(c["type"] == "markdown" for c in tail), f"{path.name}: code after the summary"
    exercises = [c["source"] for c in tail if re.search(r"^### Exercise \d", c["source"], re.MULTILINE)]
    assert 2 <= len(exercises) <= 4, f"{path.name}: {len(exercises)} exercises after the summary; write 2 to 4"
    for text in exercises:
        assert text.count("<details><summary>Answer</summary>") == 1 and text.rstrip().endswith("</details>"), (
            f"{path.name}: each exercise is one markdown cell ending in <details><summary>Answer</summary> … </details>")
        assert "**Predict**" in text and re.search(r"\*\*(Change|Add|add)\*\*", text), (
            f"{path.name}: an exercise says what to change (or add) and asks to predict: {text[:80]!r}")
