"""evloop._stdlib_selectors: the private details of CPython's ``selectors`` module that
``evloop.monkey.patch_selectors`` relies on, in one place.

Why it exists: ``selectors.PollSelector`` and ``SelectSelector`` capture ``select.poll`` and
``select.select`` as class attributes when ``selectors`` is imported, and socketserver and
subprocess use those classes; patching the ``select`` module afterwards does not reach
them, so ``patch_selectors`` replaces the class attributes themselves. Their names are not
public API. tests/test_stdlib_selectors.py asserts each detail on the running interpreter,
so a CPython that changes one fails there, naming it, instead of leaving the stdlib's
selectors blocking the whole thread in a patched program.

What it must not do: patch anything or import evloop.

Checked on (``sys.version``): 3.10.13, 3.11.7, 3.12.1, 3.13.0 (pyenv builds), 3.14.10 and
3.15.2 (Debian unstable): the same on all six.
"""
from typing import Tuple

#: ``PollSelector._selector_cls``: the poll object factory, ``select.poll`` (the class
#: attribute is read by ``_PollLikeSelector.__init__``).
POLL_SELECTOR_FACTORY = "_selector_cls"

#: ``SelectSelector._select``: ``select.select`` as a class attribute, called as
#: ``self._select(r, w, [], timeout)`` by ``SelectSelector.select`` (a method wrapper on
#: Windows only).
SELECT_SELECTOR_CALL = "_select"

#: (class name, attribute, the ``select`` function it holds before patching)
DETAILS: Tuple[Tuple[str, str, str], ...] = (
    ("PollSelector", POLL_SELECTOR_FACTORY, "poll"),
    ("SelectSelector", SELECT_SELECTOR_CALL, "select"),
)
