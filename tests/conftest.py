"""Shared test configuration.

A per-test watchdog: a test that hangs (e.g. a loop that never wakes up) must not block the
whole run forever.  After WATCHDOG_SECONDS faulthandler dumps every thread's traceback and
exits the process, so the hang is visible in the output.

The dump goes to a duplicate of the real stderr taken in pytest_configure, while pytest's
output capture is suspended: during a test, fd 2 is pytest's capture file, and a process
that exits from the watchdog never shows what was captured (the hang would end the run
with a bare exit status 1). Long tests re-arm it through the fixture's value (for example
per hypothesis example: tests/test_fuzz_core.py).
"""

import faulthandler
import os
import sys

import pytest

WATCHDOG_SECONDS = 120

_watchdog_fd = None  # the real stderr, duplicated while capture is off


def pytest_configure(config):
    global _watchdog_fd
    try:
        _watchdog_fd = os.dup(sys.__stderr__.fileno())
    except (AttributeError, OSError, ValueError):
        _watchdog_fd = None  # no usable stderr: fall back to sys.__stderr__


def pytest_unconfigure(config):
    global _watchdog_fd
    if _watchdog_fd is not None:
        os.close(_watchdog_fd)
        _watchdog_fd = None


def arm_watchdog(seconds=WATCHDOG_SECONDS):
    """(Re)start the countdown: after `seconds`, dump every stack and exit."""
    target = _watchdog_fd if _watchdog_fd is not None else sys.__stderr__
    faulthandler.dump_traceback_later(seconds, exit=True, file=target)


@pytest.fixture(autouse=True)
def _hang_watchdog():
    arm_watchdog()
    try:
        yield arm_watchdog
    finally:
        faulthandler.cancel_dump_traceback_later()
