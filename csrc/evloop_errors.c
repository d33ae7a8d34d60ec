/* evloop_errors.c — C error codes become Python exceptions; callback errors reach the loop's
 * handler; the GIL is handed off around the poll; argument checks shared by every room.
 *
 * Why it exists: every room turns an errno into an exception, reports an exception a
 * callback raised, and parses fds and numbers the same way; one copy keeps the exception
 * types and messages identical everywhere (evloop_raise_errno is the only place an errno
 * becomes an OSError). The GIL is released in one place only: between libev's release and
 * acquire callbacks around the backend poll.
 *
 * What it must not do: know watchers, hubs or greenlets, or let a Python exception escape
 * into libev. Every function here runs with the GIL held, except the two poll callbacks'
 * halves that run without it.
 */
#include "evloop_internal.h"

static PyObject *evloop_empty_tuple = NULL;
static PyObject *evloop_none_tuple = NULL; /* (None,) */

/* socket.timeout, handed in by evloop.socket (core._io_configure) */
static PyObject *evloop_exc_timeout = NULL;

/* ------------------------------------------------------------------------------------ */
/* errors: the one place where C error codes become Python exceptions                     */

static PyObject *
evloop_errno_exception(int err, const char *what)
{
    PyObject *args, *exc;
    if (what)
        args = Py_BuildValue("(is)", err, what);
    else
        args = Py_BuildValue("(is)", err, strerror(err));
    if (args == NULL)
        return NULL;
    /* OSError's constructor picks the subclass (ConnectionRefusedError, ...). */
    exc = PyObject_Call(PyExc_OSError, args, NULL);
    Py_DECREF(args);
    return exc;
}

