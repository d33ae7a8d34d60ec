"""The cffi builder: compiles vendored libev and evloop's C glue into ``evloop._ev``.

Why it exists: evloop ships libev inside its own extension, built with fixed macros (see
``csrc/evloop_config.h``), so ``pip install`` needs no system libev and no configure step.
What it must not do: grow a large cdef. The per-event path never crosses cffi; the C glue
defines the loop and watcher types with the CPython C API and the cdef below only exposes
the bootstrap that publishes them, plus libev's version queries. Only ``evloop.core``
imports the result.
"""
import os
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _rel(*parts: str) -> str:
    # setuptools wants paths relative to setup.py; keep them relative when we can.
    path = os.path.join(ROOT, *parts)
    try:
        return os.path.relpath(path)
    except ValueError:  # different drive (Windows)
        return path


def _greenlet_include() -> str:
    # greenlet ships its C API header inside its package (greenlet/greenlet.h)
    import greenlet

    return os.path.dirname(os.path.abspath(greenlet.__file__))


ffibuilder = FFI()
ffibuilder.cdef(
    """
    int evloop_bootstrap(void);
    int ev_version_major(void);
    int ev_version_minor(void);
    """
)

extra_compile_args = ["-O2", "-fno-strict-aliasing", "-Wno-unused-value",
                      "-Wno-unused-function", "-Wno-comment", "-Wno-unused-variable"]
extra_link_args = []
_sanitize = os.environ.get("EVLOOP_SANITIZE", "").strip()
if _sanitize:
    extra_compile_args += ["-fsanitize=" + _sanitize, "-fno-omit-frame-pointer", "-g", "-O1"]
    extra_link_args += ["-fsanitize=" + _sanitize]

ffibuilder.set_source(
    "evloop._ev",
    # The cffi wrappers normally drop the GIL around every C call; evloop's C functions
    # all touch Python objects, so the wrappers keep it (measured: ~81 ns instead of
    # ~130 ns per call). The only place the GIL is released is around libev's poll.
    """
    #undef Py_BEGIN_ALLOW_THREADS
    #undef Py_END_ALLOW_THREADS
    #define Py_BEGIN_ALLOW_THREADS {
    #define Py_END_ALLOW_THREADS }
    #include "evloop_config.h"
    #include "ev.h"
    #include "evloop.h"
    """,
    # one translation unit: libev and every room of the glue (csrc/evloop_unity.c says why)
    sources=[_rel("csrc", "evloop_unity.c")],
    include_dirs=[_rel("csrc"), _rel("vendor", "libev"), _greenlet_include()],
    depends=[_rel("csrc", name) for name in sorted(os.listdir(os.path.join(ROOT, "csrc")))],
    extra_compile_args=extra_compile_args,
    extra_link_args=extra_link_args,
    # evloop's C uses the full (not the limited) C API: the wheel is per-Python-version
    py_limited_api=False,
    libraries=[] if sys.platform == "win32" else ["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.join(ROOT, "build", "cffi"), verbose=True)
