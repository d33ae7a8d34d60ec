/* evloop_aio.c — the hot path of evloop.aio: asyncio's ready queue, handles and timers,
 * run on the hub's libev loop.
 *
 * Why it exists: an asyncio loop spends its time in call_soon / call_later / call_at,
 * creating handles, firing timers and running handles. asyncio does each of these in
 * Python (a Handle object, a heap of TimerHandles, a deque, a selector); here they are C:
 * a handle is a C object, the ready queue is an intrusive list of them, a timer handle
 * embeds its libev timer, readers and writers are libev io watchers in a per-fd table, and
 * the loop's iteration is libev's own. evloop.aio.Loop (Python) subclasses the type
 * defined here together with asyncio's selector loop, so transports, sock_*, servers and
 * subprocesses are asyncio's, reaching libev through these methods.
 *
 * How a loop runs: it shares the libev loop of the thread's hub greenlet (so greenlets
 * and coroutines interleave). run() (run_forever) switches from the calling greenlet into
 * the hub; a check watcher, invoked after every poll, runs one asyncio batch — exactly the
 * handles that were ready when the batch started, as asyncio's _run_once does — and when
 * stop() was called (or once=True, or a callback raised SystemExit/KeyboardInterrupt) the
 * hub switches back to the greenlet blocked in run(). Every watcher here is unreferenced
 * except the check watcher while run() is active: a running asyncio loop keeps the hub's
 * loop alive, a stopped one does not.
 *
 * What it must not do: run asyncio callbacks outside run() (readers that become ready
 * while the loop is stopped are paused, not queued again and again), let a Python
 * exception escape into libev, or own policy: error reports, reprs and debug-mode checks
 * are Python helpers handed in by evloop.aio (_aio_configure). It switches into the hub
 * only through evloop_hub_switch, and is told of a destroyed libev loop through the
 * evloop_hooks.loop_destroying hook it registers (evloop_aio_init).
 */
#include "evloop_internal.h"
#include "greenlet.h"

static PyTypeObject AioLoop_Type, AioHandle_Type, AioTimer_Type;

/* Python helpers, set once by evloop.aio through _aio_configure() */
static PyObject *aio_on_error = NULL;      /* (loop, handle, exc, callback, args): asyncio's
                                              "Exception in callback" report */
static PyObject *aio_repr_helper = NULL;   /* (handle) -> str */
static PyObject *aio_extract_stack = NULL; /* () -> list: a debug-mode source traceback */
static PyObject *aio_debug_check = NULL;   /* (loop, callback, method): debug-mode checks */
static PyObject *aio_run_debug = NULL;     /* (loop, handle): a run with slow-callback log */
static PyObject *aio_wake_args = NULL;     /* (mark,): what the hub wakes run() with */
static PyObject *aio_wake_mark = NULL;
static PyObject *aio_tasks_dict = NULL;    /* asyncio.tasks.__dict__: Task, read per call */
static PyObject *aio_futures_dict = NULL;  /* asyncio.futures.__dict__: Future */
static PyObject *aio_create_task_py = NULL; /* BaseEventLoop.create_task: the general case */
static PyObject *aio_str_Task = NULL, *aio_str_Future = NULL, *aio_str_context = NULL;
static PyObject *aio_kw_loop[4] = {NULL};  /* ("loop",) ("loop","name") ("loop","context")
                                              ("loop","name","context") */

#define AIO_READ 0
#define AIO_WRITE 1

/* How long the check watcher may keep running batches of callbacks before the loop polls
 * again (see aio_check_cb). */
#define AIO_BATCH_SECONDS 0.0005

typedef struct AioHandle {
    PyObject_HEAD
    PyObject *callback;         /* NULL once cancelled */
    PyObject *args;             /* tuple; NULL once cancelled */
    PyObject *context;          /* the contextvars.Context it runs in (strong) */
    struct AioLoop *loop;       /* strong */
    PyObject *source_tb;        /* debug mode: where it was created, else NULL */
    PyObject *repr;             /* debug mode: repr frozen by cancel(), else NULL */
    struct AioHandle *next;     /* ready-queue link; the queue holds a reference */
    unsigned char cancelled;
    unsigned char queued;
    PyObject *weakreflist;
} AioHandle;

typedef struct AioTimer {
    AioHandle h;
    ev_timer t;
    double when;                /* absolute, on loop.time()'s clock (libev's mn_now) */
    struct AioTimer *tprev, *tnext; /* the loop's armed timers */
    unsigned char armed;        /* in that list, holding a reference the GC does not see */
} AioTimer;

/* A file descriptor with a reader and/or a writer: two io watchers, each with the handle
 * it queues. Owned (malloc) by the loop's table, never by a Python object. */
typedef struct AioFd {
    ev_io io[2];
    AioHandle *handle[2];       /* strong or NULL */
    unsigned char paused[2];    /* stopped because it fired while the loop was not running */
    struct AioLoop *loop;       /* borrowed: the loop owns this struct */
    int fd;
} AioFd;

typedef struct AioLoop {
    PyObject_HEAD
    EvLoop *evloop;             /* the bound hub's libev loop (strong), or NULL */
    PyObject *hub;              /* the bound hub greenlet (strong), or NULL */
    unsigned long bound_thread;
    struct AioLoop *bprev, *bnext; /* in evloop->aio_loops while bound */
    AioHandle *ready_head, *ready_tail;
    Py_ssize_t ready_count;
    AioTimer *timers;           /* armed timers */
    Py_ssize_t ntimers;
    AioFd **fds;                /* indexed by fd */
    int nfds;
    int npaused;
    ev_check check;             /* runs a batch after each poll, while running */
    ev_idle idle;               /* active while running with work queued: non-blocking poll */
    ev_async wakeup;            /* call_soon_threadsafe */
    int running, once, woken, stopping, closed, debug;
    PyObject *task_factory;     /* set_task_factory()'s factory (strong), or NULL */
    PyObject *run_greenlet;     /* the greenlet blocked in run() (strong) */
    PyObject *exc_type, *exc_value, *exc_tb; /* SystemExit/KeyboardInterrupt for run() */
} AioLoop;

static int aio_bind(AioLoop *self, PyObject *hub);

/* ------------------------------------------------------------------------------------ */
/* small helpers                                                                          */

static double
aio_now(void)
{
    /* libev's own monotonic clock: the one its timers (mn_now) run on */
    return get_clock();
}

static PyObject *
aio_raise_closed(void)
{
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return NULL;
}

static inline struct ev_loop *
aio_ev(AioLoop *self)
{
    return (self->evloop != NULL) ? self->evloop->ev : NULL;
}

/* The loop must be bound to a live libev loop before a watcher starts: bind to the current
 * thread's hub if it is not (a fresh loop, or one whose hub was destroyed). */
static int
aio_ensure_bound(AioLoop *self)
{
    if (self->evloop != NULL && self->evloop->ev != NULL)
        return 0;
    return aio_bind(self, NULL);
}

/* ------------------------------------------------------------------------------------ */
/* handles                                                                                */

#define AIO_FREELIST 256
static AioHandle *aio_free[AIO_FREELIST];
static int aio_nfree = 0;

/* A new handle running callback(*args) in context (a copy of the current one if NULL or
 * None). args is stolen. The caller tracks it with the GC once set up. */
static AioHandle *
aio_handle_alloc(PyTypeObject *type, AioLoop *loop, PyObject *callback, PyObject *args,
                 PyObject *context)
{
    AioHandle *h;
    PyObject *ctx;
    if (context == NULL || context == Py_None) {
        ctx = PyContext_CopyCurrent();
        if (ctx == NULL) {
            Py_DECREF(args);
            return NULL;
        }
    }
    else {
        if (!PyContext_CheckExact(context)) {
            PyErr_Format(PyExc_TypeError, "context must be a contextvars.Context, not %.100s",
                         Py_TYPE(context)->tp_name);
            Py_DECREF(args);
            return NULL;
        }
        Py_INCREF(context);
        ctx = context;
    }
    if (type == &AioHandle_Type && aio_nfree > 0) {
        h = aio_free[--aio_nfree];
        (void)PyObject_Init((PyObject *)h, type);
    }
    else {
        h = PyObject_GC_New(AioHandle, type);
        if (h == NULL) {
            Py_DECREF(args);
            Py_DECREF(ctx);
            return NULL;
        }
    }
    Py_INCREF(callback);
    h->callback = callback;
    h->args = args;
    h->context = ctx;
    Py_INCREF(loop);
    h->loop = loop;
    h->source_tb = NULL;
    h->repr = NULL;
    h->next = NULL;
    h->cancelled = 0;
    h->queued = 0;
    h->weakreflist = NULL;
    return h;
}

/* debug mode: remember where the handle was made */
static int
aio_handle_debug_init(AioHandle *h)
{
    PyObject *tb = PyObject_CallNoArgs(aio_extract_stack);
    if (tb == NULL)
        return -1;
    h->source_tb = tb;
    return 0;
}

static int
aio_handle_traverse(AioHandle *h, visitproc visit, void *arg)
{
    Py_VISIT(h->callback);
    Py_VISIT(h->args);
    Py_VISIT(h->context);
    Py_VISIT(h->loop);
    Py_VISIT(h->source_tb);
    return 0;
}

