"""The self-check quiz: feedback on click inside Output widgets, standard widgets only, and a
plain-text fallback (with the answers hidden) where no front end draws widgets."""
import ipywidgets as widgets
import pytest

from course_utils.widgets import Question, quiz

QUESTIONS = [
    Question("What is 2 + 2?", ["3", "4", "22"], answer=1, why="Two and two make four.",
             hints={2: "That is two digits side by side."}),
    {"text": "Which comes first?", "options": ["pretraining", "fine-tuning"], "answer": 0,
     "why": "The textbook comes before the worked examples."},
]


def feedback(box, i) -> dict:
    outputs = box.outputs[i].outputs
    assert len(outputs) == 1 and outputs[0]["output_type"] == "display_data"
    return outputs[0]["data"]


def click(box, i, choice):
    box.pickers[i].value = choice
    check_button = [w for w in box.children if isinstance(w, widgets.Button)][i]
    check_button.click()
    return feedback(box, i)


def test_nothing_is_said_before_a_click():
    box = quiz(QUESTIONS)
    assert all(out.outputs == () for out in box.outputs)
    assert all(p.value is None for p in box.pickers)


def test_a_click_without_a_choice_asks_for_one():
    assert click(quiz(QUESTIONS), 0, None)["text/plain"] == "Pick an answer first."


def test_a_wrong_choice_gets_its_hint_and_no_answer():
    data = click(quiz(QUESTIONS), 0, 2)
    assert data["text/plain"].startswith("Not quite") and "two digits side by side" in data["text/plain"]
    assert "make four" not in data["text/plain"] and "✗" in data["text/html"]


def test_the_right_choice_gets_the_reason():
    box = quiz(QUESTIONS)
    click(box, 0, 0)
    data = click(box, 0, 1)  # a second click replaces the first feedback
    assert data["text/plain"] == "Right. Two and two make four." and "✓" in data["text/html"]
    assert box.outputs[1].outputs == ()  # the other question is untouched


def test_check_does_what_clicking_does():
    box = quiz(QUESTIONS)
    assert box.check(1, 0) == "Right. The textbook comes before the worked examples."
    assert box.pickers[1].value == 0 and feedback(box, 1)["text/plain"].startswith("Right.")


def test_only_standard_widgets_and_outputs_inside_output_widgets():
    box = quiz(QUESTIONS)
    assert isinstance(box, widgets.VBox)
    for child in box.children:
        assert type(child).__module__.startswith("ipywidgets"), type(child)
    assert all(isinstance(o, widgets.Output) for o in box.outputs)


def test_without_a_front_end_the_questions_show_as_text_with_answers_hidden():
    bundle = quiz(QUESTIONS, title="Check yourself")._repr_mimebundle_()
    plain, page = bundle["text/plain"], bundle["text/html"]
    assert plain.startswith("Check yourself") and "1. What is 2 + 2?" in plain and "   b) 4" in plain
    assert "make four" not in plain  # a text-only reader is not handed the answer
    assert "<details><summary>Answer</summary>b) 4. Two and two make four.</details>" in page
    assert "application/vnd.jupyter.widget-view+json" in bundle  # a live front end still draws the widget


@pytest.mark.parametrize("bad", [dict(text="?", options=["only one"], answer=0, why=""),
                                 dict(text="?", options=["a", "b"], answer=2, why=""),
                                 dict(text=" ", options=["a", "b"], answer=0, why=""),
                                 dict(text="?", options=["a", "b"], answer=0, why="", hints={0: "the answer's own"}),
                                 dict(text="?", options=["a", "b"], answer=0, why="", hints={5: "no such option"})])
def test_malformed_questions_are_refused(bad):
    with pytest.raises(ValueError):
        Question(**bad)
