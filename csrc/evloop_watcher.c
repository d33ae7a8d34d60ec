/* evloop_watcher.c — the watcher base type: start, stop, attributes and the one libev
 * callback every watcher kind shares.
 *
 * Why it exists: a libev event must reach the Python callable in one C call
 * (PyObject_Vectorcall), and every kind (csrc/evloop_watchers.c) starts, stops, refs and
 * reports errors the same way. The loop keeps started watchers on a list, so destroy()
 * can stop them and drop their references.
 *
 * What it must not do: know hubs, Waiters or greenlets. A watcher flagged
 * EVLOOP_W_HOOKED has a callback owned by another room (the hub's Waiter); its events go
 * to evloop_hooks.watcher_event, registered at module init. It must not let a Python
 * exception escape into libev, or start a watcher that failed its kind's prestart check.
 */
#include "evloop_internal.h"

/* what the rooms above the loop registered at module init (evloop_internal.h) */
static evloop_hooks_t evloop_hooks = {NULL, NULL, NULL, NULL};

/* ------------------------------------------------------------------------------------ */
/* watchers: the common part                                                              */

static void
evloop_watcher_link(EvWatcher *self)
{
    EvLoop *loop = self->loop;
    Py_INCREF(self);
    self->flags |= EVLOOP_W_STARTED;
    self->prev = NULL;
    self->next = loop->watchers;
    if (loop->watchers)
        loop->watchers->prev = self;
    loop->watchers = self;
    loop->nwatchers++;
}

/* Drops the loop's reference: may deallocate self. */
static void
evloop_watcher_unlink(EvWatcher *self)
{
    EvLoop *loop = self->loop;
    if (!(self->flags & EVLOOP_W_STARTED))
        return;
    if (self->prev)
        self->prev->next = self->next;
    else
        loop->watchers = self->next;
    if (self->next)
        self->next->prev = self->prev;
    self->prev = self->next = NULL;
    loop->nwatchers--;
    self->flags &= ~EVLOOP_W_STARTED;
    Py_DECREF(self);
}

