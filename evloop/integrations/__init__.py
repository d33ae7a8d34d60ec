"""Adapters that put evloop under other frameworks.

Each submodule binds one framework (gevent's loop contract, gunicorn's worker class) to the
layers below it; nothing in evloop's core, hub or I/O layers imports from here, and a
submodule imports its framework only when it is itself imported, so `import evloop` never
pulls in gevent or gunicorn.
"""
