"""Shared test configuration.

A per-test watchdog: a test that hangs (e.g. a loop that never wakes up) must not block the
whole run forever.  After WATCHDOG_SECONDS faulthandler dumps every thread's traceback and
exits the process, so the hang is visible in the output.
"""

import faulthandler
import sys

import pytest

WATCHDOG_SECONDS = 120


@pytest.fixture(autouse=True)
def _hang_watchdog():
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