static PyObject *
evloop_raise_errno(int err, const char *what)
{
    PyObject *exc = evloop_errno_exception(err, what);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *
evloop_raise_oserror(const char *msg)
{
    PyErr_SetString(PyExc_OSError, msg);
    return NULL;
}

static PyObject *
evloop_raise_timeout(void)
{
    PyErr_SetString(evloop_exc_timeout ? evloop_exc_timeout : PyExc_TimeoutError,
                    "timed out");
    return NULL;
}

/* the exception class evloop_raise_timeout raises (socket.timeout); a new reference */
static void
evloop_set_timeout_exception(PyObject *exc)
{
    Py_XSETREF(evloop_exc_timeout, exc);
}

static PyObject *
evloop_raise_destroyed(void)
{
    PyErr_SetString(PyExc_ValueError, "operation on destroyed loop");
    return NULL;
}

static void
evloop_syserr_cb(const char *msg)
{
    evloop_syserr_errno = errno;
    evloop_syserr_msg = msg;
    if (evloop_running != NULL && evloop_running->ev != NULL)
        ev_break(evloop_running->ev, EVBREAK_ALL);
}

/* Keep the first exception that must stop run(); report later ones as unraisable. The
 * current Python error indicator must be set. */
static void
evloop_stash_exception(EvLoop *self)
{
    if (self->exc_type == NULL) {
        PyErr_Fetch(&self->exc_type, &self->exc_value, &self->exc_tb);
    }
    else {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    if (self->ev != NULL)
        ev_break(self->ev, EVBREAK_ONE);
}

/* A callback raised: hand the exception to loop.handle_error; if that raises, stop run()
 * with it. Called with the error indicator set; returns with it clear. */
static void
evloop_report_error(EvLoop *self, PyObject *context)
{
    PyObject *type, *value, *tb, *res;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb == NULL) {
        tb = Py_None;
        Py_INCREF(tb);
    }
    else if (value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    if (value == NULL) {
        value = Py_None;
        Py_INCREF(value);
    }
    if (Py_IS_TYPE(self, &EvLoop_Type))
        res = pyloop_handle_error_impl(self, context, type, value, tb);
    else
        res = PyObject_CallMethod((PyObject *)self, "handle_error", "OOOO", context, type,
                                  value, tb);
    if (res == NULL)
        evloop_stash_exception(self);
    else
        Py_DECREF(res);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

static int
evloop_check_fd(PyObject *fdobj, int *out)
{
    long v;
    if (!PyLong_Check(fdobj)) {
        PyErr_Format(PyExc_TypeError, "fd must be an int, not %.100s",
                     Py_TYPE(fdobj)->tp_name);
        return -1;
    }
    v = PyLong_AsLong(fdobj);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0) {
        PyErr_Format(PyExc_ValueError, "fd must be non-negative, not %ld", v);
        return -1;
    }
    if (v > INT_MAX) {
        PyErr_Format(PyExc_OverflowError, "fd %ld is greater than the largest C int", v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* libev kills every watcher of an fd that epoll rejects with EBADF; refuse it first. */
static int
evloop_fd_alive(int fd)
{
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
        evloop_raise_errno(EBADF, "Bad file descriptor");
        return -1;
    }
    return 0;
}

/* The args tuple of start() and run_callback(): no args, and gevent's (None,) (its
 * sleep(0) queues run_callback(waiter.switch, None) on every yield), are the shared
 * tuples, without an allocation (and, for (None,), a GC link) per call. */
static PyObject *
evloop_tuple_from_array(PyObject *const *items, Py_ssize_t n)
{
    PyObject *t;
    if (n == 0 || (n == 1 && items[0] == Py_None)) {
        t = n == 0 ? evloop_empty_tuple : evloop_none_tuple;
        Py_INCREF(t);
        return t;
    }
    t = PyTuple_New(n);
    if (t == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(items[i]);
        PyTuple_SET_ITEM(t, i, items[i]);
    }
    return t;
}

static int
evloop_get_double(PyObject *obj, const char *what, double *out)
{
    double v;
    if (PyFloat_CheckExact(obj)) {
        v = PyFloat_AS_DOUBLE(obj);   /* the common case: no conversion can fail */
    }
    else {
        if (!PyFloat_Check(obj) && !PyLong_Check(obj) && !PyIndex_Check(obj)
            && !(Py_TYPE(obj)->tp_as_number && Py_TYPE(obj)->tp_as_number->nb_float)) {
            PyErr_Format(PyExc_TypeError, "%s must be a number, not %.100s", what,
                         Py_TYPE(obj)->tp_name);
            return -1;
        }
        v = PyFloat_AsDouble(obj);
        if (v == -1.0 && PyErr_Occurred())
            return -1;
    }
    if (isnan(v)) {
        PyErr_Format(PyExc_ValueError, "%s must not be NaN", what);
        return -1;
    }
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* GIL around the poll                                                                    */

/* Threads left in their hubs when the interpreter exits.
 *
 * At exit, CPython ends each remaining (daemon) thread when it next takes the GIL, with
 * pthread_exit(). For a thread that has greenlets, that exit runs greenlet's thread-local
 * destructors, which free the thread's greenlet state while the exiting main thread's
 * garbage collector traverses those greenlets: SIGSEGV in green_traverse (core dumps, on
 * CPython 3.11 and 3.13; most exits on 3.13 that left a thread in its hub).
 *
 * So such threads never take the GIL again once the exit has begun. An atexit handler
 * (evloop.core registers _park_hub_threads; it runs after non-daemon threads were joined
 * and before finalization) sets evloop_parking, wakes every loop running in another
 * thread, and waits, without the GIL and for at most a moment, until their threads have
 * parked: in this file's poll callbacks, at the poll's start (after releasing the GIL)
 * or end (before taking it back), a thread then waits in pause() until the process exits
 * (CPython 3.14 itself parks daemon threads in the same way). A thread busy in Python
 * code, not in its hub, at that moment is not covered. */
static volatile int evloop_parking = 0;       /* set by the handler, in the exiting thread */
static unsigned long evloop_parking_thread = 0; /* that thread, which must not park */
static volatile int evloop_parked = 0;

/* Called without the GIL from the poll callbacks: one load while the process runs. A
 * loop started in another thread after the handler ran sees the flag too. */
static void
evloop_park_if_exiting(void)
{
    if (evloop_parking && PyThread_get_thread_ident() != evloop_parking_thread) {
        __atomic_add_fetch(&evloop_parked, 1, __ATOMIC_SEQ_CST);
        for (;;)
            pause();
    }
}

static void
evloop_release_cb(struct ev_loop *l)
{
    EvLoop *self = (EvLoop *)ev_userdata(l);
    self->in_poll = 1;
    self->tstate = PyEval_SaveThread();
    evloop_park_if_exiting();
}

static void
evloop_acquire_cb(struct ev_loop *l)
{
    EvLoop *self = (EvLoop *)ev_userdata(l);
    /* errno carries the poll's result back to libev; Python code must not clobber it */
    int saved_errno = errno;
    evloop_park_if_exiting();
    PyEval_RestoreThread(self->tstate);
    self->tstate = NULL;
    /* A signal with a Python handler (SIGINT -> KeyboardInterrupt) interrupted the poll
     * with EINTR, or arrived while it ran: run the handler now, as time.sleep does. */
    if (PyErr_CheckSignals() < 0)
        evloop_stash_exception(self);
    self->in_poll = 0;
    errno = saved_errno;
}


/* ------------------------------------------------------------------------------------ */
/* module init                                                                            */

static int
evloop_add_type(PyObject *m, const char *name, PyTypeObject *t)
{
    if (PyType_Ready(t) < 0)
        return -1;
    Py_INCREF(t);
    if (PyModule_AddObject(m, name, (PyObject *)t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}

static int
evloop_errors_init(PyObject *m)
{
    (void)m;
    evloop_empty_tuple = PyTuple_New(0);
    evloop_none_tuple = PyTuple_Pack(1, Py_None);
    if (evloop_empty_tuple == NULL || evloop_none_tuple == NULL)
        return -1;
    ev_set_syserr_cb(evloop_syserr_cb);
    return 0;
}
