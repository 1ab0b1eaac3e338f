"""The routes lesson 05 measures inside fit are built by name, in a fresh process."""

import pytest

from helpers.memory import in_fresh_process
from helpers.routes import DIGIT_ROUTES, FISH_ROUTES, fit_route


def test_a_route_is_timed_in_rounds_and_its_memory_measured():
    r = in_fresh_process(fit_route, "digits", DIGIT_ROUTES[1], "ci", 3, 2, rounds=2)
    assert len(r["rounds_samples_per_s"]) == 2 and r["samples_per_s"] == max(r["rounds_samples_per_s"]) > 0
    assert r["peak_anon_mb"] > 0


@pytest.mark.parametrize("task, route", [("digits", "no such route"), ("fish", DIGIT_ROUTES[0]), ("sound", FISH_ROUTES[0])])
def test_an_unknown_route_or_task_is_named_in_the_error(task, route):
    with pytest.raises(ValueError, match="no such route|unknown fish route|task must be"):
        fit_route(task, route, "ci", 1, 1)
