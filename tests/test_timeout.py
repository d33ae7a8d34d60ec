"""Tests for ``evloop.timeout``: Timeout (context manager, start/cancel/close, start_new,
pending, custom exceptions, silent timeouts, nesting) and with_timeout, with gevent's
semantics (checked against gevent 26.9 where unclear).

The rule that matters most: a Timeout never outlives its section. Once the ``with`` block
is left (or ``cancel()``/``close()`` is called) it must never fire into a later, unrelated
wait. Timing rules (a busy 2-core machine): lower bounds, or upper bounds with a >= 10x
margin; every test leaves the loop with no more active watchers than it found.

tests/test_gevent_contract.py checks what evloop shares with gevent against both
libraries; the cases here go further on evloop alone (timings, bad arguments, threads).
"""
import math
import time

import pytest

import evloop
from evloop import GreenletExit, Timeout, getcurrent, sleep, spawn, with_timeout
from evloop.hub import Waiter, get_hub

from _helpers import Boom

LONG = 30.0
GUARD = 10.0


pytestmark = pytest.mark.usefixtures("kill_after")


# --------------------------------------------------------------------------------------
# basics
# --------------------------------------------------------------------------------------

def test_timeout_is_a_base_exception():
    assert issubclass(Timeout, BaseException)
    assert not issubclass(Timeout, Exception)  # `except Exception` does not swallow it
    assert evloop.Timeout is Timeout


def test_context_manager_raises_itself():
    t0 = time.monotonic()
    with pytest.raises(Timeout) as info:
        with Timeout(0.05) as t:
            sleep(LONG)
    assert info.value is t
    assert time.monotonic() - t0 >= 0.04
    assert not t.pending


def test_context_manager_body_finishing_in_time():
    with Timeout(LONG) as t:
        assert t.pending
        sleep(0.01)
    assert not t.pending


def test_timeout_interrupts_any_wait():
    w = Waiter()
    with pytest.raises(Timeout):
        with Timeout(0.02):
            w.get()
    g = spawn(sleep, LONG)
    with pytest.raises(Timeout):
        with Timeout(0.02):
            g.join()
    g.kill()


def test_timeout_in_a_greenlet_only_hits_that_greenlet():
    def worker():
        try:
            with Timeout(0.02):
                sleep(LONG)
        except Timeout:
            return "timed out"

    g = spawn(worker)
    other = spawn(sleep, 0.5)
    assert g.get(timeout=GUARD) == "timed out"
    assert not other.dead
    other.join()
    assert other.successful()


def test_seconds_attribute():
    assert Timeout(1.5).seconds == 1.5
    assert Timeout().seconds is None
    assert Timeout(None).seconds is None


def test_repr():
    t = Timeout(3)
    assert "Timeout" in repr(t) and "3" in repr(t)
    t.start()
    try:
        assert "pending" in repr(t)
    finally:
        t.close()


# --------------------------------------------------------------------------------------
# start, cancel, close, pending, start_new
# --------------------------------------------------------------------------------------

def test_start_twice_is_refused():
    t = Timeout(LONG)
    t.start()
    try:
        with pytest.raises(AssertionError):
            t.start()
    finally:
        t.cancel()


def test_restart_after_cancel():
    t = Timeout(0.02)
    t.start()
    t.cancel()
    t.start()
    with pytest.raises(Timeout) as info:
        sleep(LONG)
    assert info.value is t
    t.close()


def test_restart_after_expiry_waits_the_full_seconds_again():
    # found by tests/test_fuzz_core.py: the Timeout's timer, started again after it had
    # fired, kept libev's leftover deadline and fired at the first wait (gevent's libev
    # loop does the same: gevent issue #1890; its libuv loop restarts the full time)
    t = Timeout(0.1)
    t.start()
    with pytest.raises(Timeout):
        sleep(LONG)
    t.start()
    start = time.monotonic()
    with pytest.raises(Timeout) as info:
        sleep(LONG)
    assert info.value is t
    assert time.monotonic() - start >= 0.09
    t.close()


