/* evloop_watchers.c — the watcher kinds: io, timer, signal, idle, prepare, check, fork,
 * async, child, stat.
 *
 * Why it exists: each kind is a small subtype of the watcher base (csrc/evloop_watcher.c)
 * that embeds its libev struct, checks its arguments before libev sees them (libev's
 * asserts are compiled out) and exposes its own attributes.
 *
 * What it must not do: dispatch events itself (the base does), or touch the process-wide
 * signal and SIGCHLD state except through csrc/evloop_signals.c.
 */
#include "evloop_internal.h"

static PyObject *evloop_stat_result = NULL; /* os.stat_result */

#define EVLOOP_KIND_FUNCS(T)                                                             \
    static void evloop_start_##T(struct ev_loop *l, ev_watcher *w)                       \
    {                                                                                    \
        ev_##T##_start(l, (ev_##T *)w);                                                  \
    }                                                                                    \
    static void evloop_stop_##T(struct ev_loop *l, ev_watcher *w)                        \
    {                                                                                    \
        ev_##T##_stop(l, (ev_##T *)w);                                                   \
    }

EVLOOP_KIND_FUNCS(io)
EVLOOP_KIND_FUNCS(timer)
EVLOOP_KIND_FUNCS(signal)
EVLOOP_KIND_FUNCS(idle)
EVLOOP_KIND_FUNCS(prepare)
EVLOOP_KIND_FUNCS(check)
EVLOOP_KIND_FUNCS(async)
EVLOOP_KIND_FUNCS(stat)
EVLOOP_KIND_FUNCS(fork)

#define EVLOOP_WATCHER_TYPE(CT, NAME, STRUCT, DOC)                                       \
    static PyTypeObject CT = {                                                           \
        PyVarObject_HEAD_INIT(NULL, 0)                                                   \
        .tp_name = "evloop.core." NAME,                                                  \
        .tp_basicsize = sizeof(STRUCT),                                                  \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,        \
        .tp_doc = DOC,                                                                   \
        .tp_base = &EvWatcher_Type,                                                      \
        .tp_dealloc = (destructor)watcher_dealloc,                                       \
        .tp_traverse = (traverseproc)watcher_traverse,                                   \
        .tp_clear = (inquiry)watcher_clear,                                              \
        .tp_weaklistoffset = offsetof(EvWatcher, weakreflist),                           \
        .tp_repr = (reprfunc)watcher_repr,                                               \
    }

/* --- io ------------------------------------------------------------------------------ */


static int
io_prestart(EvWatcher *self)
{
    if (self->flags & EVLOOP_W_FD_TRUSTED)
        return 0;
    return evloop_fd_alive(((EvIo *)self)->io.fd);
}

static const evloop_kind evloop_kind_io = {"io", evloop_start_io, evloop_stop_io,
                                           io_prestart, NULL};

static int
evloop_check_events(PyObject *obj, int *out)
{
    long ev;
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "events must be an int, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    ev = PyLong_AsLong(obj);
    if (ev == -1 && PyErr_Occurred())
        return -1;
    if (ev & ~(long)(EV_READ | EV_WRITE)) {
        PyErr_Format(PyExc_ValueError,
                     "events must be a combination of READ (1) and WRITE (2), not %ld", ev);
        return -1;
    }
    *out = (int)ev;
    return 0;
}

static PyObject *
io_start(EvWatcher *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int pass_events = -1;
    if (kwnames != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *k = PyTuple_GET_ITEM(kwnames, i);
            if (PyUnicode_CompareWithASCIIString(k, "pass_events") == 0) {
                pass_events = PyObject_IsTrue(args[nargs + i]);
                if (pass_events < 0)
                    return NULL;
            }
            else {
                PyErr_Format(PyExc_TypeError, "io.start() got an unexpected keyword %R", k);
                return NULL;
            }
        }
    }
    if (evloop_watcher_can_start(self) < 0)
        return NULL;
    return evloop_start_with(self, args, nargs, pass_events);
}

static PyObject *
io_get_fd(EvIo *self, void *c)
{
    return PyLong_FromLong(self->io.fd);
}

static int
io_set_fd(EvIo *self, PyObject *value, void *c)
{
    int fd;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete fd");
        return -1;
    }
    if (evloop_check_fd(value, &fd) < 0)
        return -1;
    if (self->base.loop->ev != NULL && ev_is_active(&self->io)) {
        PyErr_SetString(PyExc_ValueError, "cannot change the fd of an active io watcher");
        return -1;
    }
    ev_io_set(&self->io, fd, self->io.events & (EV_READ | EV_WRITE));
    return 0;
}

