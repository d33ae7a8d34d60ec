"""pywsgi_hello's runs, but ops/s = requests / CPU seconds (user + system, from
``/proc/PID/stat``) the server process used during the measured 3 s: the server's cost per
request, which other load on a shared machine disturbs far less than its throughput."""

from _pywsgi import IMPLS, run  # noqa: F401 - IMPLS is read by run.py

if __name__ == "__main__":
    run(metric="cpu")