static int
aio_handle_clear(AioHandle *h)
{
    /* an armed timer is never garbage (its loop holds a reference the GC cannot see) */
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args);
    Py_CLEAR(h->context);
    Py_CLEAR(h->source_tb);
    Py_CLEAR(h->repr);
    Py_CLEAR(h->loop);
    return 0;
}

static void
aio_handle_dealloc(AioHandle *h)
{
    PyObject_GC_UnTrack(h);
    if (h->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)h);
    aio_handle_clear(h);
    if (Py_IS_TYPE(h, &AioHandle_Type) && aio_nfree < AIO_FREELIST)
        aio_free[aio_nfree++] = h;
    else
        PyObject_GC_Del(h);
}

static void aio_timer_disarm(AioTimer *t);

/* asyncio's Handle.cancel(): idempotent; a queued handle is skipped when its turn comes */
static int
aio_handle_cancel(AioHandle *h)
{
    if (h->cancelled)
        return 0;
    if (h->loop != NULL && h->loop->debug && h->repr == NULL) {
        /* debug mode keeps the repr of what was cancelled, as asyncio does */
        PyObject *r = PyObject_Repr((PyObject *)h);
        if (r == NULL)
            return -1;
        h->repr = r;
    }
    h->cancelled = 1;
    if (Py_IS_TYPE(h, &AioTimer_Type))
        aio_timer_disarm((AioTimer *)h);
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args);
    return 0;
}

/* Report a callback's exception the way asyncio's Handle._run does. Returns 0 when it was
 * reported, -1 (error indicator set) for SystemExit/KeyboardInterrupt, which stop run(). */
