"""``sparsernn status`` times: one short token each, readable at any scale (not ``0.00`` h)."""

import pytest

from sparsernn.experiments.status import duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (12.4, "12s"),
        (59.6, "1m00s"),
        (156, "2m36s"),
        (3 * 3600 + 5 * 60 + 29, "3h05m"),
        (2 * 86400 + 4 * 3600, "2d04h"),
    ],
)
def test_duration(seconds, text):
    assert duration(seconds) == text
