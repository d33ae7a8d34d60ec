"""Adapters that put evloop under other frameworks.

Each submodule binds one framework (gevent's loop contract, gunicorn's worker class,
psycopg2's wait callback) to the layers below it; nothing in evloop's core, hub or I/O
layers imports from here, and a submodule imports its framework only when it is itself
imported (psycopg: when ``make_psycopg_green()`` is called), so `import evloop` never
pulls in gevent, gunicorn or psycopg2.
"""