static PyObject *
io_get_events(EvIo *self, void *c)
{
    return PyLong_FromLong(self->io.events & (EV_READ | EV_WRITE));
}

static int
io_set_events(EvIo *self, PyObject *value, void *c)
{
    int events;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete events");
        return -1;
    }
    if (evloop_check_events(value, &events) < 0)
        return -1;
    if (self->base.loop->ev != NULL && ev_is_active(&self->io)) {
        /* libev forbids changing an active watcher: stop, change, start again */
        ev_io_stop(self->base.loop->ev, &self->io);
        ev_io_modify(&self->io, events);
        ev_io_start(self->base.loop->ev, &self->io);
    }
    else {
        ev_io_modify(&self->io, events);
    }
    return 0;
}

static PyObject *
io_get_events_str(EvIo *self, void *c)
{
    int e = self->io.events & (EV_READ | EV_WRITE);
    return PyUnicode_FromString(e == (EV_READ | EV_WRITE) ? "READ|WRITE"
                                : e == EV_READ            ? "READ"
                                : e == EV_WRITE           ? "WRITE"
                                                          : "0");
}

static PyMethodDef io_methods[] = {
    {"start", (PyCFunction)(void (*)(void))io_start, METH_FASTCALL | METH_KEYWORDS,
     "start(callback, *args, pass_events=False)"},
    {NULL}
};

static PyGetSetDef io_getset[] = {
    {"fd", (getter)io_get_fd, (setter)io_set_fd, NULL, NULL},
    {"events", (getter)io_get_events, (setter)io_set_events, NULL, NULL},
    {"events_str", (getter)io_get_events_str, NULL, NULL, NULL},
    {NULL}
};

EVLOOP_WATCHER_TYPE(EvIo_Type, "io", EvIo, "io(fd, events): readiness of a file descriptor");

/* --- timer --------------------------------------------------------------------------- */


static const evloop_kind evloop_kind_timer = {"timer", evloop_start_timer, evloop_stop_timer,
                                              NULL, NULL};

static int
evloop_parse_update(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                    const char *fname, int *update)
{
    if (kwnames == NULL)
        return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        PyObject *v = args[nargs + i];
        if (PyUnicode_CompareWithASCIIString(k, "update") == 0) {
            if (v == Py_None)
                continue;
            *update = PyObject_IsTrue(v);
            if (*update < 0)
                return -1;
        }
        else {
            PyErr_Format(PyExc_TypeError, "timer.%s() got an unexpected keyword %R", fname, k);
            return -1;
        }
    }
    return 0;
}

static PyObject *
timer_start(EvTimer *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int update = 0;
    if (evloop_parse_update(args, nargs, kwnames, "start", &update) < 0)
        return NULL;
    if (evloop_watcher_can_start(&self->base) < 0)
        return NULL;
    if (update)
        ev_now_update(self->base.loop->ev);
    /* ev_timer_stop (called by libev itself when a one-shot timer fires) leaves "the time
     * that was left" in the timer, and ev_timer_start resumes from it: a timer started
     * again after it fired would fire at once (gevent's libev loop does: gevent #1890).
     * A start of a stopped timer waits `after` again; an active one keeps its deadline. */
    if (!ev_is_active(&self->t))
        ev_timer_set(&self->t, self->after, self->t.repeat);
    return evloop_start_with(&self->base, args, nargs, -1);
}

static PyObject *
timer_again(EvTimer *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int update = 1;
    EvLoop *loop = self->base.loop;
    if (evloop_parse_update(args, nargs, kwnames, "again", &update) < 0)
        return NULL;
    if (evloop_watcher_can_start(&self->base) < 0)
        return NULL;
    if (nargs > 0) {
        if (evloop_watcher_set_callback(&self->base, args, nargs) < 0)
            return NULL;
    }
    else if (self->base.callback == NULL) {
        PyErr_SetString(PyExc_TypeError, "again() needs a callback (none was set before)");
        return NULL;
    }
    if (update)
        ev_now_update(loop->ev);
    /* ev_timer_again: restart with `repeat` as the timeout, or stop if repeat is 0 */
    ev_timer_again(loop->ev, &self->t);
    if (ev_is_active(&self->t)) {
        if (evloop_watcher_activate(&self->base) < 0)
            return NULL;
    }
    else {
        evloop_watcher_stop_and_forget(&self->base);
    }
    Py_RETURN_NONE;
}

static PyObject *
timer_get_at(EvTimer *self, void *c)
{
    if (self->base.loop->ev != NULL && ev_is_active(&self->t))
        return PyFloat_FromDouble(ev_now(self->base.loop->ev)
                                  + ev_timer_remaining(self->base.loop->ev, &self->t));
    return PyFloat_FromDouble(self->t.at);
}

