#!/bin/sh
# Why this exists: the benchmark harness compares evloop with its peers (gevent, uvloop)
# on the same machine, but the peers must not share an environment with evloop (gevent
# and evloop would both claim the loop, and installing them next to the package under
# test hides what evloop itself depends on). This script builds one separate virtualenv,
# benchmarks/.peers/, from the current python3 and installs the peers from PyPI.
# It is idempotent: an existing, working venv is left alone (pass --force to rebuild).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.peers"
python=${PYTHON:-python3}
# gunicorn: the gunicorn_* workloads run its gevent worker (-k gevent) from this venv;
# uvicorn, httptools: pywsgi_hello runs uvicorn (uvloop + httptools) as the ASGI peer
# matplotlib: benchmarks/chart.py draws with it (run with this venv's python when the
# running one has none)
peers="gevent uvloop gunicorn uvicorn httptools matplotlib"

if [ "${1:-}" = "--force" ]; then
    rm -rf "$venv"
fi

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import gevent, uvloop, gunicorn, uvicorn, httptools, matplotlib" 2>/dev/null; then
    echo "peers venv already set up: $venv"
else
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install --quiet $peers
fi

"$venv/bin/python" - <<'PY'
import sys, gevent, uvloop, gunicorn, uvicorn, httptools, matplotlib
print("python", sys.version.split()[0], "| gevent", gevent.__version__, "| uvloop", uvloop.__version__,
      "| gunicorn", gunicorn.__version__, "| uvicorn", uvicorn.__version__, "| httptools", httptools.__version__,
      "| matplotlib", matplotlib.__version__)
PY
