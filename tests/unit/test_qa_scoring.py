"""The pure QA scorecard rules: criteria checks naming the field, answers of the right kind, and
the weighted 0..100 score."""

from __future__ import annotations

import pytest

from pbx_recorder.service.qa_scoring import ScorecardRefused, check_answers, check_criteria, score

CARD = check_criteria(
    [
        {"key": "greeting", "label": "Greets", "kind": "yesno", "weight": 2},
        {"key": "solved", "label": "Solved", "kind": "yesno", "weight": 1},
        {"key": "tone", "label": "Tone", "kind": "scale", "max": 3, "weight": 1},
    ]
)


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"greeting": True, "solved": True, "tone": 3}, 100.0),
        ({"greeting": False, "solved": False, "tone": 1}, 0.0),
        ({"greeting": True, "solved": False, "tone": 1}, 50.0),  # 2 / 4
        ({"greeting": False, "solved": True, "tone": 2}, 37.5),  # (1 + 0.5) / 4
        ({"greeting": True, "solved": True, "tone": 2}, 87.5),  # (2 + 1 + 0.5) / 4
    ],
)
def test_weighted_score(answers, expected: float) -> None:  # type: ignore[no-untyped-def]
    assert score(CARD, check_answers(CARD, answers)) == expected


def test_fractional_weights_round_to_two_decimals() -> None:
    card = check_criteria(
        [
            {"key": "a", "label": "A", "kind": "yesno", "weight": 1},
            {"key": "b", "label": "B", "kind": "yesno", "weight": 2},
        ]
    )
    assert score(card, {"a": True, "b": False}) == 33.33


def test_criteria_keep_their_declared_shape() -> None:
    assert [c.as_json() for c in CARD][2] == {
        "key": "tone",
        "label": "Tone",
        "kind": "scale",
        "max": 3,
        "weight": 1.0,
    }
    with pytest.raises(ScorecardRefused, match=r"^criteria\[0\]: an object"):
        check_criteria(["greeting"])
    with pytest.raises(ScorecardRefused, match=r"^criteria\[0\]\.label: no control"):
        check_criteria([{"key": "a", "label": "bad\x00", "kind": "yesno"}])


@pytest.mark.parametrize(
    "answers",
    [
        {"greeting": 1, "solved": True, "tone": 2},
        {"greeting": True, "solved": True, "tone": "2"},
        {"greeting": True, "solved": True},
        {"greeting": True, "solved": True, "tone": 4},
    ],
)
def test_answers_of_the_wrong_kind_are_refused(answers) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ScorecardRefused, match=r"^answers\."):
        check_answers(CARD, answers)