static int
aio_handle_error(AioHandle *h, PyObject *callback, PyObject *args)
{
    PyObject *type, *value, *tb, *res;
    if (PyErr_ExceptionMatches(PyExc_SystemExit)
        || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
        return -1;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    if (aio_on_error == NULL || h->loop == NULL) {
        PyErr_Restore(type, value, tb);
        PyErr_WriteUnraisable((PyObject *)h);
        return 0;
    }
    res = PyObject_CallFunctionObjArgs(aio_on_error, (PyObject *)h->loop, (PyObject *)h,
                                       value ? value : Py_None, callback ? callback : Py_None,
                                       args ? args : Py_None, NULL);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (res == NULL) {
        if (PyErr_ExceptionMatches(PyExc_SystemExit)
            || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
            return -1;
        PyErr_WriteUnraisable(aio_on_error);
        return 0;
    }
    Py_DECREF(res);
    return 0;
}

/* Run callback(*args) in the handle's context: asyncio's Handle._run. 0, or -1 with
 * SystemExit/KeyboardInterrupt set. */
static int
aio_handle_run(AioHandle *h)
{
    PyObject *cb = h->callback, *args = h->args, *ctx = h->context, *res;
    int rc = 0;
    if (cb == NULL || h->cancelled)
        return 0;
    /* the callback may cancel (clear) its own handle */
    Py_INCREF(cb);
    Py_INCREF(args);
    Py_INCREF(ctx);
    if (PyContext_Enter(ctx) < 0) {
        res = NULL;
    }
    else {
        res = PyObject_Vectorcall(cb, &PyTuple_GET_ITEM(args, 0), PyTuple_GET_SIZE(args),
                                  NULL);
        if (PyContext_Exit(ctx) < 0) {
            /* only if the callback left the context in an impossible state */
            if (res == NULL)
                PyErr_WriteUnraisable(cb);
            Py_CLEAR(res);
        }
    }
    if (res == NULL)
        rc = aio_handle_error(h, cb, args);
    else
        Py_DECREF(res);
    Py_DECREF(cb);
    Py_DECREF(args);
    Py_DECREF(ctx);
    return rc;
}

/* --- the Handle type --------------------------------------------------------------- */

static PyObject *
aio_handle_py_cancel(AioHandle *h, PyObject *unused)
{
    if (aio_handle_cancel(h) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
aio_handle_py_cancelled(AioHandle *h, PyObject *unused)
{
    return PyBool_FromLong(h->cancelled);
}

static PyObject *
aio_handle_py_get_context(AioHandle *h, PyObject *unused)
{
    if (h->context == NULL)
        Py_RETURN_NONE;
    Py_INCREF(h->context);
    return h->context;
}

static PyObject *
aio_handle_py_run(AioHandle *h, PyObject *unused)
{
    if (aio_handle_run(h) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
aio_handle_repr(AioHandle *h)
{
    if (h->repr != NULL) {
        Py_INCREF(h->repr);
        return h->repr;
    }
    if (aio_repr_helper == NULL)
        return PyUnicode_FromFormat("<%s at %p>", Py_TYPE(h)->tp_name, h);
    return PyObject_CallOneArg(aio_repr_helper, (PyObject *)h);
}

#define AIO_GETTER(NAME, FIELD)                                                          \
    static PyObject *NAME(AioHandle *h, void *c)                                         \
    {                                                                                    \
        PyObject *v = (FIELD) ? (PyObject *)(FIELD) : Py_None;                          \
        Py_INCREF(v);                                                                    \
        return v;                                                                        \
    }
AIO_GETTER(aio_handle_get_callback, h->callback)
AIO_GETTER(aio_handle_get_args, h->args)
AIO_GETTER(aio_handle_get_loop, h->loop)
AIO_GETTER(aio_handle_get_context, h->context)
AIO_GETTER(aio_handle_get_source_tb, h->source_tb)
AIO_GETTER(aio_handle_get_repr, h->repr)

static PyObject *
aio_handle_get_cancelled(AioHandle *h, void *c)
{
    return PyBool_FromLong(h->cancelled);
}

static int
aio_handle_set_source_tb(AioHandle *h, PyObject *v, void *c)
{
    /* asyncio's call_later trims the last frame of the traceback: allow that */
    if (v == NULL || v == Py_None) {
        Py_CLEAR(h->source_tb);
        return 0;
    }
    Py_INCREF(v);
    Py_XSETREF(h->source_tb, v);
    return 0;
}

static PyMethodDef aio_handle_methods[] = {
    {"cancel", (PyCFunction)aio_handle_py_cancel, METH_NOARGS,
     "cancel(): the callback will not run (idempotent)"},
    {"cancelled", (PyCFunction)aio_handle_py_cancelled, METH_NOARGS, NULL},
    {"get_context", (PyCFunction)aio_handle_py_get_context, METH_NOARGS,
     "the contextvars.Context the callback runs in"},
    {"_run", (PyCFunction)aio_handle_py_run, METH_NOARGS,
     "run the callback now (errors go to the loop's exception handler)"},
    {NULL}
};

static PyGetSetDef aio_handle_getset[] = {
    {"_callback", (getter)aio_handle_get_callback, NULL, NULL, NULL},
    {"_args", (getter)aio_handle_get_args, NULL, NULL, NULL},
    {"_cancelled", (getter)aio_handle_get_cancelled, NULL, NULL, NULL},
    {"_loop", (getter)aio_handle_get_loop, NULL, NULL, NULL},
    {"_context", (getter)aio_handle_get_context, NULL, NULL, NULL},
    {"_source_traceback", (getter)aio_handle_get_source_tb,
     (setter)aio_handle_set_source_tb, NULL, NULL},
    {"_repr", (getter)aio_handle_get_repr, NULL, NULL, NULL},
    {NULL}
};

static PyTypeObject AioHandle_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "evloop.aio.Handle",
    .tp_basicsize = sizeof(AioHandle),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "a callback queued by an evloop.aio loop (asyncio.Handle's interface)",
    .tp_dealloc = (destructor)aio_handle_dealloc,
    .tp_traverse = (traverseproc)aio_handle_traverse,
    .tp_clear = (inquiry)aio_handle_clear,
    .tp_weaklistoffset = offsetof(AioHandle, weakreflist),
    .tp_repr = (reprfunc)aio_handle_repr,
    .tp_methods = aio_handle_methods,
    .tp_getset = aio_handle_getset,
};

/* ------------------------------------------------------------------------------------ */
/* the ready queue                                                                        */

/* Append h; steals a reference. A handle is in the queue at most once. */
static inline void
aio_ready_push(AioLoop *self, AioHandle *h)
{
    h->queued = 1;
    h->next = NULL;
    if (self->ready_tail != NULL)
        self->ready_tail->next = h;
    else
        self->ready_head = h;
    self->ready_tail = h;
    self->ready_count++;
}

/* Pop the head; the caller owns the queue's reference. */
static inline AioHandle *
aio_ready_pop(AioLoop *self)
{
    AioHandle *h = self->ready_head;
    if (h == NULL)
        return NULL;
    self->ready_head = h->next;
    if (self->ready_head == NULL)
        self->ready_tail = NULL;
    self->ready_count--;
    h->next = NULL;
    h->queued = 0;
    return h;
}

static void
aio_ready_clear(AioLoop *self)
{
    AioHandle *h;
    while ((h = aio_ready_pop(self)) != NULL)
        Py_DECREF(h);
}

static void
aio_idle_start(AioLoop *self)
{
    struct ev_loop *l = aio_ev(self);
    if (l != NULL && !ev_is_active(&self->idle)) {
        ev_idle_start(l, &self->idle);
        ev_unref(l);
    }
}

static void
aio_idle_stop(AioLoop *self)
{
    struct ev_loop *l = aio_ev(self);
    if (l != NULL && ev_is_active(&self->idle)) {
        ev_ref(l);
        ev_idle_stop(l, &self->idle);
    }
}

/* Something was queued while the loop may be about to block in its poll. */
static inline void
aio_kick(AioLoop *self)
{
    if (self->running && !self->woken && !ev_is_active(&self->idle))
        aio_idle_start(self);
}

/* ------------------------------------------------------------------------------------ */
/* timers                                                                                 */

static void
aio_timer_link(AioLoop *self, AioTimer *t)
{
    t->tprev = NULL;
    t->tnext = self->timers;
    if (self->timers != NULL)
        self->timers->tprev = t;
    self->timers = t;
    self->ntimers++;
    t->armed = 1;
}

static void
aio_timer_unlink(AioLoop *self, AioTimer *t)
{
    if (t->tprev != NULL)
        t->tprev->tnext = t->tnext;
    else
        self->timers = t->tnext;
    if (t->tnext != NULL)
        t->tnext->tprev = t->tprev;
    t->tprev = t->tnext = NULL;
    self->ntimers--;
    t->armed = 0;
}

/* Start t's libev timer so that it fires at t->when on libev's monotonic clock. */
static void
aio_timer_start_ev(struct ev_loop *l, AioTimer *t)
{
    /* ev_timer_start adds the loop's cached mn_now to `after`: an absolute deadline */
    ev_timer_set(&t->t, t->when - l->mn_now, 0.);
    ev_timer_start(l, &t->t);
    ev_unref(l);
}

static void
aio_timer_stop_ev(struct ev_loop *l, AioTimer *t)
{
    if (l != NULL && ev_is_active(&t->t)) {
        ev_ref(l);
        ev_timer_stop(l, &t->t);
    }
}

static void
aio_timer_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    AioTimer *t = (AioTimer *)w->data;
    AioLoop *self = t->h.loop;
    (void)revents;
    ev_ref(l); /* libev stopped the one-shot timer itself: give back its unref */
    if (!t->armed)
        return;
    aio_timer_unlink(self, t);
    if (t->h.cancelled || t->h.queued) {
        Py_DECREF(t);
        return;
    }
    aio_ready_push(self, &t->h); /* the armed reference becomes the queue's */
}

/* Stop and forget an armed timer (cancel, close). May drop the last reference. */
static void
aio_timer_disarm(AioTimer *t)
{
    AioLoop *self = t->h.loop;
    if (!t->armed || self == NULL)
        return;
    aio_timer_stop_ev(aio_ev(self), t);
    aio_timer_unlink(self, t);
    Py_DECREF(t);
}

static PyObject *
aio_timer_when(AioTimer *t, PyObject *unused)
{
    return PyFloat_FromDouble(t->when);
}

static PyObject *
aio_timer_get_when(AioTimer *t, void *c)
{
    return PyFloat_FromDouble(t->when);
}

static PyObject *
aio_timer_get_scheduled(AioTimer *t, void *c)
{
    return PyBool_FromLong(t->armed);
}

static Py_hash_t
aio_timer_hash(AioTimer *t)
{
    /* asyncio's TimerHandle hashes its deadline */
    PyObject *f = PyFloat_FromDouble(t->when);
    Py_hash_t r;
    if (f == NULL)
        return -1;
    r = PyObject_Hash(f);
    Py_DECREF(f);
    return r;
}

static PyObject *
aio_timer_richcompare(AioTimer *a, PyObject *other, int op)
{
    AioTimer *b;
    int r;
    if (!PyObject_TypeCheck(other, &AioTimer_Type))
        Py_RETURN_NOTIMPLEMENTED;
    b = (AioTimer *)other;
    switch (op) {
    case Py_LT: return PyBool_FromLong(a->when < b->when);
    case Py_LE: return PyBool_FromLong(a->when <= b->when);
    case Py_GT: return PyBool_FromLong(a->when > b->when);
    case Py_GE: return PyBool_FromLong(a->when >= b->when);
    case Py_EQ:
    case Py_NE:
        /* asyncio: the same deadline, callback, args and cancelled state */
        if (a == b)
            r = 1;
        else if (a->when != b->when || a->h.cancelled != b->h.cancelled)
            r = 0;
        else {
            r = PyObject_RichCompareBool(a->h.callback ? a->h.callback : Py_None,
                                         b->h.callback ? b->h.callback : Py_None, Py_EQ);
            if (r == 1)
                r = PyObject_RichCompareBool(a->h.args ? a->h.args : Py_None,
                                             b->h.args ? b->h.args : Py_None, Py_EQ);
            if (r < 0)
                return NULL;
        }
        return PyBool_FromLong(op == Py_EQ ? r : !r);
    }
    Py_RETURN_NOTIMPLEMENTED;
}

static PyMethodDef aio_timer_methods[] = {
    {"when", (PyCFunction)aio_timer_when, METH_NOARGS,
     "the absolute time (on loop.time()'s clock) the callback is scheduled for"},
    {NULL}
};

static PyGetSetDef aio_timer_getset[] = {
    {"_when", (getter)aio_timer_get_when, NULL, NULL, NULL},
    {"_scheduled", (getter)aio_timer_get_scheduled, NULL, NULL, NULL},
    {NULL}
};

static PyTypeObject AioTimer_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "evloop.aio.TimerHandle",
    .tp_basicsize = sizeof(AioTimer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "a callback scheduled by call_later/call_at (asyncio.TimerHandle's interface)",
    .tp_base = &AioHandle_Type,
    .tp_dealloc = (destructor)aio_handle_dealloc,
    .tp_traverse = (traverseproc)aio_handle_traverse,
    .tp_clear = (inquiry)aio_handle_clear,
    .tp_weaklistoffset = offsetof(AioHandle, weakreflist),
    .tp_repr = (reprfunc)aio_handle_repr,
    .tp_hash = (hashfunc)aio_timer_hash,
    .tp_richcompare = (richcmpfunc)aio_timer_richcompare,
    .tp_methods = aio_timer_methods,
    .tp_getset = aio_timer_getset,
};

/* ------------------------------------------------------------------------------------ */
/* readers and writers                                                                    */

static void aio_io_cb(struct ev_loop *l, ev_io *w, int revents);

static AioFd *
aio_fd_lookup(AioLoop *self, int fd)
{
    return (fd >= 0 && fd < self->nfds) ? self->fds[fd] : NULL;
}

static AioFd *
aio_fd_create(AioLoop *self, int fd)
{
    AioFd *f = aio_fd_lookup(self, fd);
    if (f != NULL)
        return f;
    if (fd >= self->nfds) {
        int n = self->nfds ? self->nfds : 64;
        AioFd **fds;
        while (n <= fd)
            n *= 2;
        fds = (AioFd **)PyMem_Realloc(self->fds, (size_t)n * sizeof(AioFd *));
        if (fds == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        memset(fds + self->nfds, 0, (size_t)(n - self->nfds) * sizeof(AioFd *));
        self->fds = fds;
        self->nfds = n;
    }
    f = (AioFd *)PyMem_Calloc(1, sizeof(AioFd));
    if (f == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    f->loop = self;
    f->fd = fd;
    ev_io_init(&f->io[AIO_READ], aio_io_cb, fd, EV_READ);
    ev_io_init(&f->io[AIO_WRITE], aio_io_cb, fd, EV_WRITE);
    f->io[AIO_READ].data = f;
    f->io[AIO_WRITE].data = f;
    self->fds[fd] = f;
    return f;
}

static void
aio_fd_start(AioLoop *self, AioFd *f, int d)
{
    struct ev_loop *l = aio_ev(self);
    if (l == NULL || ev_is_active(&f->io[d]))
        return;
    /* ev_io_set marks the fd as possibly new to libev: a closed-and-reused fd number is
     * registered with the kernel again instead of being assumed present */
    ev_io_set(&f->io[d], f->fd, d == AIO_READ ? EV_READ : EV_WRITE);
    ev_io_start(l, &f->io[d]);
    ev_unref(l);
}

static void
aio_fd_stop(AioLoop *self, AioFd *f, int d)
{
    struct ev_loop *l = aio_ev(self);
    if (l != NULL && ev_is_active(&f->io[d])) {
        ev_ref(l);
        ev_io_stop(l, &f->io[d]);
    }
    if (f->paused[d]) {
        f->paused[d] = 0;
        self->npaused--;
    }
}

/* Free f when it has neither reader nor writer. */
static void
aio_fd_release(AioLoop *self, AioFd *f)
{
    if (f->handle[AIO_READ] == NULL && f->handle[AIO_WRITE] == NULL) {
        aio_fd_stop(self, f, AIO_READ);
        aio_fd_stop(self, f, AIO_WRITE);
        self->fds[f->fd] = NULL;
        PyMem_Free(f);
    }
}

/* Remove the reader (d=0) or writer (d=1) of fd; 1 if there was one. The handle is
 * cancelled, as asyncio's selector loop does. */
static int
aio_fd_remove(AioLoop *self, int fd, int d)
{
    AioFd *f = aio_fd_lookup(self, fd);
    AioHandle *h;
    int r = 0;
    if (f == NULL || (h = f->handle[d]) == NULL)
        return 0;
    aio_fd_stop(self, f, d);
    f->handle[d] = NULL;
    if (aio_handle_cancel(h) < 0)
        r = -1;
    else
        r = 1;
    Py_DECREF(h);
    aio_fd_release(self, f);
    return r;
}

static void
aio_io_cb(struct ev_loop *l, ev_io *w, int revents)
{
    AioFd *f = (AioFd *)w->data;
    int d = (w == &f->io[AIO_WRITE]) ? AIO_WRITE : AIO_READ;
    AioLoop *self = f->loop;
    AioHandle *h = f->handle[d];
    (void)revents;
    if (!ev_is_active(w)) {
        /* libev stopped it itself: the kernel refused the fd (EBADF) and libev reports
         * EV_ERROR. Give back its unref; the handle runs and meets the error in its own
         * system call. */
        ev_ref(l);
    }
    if (h == NULL) {
        aio_fd_stop(self, f, d);
        aio_fd_release(self, f);
        return;
    }
    if (h->cancelled) {
        /* asyncio's _process_events: a cancelled reader/writer is removed when it fires */
        (void)aio_fd_remove(self, f->fd, d);
        return;
    }
    if (!self->running) {
        /* not running: asyncio would not poll; stop watching until run() resumes it
         * (level-triggered epoll would otherwise wake the hub again and again) */
        if (ev_is_active(w)) {
            ev_ref(l);
            ev_io_stop(l, w);
        }
        if (!f->paused[d]) {
            f->paused[d] = 1;
            self->npaused++;
        }
        return;
    }
    if (!h->queued) {
        Py_INCREF(h);
        aio_ready_push(self, h);
    }
}

static void
aio_fd_resume_paused(AioLoop *self)
{
    for (int fd = 0; fd < self->nfds && self->npaused > 0; fd++) {
        AioFd *f = self->fds[fd];
        if (f == NULL)
            continue;
        for (int d = 0; d < 2; d++) {
            if (f->paused[d]) {
                f->paused[d] = 0;
                self->npaused--;
                if (f->handle[d] != NULL)
                    aio_fd_start(self, f, d);
            }
        }
    }
}

/* ------------------------------------------------------------------------------------ */
/* running: the batch, waking run()                                                       */

static void
aio_run_watchers_stop(AioLoop *self)
{
    struct ev_loop *l = aio_ev(self);
    if (l == NULL)
        return;
    if (ev_is_active(&self->check))
        ev_check_stop(l, &self->check); /* it was referenced: no ev_ref */
    aio_idle_stop(self);
}

/* asyncio's _run_once after the poll: run exactly the handles queued when it starts. */
static void
aio_run_batch(AioLoop *self)
{
    Py_ssize_t n = self->ready_count;
    while (n-- > 0 && self->running && !self->woken) {
        AioHandle *h = aio_ready_pop(self);
        int rc = 0;
        if (h == NULL)
            break;
        if (!h->cancelled) {
            if (self->debug && aio_run_debug != NULL) {
                PyObject *r = PyObject_CallFunctionObjArgs(aio_run_debug, (PyObject *)self,
                                                           (PyObject *)h, NULL);
                if (r == NULL)
                    rc = -1;
                else
                    Py_DECREF(r);
            }
            else {
                rc = aio_handle_run(h);
            }
        }
        Py_DECREF(h);
        if (rc < 0) {
            /* SystemExit/KeyboardInterrupt: run() raises it; the rest stays queued */
            if (self->exc_type == NULL)
                PyErr_Fetch(&self->exc_type, &self->exc_value, &self->exc_tb);
            else
                PyErr_WriteUnraisable((PyObject *)self);
            break;
        }
    }
}

/* In the hub: resume the greenlet blocked in run(), with the stored exception if any. */
static void
aio_wake(AioLoop *self)
{
    PyObject *g = self->run_greenlet, *hub = self->hub, *res;
    EvLoop *evloop = self->evloop;
    if (g == NULL || self->woken)
        return;
    Py_INCREF(g);
    Py_XINCREF(hub);
    Py_XINCREF(evloop);
    self->woken = 1;
    aio_run_watchers_stop(self);
    if (self->exc_type != NULL) {
        PyObject *t = self->exc_type, *v = self->exc_value, *tb = self->exc_tb;
        self->exc_type = self->exc_value = self->exc_tb = NULL;
        res = PyGreenlet_Throw((PyGreenlet *)g, t, v, tb);
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
    }
    else {
        res = PyGreenlet_Switch((PyGreenlet *)g, aio_wake_args, NULL);
    }
    /* the hub continues here when something switches back to it */
    if (res == NULL) {
        /* the greenlet ended with an exception that came to us, its parent; or the hub
         * itself is being thrown out (destroy): hand it to the hub like any other */
        if (hub == NULL || evloop_hub_report(hub, g) < 0) {
            if (evloop != NULL && evloop->ev != NULL)
                evloop_report_error(evloop, (PyObject *)self);
            else
                PyErr_WriteUnraisable((PyObject *)self);
        }
    }
    else {
        Py_DECREF(res);
    }
    Py_XDECREF(evloop);
    Py_XDECREF(hub);
    Py_DECREF(g);
}

static void
aio_check_cb(struct ev_loop *l, ev_check *w, int revents)
{
    AioLoop *self = (AioLoop *)w->data;
    (void)l;
    (void)revents;
    if (!self->running || self->woken)
        return;
    Py_INCREF(self);
    aio_run_batch(self);
    if (self->ready_count > 0 && !self->stopping && !self->once && self->running
        && !self->woken && self->exc_type == NULL) {
        /* More batches before the next poll, for a short while: a chain of callbacks
         * (await asyncio.sleep(0), task steps) would otherwise pay a whole libev iteration
         * and a poll system call per link. Each batch is still exactly the handles queued
         * before it started, so order and stop() are asyncio's; what waits is only I/O,
         * timers and greenlets, for at most AIO_BATCH_SECONDS. */
        double deadline = aio_now() + AIO_BATCH_SECONDS;
        do {
            aio_run_batch(self);
        } while (self->ready_count > 0 && !self->stopping && self->running && !self->woken
                 && self->exc_type == NULL && aio_now() < deadline);
    }
    if (self->running && !self->woken) {
        if (self->exc_type != NULL || self->stopping || self->once)
            aio_wake(self);
        else if (self->ready_count == 0)
            aio_idle_stop(self);
        else
            aio_idle_start(self);
    }
    Py_DECREF(self);
}

static void
aio_idle_cb(struct ev_loop *l, ev_idle *w, int revents)
{
    (void)l; (void)w; (void)revents;
}

static void
aio_wakeup_cb(struct ev_loop *l, ev_async *w, int revents)
{
    /* call_soon_threadsafe: the check watcher runs what was queued */
    AioLoop *self = (AioLoop *)w->data;
    (void)l; (void)revents;
    if (self->ready_count > 0)
        aio_kick(self);
}

/* ------------------------------------------------------------------------------------ */
/* binding to a hub's libev loop                                                          */

/* Stop every libev watcher of this loop and leave the hub; timers, readers and writers stay
 * registered here and start again on the next bind. */
static void
aio_unbind(AioLoop *self)
{
    struct ev_loop *l = aio_ev(self);
    EvLoop *evloop = self->evloop;
    if (evloop == NULL)
        return;
    if (l != NULL) {
        aio_run_watchers_stop(self);
        if (ev_is_active(&self->wakeup)) {
            ev_ref(l);
            ev_async_stop(l, &self->wakeup);
        }
        for (AioTimer *t = self->timers; t != NULL; t = t->tnext)
            aio_timer_stop_ev(l, t);
        for (int fd = 0; fd < self->nfds; fd++) {
            AioFd *f = self->fds[fd];
            if (f == NULL)
                continue;
            for (int d = 0; d < 2; d++) {
                if (ev_is_active(&f->io[d])) {
                    ev_ref(l);
                    ev_io_stop(l, &f->io[d]);
                }
            }
        }
    }
    if (self->bprev != NULL)
        self->bprev->bnext = self->bnext;
    else if (evloop->aio_loops == self)
        evloop->aio_loops = self->bnext;
    if (self->bnext != NULL)
        self->bnext->bprev = self->bprev;
    self->bprev = self->bnext = NULL;
    self->bound_thread = 0;
    self->evloop = NULL;
    Py_DECREF(evloop);
    Py_CLEAR(self->hub);
}

/* Bind to hub's loop (hub=NULL: the current thread's hub), moving every registered timer,
 * reader and writer there. */
static int
aio_bind(AioLoop *self, PyObject *hub)
{
    PyObject *loopobj;
    EvLoop *evloop;
    struct ev_loop *l;
    if (evloop_hub_ready() < 0)
        return -1;
    if (hub == NULL) {
        hub = evloop_get_hub();
        if (hub == NULL)
            return -1;
    }
    else {
        Py_INCREF(hub);
    }
    loopobj = PyObject_GetAttr(hub, evloop_str_loop);
    if (loopobj == NULL) {
        Py_DECREF(hub);
        return -1;
    }
    if (!PyObject_TypeCheck(loopobj, &EvLoop_Type) || ((EvLoop *)loopobj)->ev == NULL) {
        PyErr_Format(PyExc_RuntimeError,
                     "evloop.aio: the hub %R has no live evloop.core loop (%R)", hub, loopobj);
        Py_DECREF(loopobj);
        Py_DECREF(hub);
        return -1;
    }
    evloop = (EvLoop *)loopobj;
    if (self->evloop == evloop && self->hub == hub) {
        Py_DECREF(loopobj);
        Py_DECREF(hub);
        return 0;
    }
    aio_unbind(self);
    self->evloop = evloop; /* reference moved */
    self->hub = hub;       /* reference moved */
    self->bound_thread = PyThread_get_thread_ident();
    self->bprev = NULL;
    self->bnext = evloop->aio_loops;
    if (evloop->aio_loops != NULL)
        evloop->aio_loops->bprev = self;
    evloop->aio_loops = self;
    l = evloop->ev;
    ev_async_start(l, &self->wakeup);
    ev_unref(l);
    for (AioTimer *t = self->timers; t != NULL; t = t->tnext)
        aio_timer_start_ev(l, t);
    for (int fd = 0; fd < self->nfds; fd++) {
        AioFd *f = self->fds[fd];
        if (f == NULL)
            continue;
        for (int d = 0; d < 2; d++) {
            if (f->paused[d]) {
                f->paused[d] = 0;
                self->npaused--;
            }
            if (f->handle[d] != NULL)
                aio_fd_start(self, f, d);
        }
    }
    return 0;
}

/* evloop.core: the libev loop is being destroyed (hub.destroy()); every asyncio loop bound
 * to it lets go of its watchers first. */
static void
evloop_aio_detach_all(EvLoop *evloop)
{
    while (evloop->aio_loops != NULL) {
        AioLoop *a = evloop->aio_loops;
        Py_INCREF(a);
        aio_unbind(a);
        Py_DECREF(a);
    }
}

/* Stop and drop everything: close() and dealloc. */
static void
aio_drop_all(AioLoop *self)
{
    aio_ready_clear(self);
    while (self->timers != NULL) {
        AioTimer *t = self->timers;
        aio_timer_stop_ev(aio_ev(self), t);
        aio_timer_unlink(self, t);
        Py_DECREF(t);
    }
    for (int fd = 0; fd < self->nfds; fd++) {
        AioFd *f = self->fds[fd];
        if (f == NULL)
            continue;
        for (int d = 0; d < 2; d++) {
            AioHandle *h = f->handle[d];
            aio_fd_stop(self, f, d);
            f->handle[d] = NULL;
            Py_XDECREF(h);
        }
        self->fds[fd] = NULL;
        PyMem_Free(f);
    }
    self->npaused = 0;
}

/* ------------------------------------------------------------------------------------ */
/* the loop type: methods                                                                 */

static PyObject *
aio_loop_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    AioLoop *self = (AioLoop *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    ev_check_init(&self->check, aio_check_cb);
    self->check.data = self;
    ev_set_priority(&self->check, EV_MINPRI); /* after the io and timer callbacks */
    ev_idle_init(&self->idle, aio_idle_cb);
    self->idle.data = self;
    ev_set_priority(&self->idle, EV_MINPRI);
    ev_async_init(&self->wakeup, aio_wakeup_cb);
    self->wakeup.data = self;
    if (aio_bind(self, NULL) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
aio_loop_traverse(AioLoop *self, visitproc visit, void *arg)
{
    /* (the heap subclass's own traverse visits the type and the instance dict) */
    Py_VISIT(self->hub);
    Py_VISIT(self->evloop);
    Py_VISIT(self->run_greenlet);
    Py_VISIT(self->task_factory);
    for (AioHandle *h = self->ready_head; h != NULL; h = h->next)
        Py_VISIT(h);
    for (int fd = 0; fd < self->nfds; fd++) {
        AioFd *f = self->fds[fd];
        if (f != NULL) {
            Py_VISIT(f->handle[AIO_READ]);
            Py_VISIT(f->handle[AIO_WRITE]);
        }
    }
    /* armed timers are deliberately not visited: libev holds them */
    return 0;
}

static int
aio_loop_clear(AioLoop *self)
{
    aio_ready_clear(self);
    for (int fd = 0; fd < self->nfds; fd++) {
        AioFd *f = self->fds[fd];
        if (f == NULL)
            continue;
        for (int d = 0; d < 2; d++) {
            AioHandle *h = f->handle[d];
            aio_fd_stop(self, f, d);
            f->handle[d] = NULL;
            Py_XDECREF(h);
        }
        self->fds[fd] = NULL;
        PyMem_Free(f);
    }
    Py_CLEAR(self->run_greenlet);
    Py_CLEAR(self->task_factory);
    return 0;
}

static void
aio_loop_dealloc(AioLoop *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    /* for evloop.aio.Loop instances subtype_dealloc calls this, then drops the type */
    PyObject_GC_UnTrack(self);
    aio_drop_all(self);
    aio_run_watchers_stop(self);
    aio_unbind(self);
    PyMem_Free(self->fds);
    self->fds = NULL;
    Py_CLEAR(self->run_greenlet);
    Py_CLEAR(self->task_factory);
    Py_CLEAR(self->exc_type);
    Py_CLEAR(self->exc_value);
    Py_CLEAR(self->exc_tb);
    tp->tp_free((PyObject *)self);
}

/* Parse the trailing "context=" keyword of call_soon/call_later/call_at. */
static int
aio_parse_context(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                  const char *name, PyObject **context)
{
    *context = NULL;
    if (kwnames == NULL)
        return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        /* Tasks pass context= on every step: the interned name (3.12+), or a compact
         * ASCII "context" (3.11's _asyncio builds its own), before the general compare */
        if (k == aio_str_context
            || (PyUnicode_IS_COMPACT_ASCII(k) && PyUnicode_GET_LENGTH(k) == 7
                && memcmp(PyUnicode_DATA(k), "context", 7) == 0)
            || PyUnicode_CompareWithASCIIString(k, "context") == 0) {
            *context = args[nargs + i];
        }
        else {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", name,
                         k);
            return -1;
        }
    }
    return 0;
}

#define AIO_CHECK_CALLABLE 0     /* only that the callback is callable */
#define AIO_CHECK_DEBUG 1        /* debug mode: asyncio's thread and coroutine checks too */
#define AIO_CHECK_DEBUG_NOTHREAD 2 /* debug mode: the coroutine check (call_soon_threadsafe) */

static int
aio_check_callback(AioLoop *self, PyObject *callback, const char *name, int mode)
{
    if (mode != AIO_CHECK_CALLABLE && self->debug && aio_debug_check != NULL) {
        PyObject *n = PyUnicode_FromString(name), *r;
        if (n == NULL)
            return -1;
        r = PyObject_CallFunctionObjArgs(aio_debug_check, (PyObject *)self, callback, n,
                                         mode == AIO_CHECK_DEBUG ? Py_True : Py_False, NULL);
        Py_DECREF(n);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    if (!PyCallable_Check(callback)) {
        PyErr_Format(PyExc_TypeError, "a callable object was expected by %s(), got %R", name,
                     callback);
        return -1;
    }
    return 0;
}

static PyObject *
aio_make_args(PyObject *const *items, Py_ssize_t n)
{
    if (n == 0) {
        Py_INCREF(evloop_empty_tuple);
        return evloop_empty_tuple;
    }
    return evloop_tuple_from_array(items, n);
}

static PyObject *
aio_call_soon_common(AioLoop *self, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames, int threadsafe)
{
    const char *name = threadsafe ? "call_soon_threadsafe" : "call_soon";
    PyObject *context, *tuple;
    AioHandle *h;
    if (aio_parse_context(args, nargs, kwnames, name, &context) < 0)
        return NULL;
    if (nargs < 1) {
        PyErr_Format(PyExc_TypeError, "%s() missing the callback argument", name);
        return NULL;
    }
    if (self->closed)
        return aio_raise_closed();
    if (aio_check_callback(self, args[0], name,
                           threadsafe ? AIO_CHECK_DEBUG_NOTHREAD : AIO_CHECK_DEBUG) < 0)
        return NULL;
    tuple = aio_make_args(args + 1, nargs - 1);
    if (tuple == NULL)
        return NULL;
    h = aio_handle_alloc(&AioHandle_Type, self, args[0], tuple, context);
    if (h == NULL)
        return NULL;
    if (self->debug && aio_handle_debug_init(h) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    PyObject_GC_Track(h);
    Py_INCREF(h);
    aio_ready_push(self, h);
    if (threadsafe) {
        /* from any thread: the loop may sit in its poll; only the wake-up is thread-safe
         * in libev, the idle watcher is started by the loop's own thread */
        struct ev_loop *l = aio_ev(self);
        if (l != NULL) {
            ev_async_send(l, &self->wakeup);
            if (self->bound_thread != PyThread_get_thread_ident())
                evloop_threadsafe_backpressure(self->ready_count);
        }
    }
    else {
        aio_kick(self);
    }
    return (PyObject *)h;
}

static PyObject *
aio_call_soon(AioLoop *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return aio_call_soon_common(self, args, nargs, kwnames, 0);
}

static PyObject *
aio_call_soon_threadsafe(AioLoop *self, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    return aio_call_soon_common(self, args, nargs, kwnames, 1);
}

static int
aio_get_time_arg(PyObject *obj, const char *what, double *out)
{
    if (obj == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s must not be None", what);
        return -1;
    }
    /* evloop_get_double's number check (numbers only, NaN refused), with its exact-float
     * fast path */
    return evloop_get_double(obj, what, out);
}

static PyObject *
aio_schedule(AioLoop *self, double when, PyObject *const *args, Py_ssize_t nargs,
             PyObject *context, const char *name)
{
    PyObject *tuple;
    AioTimer *t;
    if (self->closed)
        return aio_raise_closed();
    if (aio_check_callback(self, args[0], name, AIO_CHECK_DEBUG) < 0)
        return NULL;
    if (aio_ensure_bound(self) < 0)
        return NULL;
    tuple = aio_make_args(args + 1, nargs - 1);
    if (tuple == NULL)
        return NULL;
    t = (AioTimer *)aio_handle_alloc(&AioTimer_Type, self, args[0], tuple, context);
    if (t == NULL)
        return NULL;
    ev_timer_init(&t->t, aio_timer_cb, 0., 0.);
    t->t.data = t;
    t->when = when;
    t->tprev = t->tnext = NULL;
    t->armed = 0;
    if (self->debug && aio_handle_debug_init(&t->h) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    PyObject_GC_Track(t);
    Py_INCREF(t); /* the armed reference */
    aio_timer_link(self, t);
    aio_timer_start_ev(self->evloop->ev, t);
    return (PyObject *)t;
}

static PyObject *
aio_call_later(AioLoop *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *context;
    double delay;
    if (aio_parse_context(args, nargs, kwnames, "call_later", &context) < 0)
        return NULL;
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "call_later() takes a delay and a callback");
        return NULL;
    }
    if (aio_get_time_arg(args[0], "delay", &delay) < 0)
        return NULL;
    return aio_schedule(self, aio_now() + delay, args + 1, nargs - 1, context, "call_later");
}

static PyObject *
aio_call_at(AioLoop *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *context;
    double when;
    if (aio_parse_context(args, nargs, kwnames, "call_at", &context) < 0)
        return NULL;
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "call_at() takes a time and a callback");
        return NULL;
    }
    if (aio_get_time_arg(args[0], "when", &when) < 0)
        return NULL;
    return aio_schedule(self, when, args + 1, nargs - 1, context, "call_at");
}

static PyObject *
aio_time(AioLoop *self, PyObject *unused)
{
    return PyFloat_FromDouble(aio_now());
}

static PyObject *
aio_stop(AioLoop *self, PyObject *unused)
{
    self->stopping = 1;
    aio_kick(self); /* the current iteration must not block */
    Py_RETURN_NONE;
}

/* _add_callback(handle): queue an existing handle (asyncio's selector and signal code).
 * A handle of another type (asyncio.Handle from add_signal_handler) is run through its
 * own _run(). */
static int
aio_add_callback_impl(AioLoop *self, PyObject *handle)
{
    AioHandle *h;
    if (PyObject_TypeCheck(handle, &AioHandle_Type)) {
        h = (AioHandle *)handle;
        if (h->cancelled || h->queued)
            return 0;
        Py_INCREF(h);
    }
    else {
        PyObject *cancelled = PyObject_GetAttrString(handle, "_cancelled"), *run;
        int c;
        if (cancelled == NULL)
            return -1;
        c = PyObject_IsTrue(cancelled);
        Py_DECREF(cancelled);
        if (c < 0)
            return -1;
        if (c)
            return 0;
        run = PyObject_GetAttrString(handle, "_run");
        if (run == NULL)
            return -1;
        Py_INCREF(evloop_empty_tuple);
        h = aio_handle_alloc(&AioHandle_Type, self, run, evloop_empty_tuple, NULL);
        Py_DECREF(run);
        if (h == NULL)
            return -1;
        PyObject_GC_Track(h);
    }
    aio_ready_push(self, h);
    aio_kick(self);
    return 0;
}

static PyObject *
aio_add_callback(AioLoop *self, PyObject *handle)
{
    if (aio_add_callback_impl(self, handle) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
aio_add_callback_signalsafe(AioLoop *self, PyObject *handle)
{
    struct ev_loop *l;
    if (aio_add_callback_impl(self, handle) < 0)
        return NULL;
    l = aio_ev(self);
    if (l != NULL)
        ev_async_send(l, &self->wakeup);
    Py_RETURN_NONE;
}

/* An fd from an int or an object with fileno(), as selectors accept. */
static int
aio_fd_from(PyObject *obj, int *out)
{
    long v;
    PyObject *num = NULL;
    if (PyLong_Check(obj)) {
        v = PyLong_AsLong(obj);
    }
    else {
        PyObject *meth = PyObject_GetAttrString(obj, "fileno");
        if (meth == NULL) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "Invalid file object: %R", obj);
            return -1;
        }
        num = PyObject_CallNoArgs(meth);
        Py_DECREF(meth);
        if (num == NULL)
            return -1;
        if (!PyLong_Check(num)) {
            PyErr_Format(PyExc_ValueError, "Invalid file object: %R", obj);
            Py_DECREF(num);
            return -1;
        }
        v = PyLong_AsLong(num);
        Py_DECREF(num);
    }
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0 || v > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* _add_reader/_add_writer(fd, callback, *args, context=None): the context keyword is what
 * asyncio's transports pass from CPython 3.15 (the Context their callbacks run in); older
 * asyncio never passes it. */
static PyObject *
aio_add_fd(AioLoop *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, int d)
{
    const char *name = d == AIO_READ ? "_add_reader" : "_add_writer";
    int fd;
    PyObject *tuple, *context;
    AioHandle *h, *old;
    AioFd *f;
    if (aio_parse_context(args, nargs, kwnames, name, &context) < 0)
        return NULL;
    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError, "%s(fd, callback, *args, context=None)", name);
        return NULL;
    }
    if (self->closed)
        return aio_raise_closed();
    if (aio_fd_from(args[0], &fd) < 0)
        return NULL;
    if (aio_check_callback(self, args[1], d == AIO_READ ? "add_reader" : "add_writer",
                           AIO_CHECK_CALLABLE) < 0)
        return NULL;
    if (aio_ensure_bound(self) < 0)
        return NULL;
    f = aio_fd_lookup(self, fd);
    if ((f == NULL || !ev_is_active(&f->io[d])) && evloop_fd_alive(fd) < 0)
        return NULL; /* libev would silently kill a watcher on a closed fd */
    tuple = aio_make_args(args + 2, nargs - 2);
    if (tuple == NULL)
        return NULL;
    h = aio_handle_alloc(&AioHandle_Type, self, args[1], tuple, context);
    if (h == NULL)
        return NULL;
    if (self->debug && aio_handle_debug_init(h) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    PyObject_GC_Track(h);
    f = aio_fd_create(self, fd);
    if (f == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    old = f->handle[d];
    Py_INCREF(h);
    f->handle[d] = h;
    if (f->paused[d]) {
        f->paused[d] = 0;
        self->npaused--;
    }
    if (old != NULL) {
        /* replacing: re-register the fd (it may have been closed and reused meanwhile) */
        struct ev_loop *l = aio_ev(self);
        if (ev_is_active(&f->io[d])) {
            ev_ref(l);
            ev_io_stop(l, &f->io[d]);
        }
        if (aio_handle_cancel(old) < 0)
            PyErr_Clear(); /* only a debug-mode repr can fail */
        Py_DECREF(old);
    }
    aio_fd_start(self, f, d);
    return (PyObject *)h;
}

static PyObject *
aio_add_reader(AioLoop *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return aio_add_fd(self, args, nargs, kwnames, AIO_READ);
}

static PyObject *
aio_add_writer(AioLoop *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return aio_add_fd(self, args, nargs, kwnames, AIO_WRITE);
}

static PyObject *
aio_remove_fd(AioLoop *self, PyObject *fdobj, int d)
{
    int fd, r;
    if (self->closed)
        Py_RETURN_FALSE;
    if (aio_fd_from(fdobj, &fd) < 0)
        return NULL;
    r = aio_fd_remove(self, fd, d);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static PyObject *
aio_remove_reader(AioLoop *self, PyObject *fd)
{
    return aio_remove_fd(self, fd, AIO_READ);
}

static PyObject *
aio_remove_writer(AioLoop *self, PyObject *fd)
{
    return aio_remove_fd(self, fd, AIO_WRITE);
}

/* _fd_key(fd) -> (events, reader, writer) or None: what the selector view reports */
static PyObject *
aio_fd_key(AioLoop *self, PyObject *fdobj)
{
    int fd, events = 0;
    AioFd *f;
    if (aio_fd_from(fdobj, &fd) < 0)
        return NULL;
    f = aio_fd_lookup(self, fd);
    if (f == NULL)
        Py_RETURN_NONE;
    if (f->handle[AIO_READ] != NULL)
        events |= 1; /* selectors.EVENT_READ */
    if (f->handle[AIO_WRITE] != NULL)
        events |= 2; /* selectors.EVENT_WRITE */
    return Py_BuildValue("(iOO)", events,
                         f->handle[AIO_READ] ? (PyObject *)f->handle[AIO_READ] : Py_None,
                         f->handle[AIO_WRITE] ? (PyObject *)f->handle[AIO_WRITE] : Py_None);
}

static PyObject *
aio_fds(AioLoop *self, PyObject *unused)
{
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (int fd = 0; fd < self->nfds; fd++) {
        if (self->fds[fd] != NULL) {
            PyObject *n = PyLong_FromLong(fd);
            if (n == NULL || PyList_Append(list, n) < 0) {
                Py_XDECREF(n);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(n);
        }
    }
    return list;
}

static PyObject *
aio_ready_handles(AioLoop *self, PyObject *unused)
{
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (AioHandle *h = self->ready_head; h != NULL; h = h->next) {
        if (PyList_Append(list, (PyObject *)h) < 0) {
            Py_DECREF(list);
            return NULL;
        }
    }
    return list;
}

static PyObject *
aio_scheduled_handles(AioLoop *self, PyObject *unused)
{
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (AioTimer *t = self->timers; t != NULL; t = t->tnext) {
        if (PyList_Append(list, (PyObject *)t) < 0) {
            Py_DECREF(list);
            return NULL;
        }
    }
    if (PyList_Sort(list) < 0) {
        Py_DECREF(list);
        return NULL;
    }
    return list;
}

/* close(): drop the queue, stop every timer, reader and writer, leave the hub. */
static PyObject *
aio_close_watchers(AioLoop *self, PyObject *unused)
{
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "Cannot close a running event loop");
        return NULL;
    }
    self->closed = 1;
    aio_drop_all(self);
    aio_unbind(self);
    Py_RETURN_NONE;
}

static PyObject *
aio_check_not_hub(AioLoop *self, PyObject *unused)
{
    PyGreenlet *cur;
    PyObject *hub;
    int in_hub;
    if (evloop_hub_ready() < 0)
        return NULL;
    hub = evloop_current_hub(); /* borrowed */
    if (hub == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    cur = PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    in_hub = (PyObject *)cur == hub;
    Py_DECREF(cur);
    if (in_hub) {
        PyErr_SetString(
            PyExc_RuntimeError,
            "cannot run an evloop.aio event loop from the evloop hub greenlet: asyncio "
            "callbacks and evloop watcher callbacks run in the hub, and run_forever() / "
            "run_until_complete() block by switching to it; call them from the main "
            "greenlet or a greenlet spawned with evloop.spawn()");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* run()'s arming is its check watcher: resumed by something else than the batch (a
 * greenlet-level throw such as evloop.Timeout, or the hub ending), stop running */
static void
aio_run_undo(void *arg)
{
    AioLoop *self = (AioLoop *)arg;
    if (!self->woken) {
        self->woken = 1;
        aio_run_watchers_stop(self);
    }
}

/* _run(once): run_forever()'s core, between asyncio's setup and cleanup. The calling
 * greenlet switches to the hub; the check watcher runs a batch after each poll and
 * switches back when stop() was called (or after one batch if once). */
static PyObject *
aio_run(AioLoop *self, PyObject *onceobj)
{
    PyObject *cur, *hub, *res;
    int once = PyObject_IsTrue(onceobj);
    struct ev_loop *l;
    if (once < 0)
        return NULL;
    if (self->closed)
        return aio_raise_closed();
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "This event loop is already running");
        return NULL;
    }
    if (evloop_hub_ready() < 0)
        return NULL;
    /* run in this thread, on this thread's hub: a loop made elsewhere moves here */
    hub = evloop_get_hub();
    if (hub == NULL)
        return NULL;
    if (hub != self->hub || self->evloop == NULL || self->evloop->ev == NULL) {
        if (aio_bind(self, hub) < 0) {
            Py_DECREF(hub);
            return NULL;
        }
    }
    Py_DECREF(hub);
    res = aio_check_not_hub(self, NULL);
    if (res == NULL)
        return NULL;
    Py_DECREF(res);
    cur = (PyObject *)PyGreenlet_GetCurrent();
    if (cur == NULL)
        return NULL;
    l = self->evloop->ev;
    Py_INCREF(self);
    self->running = 1;
    self->once = once;
    self->woken = 0;
    self->run_greenlet = cur; /* reference moved */
    if (self->npaused > 0)
        aio_fd_resume_paused(self);
    /* referenced: while run() waits, the hub's loop must not run out of work */
    ev_check_start(l, &self->check);
    if (self->ready_count > 0 || self->stopping)
        aio_idle_start(self);
    hub = self->hub;
    Py_INCREF(hub);
    res = evloop_hub_switch(hub, NULL, aio_run_undo, self);
    Py_DECREF(hub);
    self->running = 0;
    self->once = 0;
    Py_CLEAR(self->run_greenlet);
    if (res != NULL && res != aio_wake_mark) {
        if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 0) {
            PyErr_Format(PyExc_RuntimeError,
                         "evloop.aio: the greenlet blocked in run_forever() was switched to "
                         "with %R; only the hub may resume it", res);
            Py_DECREF(res);
            res = NULL;
        }
        else {
            /* switch() with no value: the hub greenlet ended and returned to its parent */
            Py_DECREF(res);
            PyErr_SetString(PyExc_RuntimeError,
                            "evloop.aio: the hub greenlet ended while run_forever() waited "
                            "on it");
            res = NULL;
        }
    }
    Py_DECREF(self);
    if (res == NULL)
        return NULL;
    Py_DECREF(res);
    Py_RETURN_NONE;
}

/* create_task(coro, *, name=None, context=None): asyncio.Task(coro, loop=self, ...) without
 * a Python frame when there is no task factory and debug mode is off (BaseEventLoop's
 * create_task does exactly that then); everything else goes to BaseEventLoop.create_task. */
static PyObject *
aio_create_task(AioLoop *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *name = NULL, *context = NULL, *task_cls, *stack[4];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int fast = nargs == 1 && !self->closed && self->task_factory == NULL && !self->debug
               && aio_tasks_dict != NULL;
    for (Py_ssize_t i = 0; fast && i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i), *v = args[nargs + i];
        if (PyUnicode_CompareWithASCIIString(k, "name") == 0)
            name = v == Py_None ? NULL : v;
#if PY_VERSION_HEX >= 0x030B0000
        else if (PyUnicode_CompareWithASCIIString(k, "context") == 0)
            context = v == Py_None ? NULL : v;
#endif
        else
            fast = 0;
    }
    if (!fast) {
        PyObject *small[8], **full = small, *res;
        if (aio_create_task_py == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "evloop.aio is not configured");
            return NULL;
        }
        if (nargs + nkw + 1 > 8) {
            full = PyMem_Malloc((size_t)(nargs + nkw + 1) * sizeof(PyObject *));
            if (full == NULL)
                return PyErr_NoMemory();
        }
        full[0] = (PyObject *)self;
        for (Py_ssize_t i = 0; i < nargs + nkw; i++)
            full[i + 1] = args[i];
        res = PyObject_Vectorcall(aio_create_task_py, full, nargs + 1, kwnames);
        if (full != small)
            PyMem_Free(full);
        return res;
    }
    task_cls = PyDict_GetItemWithError(aio_tasks_dict, aio_str_Task); /* borrowed */
    if (task_cls == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "asyncio.tasks.Task is missing");
        return NULL;
    }
    stack[0] = args[0];
    stack[1] = (PyObject *)self;
    if (name != NULL && context != NULL) {
        stack[2] = name;
        stack[3] = context;
        return PyObject_Vectorcall(task_cls, stack, 1, aio_kw_loop[3]);
    }
    if (name != NULL) {
        stack[2] = name;
        return PyObject_Vectorcall(task_cls, stack, 1, aio_kw_loop[1]);
    }
    if (context != NULL) {
        stack[2] = context;
        return PyObject_Vectorcall(task_cls, stack, 1, aio_kw_loop[2]);
    }
    return PyObject_Vectorcall(task_cls, stack, 1, aio_kw_loop[0]);
}

/* create_future(): asyncio.futures.Future(loop=self) */
static PyObject *
aio_create_future(AioLoop *self, PyObject *unused)
{
    PyObject *cls, *stack[1];
    if (aio_futures_dict == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "evloop.aio is not configured");
        return NULL;
    }
    cls = PyDict_GetItemWithError(aio_futures_dict, aio_str_Future); /* borrowed */
    if (cls == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "asyncio.futures.Future is missing");
        return NULL;
    }
    stack[0] = (PyObject *)self;
    return PyObject_Vectorcall(cls, stack, 0, aio_kw_loop[0]);
}