/* The single libev callback of every Python-visible watcher. */
static void
evloop_watcher_cb(struct ev_loop *l, ev_watcher *w, int revents)
{
    EvWatcher *self = (EvWatcher *)w->data;
    PyObject *cb = self->callback;
    /* args = None (gevent lets a running watcher's args be set to None): call with () */
    PyObject *args = self->args != NULL ? self->args : evloop_empty_tuple;
    Py_INCREF(self);
    Py_XINCREF(cb);     /* held to the end: compared with self->callback after the call */
    if (revents & EV_FORK)
        self->loop->fork_due = 0;   /* libev queued the fork watchers itself */
    /* libev stops some watchers by itself (one-shot timers, io watchers on a dead fd);
     * give back the loop reference this watcher had taken away. */
    if ((self->flags & EVLOOP_W_UNREF) && !ev_is_active(w)) {
        ev_ref(l);
        self->flags &= ~EVLOOP_W_UNREF;
    }
    if (cb != NULL && self->loop->exc_type != NULL && evloop_hooks.loop_leaving != NULL
        && evloop_hooks.loop_leaving(self->loop)) {
        Py_DECREF(cb);
        cb = NULL; /* the rest of this iteration's events are not dispatched */
    }
    if (cb != NULL && (self->flags & EVLOOP_W_HOOKED)) {
        /* a callback of a room above the loop (hub.wait(): resume the greenlet blocked on
         * this watcher, from inside libev's dispatch; the hub continues here when some
         * greenlet switches back to it). Only a room that registered the hook sets the
         * flag. */
        int r;
        Py_INCREF(args);
        r = evloop_hooks.watcher_event(
            cb, PyTuple_GET_SIZE(args) ? PyTuple_GET_ITEM(args, 0) : Py_None);
        if (r < 0)
            evloop_report_error(self->loop, (PyObject *)self);
        else if (r > 0)
            /* armed for a greenlet of a dead hub: it will never wait again (an io watcher
             * left active would fire on every iteration) */
            evloop_watcher_stop_internal(self);
        Py_DECREF(args);
    }
    else if (cb != NULL) {
        PyObject *res;
        Py_ssize_t n = PyTuple_GET_SIZE(args);
        Py_INCREF(args);
        if (self->flags & EVLOOP_W_PASS_EVENTS) {
            PyObject *small[8];
            PyObject *ev = PyLong_FromLong(revents);
            if (ev == NULL) {
                res = NULL;
            }
            else if (n < 7) {
                small[0] = ev;
                for (Py_ssize_t i = 0; i < n; i++)
                    small[i + 1] = PyTuple_GET_ITEM(args, i);
                res = PyObject_Vectorcall(cb, small, n + 1, NULL);
            }
            else {
                PyObject *full = PyTuple_New(n + 1);
                if (full == NULL) {
                    res = NULL;
                }
                else {
                    Py_INCREF(ev);
                    PyTuple_SET_ITEM(full, 0, ev);
                    for (Py_ssize_t i = 0; i < n; i++) {
                        PyObject *o = PyTuple_GET_ITEM(args, i);
                        Py_INCREF(o);
                        PyTuple_SET_ITEM(full, i + 1, o);
                    }
                    res = PyObject_Call(cb, full, NULL);
                    Py_DECREF(full);
                }
            }
            Py_XDECREF(ev);
        }
        else {
            res = PyObject_Vectorcall(cb, &PyTuple_GET_ITEM(args, 0), n, NULL);
        }
        Py_DECREF(args);
        if (res == NULL) {
            /* an fd stays ready until it is read: an io callback that failed would fail
             * again on every iteration, a busy loop printing one traceback after another.
             * Stop it, as gevent does (not for KeyboardInterrupt and other non-Exception
             * exceptions, which say nothing about the callback). */
            int stop = self->kind == &evloop_kind_io && PyErr_ExceptionMatches(PyExc_Exception);
            evloop_report_error(self->loop, (PyObject *)self);
            if (stop)
                evloop_watcher_stop_internal(self);
        }
        else
            Py_DECREF(res);
    }
    if ((self->flags & EVLOOP_W_STARTED) && !ev_is_active(w) && !ev_is_pending(w)
        && self->loop->ev != NULL) {
        if (self->kind->poststop)
            self->kind->poststop(self);
        evloop_watcher_unlink(self);
        /* libev stopped it (a one-shot timer that fired, an io watcher on a dead fd) and
         * the callback did not restart it: it is stopped like stop() leaves a watcher,
         * without its callback and args (gevent's watchers behave so; it also drops the
         * references a finished timer would otherwise keep) */
        if (self->callback == cb && cb != NULL) {
            self->flags &= ~EVLOOP_W_HOOKED;
            Py_CLEAR(self->callback);
            Py_CLEAR(self->args);
        }
    }
    Py_XDECREF(cb);
    Py_DECREF(self);
}

/* Stop in libev and release everything start took. May deallocate self: callers that use
 * self afterwards hold their own reference. */
static void
evloop_watcher_stop_internal(EvWatcher *self)
{
    EvLoop *loop = self->loop;
    if (loop->ev != NULL) {
        if (self->flags & EVLOOP_W_UNREF) {
            ev_ref(loop->ev);
            self->flags &= ~EVLOOP_W_UNREF;
        }
        self->kind->stop(loop->ev, self->w);
        if (self->kind->poststop)
            self->kind->poststop(self);
    }
    self->flags &= ~EVLOOP_W_UNREF;
    evloop_watcher_unlink(self);
}

static int
evloop_watcher_set_callback(EvWatcher *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *cb, *tuple;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "start() needs a callback");
        return -1;
    }
    cb = args[0];
    if (!PyCallable_Check(cb)) {
        PyErr_Format(PyExc_TypeError, "callback must be callable, not %.100s",
                     Py_TYPE(cb)->tp_name);
        return -1;
    }
    tuple = evloop_tuple_from_array(args + 1, nargs - 1);
    if (tuple == NULL)
        return -1;
    Py_INCREF(cb);
    Py_XSETREF(self->callback, cb);
    Py_XSETREF(self->args, tuple);
    self->flags &= ~EVLOOP_W_HOOKED;
    return 0;
}

