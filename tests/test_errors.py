"""lipsync.errors: the one way every console command reports a user error."""
from __future__ import annotations

import pytest

from lipsync.errors import InputError, run_command


def fails() -> int:
    raise InputError("clip.mp4 not found: check the path")


def test_a_user_error_is_one_line_and_exit_code_2(capsys):
    assert run_command("tool", fails) == 2
    assert capsys.readouterr().err == "tool: error: clip.mp4 not found: check the path\n"


def test_verbose_adds_the_traceback_and_keeps_exit_code_2(capsys):
    assert run_command("tool", fails, verbose=True) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Traceback (most recent call last):" and "InputError" in err[-2]
    assert err[-1] == "tool: error: clip.mp4 not found: check the path"


def test_the_work_decides_the_exit_code_and_bugs_are_not_hidden(capsys):
    assert run_command("tool", lambda: 3) == 3
    with pytest.raises(ZeroDivisionError):
        run_command("tool", lambda: 1 // 0, verbose=True)
    assert capsys.readouterr().err == ""