/* get_debug() and is_closed(): every Future and Task constructor calls get_debug() */
static PyObject *
aio_get_debug(AioLoop *self, PyObject *unused)
{
    return PyBool_FromLong(self->debug);
}

static PyObject *
aio_is_closed(AioLoop *self, PyObject *unused)
{
    return PyBool_FromLong(self->closed);
}

static PyObject *
aio_get_task_factory(AioLoop *self, void *c)
{
    PyObject *v = self->task_factory ? self->task_factory : Py_None;
    Py_INCREF(v);
    return v;
}

static int
aio_set_task_factory(AioLoop *self, PyObject *v, void *c)
{
    if (v == Py_None)
        v = NULL;
    Py_XINCREF(v);
    Py_XSETREF(self->task_factory, v);
    return 0;
}

static PyObject *
aio_get_flag(AioLoop *self, void *c)
{
    return PyBool_FromLong(*(int *)((char *)self + (Py_ssize_t)c));
}

static int
aio_set_flag(AioLoop *self, PyObject *v, void *c)
{
    int truth;
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete this attribute");
        return -1;
    }
    truth = PyObject_IsTrue(v);
    if (truth < 0)
        return -1;
    *(int *)((char *)self + (Py_ssize_t)c) = truth;
    if ((Py_ssize_t)c == offsetof(AioLoop, stopping) && truth)
        aio_kick(self);
    return 0;
}

