"""Timer dispatch with 100 ``timer(0)`` watchers, each restarted by its own callback:
the heap operations and Python callbacks dominate rather than the loop iteration
(compare with ``core_timer0``).
"""

from _common import CORE_IMPLS, run_core
from core_timer0 import timer0

IMPLS = CORE_IMPLS

if __name__ == "__main__":
    run_core(timer0, timers=100)
