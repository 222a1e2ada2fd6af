"""``FrameBudget``: which frames of an image series are drawn, on a clock the test sets."""

from __future__ import annotations

from calibexp.diagrams import FrameBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_frame_is_drawn_while_the_time_spent_is_within_the_share_of_the_elapsed():
    clock = Clock()
    budget = FrameBudget(0.1, clock)  # 10% of the time since the series began
    assert budget.allows()  # nothing spent yet: the first frame is always drawn
    budget.charge(0.5)
    clock.now = 101.0
    assert not budget.allows()  # 0.5 s spent > 0.1 x 1 s
    clock.now = 104.9
    assert not budget.allows()  # 0.5 > 0.49
    clock.now = 105.0
    assert budget.allows()  # 0.5 <= 0.1 x 5 s
    budget.charge(0.2)
    clock.now = 106.0
    assert not budget.allows()  # 0.7 > 0.6
    assert budget.allows(last=True)  # the last frame always
    clock.now = 107.0
    assert budget.allows()  # 0.7 <= 0.7


def test_no_share_draws_every_frame():
    clock = Clock()
    budget = FrameBudget(None, clock)
    budget.charge(1e9)
    assert budget.allows()