def test_cancel_and_restart_postpones_the_timeout():
    # gevent issue #1890's program: restarting a Timeout is a fresh deadline, not the rest
    # of the old one (generous margins: 12 x 0.05 s against a 0.5 s Timeout)
    with Timeout(0.5) as t:
        for _ in range(12):
            sleep(0.05)
            t.cancel()
            t.start()


def test_cancel_and_close_are_idempotent():
    t = Timeout(0.02)
    t.cancel()
    t.start()
    t.cancel()
    t.cancel()
    t.close()
    t.close()
    assert not t.pending
    sleep(0.04)


def test_start_new_with_an_exception():
    t = Timeout.start_new(0.02, Boom)
    with pytest.raises(Boom):
        sleep(LONG)
    t.close()


def test_start_new_with_a_timeout_instance():
    t = Timeout(0.02)
    assert Timeout.start_new(t) is t
    assert t.pending
    t.close()


def test_pending_after_firing():
    t = Timeout(0.01)
    t.start()
    with pytest.raises(Timeout):
        sleep(LONG)
    assert not t.pending


def test_ref_false_does_not_keep_the_loop_alive():
    t = Timeout(LONG, ref=False)
    t.start()
    try:
        t0 = time.monotonic()
        assert get_hub().join() is True
        assert time.monotonic() - t0 < GUARD
    finally:
        t.close()


# --------------------------------------------------------------------------------------
# None, negative, NaN, non-numbers
# --------------------------------------------------------------------------------------

def test_none_means_no_timeout():
    with Timeout(None) as t:
        assert not t.pending
        sleep(0.02)
    t = Timeout.start_new(None)
    sleep(0.01)
    t.cancel()
    with Timeout():
        sleep(0.01)


def test_with_timeout_none():
    assert with_timeout(None, lambda: "ok") == "ok"


@pytest.mark.parametrize("seconds", [0, -1, -math.inf])
def test_zero_or_negative_fires_at_the_first_wait(seconds):
    with pytest.raises(Timeout):
        with Timeout(seconds):
            sleep(LONG)


def test_negative_seconds_are_zero():
    # documented: negative counts as 0 (gevent keeps the negative number, and fires at once)
    assert Timeout(-1).seconds in (0, -1)


def test_zero_timeout_without_a_wait_does_not_fire():
    with Timeout(0):
        x = 1 + 1
    assert x == 2
    sleep(0.01)


def test_nan_is_refused():
    with pytest.raises(ValueError):
        Timeout(float("nan")).start()
    with pytest.raises(ValueError):
        with Timeout(float("nan")):
            pass
    with pytest.raises(ValueError):
        with_timeout(float("nan"), lambda: 1)


@pytest.mark.parametrize("bad", [5, True, 1.5, object(), object, int, [ValueError]],
                         ids=repr)
def test_an_exception_that_is_not_one_is_refused_at_the_call(bad, errors):
    # gevent 26.9 accepts Timeout(0.01, 5) and, at expiry, the hub fails to throw 5 into
    # the greenlet ("exceptions must be classes, or instances, not int"): the section is
    # not interrupted and the hub blames the greenlet
    with pytest.raises(TypeError, match="Timeout's exception"):
        Timeout(0.01, bad)
    with pytest.raises(TypeError, match="Timeout's exception"):
        Timeout.start_new(0.01, bad)
    timeout = Timeout(0.01)
    timeout.exception = bad                    # replaced after construction: start() checks
    with pytest.raises(TypeError, match="Timeout's exception"):
        timeout.start()
    assert not timeout.pending
    sleep(0.02)
    assert errors.getvalue() == ""


@pytest.mark.parametrize("good", [None, False, "a message", ValueError, ValueError("x"),
                                  GreenletExit, KeyboardInterrupt])
def test_the_exceptions_a_timeout_accepts(good):
    timeout = Timeout(LONG, good)
    timeout.start()
    assert timeout.pending
    timeout.close()