static PyObject *
aio_get_hub(AioLoop *self, void *c)
{
    PyObject *v = self->hub ? self->hub : Py_None;
    Py_INCREF(v);
    return v;
}

static PyObject *
aio_get_ready_count(AioLoop *self, void *c)
{
    return PyLong_FromSsize_t(self->ready_count);
}

static PyObject *
aio_get_timer_count(AioLoop *self, void *c)
{
    return PyLong_FromSsize_t(self->ntimers);
}

static PyMethodDef aio_loop_methods[] = {
    {"call_soon", (PyCFunction)(void (*)(void))aio_call_soon, METH_FASTCALL | METH_KEYWORDS,
     "call_soon(callback, *args, context=None) -> Handle"},
    {"call_soon_threadsafe", (PyCFunction)(void (*)(void))aio_call_soon_threadsafe,
     METH_FASTCALL | METH_KEYWORDS,
     "call_soon_threadsafe(callback, *args, context=None) -> Handle: from any thread"},
    {"call_later", (PyCFunction)(void (*)(void))aio_call_later, METH_FASTCALL | METH_KEYWORDS,
     "call_later(delay, callback, *args, context=None) -> TimerHandle"},
    {"call_at", (PyCFunction)(void (*)(void))aio_call_at, METH_FASTCALL | METH_KEYWORDS,
     "call_at(when, callback, *args, context=None) -> TimerHandle"},
    {"time", (PyCFunction)aio_time, METH_NOARGS,
     "the loop's clock: libev's monotonic clock (time.monotonic() on Linux)"},
    {"stop", (PyCFunction)aio_stop, METH_NOARGS,
     "stop(): run_forever() returns after the current batch of callbacks"},
    {"_add_callback", (PyCFunction)aio_add_callback, METH_O, NULL},
    {"_add_callback_signalsafe", (PyCFunction)aio_add_callback_signalsafe, METH_O, NULL},
    {"_add_reader", (PyCFunction)(void (*)(void))aio_add_reader, METH_FASTCALL | METH_KEYWORDS,
     "_add_reader(fd, callback, *args, context=None) -> Handle"},
    {"_add_writer", (PyCFunction)(void (*)(void))aio_add_writer, METH_FASTCALL | METH_KEYWORDS,
     "_add_writer(fd, callback, *args, context=None) -> Handle"},
    {"_remove_reader", (PyCFunction)aio_remove_reader, METH_O, NULL},
    {"_remove_writer", (PyCFunction)aio_remove_writer, METH_O, NULL},
    {"_fd_key", (PyCFunction)aio_fd_key, METH_O, NULL},
    {"_fds", (PyCFunction)aio_fds, METH_NOARGS, NULL},
    {"_ready_handles", (PyCFunction)aio_ready_handles, METH_NOARGS, NULL},
    {"_scheduled_handles", (PyCFunction)aio_scheduled_handles, METH_NOARGS, NULL},
    {"_close_watchers", (PyCFunction)aio_close_watchers, METH_NOARGS, NULL},
    {"_check_not_hub", (PyCFunction)aio_check_not_hub, METH_NOARGS, NULL},
    {"_run", (PyCFunction)aio_run, METH_O, "_run(once): run_forever()'s core"},
    {"create_task", (PyCFunction)(void (*)(void))aio_create_task,
     METH_FASTCALL | METH_KEYWORDS, "create_task(coro, *, name=None, context=None) -> Task"},
    {"create_future", (PyCFunction)aio_create_future, METH_NOARGS,
     "create_future() -> asyncio.Future attached to this loop"},
    {"get_debug", (PyCFunction)aio_get_debug, METH_NOARGS, NULL},
    {"is_closed", (PyCFunction)aio_is_closed, METH_NOARGS, NULL},
    {NULL}
};