/* What start() changes before libev sees the watcher, so that a start() that fails (a
 * closed fd, a signal owned by another loop, no fd left for the wake-up pipe) leaves the
 * watcher exactly as it was. */
typedef struct {
    PyObject *callback; /* strong or NULL */
    PyObject *args;     /* strong or NULL (args None: a stopped watcher has none) */
    unsigned int flags;
} evloop_saved_cb;

static void
evloop_save_callback(EvWatcher *self, evloop_saved_cb *saved)
{
    saved->callback = self->callback;
    saved->args = self->args;
    saved->flags = self->flags;
    Py_XINCREF(saved->callback);
    Py_XINCREF(saved->args);
}

/* restore: put the saved state back (start failed); otherwise just drop the copy */
static void
evloop_end_save(EvWatcher *self, evloop_saved_cb *saved, int restore)
{
    const unsigned int mask = EVLOOP_W_HOOKED | EVLOOP_W_PASS_EVENTS;
    if (restore) {
        Py_XSETREF(self->callback, saved->callback);
        Py_XSETREF(self->args, saved->args);
        self->flags = (self->flags & ~mask) | (saved->flags & mask);
    }
    else {
        Py_XDECREF(saved->callback);
        Py_XDECREF(saved->args);
    }
}

static int
evloop_watcher_can_start(EvWatcher *self)
{
    if (self->flags & EVLOOP_W_CLOSED) {
        PyErr_SetString(PyExc_ValueError, "watcher is closed");
        return -1;
    }
    if (self->loop->ev == NULL) {
        evloop_raise_destroyed();
        return -1;
    }
    return 0;
}

/* Start (or restart) with libev after the callback is set. */
static int
evloop_watcher_activate(EvWatcher *self)
{
    EvLoop *loop = self->loop;
    if (!ev_is_active(self->w)) {
        if (self->kind->prestart && self->kind->prestart(self) < 0)
            return -1;
        self->kind->start(loop->ev, self->w);
    }
    if (!(self->flags & EVLOOP_W_STARTED))
        evloop_watcher_link(self);
    if ((self->flags & EVLOOP_W_NOREF) && !(self->flags & EVLOOP_W_UNREF)) {
        ev_unref(loop->ev);
        self->flags |= EVLOOP_W_UNREF;
    }
    return 0;
}

/* The common tail of every start(): set callback(*args) (and io's pass_events: 1 on,
 * 0 off, -1 unchanged), then start with libev; on failure the watcher is left as it
 * was. */
static PyObject *
evloop_start_with(EvWatcher *self, PyObject *const *args, Py_ssize_t nargs, int pass_events)
{
    evloop_saved_cb saved;
    evloop_save_callback(self, &saved);
    if (evloop_watcher_set_callback(self, args, nargs) < 0) {
        evloop_end_save(self, &saved, 1);
        return NULL;
    }
    if (pass_events == 1)
        self->flags |= EVLOOP_W_PASS_EVENTS;
    else if (pass_events == 0)
        self->flags &= ~EVLOOP_W_PASS_EVENTS;
    if (evloop_watcher_activate(self) < 0) {
        evloop_end_save(self, &saved, 1);
        return NULL;
    }
    evloop_end_save(self, &saved, 0);
    Py_RETURN_NONE;
}

static PyObject *
watcher_start(EvWatcher *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        PyErr_Format(PyExc_TypeError, "%s.start() takes no keyword arguments",
                     self->kind->name);
        return NULL;
    }
    if (evloop_watcher_can_start(self) < 0)
        return NULL;
    return evloop_start_with(self, args, nargs, -1);
}

/* stop() leaves a watcher as it was before start(): no callback, args None (gevent's
 * contract; start() sets both again). */
static void
evloop_watcher_stop_and_forget(EvWatcher *self)
{
    Py_INCREF(self);
    evloop_watcher_stop_internal(self);
    self->flags &= ~EVLOOP_W_HOOKED;
    Py_CLEAR(self->callback);
    Py_CLEAR(self->args);
    Py_DECREF(self);
}

