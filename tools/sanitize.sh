#!/usr/bin/env bash
# Build evloop with ASan+UBSan in a throw-away clone and run the test suite against it.
#
#   ./tools/sanitize.sh                         # full suite (tests/)
#   ./tools/sanitize.sh tests/test_core.py ...  # selected tests (any pytest args)
#
# Needs only git, gcc (with libasan/libubsan) and a CPython 3.10+ with the venv module;
# everything else goes into a venv of the script's own. Steps:
#   1. $SAN_DIR/venv: made from $PYTHON once (remade when $PYTHON is another version), then
#      `pip install 'setuptools>=77'` (pyproject's PEP 639 `license` needs it; a fresh
#      venv of CPython <= 3.11 has an older one).
#   2. $SAN_DIR/src: a clone of the repo (committed state, HEAD), installed into that venv
#      with `pip install -e '.[test]'` (the test dependencies) under
#      EVLOOP_SANITIZE=address,undefined, which builds the extension in place, instrumented.
#   3. pytest from the clone with the venv's interpreter, PYTHONPATH pointing at the clone
#      (the machine's installed evloop is never touched), the ASan runtime LD_PRELOADed
#      into the (unsanitized) interpreter and EVLOOP_SANITIZED=1 (tests that judge memory
#      growth measure it in a way ASan does not distort: tests/test_soak.py,
#      tests/test_leaks.py). Leak detection is off (CPython leaks at exit);
#      PYTHONMALLOC=malloc so ASan sees Python's allocations too.
# Exits non-zero if the build fails, a test fails, or any ASan/UBSan report is printed
# (reports go to $SAN_DIR/san-logs/ as well as stderr).
#
# Environment: PYTHON (interpreter the venv is made from; default python3), SAN_DIR
#              (default /tmp/evloop-san), SAN_SRC (repo to clone; default: this one),
#              SAN_NO_CLONE=1 reuses the existing $SAN_DIR/src build and venv as they are.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
SAN_SRC="${SAN_SRC:-$ROOT}"
SAN_DIR="${SAN_DIR:-/tmp/evloop-san}"

die() { printf 'sanitize.sh: error: %s\n' "$*" >&2; exit 2; }
say() { printf '\n==> %s\n' "$*"; }

VENV="$SAN_DIR/venv"
SRC="$SAN_DIR/src"
VPY="$VENV/bin/python"
command -v git >/dev/null || die "git not found"
command -v gcc >/dev/null || die "gcc not found (the sanitized build and libasan come from it)"

if [ "${SAN_NO_CLONE:-0}" != 1 ]; then
    mkdir -p "$SAN_DIR" || die "mkdir $SAN_DIR"
    want="$("$PYTHON" -c 'import sys; print(sys.version)' 2>/dev/null)" \
        || die "PYTHON=$PYTHON does not run"
    have="$("$VPY" -c 'import sys; print(sys.version)' 2>/dev/null || true)"
    if [ "$have" != "$want" ]; then
        say "venv $VENV (from $PYTHON)"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV" \
            || die "$PYTHON -m venv failed (Debian/Ubuntu: apt-get install python3-venv)"
    fi
    say "setuptools>=77 in $VENV"
    "$VPY" -m pip install -q --disable-pip-version-check 'setuptools>=77' \
        || die "pip install 'setuptools>=77' into $VENV failed"

    say "clone $SAN_SRC -> $SRC"
    rm -rf "$SRC"
    git clone -q "$SAN_SRC" "$SRC" || die "git clone failed"
    cd "$SRC" || die "cd $SRC"
    say "build and install (EVLOOP_SANITIZE=address,undefined; log: $SAN_DIR/build.log)"
    # --param=asan-stack=0: no redzones around evloop's stack frames. greenlet switches by
    # memcpy'ing raw C stack to and from the heap without telling ASan, so with stack
    # instrumentation on, (a) greenlet's memcpy trips over evloop's redzones
    # (stack-buffer-underflow in StackState::copy_stack_to_heap_up_to) and (b) poison left
    # by a suspended greenlet's evloop frames stays in the shadow of stack reused by
    # another greenlet or thread (CHECK failed asan_thread.cpp:371 in getaddrinfo's
    # interceptor). Both are artefacts, not evloop bugs. Heap, global and UBSan checks stay.
    # -DNDEBUG: as in release builds (CPython's own flags), libev's asserts stay off; with
    # them on, libev aborts on conditions it otherwise handles (a watched fd closed behind
    # its back is killed with an error event, which evloop reports), so the sanitized run
    # would test different code from what ships.
    # An editable install builds the extension into the source tree (evloop/_ev*.so).
    CFLAGS="${CFLAGS:+$CFLAGS }--param=asan-stack=0 -DNDEBUG" \
    EVLOOP_SANITIZE=address,undefined \
        "$VPY" -m pip install --disable-pip-version-check -e '.[test]' \
        >"$SAN_DIR/build.log" 2>&1 || { tail -50 "$SAN_DIR/build.log"; die "build failed"; }
fi
[ -x "$VPY" ] || die "no venv at $VENV (run without SAN_NO_CLONE=1 first)"
cd "$SRC" || die "cd $SRC (run without SAN_NO_CLONE=1 first)"

ASAN_LIB="$(gcc -print-file-name=libasan.so)"
UBSAN_LIB="$(gcc -print-file-name=libubsan.so)"
[ -f "$ASAN_LIB" ] || die "libasan.so not found (gcc -print-file-name=libasan.so)"
# the built extension must really be instrumented
so="$(ls evloop/_ev*.so 2>/dev/null | head -1)"
[ -n "$so" ] || die "no evloop/_ev*.so in $SRC"
ldd "$so" | grep libasan >/dev/null || die "$so is not linked against libasan"

LOGDIR="$SAN_DIR/san-logs"
rm -rf "$LOGDIR"; mkdir -p "$LOGDIR"
export LD_PRELOAD="$ASAN_LIB${UBSAN_LIB:+:$UBSAN_LIB}"
# log_path: every process (tests spawn subprocesses) writes its reports to its own file,
# so reports from children are not lost in captured output.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=0:allow_user_segv_handler=0:log_path=$LOGDIR/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$LOGDIR/ubsan"
export PYTHONMALLOC=malloc
export PYTHONPATH="$SRC"
# tests that judge memory growth read it (tests/test_soak.py, tests/test_leaks.py)
export EVLOOP_SANITIZED=1
export PYTHONFAULTHANDLER=1

say "which evloop"
where="$("$VPY" -c 'import evloop.core, evloop._ev; print(evloop.core.__file__); print(evloop._ev.__file__)')" \
    || die "import evloop failed under the sanitizer env"
echo "$where"
case "$where" in "$SRC"/*) ;; *) die "evloop does not resolve to $SRC";; esac

if [ $# -eq 0 ]; then set -- tests/; fi
say "pytest $*"
# The whole suite, the memory-growth repeat tests (-m leakcheck) and the soak included.
"$VPY" -m pytest -p no:cacheprovider -q -rfE "$@"
rc=$?

say "sanitizer reports"
reports=$(ls "$LOGDIR" | wc -l)
if [ "$reports" -gt 0 ]; then
    for f in "$LOGDIR"/*; do echo "--- $f"; cat "$f"; done
    echo "sanitize.sh: $reports sanitizer report file(s) in $LOGDIR" >&2
    exit 1
fi
echo "none"
[ $rc -eq 0 ] || { echo "sanitize.sh: pytest exited $rc" >&2; exit $rc; }
echo "sanitize.sh: OK"