static PyGetSetDef aio_loop_getset[] = {
    {"_closed", (getter)aio_get_flag, (setter)aio_set_flag, NULL,
     (void *)offsetof(AioLoop, closed)},
    {"_stopping", (getter)aio_get_flag, (setter)aio_set_flag, NULL,
     (void *)offsetof(AioLoop, stopping)},
    {"_debug", (getter)aio_get_flag, (setter)aio_set_flag, NULL,
     (void *)offsetof(AioLoop, debug)},
    {"_hub", (getter)aio_get_hub, NULL, "the hub greenlet whose libev loop this loop uses",
     NULL},
    {"_task_factory", (getter)aio_get_task_factory, (setter)aio_set_task_factory, NULL, NULL},
    {"_ready_count", (getter)aio_get_ready_count, NULL, NULL, NULL},
    {"_timer_count", (getter)aio_get_timer_count, NULL, NULL, NULL},
    {NULL}
};

static PyTypeObject AioLoop_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "evloop.core.AioLoop",
    .tp_basicsize = sizeof(AioLoop),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "the C half of evloop.aio.Loop (use that class)",
    .tp_new = aio_loop_new,
    .tp_dealloc = (destructor)aio_loop_dealloc,
    .tp_traverse = (traverseproc)aio_loop_traverse,
    .tp_clear = (inquiry)aio_loop_clear,
    .tp_methods = aio_loop_methods,
    .tp_getset = aio_loop_getset,
};