@pytest.mark.parametrize("bad", ["0.01", "soon", [1], object()])
def test_not_a_number_is_refused(bad):
    # gevent: TypeError ("must be real number, not str"), also for numeric strings
    timeout = None
    try:
        with pytest.raises(TypeError):
            timeout = Timeout(bad)
            timeout.start()
    finally:
        if timeout is not None:
            timeout.close()  # if it was accepted, it must not fire into a later test
    with pytest.raises(TypeError):
        with_timeout(bad, lambda: 1)


# --------------------------------------------------------------------------------------
# custom exceptions, silent timeouts
# --------------------------------------------------------------------------------------

def test_false_returns_silently():
    t0 = time.monotonic()
    with Timeout(0.02, False):
        sleep(LONG)
        pytest.fail("not reached")
    assert time.monotonic() - t0 >= 0.015
    # and the loop is in a clean state
    sleep(0.01)


def test_silent_timeout_does_not_swallow_other_exceptions():
    with pytest.raises(Boom):
        with Timeout(LONG, False):
            raise Boom("through")


def test_silent_timeout_does_not_swallow_an_outer_timeout():
    with pytest.raises(Timeout) as info:
        with Timeout(0.02) as outer:
            with Timeout(LONG, False):
                sleep(LONG)
    assert info.value is outer


def test_exception_raised_in_a_greenlet(errors):
    def worker():
        with Timeout(0.01, Boom("in greenlet")):
            sleep(LONG)

    g = spawn(worker)
    g.join()
    assert isinstance(g.exception, Boom)


# --------------------------------------------------------------------------------------
# nesting
# --------------------------------------------------------------------------------------

def test_nested_inner_fires_first():
    events = []
    with pytest.raises(Timeout) as info:
        with Timeout(0.2) as outer:
            try:
                with Timeout(0.02) as inner:
                    sleep(LONG)
            except Timeout as ex:
                events.append(ex is inner)
            assert outer.pending
            sleep(LONG)
    assert events == [True]
    assert info.value is outer


def test_inner_timeout_not_caught_by_outer_handler():
    # catching by identity: each block handles only its own timeout
    caught = []
    with Timeout(LONG) as outer:
        try:
            with Timeout(0.02) as inner:
                try:
                    sleep(LONG)
                except Timeout as ex:
                    if ex is not outer:
                        raise
                    caught.append("outer")  # wrong
        except Timeout as ex:
            caught.append("inner" if ex is inner else "other")
    assert caught == ["inner"]


def test_same_length_nested():
    with pytest.raises(Timeout) as info:
        with Timeout(0.02) as outer:
            with Timeout(0.02):
                sleep(LONG)
    # whichever fires first, the outer block must not be left in a broken state
    assert isinstance(info.value, Timeout)
    assert not outer.pending


# --------------------------------------------------------------------------------------
# a Timeout must never outlive its section
# --------------------------------------------------------------------------------------

def test_left_with_block_never_fires_later():
    with Timeout(0.05):
        pass
    t0 = time.monotonic()
    sleep(0.2)
    assert time.monotonic() - t0 >= 0.15


def test_with_block_left_by_an_exception_never_fires_later():
    with pytest.raises(Boom):
        with Timeout(0.05):
            raise Boom()
    sleep(0.15)


def test_timeout_started_in_a_finishing_greenlet_does_not_fire(errors):
    # a greenlet starts a Timeout and returns without cancelling it: the expiry finds a
    # dead greenlet and must do nothing (no error report, no exception elsewhere)
    def leaky():
        Timeout(0.02).start()
        return "done"

    g = spawn(leaky)
    assert g.get() == "done"
    sleep(0.1)
    assert errors.getvalue() == ""


def test_timeout_in_finally_block():
    events = []

    def worker():
        try:
            sleep(0.01)
        finally:
            with Timeout(0.02, False):
                sleep(LONG)
            events.append("finally done")
        return "ok"

    g = spawn(worker)
    assert g.get(timeout=GUARD) == "ok"
    assert events == ["finally done"]
    sleep(0.05)