static PyObject *
timer_get_remaining(EvTimer *self, void *c)
{
    if (self->base.loop->ev == NULL)
        return evloop_raise_destroyed();
    return PyFloat_FromDouble(ev_timer_remaining(self->base.loop->ev, &self->t));
}

static PyObject *
timer_get_after(EvTimer *self, void *c)
{
    return PyFloat_FromDouble(self->after);
}

static PyObject *
timer_get_repeat(EvTimer *self, void *c)
{
    return PyFloat_FromDouble(self->t.repeat);
}

static int
timer_set_repeat(EvTimer *self, PyObject *value, void *c)
{
    double r;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete repeat");
        return -1;
    }
    if (evloop_get_double(value, "repeat", &r) < 0)
        return -1;
    if (r < 0) {
        PyErr_Format(PyExc_ValueError, "repeat must be >= 0, not %R", value);
        return -1;
    }
    self->t.repeat = r;
    return 0;
}

static PyMethodDef timer_methods[] = {
    {"start", (PyCFunction)(void (*)(void))timer_start, METH_FASTCALL | METH_KEYWORDS,
     "start(callback, *args, update=False)"},
    {"again", (PyCFunction)(void (*)(void))timer_again, METH_FASTCALL | METH_KEYWORDS,
     "again([callback, *args], update=True): restart with repeat as the timeout"},
    {NULL}
};

static PyGetSetDef timer_getset[] = {
    {"at", (getter)timer_get_at, NULL, "while active: the loop time it fires at", NULL},
    {"remaining", (getter)timer_get_remaining, NULL, "seconds until it fires", NULL},
    {"after", (getter)timer_get_after, NULL, NULL, NULL},
    {"repeat", (getter)timer_get_repeat, (setter)timer_set_repeat, NULL, NULL},
    {NULL}
};

EVLOOP_WATCHER_TYPE(EvTimer_Type, "timer", EvTimer,
                    "timer(after=0.0, repeat=0.0): fires after `after` seconds, then every "
                    "`repeat` seconds");

/* --- signal -------------------------------------------------------------------------- */


static int
signal_prestart(EvWatcher *self)
{
    EvSignal *s = (EvSignal *)self;
    int signum = s->s.signum;
    evloop_sigslot *slot = &evloop_sigs[signum];
    struct ev_loop *l = self->loop->ev;
    if (slot->count > 0 && slot->owner != l) {
        PyErr_Format(PyExc_ValueError,
                     "signal %d is already watched by another loop; libev lets one loop "
                     "at a time watch a signal", signum);
        return -1;
    }
    if (evloop_ensure_evpipe(self->loop) < 0)
        return -1;
    if (slot->count == 0) {
        sigaction(signum, NULL, &slot->saved);
        slot->owner = l;
    }
    slot->count++;
    self->flags |= EVLOOP_W_SIGOWNED;
    return 0;
}

static void
signal_poststop(EvWatcher *self)
{
    EvSignal *s = (EvSignal *)self;
    evloop_sigslot *slot = &evloop_sigs[s->s.signum];
    if (!(self->flags & EVLOOP_W_SIGOWNED))
        return;
    self->flags &= ~EVLOOP_W_SIGOWNED;
    if (--slot->count == 0) {
        /* libev set SIG_DFL when its last watcher stopped; put back what was there */
        sigaction(s->s.signum, &slot->saved, NULL);
        slot->owner = NULL;
    }
}

static const evloop_kind evloop_kind_signal = {"signal", evloop_start_signal,
                                               evloop_stop_signal, signal_prestart,
                                               signal_poststop};

static PyObject *
signal_get_signum(EvSignal *self, void *c)
{
    return PyLong_FromLong(self->s.signum);
}

static PyGetSetDef signal_getset[] = {
    {"signum", (getter)signal_get_signum, NULL, NULL, NULL},
    {NULL}
};

EVLOOP_WATCHER_TYPE(EvSignal_Type, "signal", EvSignal,
                    "signal(signum): the process received a signal");

/* --- idle, prepare, check, fork ------------------------------------------------------ */


static const evloop_kind evloop_kind_idle = {"idle", evloop_start_idle, evloop_stop_idle};
static const evloop_kind evloop_kind_prepare = {"prepare", evloop_start_prepare,
                                                evloop_stop_prepare};
static const evloop_kind evloop_kind_check = {"check", evloop_start_check, evloop_stop_check};
static const evloop_kind evloop_kind_fork = {"fork", evloop_start_fork, evloop_stop_fork};

