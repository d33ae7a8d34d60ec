"""evloop: a C-accelerated event loop for Python.

libev (vendored, compiled by a cffi build) does the polling; evloop's C glue dispatches
events straight to Python callables. ``evloop.core`` is the low-level loop, usable without
greenlets. This package module must stay import-light: importing ``evloop`` must not start
a loop or touch signals.
"""

__version__ = "0.1.0"