/* _aio_configure(on_error, repr, extract_stack, debug_check, run_debug, tasks_dict,
 *                futures_dict, create_task) — once, by evloop.aio */
static PyObject *
mod_aio_configure(PyObject *m, PyObject *args)
{
    PyObject *a, *b, *c, *d, *e, *tasks, *futures, *create_task;
    if (!PyArg_ParseTuple(args, "OOOOOO!O!O:_aio_configure", &a, &b, &c, &d, &e,
                          &PyDict_Type, &tasks, &PyDict_Type, &futures, &create_task))
        return NULL;
    if (aio_str_Task == NULL) {
        aio_str_Task = PyUnicode_InternFromString("Task");
        aio_str_Future = PyUnicode_InternFromString("Future");
        aio_str_context = PyUnicode_InternFromString("context");
        aio_kw_loop[0] = Py_BuildValue("(s)", "loop");
        aio_kw_loop[1] = Py_BuildValue("(ss)", "loop", "name");
        aio_kw_loop[2] = Py_BuildValue("(ss)", "loop", "context");
        aio_kw_loop[3] = Py_BuildValue("(sss)", "loop", "name", "context");
        if (aio_str_Task == NULL || aio_str_Future == NULL || aio_str_context == NULL
            || aio_kw_loop[0] == NULL
            || aio_kw_loop[1] == NULL || aio_kw_loop[2] == NULL || aio_kw_loop[3] == NULL)
            return NULL;
    }
    Py_INCREF(tasks);
    Py_XSETREF(aio_tasks_dict, tasks);
    Py_INCREF(futures);
    Py_XSETREF(aio_futures_dict, futures);
    Py_INCREF(create_task);
    Py_XSETREF(aio_create_task_py, create_task);
    if (aio_wake_mark == NULL) {
        aio_wake_mark = PyUnicode_InternFromString("<evloop.aio wake-up>");
        if (aio_wake_mark == NULL)
            return NULL;
        aio_wake_args = PyTuple_Pack(1, aio_wake_mark);
        if (aio_wake_args == NULL)
            return NULL;
    }
    Py_INCREF(a);
    Py_XSETREF(aio_on_error, a);
    Py_INCREF(b);
    Py_XSETREF(aio_repr_helper, b);
    Py_INCREF(c);
    Py_XSETREF(aio_extract_stack, c);
    Py_INCREF(d);
    Py_XSETREF(aio_debug_check, d);
    Py_INCREF(e);
    Py_XSETREF(aio_run_debug, e);
    Py_RETURN_NONE;
}

static PyMethodDef evloop_aio_functions[] = {
    {"_aio_configure", mod_aio_configure, METH_VARARGS, NULL},
    {NULL}
};

static int
evloop_aio_init(PyObject *m)
{
    evloop_hooks.loop_destroying = evloop_aio_detach_all;
    if (evloop_add_type(m, "AioLoop", &AioLoop_Type) < 0
        || evloop_add_type(m, "AioHandle", &AioHandle_Type) < 0
        || evloop_add_type(m, "AioTimerHandle", &AioTimer_Type) < 0)
        return -1;
    return PyModule_AddFunctions(m, evloop_aio_functions);
}
