#!/usr/bin/env bash
# Run evloop's core and hub tests under valgrind memcheck, against a normal (unsanitized)
# build in a throw-away clone.
#
#   ./tools/memcheck.sh                               # tests/test_core.py tests/test_hub.py
#   ./tools/memcheck.sh tests/test_event.py -k foo    # any pytest args instead
#
# Clones the repo (committed state, HEAD) into $MC_DIR (default /tmp/evloop-mc), builds
# with `setup.py build_ext --inplace`, then runs pytest under
#   valgrind --error-exitcode=1 --errors-for-leak-kinds=definite --leak-check=no
# with PYTHONMALLOC=malloc (pymalloc off, so valgrind sees every Python allocation) and
# CPython's valgrind suppressions when one is installed (Debian ships CPython 3.11's
# Misc/valgrind-python.supp as /usr/lib/valgrind/python3.supp; $MC_SUPP overrides).
# The interpreter must be the real binary, not a pyenv shim (valgrind would trace bash).
# Subprocesses are not traced (--trace-children=no). Exits non-zero on any valgrind error
# or failing test; the log is $MC_DIR/valgrind.log.
#
# Environment: PYTHON (default: the real binary behind `python3`), MC_DIR, MC_SRC (repo to
#              clone; default: this one), MC_SUPP, MC_NO_CLONE=1 reuses an existing build.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MC_SRC="${MC_SRC:-$ROOT}"
MC_DIR="${MC_DIR:-/tmp/evloop-mc}"
PYTHON="${PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}"

die() { printf 'memcheck.sh: error: %s\n' "$*" >&2; exit 2; }
say() { printf '\n==> %s\n' "$*"; }

command -v valgrind >/dev/null || die "valgrind not found (apt-get install valgrind)"
[ -x "$PYTHON" ] || die "$PYTHON is not executable"
case "$(head -c 4 "$PYTHON" | od -An -c | tr -d ' ')" in
    *ELF*) ;;
    *) die "$PYTHON is not an ELF binary (a pyenv shim?); set PYTHON to the real interpreter";;
esac

if [ "${MC_NO_CLONE:-0}" != 1 ]; then
    say "clone $MC_SRC -> $MC_DIR"
    rm -rf "$MC_DIR"
    git clone -q "$MC_SRC" "$MC_DIR" || die "git clone failed"
    cd "$MC_DIR" || die "cd $MC_DIR"
    say "build (normal, unsanitized)"
    env -u EVLOOP_SANITIZE "$PYTHON" setup.py -q build_ext --inplace --force \
        >"$MC_DIR/build.log" 2>&1 || { tail -50 "$MC_DIR/build.log"; die "build failed"; }
fi
cd "$MC_DIR" || die "cd $MC_DIR"

SUPP="${MC_SUPP:-}"
if [ -z "$SUPP" ]; then
    for f in /usr/lib/valgrind/python3.supp /usr/share/doc/python3*/valgrind-python.supp*; do
        [ -f "$f" ] && { SUPP="$f"; break; }
    done
fi
supp_args=()
if [ -n "$SUPP" ]; then supp_args=(--suppressions="$SUPP"); echo "suppressions: $SUPP"
else echo "suppressions: none found"; fi

export PYTHONMALLOC=malloc
export PYTHONPATH="$MC_DIR"
unset LD_PRELOAD

say "which evloop"
where="$("$PYTHON" -c 'import evloop.core, evloop._ev; print(evloop.core.__file__); print(evloop._ev.__file__)')" \
    || die "import evloop failed"
echo "$where"
case "$where" in "$MC_DIR"/*) ;; *) die "evloop does not resolve to $MC_DIR";; esac

if [ $# -eq 0 ]; then set -- tests/test_core.py tests/test_hub.py; fi
LOG="$MC_DIR/valgrind.log"
say "valgrind memcheck: pytest $*"
valgrind --tool=memcheck --error-exitcode=1 --errors-for-leak-kinds=definite \
    --leak-check=no --track-origins=yes --num-callers=30 --trace-children=no \
    "${supp_args[@]}" --log-file="$LOG" \
    "$PYTHON" -m pytest -p no:cacheprovider -q -rfE "$@"
rc=$?

say "valgrind summary ($LOG)"
grep -E "ERROR SUMMARY" "$LOG"
# What counts: error contexts with at least one frame in evloop's extension (_ev*.so,
# csrc/, vendor/libev/). Contexts wholly inside CPython/glibc (e.g. 3.11's maybe_small_long
# reading ob_digit[0] of a fresh zero-length int, glibc's AVX2 wmemcmp reading a whole
# 32-byte word past a string's end) are listed but do not fail the run.
"$PYTHON" - "$LOG" <<'PY_EOF'
import re, sys
text = open(sys.argv[1]).read()
kinds = re.compile(r"(Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap)")
ours = re.compile(r"_ev\.cpython|/csrc/|vendor/libev|evloop_|\bev_[a-z_]+ \(")
blocks, cur = [], None
for line in text.splitlines():
    body = re.sub(r"^==\d+== ?", "", line)
    if kinds.match(body):
        cur = [body]; blocks.append(cur)
    elif cur is not None and body.strip():
        cur.append(body.strip())
    else:
        cur = None
mine, other = {}, {}
for b in blocks:
    frames = [f for f in b[1:] if re.match(r"(at|by) 0x", f)]
    key = (b[0], tuple(re.sub(r"0x[0-9A-F]+: ", "", f) for f in frames[:4]))
    (mine if any(ours.search(f) for f in frames) else other).setdefault(key, [0, b])[0] += 1
print(f"error contexts outside evloop (CPython/libc, ignored): {len(other)}")
for (kind, top), (n, _) in sorted(other.items(), key=lambda kv: -kv[1][0]):
    print(f"  {n:5d}x {kind}: {' <- '.join(top[:3])}")
print(f"error contexts touching evloop: {len(mine)}")
for (kind, top), (n, b) in mine.items():
    print(f"  {n:5d}x"); print("    " + "\n    ".join(b[:25]))
sys.exit(1 if mine else 0)
PY_EOF
ours=$?
echo "memcheck.sh: pytest exit status $rc; evloop error contexts: $([ $ours = 0 ] && echo 0 || echo 'see above')"
[ $ours -eq 0 ] && [ $rc -eq 0 ] || exit 1
echo "memcheck.sh: OK"
