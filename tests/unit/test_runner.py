"""Progress lines as plain functions."""

from __future__ import annotations

import pytest

from common.runner import Progress


def test_progress_shows_the_rate_and_the_time_left(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress(5000, "users created", quiet=False)
    progress._started -= 100  # 100 s ago
    progress._shown -= 100
    progress.advance(1200)

    line = capsys.readouterr().err.strip()
    assert line == "[1200/5000] users created, 12/s, about 5 min left"