def test_timeout_firing_while_the_greenlet_finishes(errors):
    # the timer expires in the same loop iteration as the greenlet finishes: either the
    # greenlet ends normally, or with the Timeout, never a crash or a stray exception
    results = []

    def racer():
        with Timeout(0.02):
            sleep(0.02)
        results.append("body done")

    gs = [spawn(racer) for _ in range(20)]
    evloop.joinall(gs, timeout=GUARD)
    assert all(g.dead for g in gs)
    for g in gs:
        assert g.successful() or isinstance(g.exception, Timeout)
    sleep(0.05)
    assert "Traceback" not in errors.getvalue() or "Timeout" in errors.getvalue()


def test_cancelled_timeout_after_firing_is_harmless():
    t = Timeout(0.01)
    t.start()
    with pytest.raises(Timeout):
        sleep(LONG)
    t.cancel()
    sleep(0.03)


def test_timeout_fired_while_greenlet_is_being_killed():
    def worker():
        with Timeout(0.02):
            sleep(LONG)

    g = spawn(worker)
    sleep(0)
    g.kill()
    assert isinstance(g.value, GreenletExit)
    sleep(0.05)


def test_timeout_cancelled_by_a_kill_does_not_fire_into_the_next_greenlet():
    # a killed greenlet's Timeout must not hit whatever runs next
    def worker():
        with Timeout(0.03):
            sleep(LONG)

    g = spawn(worker)
    sleep(0)
    g.kill()
    t0 = time.monotonic()
    sleep(0.1)
    assert time.monotonic() - t0 >= 0.09


def test_timeout_only_hits_the_greenlet_that_started_it():
    t = Timeout(0.02)
    starter_result = []

    def starter():
        t.start()
        try:
            sleep(LONG)
        except Timeout as ex:
            starter_result.append(ex is t)

    g = spawn(starter)
    sleep(0)
    sleep(0.06)  # main's own wait is not interrupted
    g.join(GUARD)
    assert starter_result == [True]


# --------------------------------------------------------------------------------------
# with_timeout
# --------------------------------------------------------------------------------------

def test_with_timeout_returns_the_value():
    assert with_timeout(LONG, lambda a, b=0: a + b, 1, b=2) == 3
    assert evloop.with_timeout is with_timeout


def test_with_timeout_raises():
    t0 = time.monotonic()
    with pytest.raises(Timeout):
        with_timeout(0.02, sleep, LONG)
    assert time.monotonic() - t0 >= 0.015


def test_with_timeout_passes_other_exceptions():
    def bad():
        raise Boom("inner")

    with pytest.raises(Boom):
        with_timeout(LONG, bad)
    with pytest.raises(Boom):
        with_timeout(LONG, bad, timeout_value=1)


def test_with_timeout_does_not_catch_an_outer_timeout():
    with pytest.raises(Timeout) as info:
        with Timeout(0.02) as outer:
            with_timeout(LONG, sleep, LONG, timeout_value="inner")
    assert info.value is outer


def test_with_timeout_cancels_its_timer():
    with_timeout(0.05, lambda: None)
    sleep(0.15)


def test_with_timeout_in_greenlets():
    gs = [spawn(with_timeout, 0.3, sleep, d, timeout_value="late") for d in (0.001, LONG)]
    evloop.joinall(gs)
    assert [g.value for g in gs] == [None, "late"]


def test_timeout_usable_from_many_greenlets_at_once():
    def worker(i):
        with Timeout(0.01 * (i % 3 + 1), False):
            sleep(LONG)
        return i

    gs = [spawn(worker, i) for i in range(30)]
    evloop.joinall(gs, timeout=GUARD)
    assert [g.value for g in gs] == list(range(30))


def test_timeout_context_manager_in_hub_is_blocking_error():
    # starting a Timeout in the hub is allowed, but waiting there is not
    caught = []

    def callback():
        try:
            with Timeout(0.01):
                sleep(0.05)
        except BaseException as ex:  # noqa: BLE001
            caught.append(type(ex).__name__)

    get_hub().loop.run_callback(callback)
    sleep(0.03)
    assert caught == ["BlockingSwitchOutError"]
    assert getcurrent() is get_hub().parent
