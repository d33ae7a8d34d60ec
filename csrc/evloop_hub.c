/* evloop_hub.c — the hub's hot path: Waiter, waiting on a watcher, sleep.
 *
 * Why it exists: a greenlet blocks by switching to the hub greenlet and is resumed by a
 * watcher's event or a queued callback. Done in Python that is a chain of small calls
 * (make a Waiter, bind its switch, start the watcher, switch, stop); here each is one C
 * call, and the hub resumes a waiting greenlet straight from libev's dispatch through
 * greenlet's C API.
 *
 * What it must not do: decide policy. Error reporting goes to the hub's handle_error (a
 * Python method), LoopExit/errors are Python classes handed in by evloop.hub, and the hub
 * greenlet itself is a Python object. Every switch from a greenlet into the hub goes
 * through evloop_hub_switch (the hub's wait, sleep(0), evloop.aio's run). The loop's
 * dispatch does not know this room: evloop_hub_init registers the hooks through which a
 * watcher's event or a queue entry reaches a Waiter or a greenlet (evloop_internal.h).
 */
#include "evloop_internal.h"
#include "greenlet.h"

static PyTypeObject EvWaiter_Type;
static PyObject *evloop_current_hub(void);

/* Set by evloop.hub through _cext._hub_configure(). */
static PyObject *evloop_exc_LoopExit = NULL;
static PyObject *evloop_exc_BlockingSwitchOutError = NULL;
static PyObject *evloop_exc_ConcurrentObjectUseError = NULL;
static PyObject *evloop_exc_InvalidSwitchError = NULL;
static PyObject *evloop_str_loop = NULL;       /* interned "loop" */

/* What a wait's watcher (ready) and timer (timed out) switch the waiting greenlet with,
 * and the one-tuples that carry them: made once, so that arming a watcher and waking its
 * greenlet allocate nothing (three tuples a socket ping-pong round trip before, ~280
 * instructions each: callgrind). Only a waiting greenlet's own Waiter can switch into it
 * (evloop_waiter_undo disarms it), so a shared mark is as safe as the Waiter's identity. */
static PyObject *evloop_timeout_mark = NULL;
static PyObject *evloop_ready_mark = NULL;
static PyObject *evloop_timeout_args = NULL; /* (evloop_timeout_mark,) */
static PyObject *evloop_ready_args = NULL;   /* (evloop_ready_mark,) */

typedef struct EvWaiter {
    PyObject_HEAD
    PyObject *hub;      /* the hub greenlet (strong) */
    PyObject *greenlet; /* the greenlet blocked in get(), or NULL */
    PyObject *value;    /* strong or NULL */
    PyObject *exc;      /* NULL: nothing yet; Py_None: value ready; tuple: exception */
    PyObject *what;     /* optional: what get() waits for, for LoopExit messages */
    PyObject *weakreflist;
} EvWaiter;

static int
evloop_hub_ready(void)
{
    if (_PyGreenlet_API == NULL || evloop_exc_LoopExit == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "evloop.hub has not been imported");
        return -1;
    }
    return 0;
}

/* Report an exception raised while the hub switched into a greenlet (or by a callback
 * the hub ran) to hub.handle_error(context, type, value, tb). */
static int
evloop_hub_report(PyObject *hub, PyObject *context)
{
    PyObject *type, *value, *tb, *res;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    res = PyObject_CallMethod(hub, "handle_error", "OOOO", context ? context : Py_None,
                              type ? type : Py_None, value ? value : Py_None,
                              tb ? tb : Py_None);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

/* The hub running this loop is being destroyed: Hub.destroy() threw HubDestroyed (a
 * GreenletExit) into it, and it is on its way out of run(). libev still dispatches the
 * other events of the current iteration; none may resume a greenlet (destroy() promises
 * that no greenlet waiting in the hub runs again) or run a callback in the dying hub. */
static int
evloop_hub_leaving(EvLoop *loop)
{
    return loop->exc_type != NULL && _PyGreenlet_API != NULL
           && PyErr_GivenExceptionMatches(loop->exc_type, PyExc_GreenletExit);
}

/* --- Waiter ------------------------------------------------------------------------- */

static PyObject *
waiter_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"hub", NULL};
    PyObject *hub = Py_None;
    EvWaiter *self;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:Waiter", kwlist, &hub))
        return NULL;
    if (hub == Py_None) {
        PyObject *mod = PyImport_ImportModule("evloop.hub");
        if (mod == NULL)
            return NULL;
        hub = PyObject_CallMethod(mod, "get_hub", NULL);
        Py_DECREF(mod);
        if (hub == NULL)
            return NULL;
    }
    else {
        Py_INCREF(hub);
    }
    if (evloop_hub_ready() < 0 || !PyGreenlet_Check(hub)) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "hub must be a greenlet, not %.100s",
                         Py_TYPE(hub)->tp_name);
        Py_DECREF(hub);
        return NULL;
    }
    self = (EvWaiter *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(hub);
        return NULL;
    }
    self->hub = hub;
    return (PyObject *)self;
}

static EvWaiter *
evloop_waiter_new(PyObject *hub)
{
    EvWaiter *self = PyObject_GC_New(EvWaiter, &EvWaiter_Type);
    if (self == NULL)
        return NULL;
    Py_INCREF(hub);
    self->hub = hub;
    self->greenlet = self->value = self->exc = self->what = NULL;
    self->weakreflist = NULL;
    PyObject_GC_Track(self);
    return self;
}

static int
waiter_traverse(EvWaiter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->hub);
    Py_VISIT(self->greenlet);
    Py_VISIT(self->value);
    Py_VISIT(self->exc);
    Py_VISIT(self->what);
    return 0;
}

static int
waiter_clear_refs(EvWaiter *self)
{
    Py_CLEAR(self->greenlet);
    Py_CLEAR(self->value);
    Py_CLEAR(self->exc);
    Py_CLEAR(self->what);
    Py_CLEAR(self->hub);
    return 0;
}