static PyObject *
watcher_stop(EvWatcher *self, PyObject *unused)
{
    evloop_watcher_stop_and_forget(self);
    Py_RETURN_NONE;
}

static PyObject *
watcher_close(EvWatcher *self, PyObject *unused)
{
    Py_INCREF(self);
    evloop_watcher_stop_internal(self);
    self->flags |= EVLOOP_W_CLOSED;
    self->flags &= ~EVLOOP_W_HOOKED;
    Py_CLEAR(self->callback);
    Py_CLEAR(self->args);
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static PyObject *
watcher_enter(EvWatcher *self, PyObject *unused)
{
    Py_INCREF(self);
    return (PyObject *)self;
}

/* METH_FASTCALL: gevent's sleep(seconds) leaves a `with loop.timer(...)` block on every
 * call, and METH_VARARGS would pack the three exception arguments into a tuple first */
static PyObject *
watcher_exit(EvWatcher *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *r = watcher_close(self, NULL);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static PyObject *
watcher_feed(EvWatcher *self, PyObject *args)
{
    int revents = EV_CUSTOM;
    if (!PyArg_ParseTuple(args, "|i:feed", &revents))
        return NULL;
    if (evloop_watcher_can_start(self) < 0)
        return NULL;
    if (self->callback == NULL) {
        PyErr_SetString(PyExc_ValueError, "feed() needs a watcher with a callback");
        return NULL;
    }
    ev_feed_event(self->loop->ev, self->w, revents);
    /* pending watchers are kept alive by the loop until their callback ran */
    if (!(self->flags & EVLOOP_W_STARTED))
        evloop_watcher_link(self);
    Py_RETURN_NONE;
}

static PyObject *
watcher_get_active(EvWatcher *self, void *c)
{
    return PyBool_FromLong(self->loop->ev != NULL && ev_is_active(self->w));
}

static PyObject *
watcher_get_pending(EvWatcher *self, void *c)
{
    return PyBool_FromLong(self->loop->ev != NULL && ev_is_pending(self->w));
}

static PyObject *
watcher_get_closed(EvWatcher *self, void *c)
{
    return PyBool_FromLong(self->flags & EVLOOP_W_CLOSED);
}

static PyObject *
watcher_get_priority(EvWatcher *self, void *c)
{
    return PyLong_FromLong(ev_priority(self->w));
}

static int
watcher_set_priority(EvWatcher *self, PyObject *value, void *c)
{
    long p;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete priority");
        return -1;
    }
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "priority must be an int, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    p = PyLong_AsLong(value);
    if (p == -1 && PyErr_Occurred())
        return -1;
    if (p < EV_MINPRI || p > EV_MAXPRI) {
        PyErr_Format(PyExc_ValueError, "priority must be between %d and %d, not %ld",
                     EV_MINPRI, EV_MAXPRI, p);
        return -1;
    }
    if (self->loop->ev != NULL && (ev_is_active(self->w) || ev_is_pending(self->w))) {
        PyErr_SetString(PyExc_ValueError,
                        "cannot change the priority of an active or pending watcher");
        return -1;
    }
    ev_set_priority(self->w, (int)p);
    return 0;
}

static PyObject *
watcher_get_ref(EvWatcher *self, void *c)
{
    return PyBool_FromLong(!(self->flags & EVLOOP_W_NOREF));
}

static int
watcher_set_ref(EvWatcher *self, PyObject *value, void *c)
{
    int truth;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete ref");
        return -1;
    }
    truth = PyObject_IsTrue(value);
    if (truth < 0)
        return -1;
    if (truth) {
        self->flags &= ~EVLOOP_W_NOREF;
        if (self->flags & EVLOOP_W_UNREF) {
            if (self->loop->ev != NULL)
                ev_ref(self->loop->ev);
            self->flags &= ~EVLOOP_W_UNREF;
        }
    }
    else {
        self->flags |= EVLOOP_W_NOREF;
        if (self->loop->ev != NULL && ev_is_active(self->w)
            && !(self->flags & EVLOOP_W_UNREF)) {
            ev_unref(self->loop->ev);
            self->flags |= EVLOOP_W_UNREF;
        }
    }
    return 0;
}

