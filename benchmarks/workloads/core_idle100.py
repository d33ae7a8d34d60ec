"""Idle-watcher dispatch with 100 watchers pending per iteration: 10,000 iterations of
100 callbacks, so the cost is dominated by dispatching pending watchers to Python rather
than by the loop iteration itself (compare with ``core_idle``).
"""

from _common import CORE_IMPLS, run_core
from core_idle import idle

IMPLS = CORE_IMPLS

if __name__ == "__main__":
    run_core(idle, watchers=100)