static void
waiter_dealloc(EvWaiter *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    waiter_clear_refs(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Waking a greenlet is the hub's job: from anywhere else the switch would never return.
 * 0: in the hub; 1: the waiter's hub is dead (destroyed, or killed by an error) — its
 * greenlet is an orphan that must never run again (its parent is gone: when it ended it
 * would return into whatever greenlet runs at the top), so waking it does nothing;
 * -1: AssertionError. */
static int
evloop_waiter_check_hub(EvWaiter *self, const char *method)
{
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    int in_hub = (PyObject *)cur == self->hub;
    Py_XDECREF(cur);
    if (in_hub)
        return 0;
    if (PyGreenlet_STARTED((PyGreenlet *)self->hub) && !PyGreenlet_ACTIVE((PyGreenlet *)self->hub))
        return 1;
    PyErr_Format(PyExc_AssertionError,
                 "Can only use Waiter.%s method from the Hub greenlet", method);
    return -1;
}

/* What came back to the hub from switching or throwing into g: an exception is the
 * hub's to report. Consumes res (may be NULL) and the caller's reference to g. */
static int
evloop_hub_switched(EvWaiter *self, PyObject *g, PyObject *res)
{
    int r = 0;
    if (res == NULL)
        r = evloop_hub_report(self->hub, g);
    else
        Py_DECREF(res);
    Py_DECREF(g);
    return r;
}

/* Resume the waiting greenlet with value, or store it. Runs in the hub. 0 done, 1 the
 * waiting greenlet is an orphan of a dead hub (nothing done), -1 error. */
static int
evloop_waiter_switch(EvWaiter *self, PyObject *value)
{
    PyObject *g, *args, *res;
    int r;
    if (self->greenlet == NULL) {
        Py_INCREF(value);
        Py_XSETREF(self->value, value);
        Py_INCREF(Py_None);
        Py_XSETREF(self->exc, Py_None);
        return 0;
    }
    if ((r = evloop_waiter_check_hub(self, "switch")) != 0)
        return r;
    g = self->greenlet;
    Py_INCREF(g);
    if (value == Py_None || value == evloop_ready_mark || value == evloop_timeout_mark) {
        args = value == Py_None ? evloop_none_tuple
               : value == evloop_ready_mark ? evloop_ready_args : evloop_timeout_args;
        Py_INCREF(args);
    }
    else {
        args = PyTuple_Pack(1, value);
        if (args == NULL) {
            Py_DECREF(g);
            return -1;
        }
    }
    res = PyGreenlet_Switch((PyGreenlet *)g, args, NULL);
    Py_DECREF(args);
    return evloop_hub_switched(self, g, res);
}

static PyObject *
waiter_switch(EvWaiter *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "switch() takes at most one argument");
        return NULL;
    }
    if (evloop_waiter_switch(self, nargs ? args[0] : Py_None) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
waiter_switch_args(EvWaiter *self, PyObject *args)
{
    if (evloop_waiter_switch(self, args) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int
evloop_waiter_throw(EvWaiter *self, PyObject *throw_args)
{
    PyObject *g, *res, *typ = NULL, *val = NULL, *tb = NULL;
    int r;
    if (!PyArg_UnpackTuple(throw_args, "throw", 0, 3, &typ, &val, &tb))
        return -1;
    if (typ == NULL) {
        typ = PyExc_GreenletExit;
    }
    if (self->greenlet == NULL) {
        PyObject *t = PyTuple_Pack(3, typ, val ? val : Py_None, tb ? tb : Py_None);
        if (t == NULL)
            return -1;
        Py_XSETREF(self->exc, t);
        return 0;
    }
    if ((r = evloop_waiter_check_hub(self, "throw")) != 0)
        return r;
    g = self->greenlet;
    Py_INCREF(g);
    res = PyGreenlet_Throw((PyGreenlet *)g, typ, val, tb == Py_None ? NULL : tb);
    return evloop_hub_switched(self, g, res);
}

static PyObject *
waiter_throw(EvWaiter *self, PyObject *args)
{
    if (evloop_waiter_throw(self, args) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* LoopExit reached a greenlet blocked on this waiter: say what it waited for. */
static void
evloop_explain_loopexit(PyObject *what, PyObject *hub)
{
    PyObject *type, *value, *tb, *msg, *exc;
    if (!PyErr_ExceptionMatches(evloop_exc_LoopExit))
        return;
    PyErr_Fetch(&type, &value, &tb);
    msg = PyUnicode_FromFormat(
        "This operation would block forever: the current greenlet waits on %R and the hub "
        "has no active watcher or queued callback left that could wake it (hub: %R)",
        what ? what : Py_None, hub);
    if (msg == NULL) {
        PyErr_Restore(type, value, tb);
        return;
    }
    exc = PyObject_CallFunctionObjArgs(evloop_exc_LoopExit, msg, NULL);
    Py_DECREF(msg);
    if (exc == NULL) {
        PyErr_Restore(type, value, tb);
        return;
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    /* keep the hub's original as the cause */
    if (value != NULL)
        PyException_SetCause(exc, value);
    PyErr_SetObject(evloop_exc_LoopExit, exc);
    Py_DECREF(exc);
}

/* The one switch into the hub. The current greenlet has armed what is to resume it (a
 * Waiter, a queue entry, an evloop.aio batch) and yields to the hub; callers have refused
 * to block in the hub itself (that switch would never come back). When the switch
 * returns, undo(arg) runs first, whoever resumed the greenlet: it disarms whatever is
 * still armed, so that a greenlet resumed by someone else (a kill, an evloop.Timeout, the
 * hub ending) is never resumed later by a stale wake-up. A LoopExit is then explained
 * with what the greenlet waited on: *what, read after the switch (a Waiter's `what` may
 * be set while it waits; *what NULL reads as None); what NULL: the LoopExit is left as
 * the hub raised it. Returns what the greenlet was switched back with (new reference),
 * or NULL with an exception. */
EVLOOP_HOT PyObject *
evloop_hub_switch(PyObject *hub, PyObject *const *what, evloop_hub_undo undo, void *arg)
{
    PyObject *res = PyGreenlet_Switch((PyGreenlet *)hub, evloop_empty_tuple, NULL);
    if (undo != NULL)
        undo(arg);
    if (res == NULL && what != NULL)
        evloop_explain_loopexit(*what, hub);
    return res;
}

/* a Waiter's arming is the greenlet it will switch to */
static void
evloop_waiter_undo(void *arg)
{
    Py_CLEAR(((EvWaiter *)arg)->greenlet);
}

static PyObject *
evloop_waiter_get(EvWaiter *self)
{
    PyGreenlet *cur;
    PyObject *res;
    if (self->exc != NULL) {
        if (self->exc == Py_None) {
            Py_INCREF(self->value);
            return self->value;
        }
        /* a stored exception: raise it here, as getcurrent().throw(*exc) would */
        {
            PyObject *t = PyTuple_GET_ITEM(self->exc, 0), *v = PyTuple_GET_ITEM(self->exc, 1),
                     *tb = PyTuple_GET_ITEM(self->exc, 2);
            if (PyExceptionInstance_Check(t)) {
                PyErr_SetObject((PyObject *)Py_TYPE(t), t);
            }
            else if (PyExceptionClass_Check(t)) {
                Py_INCREF(t);
                Py_XINCREF(v == Py_None ? NULL : v);
                Py_XINCREF(tb == Py_None ? NULL : tb);
                PyErr_Restore(t, v == Py_None ? NULL : v, tb == Py_None ? NULL : tb);
            }
            else {
                PyErr_Format(PyExc_TypeError,
                             "exceptions must derive from BaseException, not %.100s",
                             Py_TYPE(t)->tp_name);
            }
            return NULL;
        }
    }
    if (self->greenlet != NULL) {
        PyErr_Format(evloop_exc_ConcurrentObjectUseError,
                     "This Waiter is already used by %R", self->greenlet);
        return NULL;
    }
    cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    if ((PyObject *)cur == self->hub) {
        Py_DECREF(cur);
        PyErr_SetString(evloop_exc_BlockingSwitchOutError,
                        "Impossible to call blocking function in the event loop callback");
        return NULL;
    }
    self->greenlet = (PyObject *)cur; /* reference moved */
    return evloop_hub_switch(self->hub, &self->what, evloop_waiter_undo, self);
}

static PyObject *
waiter_get(EvWaiter *self, PyObject *unused)
{
    return evloop_waiter_get(self);
}

static PyObject *
waiter_clear(EvWaiter *self, PyObject *unused)
{
    Py_CLEAR(self->greenlet);
    Py_CLEAR(self->value);
    Py_CLEAR(self->exc);
    Py_RETURN_NONE;
}

static PyObject *
waiter_ready(EvWaiter *self, PyObject *unused)
{
    return PyBool_FromLong(self->exc != NULL);
}

static PyObject *
waiter_successful(EvWaiter *self, PyObject *unused)
{
    return PyBool_FromLong(self->exc == Py_None);
}

/* link callback: waiter(source) resumes with source.value or throws source.exc_info */
static PyObject *
waiter_call(EvWaiter *self, PyObject *args, PyObject *kwds)
{
    PyObject *source, *exc;
    int r;
    if (!PyArg_ParseTuple(args, "O:Waiter", &source))
        return NULL;
    exc = PyObject_GetAttrString(source, "exception");
    if (exc == NULL)
        return NULL;
    if (exc == Py_None) {
        PyObject *value = PyObject_GetAttrString(source, "value");
        Py_DECREF(exc);
        if (value == NULL)
            return NULL;
        r = evloop_waiter_switch(self, value);
        Py_DECREF(value);
    }
    else {
        PyObject *info = PyObject_GetAttrString(source, "exc_info");
        Py_DECREF(exc);
        if (info == NULL)
            return NULL;
        if (!PyTuple_Check(info)) {
            PyObject *t = PySequence_Tuple(info);
            Py_DECREF(info);
            if (t == NULL)
                return NULL;
            info = t;
        }
        r = evloop_waiter_throw(self, info);
        Py_DECREF(info);
    }
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
waiter_get_value(EvWaiter *self, void *c)
{
    if (self->value == NULL)
        Py_RETURN_NONE;
    Py_INCREF(self->value);
    return self->value;
}

static PyObject *
waiter_get_exc_info(EvWaiter *self, void *c)
{
    if (self->exc == NULL || self->exc == Py_None)
        Py_RETURN_NONE;
    Py_INCREF(self->exc);
    return self->exc;
}

static PyObject *
waiter_get_hub(EvWaiter *self, void *c)
{
    Py_INCREF(self->hub);
    return self->hub;
}

static PyObject *
waiter_get_greenlet(EvWaiter *self, void *c)
{
    if (self->greenlet == NULL)
        Py_RETURN_NONE;
    Py_INCREF(self->greenlet);
    return self->greenlet;
}

static PyObject *
waiter_get_what(EvWaiter *self, void *c)
{
    if (self->what == NULL)
        Py_RETURN_NONE;
    Py_INCREF(self->what);
    return self->what;
}

static int
waiter_set_what(EvWaiter *self, PyObject *v, void *c)
{
    Py_XINCREF(v);
    Py_XSETREF(self->what, v);
    return 0;
}

static PyObject *
waiter_repr_inner(EvWaiter *self);

static PyObject *
waiter_repr(EvWaiter *self)
{
    PyObject *r;
    int rec = Py_ReprEnter((PyObject *)self);
    if (rec < 0)
        return NULL;
    if (rec > 0)
        return PyUnicode_FromFormat("<Waiter at %p ...>", self);
    r = waiter_repr_inner(self);
    Py_ReprLeave((PyObject *)self);
    return r;
}

static PyObject *
waiter_repr_inner(EvWaiter *self)
{
    if (self->exc == NULL)
        return PyUnicode_FromFormat("<Waiter at %p greenlet=%R>", self,
                                    self->greenlet ? self->greenlet : Py_None);
    if (self->exc == Py_None)
        return PyUnicode_FromFormat("<Waiter at %p value=%R>", self,
                                    self->value ? self->value : Py_None);
    return PyUnicode_FromFormat("<Waiter at %p exc_info=%R>", self, self->exc);
}

static PyMethodDef waiter_methods[] = {
    {"switch", (PyCFunction)(void (*)(void))waiter_switch, METH_FASTCALL,
     "switch(value=None): resume the waiting greenlet with value (from the hub), or store it"},
    {"switch_args", (PyCFunction)waiter_switch_args, METH_VARARGS, "switch(args)"},
    {"throw", (PyCFunction)waiter_throw, METH_VARARGS,
     "throw(type, value=None, tb=None): raise in the waiting greenlet, or store it"},
    {"get", (PyCFunction)waiter_get, METH_NOARGS,
     "return the stored value (raise the stored exception), or block until one comes"},
    {"clear", (PyCFunction)waiter_clear, METH_NOARGS, NULL},
    {"ready", (PyCFunction)waiter_ready, METH_NOARGS, NULL},
    {"successful", (PyCFunction)waiter_successful, METH_NOARGS, NULL},
    {NULL}
};

static PyGetSetDef waiter_getset[] = {
    {"value", (getter)waiter_get_value, NULL, NULL, NULL},
    {"exc_info", (getter)waiter_get_exc_info, NULL, NULL, NULL},
    {"hub", (getter)waiter_get_hub, NULL, NULL, NULL},
    {"greenlet", (getter)waiter_get_greenlet, NULL, NULL, NULL},
    {"what", (getter)waiter_get_what, (setter)waiter_set_what,
     "what get() waits for (named in LoopExit messages)", NULL},
    {NULL}
};

static PyTypeObject EvWaiter_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "evloop.hub.Waiter",
    .tp_basicsize = sizeof(EvWaiter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Waiter(hub=None): a one-shot rendezvous between the hub and a greenlet",
    .tp_new = waiter_new,
    .tp_dealloc = (destructor)waiter_dealloc,
    .tp_traverse = (traverseproc)waiter_traverse,
    .tp_clear = (inquiry)waiter_clear_refs,
    .tp_call = (ternaryfunc)waiter_call,
    .tp_weaklistoffset = offsetof(EvWaiter, weakreflist),
    .tp_repr = (reprfunc)waiter_repr,
    .tp_methods = waiter_methods,
    .tp_getset = waiter_getset,
};

/* --- waiting on a watcher -------------------------------------------------------------- */

static int evloop_hub_wait_timeout(PyObject *hub, EvWatcher *w, EvTimer *timer,
                                   double timeout);

/* hub_wait(hub, watcher): start watcher so that its event switches back here, switch to
 * the hub, stop the watcher whatever happened. The one way a greenlet blocks. */
static PyObject *
evloop_hub_wait(PyObject *hub, EvWatcher *w)
{
    if (evloop_hub_wait_timeout(hub, w, NULL, -1.0) < 0)
        return NULL;
    Py_RETURN_NONE;
}


static void
evloop_disarm(EvWatcher *w)
{
    evloop_watcher_stop_internal(w);
    w->flags &= ~EVLOOP_W_HOOKED;
    Py_CLEAR(w->callback);
    Py_CLEAR(w->args);
}

/* args: (what the event switches the greenlet with,), one of the shared tuples above */
static int
evloop_arm(EvWatcher *w, EvWaiter *waiter, PyObject *args)
{
    Py_INCREF(args);
    Py_INCREF(waiter);
    Py_XSETREF(w->callback, (PyObject *)waiter);
    Py_XSETREF(w->args, args);
    w->flags |= EVLOOP_W_HOOKED;
    w->flags &= ~EVLOOP_W_PASS_EVENTS;
    if (evloop_watcher_activate(w) < 0) {
        w->flags &= ~EVLOOP_W_HOOKED;
        Py_CLEAR(w->callback);
        return -1;
    }
    return 0;
}

/* Block the current greenlet until watcher w fires (1) or, if timer is given and
 * timeout >= 0, until timeout seconds pass (0); -1 with an exception (kill, Timeout,
 * LoopExit, a socket closed under us). Both watchers are stopped whatever happens. */
static int
evloop_hub_wait_timeout(PyObject *hub, EvWatcher *w, EvTimer *timer, double timeout)
{
    EvWaiter *waiter;
    PyObject *res;
    int rc;
    if (evloop_watcher_can_start(w) < 0)
        return -1;
    if (ev_is_active(w->w)) {
        PyErr_Format(evloop_exc_ConcurrentObjectUseError,
                     "another greenlet is already waiting on %R", w);
        return -1;
    }
    waiter = evloop_waiter_new(hub);
    if (waiter == NULL)
        return -1;
    /* referenced only by the armed watchers and this frame: the cycle collector has nothing
     * to find there, and 20k sleeping greenlets should not be 20k more objects for every
     * collection to traverse */
    PyObject_GC_UnTrack(waiter);
    if (evloop_arm(w, waiter, evloop_ready_args) < 0) {
        Py_DECREF(waiter);
        return -1;
    }
    if (timer != NULL && timeout >= 0.0) {
        if (ev_is_active(&timer->t))
            evloop_disarm(&timer->base);
        ev_now_update(timer->base.loop->ev);
        ev_timer_set(&timer->t, timeout, 0.0);
        if (evloop_arm(&timer->base, waiter, evloop_timeout_args) < 0) {
            evloop_disarm(w);
            Py_DECREF(waiter);
            return -1;
        }
    }
    Py_INCREF(w);
    waiter->what = (PyObject *)w;
    res = evloop_waiter_get(waiter);
    evloop_disarm(w);
    if (timer != NULL && timeout >= 0.0)
        evloop_disarm(&timer->base);
    if (res == NULL)
        rc = -1;
    else if (res == evloop_ready_mark)
        rc = 1;
    else if (res == evloop_timeout_mark)
        rc = 0;
    else {
        PyErr_Format(evloop_exc_InvalidSwitchError,
                     "Invalid switch into %R: got %R (expected its Waiter %R)", w, res,
                     waiter);
        rc = -1;
    }
    Py_XDECREF(res);
    Py_DECREF(waiter);
    return rc;
}

/* Another greenlet closed the fd a greenlet waits on: stop the watcher now (libev must
 * not see the closed fd) and raise `exc` in the waiting greenlet from the hub (also when
 * that greenlet waits in another thread's hub). */
static int
evloop_cancel_wait(EvWatcher *w, PyObject *exc)
{
    EvWaiter *waiter;
    PyObject *throw_, *h;
    if (w == NULL || !(w->flags & EVLOOP_W_HOOKED) || w->callback == NULL
        || !Py_IS_TYPE(w->callback, &EvWaiter_Type))
        return 0;
    waiter = (EvWaiter *)w->callback;
    Py_INCREF(waiter);
    evloop_disarm(w);
    if (waiter->greenlet != NULL && w->loop->ev != NULL) {
        throw_ = PyObject_GetAttrString((PyObject *)waiter, "throw");
        if (throw_ == NULL) {
            Py_DECREF(waiter);
            return -1;
        }
        {
            PyObject *argv[3] = {NULL, throw_, exc};
            h = evloop_run_callback_common(w->loop, argv + 1, 2,
                                           evloop_loop_foreign(w->loop));
        }
        Py_DECREF(throw_);
        if (h == NULL) {
            Py_DECREF(waiter);
            return -1;
        }
        Py_DECREF(h);
    }
    Py_DECREF(waiter);
    return 0;
}

/* _new_waiter(hub): Waiter(hub) without argument parsing, for hot paths (Event.wait) */
static PyObject *
mod_new_waiter(PyObject *m, PyObject *hub)
{
    if (evloop_hub_ready() < 0)
        return NULL;
    return (PyObject *)evloop_waiter_new(hub);
}

static PyObject *
mod_hub_wait(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_hub_wait(hub, watcher)");
        return NULL;
    }
    if (evloop_hub_ready() < 0)
        return NULL;
    if (!PyObject_TypeCheck(args[1], &EvWatcher_Type)) {
        PyErr_Format(PyExc_TypeError, "wait() needs an evloop.core watcher, not %.100s",
                     Py_TYPE(args[1])->tp_name);
        return NULL;
    }
    {
        /* Only this hub's loop can wake this greenlet: a watcher of another loop (another
         * thread's hub, a private loop) would be started there and never switch back here,
         * and the wait would end in a LoopExit that blames the hub, or never end. (The
         * C paths that call evloop_hub_wait make their watchers on the hub's loop.) */
        PyObject *hubloop = PyObject_GetAttr(args[0], evloop_str_loop);
        EvWatcher *w = (EvWatcher *)args[1];
        if (hubloop == NULL)
            return NULL;
        if (PyObject_TypeCheck(hubloop, &EvLoop_Type) && (EvLoop *)hubloop != w->loop) {
            PyErr_Format(PyExc_ValueError,
                         "cannot wait on %R: it belongs to %R, not to this hub's loop %R "
                         "(each thread's hub has its own loop; make the watcher with "
                         "hub.loop)", (PyObject *)w, (PyObject *)w->loop, hubloop);
            Py_DECREF(hubloop);
            return NULL;
        }
        Py_DECREF(hubloop);
    }
    return evloop_hub_wait(args[0], (EvWatcher *)args[1]);
}

/* The hub side of sleep(0): switch back into the greenlet queued by evloop_yield. */
static int
evloop_greenlet_resume(EvLoop *loop, PyObject *g)
{
    PyObject *res;
    if (PyGreenlet_ACTIVE((PyGreenlet *)g) == 0 && PyGreenlet_STARTED((PyGreenlet *)g))
        return 0; /* dead meanwhile */
    res = PyGreenlet_Switch((PyGreenlet *)g, evloop_none_tuple, NULL);
    if (res == NULL) {
        PyObject *hub = evloop_current_hub();
        if (hub == NULL)
            return -1;
        return evloop_hub_report(hub, g);
    }
    Py_DECREF(res);
    return 0;
}

/* sleep(0)'s arming is its queue entry: resumed by something other than that entry, the
 * entry still names the greenlet; disarm it */
static void
evloop_yield_undo(void *arg)
{
    EvCallback *cb = (EvCallback *)arg;
    if (cb->callback != NULL) {
        Py_CLEAR(cb->callback);
        Py_CLEAR(cb->args);
    }
}

/* sleep(0): queue "switch back to me" behind everything already queued, switch to the
 * hub. No Waiter: the queue entry names the greenlet, and is disarmed if the greenlet is
 * resumed by anything else (kill, Timeout) first. */
static PyObject *
evloop_yield(PyObject *hub, EvLoop *loop)
{
    PyGreenlet *cur = PyGreenlet_GetCurrent();
    EvCallback *cb;
    PyObject *res;
    if (cur == NULL)
        return NULL;
    if ((PyObject *)cur == hub) {
        Py_DECREF(cur);
        PyErr_SetString(evloop_exc_BlockingSwitchOutError,
                        "Impossible to call blocking function in the event loop callback");
        return NULL;
    }
    Py_INCREF(evloop_none_tuple);
    cb = evloop_callback_new((PyObject *)cur, evloop_none_tuple);
    Py_DECREF(cur);
    if (cb == NULL) {
        Py_DECREF(evloop_none_tuple);
        return NULL;
    }
    cb->kind = EVLOOP_CB_HOOKED;  /* run by evloop_greenlet_resume */
    evloop_queue_append(loop, cb);
    {
        PyObject *const nothing = Py_None; /* sleep(0) waits on nothing in particular */
        res = evloop_hub_switch(hub, &nothing, evloop_yield_undo, cb);
    }
    Py_DECREF(cb);
    if (res == NULL)
        return NULL;
    Py_DECREF(res);
    Py_RETURN_NONE;
}

/* _sleep(hub, loop, seconds, ref): seconds already validated (>= 0, finite or inf). */
static PyObject *
mod_hub_sleep(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *hub;
    EvLoop *loop;
    double seconds;
    int ref;
    if (nargs != 4 || !PyObject_TypeCheck(args[1], &EvLoop_Type)) {
        PyErr_SetString(PyExc_TypeError, "_sleep(hub, loop, seconds, ref)");
        return NULL;
    }
    if (evloop_hub_ready() < 0)
        return NULL;
    hub = args[0];
    loop = (EvLoop *)args[1];
    seconds = PyFloat_AsDouble(args[2]);
    if (seconds == -1.0 && PyErr_Occurred())
        return NULL;
    ref = PyObject_IsTrue(args[3]);
    if (ref < 0)
        return NULL;
    if (evloop_loop_alive(loop) < 0)
        return NULL;
    if (seconds <= 0.0)
        return evloop_yield(hub, loop);
    else {
        EvTimer *t = (EvTimer *)EvTimer_Type.tp_alloc(&EvTimer_Type, 0);
        PyObject *res;
        if (t == NULL)
            return NULL;
        PyObject_GC_UnTrack(t); /* private to this call, like the waiter */
        ev_timer_init(&t->t, (void (*)(struct ev_loop *, ev_timer *, int))evloop_watcher_cb,
                      seconds, 0.0);
        t->after = seconds;
        if (evloop_watcher_setup(&t->base, loop, &evloop_kind_timer, (ev_watcher *)&t->t,
                                 ref ? Py_True : Py_False, NULL) < 0) {
            Py_DECREF(t);
            return NULL;
        }
        /* the loop's cached time may be a whole callback batch old: a sleep must not end
         * early, so count from now */
        ev_now_update(loop->ev);
        res = evloop_hub_wait(hub, &t->base);
        Py_DECREF(t);
        return res;
    }
}

/* --- the current thread's hub --------------------------------------------------------- *
 * Kept in the thread state's dict (per OS thread, shared by its greenlets, freed when the
 * thread ends) so that C (sleep) and Python (evloop.hub.get_hub) read the same slot. */

static PyObject *evloop_hub_key = NULL;       /* interned "evloop.hub" */
static PyObject *evloop_hub_factory = NULL;   /* evloop.hub.get_hub, for the slow path */
static PyObject *evloop_zero = NULL;

/* --- a thread's hub is destroyed when the thread ends -------------------------------------
 *
 * A hub that has run is a greenlet suspended inside loop.run(): its C stack holds
 * references to the hub and the loop (so the loop's epoll and wake-up fds) that only
 * unwinding that stack releases, and only the hub's own thread can switch into it. A thread
 * that ended without hub.destroy() therefore leaked its loop, two fds and whatever the
 * frames held (gevent has the same leak: gevent issues 1601, 1816).
 *
 * When a thread ends, CPython clears its thread state's dict in that thread, before the
 * thread is gone and while greenlet can still switch there. _set_hub(hub, True) stores a
 * guard next to the hub in that dict; when the guard is freed in the hub's own thread it
 * calls hub._thread_exit(), which destroys the hub. It does nothing when freed in another
 * thread (in the child of fork() CPython clears the other threads' states from the forking
 * thread; that hub cannot be unwound there) or after being disarmed (_set_hub replacing or
 * forgetting the hub). While hub._thread_exit() runs the thread's dict is already gone:
 * evloop_thread_ending makes the hub look absent and refuses to create one, since
 * PyThreadState_GetDict() would make a new dict that nothing frees. */
typedef struct {
    PyObject_HEAD
    PyObject *hub;          /* strong; NULL once disarmed */
    unsigned long thread;   /* PyThread_get_thread_ident() of the hub's thread */
} EvHubGuard;

static _Thread_local int evloop_thread_ending = 0;
static PyObject *evloop_hub_guard_key = NULL;
static PyObject *evloop_str_thread_exit = NULL;

static void
hubguard_dealloc(EvHubGuard *self)
{
    PyObject *hub = self->hub;
    self->hub = NULL;
    if (hub != NULL && self->thread == PyThread_get_thread_ident() && !evloop_thread_ending) {
        PyObject *type, *value, *tb, *r;
        PyErr_Fetch(&type, &value, &tb);
        evloop_thread_ending = 1;
        r = PyObject_CallMethodNoArgs(hub, evloop_str_thread_exit);
        evloop_thread_ending = 0;
        if (r == NULL)
            PyErr_WriteUnraisable(hub);
        else
            Py_DECREF(r);
        PyErr_Restore(type, value, tb);
    }
    Py_XDECREF(hub);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject EvHubGuard_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "evloop.core._HubGuard",
    .tp_basicsize = sizeof(EvHubGuard),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "destroys its thread's hub when the thread ends (kept in the thread state)",
    .tp_dealloc = (destructor)hubguard_dealloc,
};

static PyObject *
evloop_current_hub(void) /* borrowed, or NULL without an exception */
{
    PyObject *d;
    if (evloop_thread_ending)
        return NULL;
    d = PyThreadState_GetDict();
    if (d == NULL)
        return NULL;
    return PyDict_GetItemWithError(d, evloop_hub_key);
}

static PyObject *
mod_get_hub_if_exists(PyObject *m, PyObject *unused)
{
    PyObject *hub = evloop_current_hub();
    if (hub == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    Py_INCREF(hub);
    return hub;
}

static int
evloop_dict_discard(PyObject *d, PyObject *key)
{
    if (PyDict_DelItem(d, key) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError))
            return -1;
        PyErr_Clear();
    }
    return 0;
}

/* _set_hub(hub, destroy_at_thread_exit=False): this thread's hub (None: none). With
 * destroy_at_thread_exit, hub._thread_exit() is called when the thread ends (see above). */
static PyObject *
mod_set_hub(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *d, *hub, *old;
    int at_exit = 0;
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "_set_hub() takes 1 or 2 arguments (%zd given)", nargs);
        return NULL;
    }
    hub = args[0];
    if (nargs == 2 && (at_exit = PyObject_IsTrue(args[1])) < 0)
        return NULL;
    if (evloop_thread_ending) {
        if (hub == Py_None)
            Py_RETURN_NONE;  /* the thread's dict is already gone */
        PyErr_SetString(PyExc_RuntimeError, "this thread is ending: it cannot get a new hub");
        return NULL;
    }
    d = PyThreadState_GetDict();
    if (d == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "no thread state dict");
        return NULL;
    }
    /* disarm the guard of the hub being replaced or forgotten before dropping it */
    old = PyDict_GetItemWithError(d, evloop_hub_guard_key);
    if (old == NULL && PyErr_Occurred())
        return NULL;
    if (old != NULL && Py_IS_TYPE(old, &EvHubGuard_Type))
        Py_CLEAR(((EvHubGuard *)old)->hub);
    if (evloop_dict_discard(d, evloop_hub_guard_key) < 0)
        return NULL;
    if (hub == Py_None) {
        if (evloop_dict_discard(d, evloop_hub_key) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    if (PyDict_SetItem(d, evloop_hub_key, hub) < 0)
        return NULL;
    if (at_exit) {
        EvHubGuard *guard = PyObject_New(EvHubGuard, &EvHubGuard_Type);
        int rc;
        if (guard == NULL)
            return NULL;
        Py_INCREF(hub);
        guard->hub = hub;
        guard->thread = PyThread_get_thread_ident();
        rc = PyDict_SetItem(d, evloop_hub_guard_key, (PyObject *)guard);
        /* on failure the guard must not fire when freed here */
        if (rc < 0)
            Py_CLEAR(guard->hub);
        Py_DECREF(guard);
        if (rc < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
evloop_get_hub(void) /* new reference */
{
    PyObject *hub = evloop_current_hub();
    if (hub != NULL) {
        Py_INCREF(hub);
        return hub;
    }
    if (PyErr_Occurred())
        return NULL;
    if (evloop_thread_ending) {
        PyErr_SetString(PyExc_RuntimeError, "this thread is ending: it cannot get a new hub");
        return NULL;
    }
    if (evloop_hub_factory == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "evloop.hub has not been imported");
        return NULL;
    }
    return PyObject_CallNoArgs(evloop_hub_factory);
}

/* sleep(seconds=0, ref=True): the public evloop.sleep. Negative counts as 0 (gevent). */
static PyObject *
mod_sleep(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *secobj = nargs > 0 ? args[0] : NULL, *refobj = nargs > 1 ? args[1] : NULL;
    PyObject *hub, *loop, *res, *call[4];
    double seconds = 0.0;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "sleep() takes at most 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (kwnames != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *k = PyTuple_GET_ITEM(kwnames, i);
            if (PyUnicode_CompareWithASCIIString(k, "seconds") == 0 && secobj == NULL)
                secobj = args[nargs + i];
            else if (PyUnicode_CompareWithASCIIString(k, "ref") == 0 && refobj == NULL)
                refobj = args[nargs + i];
            else {
                PyErr_Format(PyExc_TypeError, "sleep() got an unexpected keyword argument %R",
                             k);
                return NULL;
            }
        }
    }
    /* sleep(0): CPython's small int 0 is a singleton, so the common case is one compare */
    if (secobj != NULL && secobj != evloop_zero) {
        if (PyBool_Check(secobj) || !(PyFloat_Check(secobj) || PyLong_Check(secobj)
                                      || PyNumber_Check(secobj))) {
            PyErr_Format(PyExc_TypeError, "seconds must be a number, not %.100s",
                         Py_TYPE(secobj)->tp_name);
            return NULL;
        }
        seconds = PyFloat_AsDouble(secobj);
        if (seconds == -1.0 && PyErr_Occurred())
            return NULL;
        if (isnan(seconds)) {
            PyErr_SetString(PyExc_ValueError, "seconds must not be NaN");
            return NULL;
        }
        if (seconds < 0.0)
            seconds = 0.0;
    }
    hub = evloop_get_hub();
    if (hub == NULL)
        return NULL;
    loop = PyObject_GetAttr(hub, evloop_str_loop);
    if (loop == NULL) {
        Py_DECREF(hub);
        return NULL;
    }
    if (seconds <= 0.0 && PyObject_TypeCheck(loop, &EvLoop_Type)
        && ((EvLoop *)loop)->ev != NULL) {
        res = evloop_yield(hub, (EvLoop *)loop);
        Py_DECREF(loop);
        Py_DECREF(hub);
        return res;
    }
    call[0] = hub;
    call[1] = loop;
    call[2] = PyFloat_FromDouble(seconds);
    call[3] = refobj ? refobj : Py_True;
    if (call[2] == NULL)
        res = NULL;
    else
        res = mod_hub_sleep(m, call, 4);
    Py_XDECREF(call[2]);
    Py_DECREF(loop);
    Py_DECREF(hub);
    return res;
}

/* _hub_configure(LoopExit, BlockingSwitchOutError, ConcurrentObjectUseError,
 *                InvalidSwitchError) — called once by evloop.hub */
static PyObject *
mod_hub_configure(PyObject *m, PyObject *args)
{
    PyObject *a, *b, *c, *d, *factory;
    if (!PyArg_ParseTuple(args, "OOOOO:_hub_configure", &a, &b, &c, &d, &factory))
        return NULL;
    Py_INCREF(factory);
    Py_XSETREF(evloop_hub_factory, factory);
    if (evloop_zero == NULL)
        evloop_zero = PyLong_FromLong(0);
    if (evloop_timeout_mark == NULL
        && (evloop_timeout_mark = PyUnicode_InternFromString("<evloop wait timed out>")) == NULL)
        return NULL;
    if (evloop_ready_mark == NULL
        && (evloop_ready_mark = PyUnicode_InternFromString("<evloop wait ready>")) == NULL)
        return NULL;
    if (evloop_timeout_args == NULL
        && (evloop_timeout_args = PyTuple_Pack(1, evloop_timeout_mark)) == NULL)
        return NULL;
    if (evloop_ready_args == NULL
        && (evloop_ready_args = PyTuple_Pack(1, evloop_ready_mark)) == NULL)
        return NULL;
    if (evloop_str_loop == NULL && (evloop_str_loop = PyUnicode_InternFromString("loop")) == NULL)
        return NULL;
    if (evloop_hub_key == NULL) {
        evloop_hub_key = PyUnicode_InternFromString("evloop.hub");
        if (evloop_hub_key == NULL)
            return NULL;
    }
    if (evloop_hub_guard_key == NULL) {
        evloop_hub_guard_key = PyUnicode_InternFromString("evloop.hub.guard");
        if (evloop_hub_guard_key == NULL)
            return NULL;
    }
    if (evloop_str_thread_exit == NULL) {
        evloop_str_thread_exit = PyUnicode_InternFromString("_thread_exit");
        if (evloop_str_thread_exit == NULL)
            return NULL;
    }
    if (PyType_Ready(&EvHubGuard_Type) < 0)
        return NULL;
    if (_PyGreenlet_API == NULL) {
        PyGreenlet_Import();
        if (_PyGreenlet_API == NULL)
            return NULL;
    }
    Py_INCREF(a);
    Py_XSETREF(evloop_exc_LoopExit, a);
    Py_INCREF(b);
    Py_XSETREF(evloop_exc_BlockingSwitchOutError, b);
    Py_INCREF(c);
    Py_XSETREF(evloop_exc_ConcurrentObjectUseError, c);
    Py_INCREF(d);
    Py_XSETREF(evloop_exc_InvalidSwitchError, d);
    Py_RETURN_NONE;
}

/* How many Greenlet.run() bodies have been entered and not yet left, in every thread: a
 * leak checker's cheap "are greenlets still alive?" (tests/conftest.py), where scanning
 * gc.get_objects() per test doubled the suite's time. Greenlet.run() calls
 * _greenlet_enter()/_greenlet_leave(). Measured with callgrind on spawn+join: ~220
 * instructions per greenlet as METH_FASTCALL (3.11 specialises those calls), ~480 as
 * METH_NOARGS (not specialised), ~700 for a Python int global (allocates past 256; each
 * STORE_GLOBAL is a dict store). The GIL makes the increments atomic. A greenlet freed
 * without finishing (its thread died first) stays counted: readers compare two readings,
 * never the absolute value. */
static Py_ssize_t evloop_greenlets_running = 0;

static int
evloop_no_args(const char *name, Py_ssize_t nargs)
{
    if (nargs == 0)
        return 0;
    PyErr_Format(PyExc_TypeError, "%s() takes no arguments (%zd given)", name, nargs);
    return -1;
}

static PyObject *
mod_greenlet_enter(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    if (evloop_no_args("_greenlet_enter", nargs) < 0)
        return NULL;
    evloop_greenlets_running++;
    Py_RETURN_NONE;
}

static PyObject *
mod_greenlet_leave(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    if (evloop_no_args("_greenlet_leave", nargs) < 0)
        return NULL;
    evloop_greenlets_running--;
    Py_RETURN_NONE;
}

static PyObject *
mod_greenlets_running(PyObject *m, PyObject *unused)
{
    return PyLong_FromSsize_t(evloop_greenlets_running);
}

static PyObject *
mod_getcurrent(PyObject *m, PyObject *unused)
{
    if (_PyGreenlet_API == NULL) {
        PyGreenlet_Import();
        if (_PyGreenlet_API == NULL)
            return NULL;
    }
    return (PyObject *)PyGreenlet_GetCurrent();
}

/* --- the hooks the loop's dispatch calls (evloop_internal.h) ----------------------------- */

/* an event of a watcher armed by evloop_arm: resume the greenlet waiting on it */
static int
evloop_hub_watcher_event(PyObject *callback, PyObject *value)
{
    return evloop_waiter_switch((EvWaiter *)callback, value);
}

static PyMethodDef evloop_hub_functions[] = {
    {"_hub_wait", (PyCFunction)(void (*)(void))mod_hub_wait, METH_FASTCALL,
     "_hub_wait(hub, watcher): block the current greenlet until the watcher fires"},
    {"_sleep", (PyCFunction)(void (*)(void))mod_hub_sleep, METH_FASTCALL,
     "_sleep(hub, loop, seconds, ref)"},
    {"_hub_configure", mod_hub_configure, METH_VARARGS, NULL},
    {"getcurrent", mod_getcurrent, METH_NOARGS, "greenlet.getcurrent()"},
    {"sleep", (PyCFunction)(void (*)(void))mod_sleep, METH_FASTCALL | METH_KEYWORDS,
     "sleep(seconds=0, ref=True)"},
    {"_get_hub_if_exists", mod_get_hub_if_exists, METH_NOARGS, NULL},
    {"_set_hub", (PyCFunction)(void (*)(void))mod_set_hub, METH_FASTCALL,
     "_set_hub(hub, destroy_at_thread_exit=False)"},
    {"_new_waiter", mod_new_waiter, METH_O, "Waiter(hub), fast"},
    {"_greenlet_enter", (PyCFunction)(void (*)(void))mod_greenlet_enter, METH_FASTCALL,
     "Greenlet.run() began"},
    {"_greenlet_leave", (PyCFunction)(void (*)(void))mod_greenlet_leave, METH_FASTCALL,
     "Greenlet.run() ended"},
    {"_greenlets_running", mod_greenlets_running, METH_NOARGS,
     "Greenlet.run() bodies entered and not yet left (all threads)"},
    {NULL}
};

static int
evloop_hub_init(PyObject *m)
{
    evloop_hooks.watcher_event = evloop_hub_watcher_event;
    evloop_hooks.callback_entry = evloop_greenlet_resume; /* sleep(0)'s entry */
    evloop_hooks.loop_leaving = evloop_hub_leaving;
    if (evloop_add_type(m, "Waiter", &EvWaiter_Type) < 0)
        return -1;
    return PyModule_AddFunctions(m, evloop_hub_functions);
}
