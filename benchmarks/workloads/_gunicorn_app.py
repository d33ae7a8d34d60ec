"""The WSGI app the gunicorn_* workloads serve: a fixed 13-byte body with its length, as
frameworks' "hello world" benchmarks do. Nothing here may block or allocate much: what
is measured is gunicorn's HTTP handling on each worker class."""

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