static PyObject *
watcher_get_callback(EvWatcher *self, void *c)
{
    if (self->callback == NULL)
        Py_RETURN_NONE;
    Py_INCREF(self->callback);
    return self->callback;
}

static int
watcher_set_callback_attr(EvWatcher *self, PyObject *value, void *c)
{
    if (value == NULL || value == Py_None) {
        if (self->loop->ev != NULL && ev_is_active(self->w)) {
            PyErr_SetString(PyExc_ValueError,
                            "cannot remove the callback of an active watcher; stop it first");
            return -1;
        }
        Py_CLEAR(self->callback);
        self->flags &= ~EVLOOP_W_HOOKED;
        return 0;
    }
    if (!PyCallable_Check(value)) {
        PyErr_Format(PyExc_TypeError, "callback must be callable, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(self->callback, value);
    /* A callback of the user's is called, never switched to: while a greenlet waits on
     * this watcher (hub.wait) the flag says "callback is a Waiter", and the dispatch
     * would treat this object as one. As with start(), the watcher is taken from the
     * waiting greenlet, which then only leaves its wait by kill() or a Timeout. */
    self->flags &= ~EVLOOP_W_HOOKED;
    return 0;
}

static PyObject *
watcher_get_args(EvWatcher *self, void *c)
{
    if (self->args == NULL)
        Py_RETURN_NONE;
    Py_INCREF(self->args);
    return self->args;
}

static int
watcher_set_args(EvWatcher *self, PyObject *value, void *c)
{
    if (value == NULL || value == Py_None) {
        /* None: the callback is called with no arguments */
        Py_CLEAR(self->args);
        return 0;
    }
    if (!PyTuple_Check(value)) {
        PyErr_Format(PyExc_TypeError, "args must be a tuple or None, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(self->args, value);
    return 0;
}

static PyObject *
watcher_get_loop(EvWatcher *self, void *c)
{
    Py_INCREF(self->loop);
    return (PyObject *)self->loop;
}

static PyObject *
watcher_repr(EvWatcher *self)
{
    const char *state;
    if (self->flags & EVLOOP_W_CLOSED)
        state = "closed";
    else if (self->loop->ev == NULL)
        state = "loop destroyed";
    else if (ev_is_active(self->w))
        state = ev_is_pending(self->w) ? "active pending" : "active";
    else
        state = ev_is_pending(self->w) ? "pending" : "stopped";
    if (self->callback) {
        /* the callback may show this watcher again (a Waiter -> its greenlet -> its args) */
        PyObject *r;
        int rec = Py_ReprEnter((PyObject *)self);
        if (rec < 0)
            return NULL;
        if (rec > 0)
            return PyUnicode_FromFormat("<%s at %p %s ...>", Py_TYPE(self)->tp_name, self,
                                        state);
        /* owned for the call: the callback's repr may replace them (and free args) */
        PyObject *cb = self->callback, *args = self->args != NULL ? self->args : Py_None;
        Py_INCREF(cb);
        Py_INCREF(args);
        r = PyUnicode_FromFormat("<%s at %p %s callback=%R args=%R>", Py_TYPE(self)->tp_name,
                                 self, state, cb, args);
        Py_DECREF(cb);
        Py_DECREF(args);
        Py_ReprLeave((PyObject *)self);
        return r;
    }
    return PyUnicode_FromFormat("<%s at %p %s>", Py_TYPE(self)->tp_name, self, state);
}

static int
watcher_traverse(EvWatcher *self, visitproc visit, void *arg)
{
    Py_VISIT(self->loop);
    Py_VISIT(self->callback);
    Py_VISIT(self->args);
    return 0;
}

static int
watcher_clear(EvWatcher *self)
{
    /* A started watcher is garbage only together with its loop (which reports its
     * reference), and pyloop_clear stops it: a NULL callback is never called meanwhile. */
    Py_CLEAR(self->callback);
    return 0;
}

static void
watcher_dealloc(EvWatcher *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    /* Not started (the loop would hold a reference); a pending event may remain after
     * the loop was destroyed only, where there is nothing to clear. */
    if (self->loop != NULL && self->loop->ev != NULL && self->w != NULL
        && ev_is_pending(self->w))
        ev_clear_pending(self->loop->ev, self->w);
    if (Py_IS_TYPE(self, &EvStat_Type) || PyObject_TypeCheck(self, &EvStat_Type)) {
        /* path bytes freed by the stat subtype below */
    }
    Py_CLEAR(self->callback);
    Py_CLEAR(self->args);
    Py_CLEAR(self->loop);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef watcher_methods[] = {
    {"start", (PyCFunction)(void (*)(void))watcher_start, METH_FASTCALL | METH_KEYWORDS,
     "start(callback, *args): call callback(*args) on every event"},
    {"stop", (PyCFunction)watcher_stop, METH_NOARGS, "stop watching; idempotent"},
    {"close", (PyCFunction)watcher_close, METH_NOARGS,
     "stop and drop the callback; the watcher cannot be started again"},
    {"feed", (PyCFunction)watcher_feed, METH_VARARGS,
     "feed(revents=EV_CUSTOM): make the watcher pending as if its event happened"},
    {"__enter__", (PyCFunction)watcher_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))watcher_exit, METH_FASTCALL, NULL},
    {NULL}
};

static PyGetSetDef watcher_getset[] = {
    {"active", (getter)watcher_get_active, NULL, "libev's ev_is_active", NULL},
    {"pending", (getter)watcher_get_pending, NULL, "an event waits for the callback", NULL},
    {"closed", (getter)watcher_get_closed, NULL, "close() was called", NULL},
    {"priority", (getter)watcher_get_priority, (setter)watcher_set_priority,
     "-2..2; settable while stopped", NULL},
    {"ref", (getter)watcher_get_ref, (setter)watcher_set_ref,
     "False: does not keep run() from returning", NULL},
    {"callback", (getter)watcher_get_callback, (setter)watcher_set_callback_attr, NULL, NULL},
    {"args", (getter)watcher_get_args, (setter)watcher_set_args, NULL, NULL},
    {"loop", (getter)watcher_get_loop, NULL, NULL, NULL},
    {NULL}
};

/* Common constructor tail: take the loop, ref, priority. The kind's libev struct must be
 * initialised (ev_*_init) by the caller before. */
static int
evloop_watcher_setup(EvWatcher *self, EvLoop *loop, const evloop_kind *kind, ev_watcher *w,
                     PyObject *ref, PyObject *priority)
{
    self->kind = kind;
    self->w = w;
    w->data = self;
    Py_INCREF(loop);
    self->loop = loop;
    self->args = NULL;          /* None until start() */
    if (ref != NULL && ref != Py_True) {
        int truth = PyObject_IsTrue(ref);
        if (truth < 0)
            return -1;
        if (!truth)
            self->flags |= EVLOOP_W_NOREF;
    }
    if (priority != NULL && priority != Py_None) {
        if (watcher_set_priority(self, priority, NULL) < 0)
            return -1;
    }
    return 0;
}


/* The abstract base: not instantiable from Python. */
static PyTypeObject EvWatcher_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "evloop.core.watcher",
    .tp_basicsize = sizeof(EvWatcher),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "base of every watcher; made by the loop's factories",
    .tp_dealloc = (destructor)watcher_dealloc,
    .tp_traverse = (traverseproc)watcher_traverse,
    .tp_clear = (inquiry)watcher_clear,
    .tp_weaklistoffset = offsetof(EvWatcher, weakreflist),
    .tp_repr = (reprfunc)watcher_repr,
    .tp_methods = watcher_methods,
    .tp_getset = watcher_getset,
};


static int
evloop_watcher_init(PyObject *m)
{
    return evloop_add_type(m, "watcher", &EvWatcher_Type);
}
