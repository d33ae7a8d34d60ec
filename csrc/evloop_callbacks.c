/* evloop_callbacks.c — the loop's run_callback queue and its handle type.
 *
 * Why it exists: run_callback is the hottest call after the watcher dispatch (gevent's
 * contract: callbacks run in order, before the next poll). The queue is an intrusive list
 * of handles, run by one prepare watcher in batches of at most EVLOOP_CB_BATCH_SECONDS.
 *
 * What it must not do: know what a switch entry means. Entries of a kind other than
 * EVLOOP_CB_CALL belong to the room that queued them and are run through
 * evloop_hooks.callback_entry (registered by the hub room at module init).
 */
#include "evloop_internal.h"

/* ------------------------------------------------------------------------------------ */
/* the callback queue (run_callback)                                                      */

#define EVLOOP_CB_FREELIST 256
static EvCallback *evloop_cb_free[EVLOOP_CB_FREELIST];
static int evloop_cb_nfree = 0;

static EvCallback *
evloop_callback_new(PyObject *func, PyObject *args)
{
    EvCallback *cb;
    if (evloop_cb_nfree > 0) {
        cb = evloop_cb_free[--evloop_cb_nfree];
        (void)PyObject_Init((PyObject *)cb, &EvCallback_Type);
    }
    else {
        cb = PyObject_New(EvCallback, &EvCallback_Type);
        if (cb == NULL)
            return NULL;
    }
    Py_INCREF(func);
    cb->callback = func;
    cb->args = args; /* reference stolen */
    cb->next = NULL;
    cb->queued = 0;
    cb->kind = EVLOOP_CB_CALL;
    return cb;
}

static void
callback_dealloc(EvCallback *cb)
{
    Py_CLEAR(cb->callback);
    Py_CLEAR(cb->args);
    if (Py_IS_TYPE(cb, &EvCallback_Type) && evloop_cb_nfree < EVLOOP_CB_FREELIST)
        evloop_cb_free[evloop_cb_nfree++] = cb;
    else
        PyObject_Free(cb);
}

static void
evloop_queue_append(EvLoop *self, EvCallback *cb)
{
    Py_INCREF(cb); /* the queue's reference */
    cb->queued = 1;
    cb->next = NULL;
    if (self->cb_tail)
        self->cb_tail->next = cb;
    else
        self->cb_head = cb;
    self->cb_tail = cb;
    self->cb_count++;
    if (!ev_is_active(&self->cb_idle))
        ev_idle_start(self->ev, &self->cb_idle);
}

static void
evloop_queue_clear(EvLoop *self)
{
    EvCallback *cb = self->cb_head;
    self->cb_head = self->cb_tail = NULL;
    self->cb_count = 0;
    while (cb) {
        EvCallback *next = cb->next;
        cb->next = NULL;
        cb->queued = 0;
        Py_CLEAR(cb->callback);
        Py_CLEAR(cb->args);
        Py_DECREF(cb);
        cb = next;
    }
}

/* Fork watchers must run once after every reinit(). libev queues them at the top of the
 * next iteration, when its postfork flag is set -- but the same iteration clears that flag
 * (reinitialising the kernel state) right after the prepare stage. A child forked from a
 * greenlet that the hub resumed in the prepare stage (our run_callback batch) or from a
 * fork watcher resumes in the middle of that iteration, past the queueing point and before
 * the clearing one: libev would never call its fork watchers. So every reinit() sets
 * fork_due, a dispatched fork watcher clears it, and the end of our prepare callback feeds
 * the fork watchers if it is still set (libev runs watchers fed during its pending pass in
 * that same pass). */
static void
evloop_fork_watchers_due(EvLoop *self)
{
    if (!self->fork_due || self->ev == NULL)
        return;
    self->fork_due = 0;
    for (EvWatcher *w = self->watchers; w != NULL; w = w->next) {
        if (w->kind == &evloop_kind_fork && ev_is_active(w->w))
            ev_feed_event(self->ev, w->w, EV_FORK);
    }
}

/* How long one batch of queued callbacks may run before the loop polls for I/O. */
#define EVLOOP_CB_BATCH_SECONDS 0.005
#define EVLOOP_CB_CHECK_EVERY 64

