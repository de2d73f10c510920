import sys

import pytest
from tally import count


def test_counts() -> None:
    assert count("a b a") == {"a": 2, "b": 1}


@pytest.mark.parametrize("text", ["", "   "])
def test_empty(text: str) -> None:
    assert count(text) == {}


def test_runs_on_the_interpreter_we_expect() -> None:
    assert sys.version_info[:2] == (3, 11)
