"""Tests for evloop._stdlib_selectors: the private attributes of the stdlib's selector classes
that evloop.monkey.patch_selectors replaces still hold what the module says, on the running
CPython; and after patching, those classes wait through the hub."""
import select
import selectors
import subprocess
import sys
import textwrap

import pytest

from evloop import _stdlib_selectors as details

PY = sys.version.split()[0]


@pytest.mark.parametrize("cls_name, attr, func", details.DETAILS)
def test_detail_holds_on_this_cpython(cls_name, attr, func):
    cls = getattr(selectors, cls_name)
    assert attr in vars(cls), (
        f"selectors.{cls_name}.{attr} is gone on CPython {PY}: evloop.monkey.patch_selectors "
        f"can no longer make {cls_name} cooperative (evloop/_stdlib_selectors.py)")
    assert vars(cls)[attr] is getattr(select, func), (
        f"selectors.{cls_name}.{attr} no longer holds select.{func} on CPython {PY} "
        f"(evloop/_stdlib_selectors.py)")


def test_patched_stdlib_selectors_do_not_block_the_thread():
    code = textwrap.dedent("""
        from evloop import monkey; monkey.patch_all()
        import selectors, socket, time, evloop
        ticks = []
        def tick():
            while True:
                ticks.append(1); evloop.sleep(0.01)
        evloop.spawn(tick)
        a, b = socket.socketpair()
        for cls in (selectors.PollSelector, selectors.SelectSelector):
            sel = cls(); sel.register(b, selectors.EVENT_READ)
            before = len(ticks)
            assert sel.select(0.2) == []
            assert len(ticks) - before >= 5, (cls, len(ticks) - before)
            sel.close()
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