EVLOOP_WATCHER_TYPE(EvIdle_Type, "idle", EvIdle,
                    "idle(): runs when nothing of the same or higher priority is pending");
EVLOOP_WATCHER_TYPE(EvPrepare_Type, "prepare", EvPrepare,
                    "prepare(): runs before the loop polls");
EVLOOP_WATCHER_TYPE(EvCheck_Type, "check", EvCheck, "check(): runs after the loop polled");
EVLOOP_WATCHER_TYPE(EvFork_Type, "fork", EvFork,
                    "fork(): runs in the child after a fork, at its next iteration");

/* --- async --------------------------------------------------------------------------- */


static int
async_prestart(EvWatcher *self)
{
    return evloop_ensure_evpipe(self->loop);
}

static const evloop_kind evloop_kind_async = {"async", evloop_start_async, evloop_stop_async,
                                              async_prestart, NULL};

static PyObject *
async_send(EvAsync *self, PyObject *unused)
{
    /* Safe from any thread: the GIL orders this against destroy(). */
    if (self->base.loop->ev == NULL)
        return evloop_raise_destroyed();
    ev_async_send(self->base.loop->ev, &self->a);
    Py_RETURN_NONE;
}

static PyObject *
async_send_ignoring_arg(EvAsync *self, PyObject *arg)
{
    return async_send(self, NULL);
}

static PyObject *
async_get_pending(EvAsync *self, void *c)
{
    return PyBool_FromLong(self->base.loop->ev != NULL
                           && (ev_async_pending(&self->a) || ev_is_pending(&self->a)));
}

static PyMethodDef async_methods[] = {
    {"send", (PyCFunction)async_send, METH_NOARGS,
     "wake the loop and queue this watcher's callback; callable from any thread"},
    {"send_ignoring_arg", (PyCFunction)async_send_ignoring_arg, METH_O, NULL},
    {NULL}
};

static PyGetSetDef async_getset[] = {
    {"pending", (getter)async_get_pending, NULL, "send() was called and not yet handled",
     NULL},
    {NULL}
};

EVLOOP_WATCHER_TYPE(EvAsync_Type, "async_", EvAsync,
                    "async_(): send() from any thread wakes the loop and runs the callback");

/* --- child --------------------------------------------------------------------------- */

/* evloop's own child watcher (EvChild in evloop_internal.h; the reaping is in
 * csrc/evloop_signals.c). */

static int
child_prestart(EvWatcher *self)
{
    if (evloop_ensure_evpipe(self->loop) < 0)
        return -1;
    /* installing (or finding it installed) also makes the pass look for children that
     * exited before the watcher started */
    if (evloop_sigchld_install() < 0)
        return -1;
    evloop_child_watchers++;
    self->flags |= EVLOOP_W_CHILDCOUNT;
    return 0;
}

static void
child_poststop(EvWatcher *self)
{
    if (!(self->flags & EVLOOP_W_CHILDCOUNT))
        return;
    self->flags &= ~EVLOOP_W_CHILDCOUNT;
    if (--evloop_child_watchers == 0)
        evloop_sigchld_reset();
}

static const evloop_kind evloop_kind_child = {"child", evloop_start_child, evloop_stop_child,
                                              child_prestart, child_poststop};

static PyObject *
child_get_pid(EvChild *self, void *c)
{
    return PyLong_FromLong(self->pid);
}

static PyObject *
child_get_rpid(EvChild *self, void *c)
{
    return PyLong_FromLong(self->rpid);
}

