"""Tests for evloop._library_checks: what ``evloop.monkey.patch_all()`` answers to
libraries that ask gevent whether the standard library is cooperative, and the import
hook that tells psycopg 3 directly. Each case runs in a fresh interpreter (patching is
process-wide), with gevent as installed for the suite or made unimportable by a
``sys.meta_path`` finder (``NO_GEVENT``). The same answers against real database servers:
tests/test_integrations_db.py.
"""
from _helpers import run_json


# -- what evloop answers ------------------------------------------------------------------

def test_without_gevent_patch_all_answers_gevents_question():
    figures, _ = run_json("""
import json, sys, time
import evloop.monkey
assert "gevent.monkey" not in sys.modules            # importing evloop.monkey answers nothing
evloop.monkey.patch_all()
answer = sys.modules["gevent.monkey"]
from gevent.monkey import is_module_patched          # python-socketio asks this way
try:
    import gevent
except ImportError:
    gevent_importable = False
else:
    gevent_importable = True
try:
    answer.patch_all
except AttributeError as ex:
    missing = str(ex)
print(json.dumps(dict(
    select=answer.is_module_patched("select"), socket=is_module_patched("socket"),
    unpatched=answer.is_module_patched("zipfile"),
    socket_object=answer.is_object_patched("socket", "socket"),
    anything=answer.is_anything_patched(),
    original_sleep=answer.get_original("time", "sleep") is evloop.monkey.get_original("time", "sleep"),
    saved=answer.saved is evloop.monkey.saved,
    gevent_in_modules="gevent" in sys.modules, gevent_importable=gevent_importable,
    missing=missing)))
""", gevent=False)
    assert figures["select"] and figures["socket"] and figures["socket_object"]
    assert figures["anything"] and figures["original_sleep"] and figures["saved"]
    assert not figures["unpatched"]
    # no "gevent" package appears: no library may switch to a gevent mode
    assert not figures["gevent_in_modules"] and not figures["gevent_importable"]
    assert "gevent is not installed" in figures["missing"], figures["missing"]
    assert "evloop" in figures["missing"], figures["missing"]


def test_with_gevent_installed_its_monkey_module_is_left_alone():
    figures, _ = run_json("""
import json, sys
import evloop.monkey
evloop.monkey.patch_all()
registered = "gevent.monkey" in sys.modules or "gevent" in sys.modules
import gevent.monkey
print(json.dumps(dict(registered=registered, real=not hasattr(gevent.monkey, "__evloop__"),
                      socket=gevent.monkey.is_module_patched("socket"))))
""")
    assert not figures["registered"], "patch_all imported or replaced gevent.monkey"
    # gevent's answer stays about gevent's own hub, which does not run evloop's greenlets
    assert figures["real"] and not figures["socket"]


def test_patch_all_without_select_does_not_claim_select():
    figures, _ = run_json("""
import json, sys
import evloop.monkey
evloop.monkey.patch_all(select=False)
answer = sys.modules["gevent.monkey"]
print(json.dumps(dict(select=answer.is_module_patched("select"),
                      socket=answer.is_module_patched("socket"))))
""", gevent=False)
    assert figures == {"select": False, "socket": True}




def test_after_import_runs_once_the_module_has_run(tmp_path):
    (tmp_path / "evloop_probe_pkg").mkdir()
    (tmp_path / "evloop_probe_pkg" / "__init__.py").write_text("")
    (tmp_path / "evloop_probe_pkg" / "waiting.py").write_text(
        "import sys\nchosen = 'blocking'\nRAN = True\n")
    figures, _ = run_json(f"""
import json, sys
sys.path.insert(0, {str(tmp_path)!r})
from evloop import _library_checks as checks
seen = []
def action(module):
    seen.append((module.__name__, getattr(module, "RAN", False)))
    module.chosen = "cooperative"
checks.after_import("evloop_probe_pkg.waiting", action)
checks.after_import("evloop_probe_pkg.waiting", action)   # registered once
import evloop_probe_pkg.waiting as w
import importlib
source = importlib.util.find_spec("evloop_probe_pkg.waiting").loader.get_source(
    "evloop_probe_pkg.waiting")
later = []
checks.after_import("evloop_probe_pkg.waiting", lambda m: later.append(m.__name__))
print(json.dumps(dict(seen=seen, chosen=w.chosen, file=w.__file__.endswith("waiting.py"),
                      source="RAN = True" in source, later=later,
                      unrelated=checks._after_import.find_spec("json") is None)))
""")
    assert figures["seen"] == [["evloop_probe_pkg.waiting", True]]
    assert figures["chosen"] == "cooperative"
    assert figures["file"] and figures["source"]
    # already imported: at once
    assert figures["later"] == ["evloop_probe_pkg.waiting"]
    assert figures["unrelated"]


def test_psycopg_choice_is_left_alone_when_the_user_chose():
    figures, _ = run_json("""
import json, types
from evloop import _library_checks as checks
def wait_c(): pass
def wait_poll(): pass
def fake():
    m = types.ModuleType("fake_waiting")
    m.wait_c, m.wait_poll, m.wait = wait_c, wait_poll, wait_c
    return m
plain = fake()
rebound = checks.psycopg_waits_cooperatively(plain)
import os
os.environ["PSYCOPG_WAIT_FUNC"] = "wait_c"
chosen = fake()
kept = not checks.psycopg_waits_cooperatively(chosen)
del os.environ["PSYCOPG_WAIT_FUNC"]
python_impl = types.ModuleType("fake_waiting")       # no C extension: no wait_c
python_impl.wait_poll = python_impl.wait = wait_poll
print(json.dumps(dict(rebound=rebound, now=plain.wait.__name__, kept=kept,
                      chosen=chosen.wait.__name__,
                      python=checks.psycopg_waits_cooperatively(python_impl))))
""")
    assert figures == {"rebound": True, "now": "wait_poll", "kept": True,
                       "chosen": "wait_c", "python": False}