static void
evloop_run_callbacks(struct ev_loop *l, ev_prepare *w, int revents)
{
    EvLoop *self = (EvLoop *)w->data;
    int count = 0;
    double deadline = 0.0;
    (void)revents;
    if (self->cb_head == NULL) {
        /* Also reached re-entrantly: a callback of a batch that emptied the queue runs the
         * loop again (run() is re-entrant). The idle watcher is still active from the
         * outer batch; left so, it would keep the nested run() polling without blocking
         * for ever (run() never returning, run(once=True) returning before anything it
         * waits for). The outer batch sets it again when it ends. */
        if (self->ev != NULL && ev_is_active(&self->cb_idle))
            ev_idle_stop(self->ev, &self->cb_idle);
        evloop_fork_watchers_due(self);
        return;
    }
    Py_INCREF(self);
    while (self->cb_head != NULL) {
        EvCallback *cb = self->cb_head;
        PyObject *func, *args, *res;
        self->cb_head = cb->next;
        if (self->cb_head == NULL)
            self->cb_tail = NULL;
        self->cb_count--;
        cb->next = NULL;
        cb->queued = 0;
        /* While the call runs the handle is no longer `pending` (callback cleared) but
         * still true and still holds its args (gevent's contract: a linkable appends to
         * the list in `args[0]` of its notifier while that notifier runs); both are
         * dropped once it returns. */
        func = cb->callback;
        args = cb->args;   /* our own reference: args may be replaced while it runs */
        Py_XINCREF(args);
        cb->callback = NULL;
        if (args == NULL) {
            /* args set to None: cancelled */
            Py_XDECREF(func);
            func = NULL;
        }
        if (func != NULL && cb->kind == EVLOOP_CB_HOOKED) {
            /* an entry of a room above the loop (the hub's sleep(0): resume the yielding
             * greenlet; its sleep clears this entry if it is interrupted first, so a stale
             * entry never resumes it). Only a room that registered the hook queues one. */
            if (evloop_hooks.callback_entry(self, func) < 0)
                evloop_report_error(self, (PyObject *)cb);
            Py_DECREF(func);
        }
        else if (func != NULL) {
            res = PyObject_Vectorcall(func, &PyTuple_GET_ITEM(args, 0),
                                      PyTuple_GET_SIZE(args), NULL);
            if (res == NULL) {
                /* context: a handle that still shows what ran (with its own reference:
                 * the error handler may stop() it) */
                Py_INCREF(func);
                cb->callback = func;
                evloop_report_error(self, (PyObject *)cb);
                Py_CLEAR(cb->callback);
            }
            else {
                Py_DECREF(res);
            }
            Py_DECREF(func);
        }
        /* the handle's args may have been replaced while the call ran: drop whatever
         * it holds now, and our own reference to the tuple we called with */
        Py_CLEAR(cb->args);
        Py_XDECREF(args);
        Py_DECREF(cb);
        if (self->exc_type != NULL || self->ev == NULL)
            break; /* run() is going to raise; the rest stays queued */
        if (++count == EVLOOP_CB_CHECK_EVERY) {
            double now = ev_time();
            count = 0;
            if (deadline == 0.0)
                deadline = now + EVLOOP_CB_BATCH_SECONDS;
            else if (now >= deadline)
                break;
        }
    }
    if (self->ev != NULL) {
        if (self->cb_head == NULL) {
            if (ev_is_active(&self->cb_idle))
                ev_idle_stop(self->ev, &self->cb_idle);
        }
        else if (!ev_is_active(&self->cb_idle)) {
            ev_idle_start(self->ev, &self->cb_idle);
        }
    }
    /* also here: a child forked from one of these callbacks resumes in this loop */
    evloop_fork_watchers_due(self);
    Py_DECREF(self);
}

/* ------------------------------------------------------------------------------------ */
/* the run_callback handle                                                                */

static PyObject *
callback_stop(EvCallback *self, PyObject *unused)
{
    /* lazily removed: the queue skips a handle whose callback is gone */
    Py_CLEAR(self->callback);
    Py_CLEAR(self->args);
    Py_RETURN_NONE;
}

static PyObject *
callback_get_pending(EvCallback *self, void *c)
{
    return PyBool_FromLong(self->queued && self->callback != NULL);
}

static PyObject *
callback_get_callback(EvCallback *self, void *c)
{
    if (self->callback == NULL)
        Py_RETURN_NONE;
    Py_INCREF(self->callback);
    return self->callback;
}

static PyObject *
callback_get_args(EvCallback *self, void *c)
{
    if (self->args == NULL)
        Py_RETURN_NONE;
    Py_INCREF(self->args);
    return self->args;
}

static int
callback_set_args(EvCallback *self, PyObject *value, void *c)
{
    if (value == Py_None) {
        /* gevent's protocol: args = None cancels (a queued entry without args is skipped) */
        Py_CLEAR(self->args);
        Py_CLEAR(self->callback);
        return 0;
    }
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete args (set it to None to cancel)");
        return -1;
    }
    if (!PyTuple_Check(value)) {
        PyErr_Format(PyExc_TypeError, "args must be a tuple or None, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    if (self->args == NULL) {
        PyErr_SetString(PyExc_ValueError, "the callback already ran or was stopped");
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(self->args, value);
    return 0;
}

/* True while queued or running (gevent's `if not self._notifier:` schedules a new
 * notifier only when the previous one is neither). */
static int
callback_bool(EvCallback *self)
{
    return self->args != NULL;
}

static PyNumberMethods callback_as_number = {
    .nb_bool = (inquiry)callback_bool,
};

static PyObject *
callback_repr(EvCallback *self)
{
    if (self->callback) {
        /* owned for the call: the callback's repr may stop() this handle */
        PyObject *cb = self->callback, *args = self->args ? self->args : Py_None, *r;
        Py_INCREF(cb);
        Py_INCREF(args);
        r = PyUnicode_FromFormat("<evloop.core.callback at %p %s callback=%R args=%R>", self,
                                 self->queued ? "pending" : "", cb, args);
        Py_DECREF(cb);
        Py_DECREF(args);
        return r;
    }
    return PyUnicode_FromFormat("<evloop.core.callback at %p done>", self);
}

static PyMethodDef callback_methods[] = {
    {"stop", (PyCFunction)callback_stop, METH_NOARGS, "cancel if not run yet"},
    {"close", (PyCFunction)callback_stop, METH_NOARGS, "the same as stop()"},
    {NULL}
};

static PyGetSetDef callback_getset[] = {
    {"pending", (getter)callback_get_pending, NULL, NULL, NULL},
    {"callback", (getter)callback_get_callback, NULL, NULL, NULL},
    {"args", (getter)callback_get_args, (setter)callback_set_args, NULL, NULL},
    {NULL}
};

static PyTypeObject EvCallback_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "evloop.core.callback",
    .tp_basicsize = sizeof(EvCallback),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "a queued run_callback() call",
    .tp_dealloc = (destructor)callback_dealloc,
    .tp_repr = (reprfunc)callback_repr,
    .tp_as_number = &callback_as_number,
    .tp_methods = callback_methods,
    .tp_getset = callback_getset,
};


static int
evloop_callbacks_init(PyObject *m)
{
    return evloop_add_type(m, "callback", &EvCallback_Type);
}