/* rpid and rstatus are C ints: refuse what would be truncated, and deletion */
static int
evloop_set_c_int(PyObject *value, const char *name, int *out)
{
    long v;
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "cannot delete %s", name);
        return -1;
    }
    v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v > INT_MAX || v < INT_MIN) {
        PyErr_Format(PyExc_OverflowError, "%s %ld does not fit a C int", name, v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int
child_set_rpid(EvChild *self, PyObject *value, void *c)
{
    return evloop_set_c_int(value, "rpid", &self->rpid);
}

static PyObject *
child_get_rstatus(EvChild *self, void *c)
{
    return PyLong_FromLong(self->rstatus);
}

static int
child_set_rstatus(EvChild *self, PyObject *value, void *c)
{
    return evloop_set_c_int(value, "rstatus", &self->rstatus);
}

static PyGetSetDef child_getset[] = {
    {"pid", (getter)child_get_pid, NULL, "the pid watched (0: any child)", NULL},
    {"rpid", (getter)child_get_rpid, (setter)child_set_rpid, "the pid that changed state",
     NULL},
    {"rstatus", (getter)child_get_rstatus, (setter)child_set_rstatus,
     "the wait status (os.waitstatus_to_exitcode gives the exit code)", NULL},
    {NULL}
};

EVLOOP_WATCHER_TYPE(EvChild_Type, "child", EvChild,
                    "child(pid, trace=False): a child process changed state (default loop)");

/* --- stat ---------------------------------------------------------------------------- */


static const evloop_kind evloop_kind_stat = {"stat", evloop_start_stat, evloop_stop_stat,
                                             NULL, NULL};

static PyObject *
evloop_statdata(ev_statdata *d)
{
    if (d->st_nlink == 0)
        Py_RETURN_NONE;
    return PyObject_CallFunction(
        evloop_stat_result, "((lLLlllLddd))", (long)d->st_mode, (long long)d->st_ino,
        (long long)d->st_dev, (long)d->st_nlink, (long)d->st_uid, (long)d->st_gid,
        (long long)d->st_size, (double)d->st_atime, (double)d->st_mtime,
        (double)d->st_ctime);
}

static PyObject *
stat_get_attr(EvStat *self, void *c)
{
    return evloop_statdata(&self->st.attr);
}

static PyObject *
stat_get_prev(EvStat *self, void *c)
{
    return evloop_statdata(&self->st.prev);
}

static PyObject *
stat_get_path(EvStat *self, void *c)
{
    return PyUnicode_DecodeFSDefault(PyBytes_AS_STRING(self->path));
}

/* the path as libev sees it (file-system encoded bytes); gevent's stat watchers call it
 * `_paths` */
static PyObject *
stat_get_paths(EvStat *self, void *c)
{
    Py_INCREF(self->path);
    return self->path;
}

static PyObject *
stat_get_interval(EvStat *self, void *c)
{
    return PyFloat_FromDouble(self->st.interval);
}

static PyGetSetDef stat_getset[] = {
    {"attr", (getter)stat_get_attr, NULL, "os.stat_result now, or None if missing", NULL},
    {"prev", (getter)stat_get_prev, NULL, "os.stat_result before, or None", NULL},
    {"path", (getter)stat_get_path, NULL, NULL, NULL},
    {"_paths", (getter)stat_get_paths, NULL, "the file-system encoded path (bytes)", NULL},
    {"interval", (getter)stat_get_interval, NULL, NULL, NULL},
    {NULL}
};

static void
stat_dealloc(EvStat *self)
{
    Py_CLEAR(self->path);
    watcher_dealloc(&self->base);
}

static PyTypeObject EvStat_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "evloop.core.stat",
    .tp_basicsize = sizeof(EvStat),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "stat(path, interval=0.0): the path's attributes changed",
    .tp_base = &EvWatcher_Type,
    .tp_dealloc = (destructor)stat_dealloc,
    .tp_traverse = (traverseproc)watcher_traverse,
    .tp_clear = (inquiry)watcher_clear,
    .tp_weaklistoffset = offsetof(EvWatcher, weakreflist),
    .tp_repr = (reprfunc)watcher_repr,
};


static int
evloop_watchers_init(PyObject *m)
{
    PyObject *os;
    /* io, timer, ... inherit the common methods through tp_base */
    EvIo_Type.tp_methods = io_methods;
    EvIo_Type.tp_getset = io_getset;
    EvTimer_Type.tp_methods = timer_methods;
    EvTimer_Type.tp_getset = timer_getset;
    EvSignal_Type.tp_getset = signal_getset;
    EvAsync_Type.tp_methods = async_methods;
    EvAsync_Type.tp_getset = async_getset;
    EvChild_Type.tp_getset = child_getset;
    EvStat_Type.tp_getset = stat_getset;

    os = PyImport_ImportModule("os");
    if (os == NULL)
        return -1;
    evloop_stat_result = PyObject_GetAttrString(os, "stat_result");
    Py_DECREF(os);
    if (evloop_stat_result == NULL)
        return -1;
    if (evloop_add_type(m, "io", &EvIo_Type) < 0
        || evloop_add_type(m, "timer", &EvTimer_Type) < 0
        || evloop_add_type(m, "signal", &EvSignal_Type) < 0
        || evloop_add_type(m, "idle", &EvIdle_Type) < 0
        || evloop_add_type(m, "prepare", &EvPrepare_Type) < 0
        || evloop_add_type(m, "check", &EvCheck_Type) < 0
        || evloop_add_type(m, "async_", &EvAsync_Type) < 0
        || evloop_add_type(m, "child", &EvChild_Type) < 0
        || evloop_add_type(m, "stat", &EvStat_Type) < 0
        || evloop_add_type(m, "fork", &EvFork_Type) < 0)
        return -1;
    return 0;
}
