/* evloop_loop.c — the loop type: libev loop creation, run(), destroy(), fork handling, the
 * watcher factories and the loop's attributes.
 *
 * Why it exists: one Python object per libev loop holds everything a thread's poll needs
 * (the saved thread state, the callback queue, the started watchers), so each thread can
 * run its own loop.
 *
 * What it must not do: know hubs, greenlets or asyncio loops. What other rooms must do
 * when a loop is destroyed (detach evloop.aio loops) they registered in evloop_hooks. It
 * must not destroy a loop inside its own run() (deferred), or run one loop in two threads.
 */
#include "evloop_internal.h"

static EvLoop *evloop_default_obj = NULL;   /* borrowed; cleared by dealloc */
static EvLoop *evloop_live = NULL;          /* list of every live loop object */


static void
evloop_idle_nop(struct ev_loop *l, ev_idle *w, int revents)
{
    (void)l; (void)w; (void)revents;
}

static void
evloop_async_nop(struct ev_loop *l, ev_async *w, int revents)
{
    (void)l; (void)w; (void)revents;
}

/* libev opens its wake-up fd (eventfd or pipe) lazily, the first time an async or signal
 * watcher starts, and on failure calls the syserr callback and then registers fd -1:
 * memory corruption. Make sure the fd can be had before letting libev try. */
static int
evloop_ensure_evpipe(EvLoop *self)
{
    int fd;
    if (ev_is_active(&self->ev->pipe_w))
        return 0;
#if EV_USE_EVENTFD
    fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
#endif
    {
        int fds[2];
        if (pipe(fds) == 0) {
            close(fds[0]);
            close(fds[1]);
            return 0;
        }
    }
    evloop_raise_errno(errno, NULL);
    return -1;
}


/* ------------------------------------------------------------------------------------ */
/* the loop                                                                               */

/* The loop runs in another thread (a greenlet of that thread's hub may wait on it). Its
 * state is only touched with the GIL held, so this thread may stop its watchers and queue
 * its callbacks, but must wake its poll for them to be seen. */
static int
evloop_loop_foreign(EvLoop *loop)
{
    return loop->run_depth > 0 && loop->running_thread != PyThread_get_thread_ident();
}

static int
evloop_loop_alive(EvLoop *self)
{
    if (self->ev == NULL) {
        evloop_raise_destroyed();
        return -1;
    }
    return 0;
}

static void
evloop_live_link(EvLoop *self)
{
    self->live_prev = NULL;
    self->live_next = evloop_live;
    if (evloop_live)
        evloop_live->live_prev = self;
    evloop_live = self;
}

static void
evloop_live_unlink(EvLoop *self)
{
    if (self->live_prev)
        self->live_prev->live_next = self->live_next;
    else if (evloop_live == self)
        evloop_live = self->live_next;
    if (self->live_next)
        self->live_next->live_prev = self->live_prev;
    self->live_prev = self->live_next = NULL;
}

static const struct { const char *name; unsigned int flag; } evloop_flag_names[] = {
    {"epoll", EVBACKEND_EPOLL},   {"poll", EVBACKEND_POLL},
    {"select", EVBACKEND_SELECT}, {"kqueue", EVBACKEND_KQUEUE},
    {"port", EVBACKEND_PORT},     {"linuxaio", EVBACKEND_LINUXAIO},
    {"iouring", EVBACKEND_IOURING},
    {"noenv", EVFLAG_NOENV},      {"forkcheck", EVFLAG_FORKCHECK},
    {"noinotify", EVFLAG_NOINOTIFY}, {"signalfd", EVFLAG_SIGNALFD},
    {"nosigmask", EVFLAG_NOSIGMASK},
    {NULL, 0}
};

static PyObject *
evloop_backend_names(unsigned int backends)
{
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (int i = 0; evloop_flag_names[i].name; i++) {
        unsigned int f = evloop_flag_names[i].flag;
        if (f & EVBACKEND_ALL && backends & f) {
            PyObject *s = PyUnicode_FromString(evloop_flag_names[i].name);
            if (s == NULL || PyList_Append(list, s) < 0) {
                Py_XDECREF(s);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(s);
        }
    }
    return list;
}

static int
evloop_flag_from_name(PyObject *name, unsigned int *out)
{
    PyObject *stripped, *lower;
    const char *s;
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "loop flags must be names (str), not %.100s",
                     Py_TYPE(name)->tp_name);
        return -1;
    }
    stripped = PyObject_CallMethod(name, "strip", NULL);
    if (stripped == NULL)
        return -1;
    lower = PyObject_CallMethod(stripped, "lower", NULL);
    Py_DECREF(stripped);
    if (lower == NULL)
        return -1;
    {
        Py_ssize_t len;
        s = PyUnicode_AsUTF8AndSize(lower, &len);
        if (s == NULL) {
            Py_DECREF(lower);
            return -1;
        }
        if ((size_t)len != strlen(s)) {
            Py_DECREF(lower);
            PyErr_Format(PyExc_ValueError, "embedded null character in loop flag %R", name);
            return -1;
        }
    }
    if (*s == '\0') {
        Py_DECREF(lower);
        *out = 0;
        return 0;
    }
    for (int i = 0; evloop_flag_names[i].name; i++) {
        if (strcmp(s, evloop_flag_names[i].name) == 0) {
            *out = evloop_flag_names[i].flag;
            Py_DECREF(lower);
            return 0;
        }
    }
    PyErr_Format(PyExc_ValueError,
                 "unknown loop flag or backend %R; choose from 'epoll', 'poll', 'select', "
                 "'kqueue' (backends this build supports: %S) and 'noenv', 'forkcheck', "
                 "'noinotify', 'signalfd', 'nosigmask'",
                 name, evloop_backend_names(ev_supported_backends()));
    Py_DECREF(lower);
    return -1;
}

/* every flag bit libev 4.33 defines: the backends and the EVFLAG_* options */
#define EVLOOP_KNOWN_FLAGS                                                               \
    (EVBACKEND_ALL | EVFLAG_NOENV | EVFLAG_FORKCHECK | EVFLAG_NOINOTIFY | EVFLAG_SIGNALFD \
     | EVFLAG_NOSIGMASK | EVFLAG_NOTIMERFD)

static int
evloop_parse_flags(PyObject *flags, unsigned int *out)
{
    unsigned int result = 0, f;
    if (flags == NULL || flags == Py_None) {
        *out = 0;
        return 0;
    }
    if (PyLong_Check(flags)) {
        /* libev's flags are an unsigned int: anything wider is refused, not truncated
         * (2**32 + 2 would otherwise pick the poll backend), and so are bits libev does
         * not define */
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(flags, &overflow);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (overflow < 0 || (overflow == 0 && v < 0)) {
            PyErr_Format(PyExc_ValueError, "loop flags must be >= 0, not %R", flags);
            return -1;
        }
        if (overflow > 0 || v > (long long)UINT_MAX) {
            PyErr_Format(PyExc_OverflowError,
                         "loop flags %R do not fit libev's 32-bit flags", flags);
            return -1;
        }
        if ((unsigned int)v & ~(unsigned int)EVLOOP_KNOWN_FLAGS) {
            PyErr_Format(PyExc_ValueError, "unknown loop flag bits 0x%x in %R",
                         (int)((unsigned int)v & ~(unsigned int)EVLOOP_KNOWN_FLAGS), flags);
            return -1;
        }
        result = (unsigned int)v;
    }
    else if (PyBytes_Check(flags) || PyByteArray_Check(flags)) {
        PyErr_Format(PyExc_TypeError, "loop flags must be None, an int, a str or a sequence "
                     "of names (str), not %.100s", Py_TYPE(flags)->tp_name);
        return -1;
    }
    else if (PyUnicode_Check(flags)) {
        PyObject *parts = PyObject_CallMethod(flags, "split", "s", ",");
        if (parts == NULL)
            return -1;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(parts); i++) {
            if (evloop_flag_from_name(PyList_GET_ITEM(parts, i), &f) < 0) {
                Py_DECREF(parts);
                return -1;
            }
            result |= f;
        }
        Py_DECREF(parts);
    }
    else {
        PyObject *seq = PySequence_Fast(flags, "loop flags must be None, an int, a str or a "
                                               "sequence of names");
        if (seq == NULL)
            return -1;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
            if (evloop_flag_from_name(PySequence_Fast_ITEMS(seq)[i], &f) < 0) {
                Py_DECREF(seq);
                return -1;
            }
            result |= f;
        }
        Py_DECREF(seq);
    }
    f = result & EVBACKEND_MASK;
    if (f & ~ev_supported_backends()) {
        PyObject *want = evloop_backend_names(f & ~ev_supported_backends());
        PyObject *have = evloop_backend_names(ev_supported_backends());
        if (want && have)
            PyErr_Format(PyExc_ValueError,
                         "backend %S is not available in this build; supported: %S", want,
                         have);
        Py_XDECREF(want);
        Py_XDECREF(have);
        return -1;
    }
    *out = result;
    return 0;
}

static void
evloop_setup_internal(EvLoop *self)
{
    struct ev_loop *l = self->ev;
    ev_set_userdata(l, self);
    ev_set_loop_release_cb(l, evloop_release_cb, evloop_acquire_cb);
    ev_prepare_init(&self->cb_prepare, evloop_run_callbacks);
    self->cb_prepare.data = self;
    ev_set_priority(&self->cb_prepare, EV_MAXPRI);
    ev_prepare_start(l, &self->cb_prepare);
    ev_unref(l); /* the queue runner alone must not keep run() going */
    ev_idle_init(&self->cb_idle, evloop_idle_nop);
    self->cb_idle.data = self;
    ev_set_priority(&self->cb_idle, EV_MINPRI);
    ev_async_init(&self->cb_async, evloop_async_nop);
    self->cb_async.data = self;
    /* Start the wake-up watcher now, unreferenced: libev registers its wake-up fd with
     * the backend only at the next iteration, so one first started by another thread while
     * this loop sits in the poll could never wake it. */
    ev_async_start(l, &self->cb_async);
    ev_unref(l);
}

static PyObject *
pyloop_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"flags", "default", NULL};
    PyObject *flagsobj = Py_None, *defobj = Py_None;
    unsigned int flags;
    int is_default;
    EvLoop *self;
    struct ev_loop *l;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:loop", kwlist, &flagsobj, &defobj))
        return NULL;
    if (evloop_parse_flags(flagsobj, &flags) < 0)
        return NULL;
    flags |= EVFLAG_NOENV | EVFLAG_NOSIGMASK;
    if (defobj == Py_None) {
        PyObject *threading = PyImport_ImportModule("threading");
        PyObject *cur, *main_;
        if (threading == NULL)
            return NULL;
        cur = PyObject_CallMethod(threading, "current_thread", NULL);
        main_ = PyObject_CallMethod(threading, "main_thread", NULL);
        Py_DECREF(threading);
        if (cur == NULL || main_ == NULL) {
            Py_XDECREF(cur);
            Py_XDECREF(main_);
            return NULL;
        }
        is_default = cur == main_;
        Py_DECREF(cur);
        Py_DECREF(main_);
    }
    else {
        is_default = PyObject_IsTrue(defobj);
        if (is_default < 0)
            return NULL;
    }

    if (is_default && evloop_default_obj != NULL && evloop_default_obj->ev != NULL
        && type == Py_TYPE(evloop_default_obj)) {
        Py_INCREF(evloop_default_obj);
        return (PyObject *)evloop_default_obj;
    }
    if (is_default && ev_default_loop_ptr != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the default loop is already owned by a loop object of another type");
        return NULL;
    }

    self = (EvLoop *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    evloop_syserr_errno = 0;
    errno = 0;
    if (is_default) {
        /* libev without child watchers installs no SIGCHLD handler here */
        l = ev_default_loop(flags);
    }
    else {
        l = ev_loop_new(flags);
    }
    if (l == NULL) {
        int err = evloop_syserr_errno ? evloop_syserr_errno : errno;
        Py_DECREF(self);
        if (err)
            return evloop_raise_errno(err, "could not create the event loop");
        return evloop_raise_oserror("could not create the event loop (no usable backend)");
    }
    self->ev = l;
    self->is_default = is_default;
    self->owner_thread = PyThread_get_thread_ident();
    if (evloop_ensure_evpipe(self) < 0) {
        Py_DECREF(self); /* dealloc destroys the libev loop */
        return NULL;
    }
    evloop_setup_internal(self);
    evloop_live_link(self);
    if (is_default)
        evloop_default_obj = self;
    return (PyObject *)self;
}

/* Stop every started watcher and drop every queued callback; libev's loop stays. Each
 * stop may drop the last reference to a watcher (and run arbitrary finalizers). */
static void
evloop_loop_stop_all(EvLoop *self)
{
    while (self->watchers != NULL) {
        EvWatcher *w = self->watchers;
        Py_INCREF(w);
        evloop_watcher_stop_internal(w);
        /* stop_internal unlinked it; guard against a kind that failed to */
        if (self->watchers == w)
            evloop_watcher_unlink(w);
        Py_DECREF(w);
    }
    evloop_queue_clear(self);
}

/* Stop every watcher, drop the queue, free libev's loop. Safe to call twice. */
static void
evloop_loop_destroy_now(EvLoop *self, int from_dealloc)
{
    struct ev_loop *l = self->ev;
    if (l == NULL)
        return;
    /* keep self alive while watchers drop their references (not from dealloc: the
     * refcount is already zero there, and no watcher holds one) */
    if (!from_dealloc)
        Py_INCREF(self);
    /* asyncio loops bound to this one stop their own watchers and let go of it */
    if (evloop_hooks.loop_destroying != NULL)
        evloop_hooks.loop_destroying(self);
    evloop_loop_stop_all(self);
    if (ev_is_active(&self->cb_prepare)) {
        ev_ref(l);
        ev_prepare_stop(l, &self->cb_prepare);
    }
    if (ev_is_active(&self->cb_idle))
        ev_idle_stop(l, &self->cb_idle);
    if (ev_is_active(&self->cb_async)) {
        ev_ref(l);
        ev_async_stop(l, &self->cb_async);
    }
    if (self->is_default) {
        /* evloop's SIGCHLD watcher, also when installed on request with no child
         * watcher (the child watchers were stopped above) */
        evloop_sigchld_reset();
        ev_loop_destroy(l);
        /* The default loop is libev's static default_loop_struct: ev_loop_destroy frees
         * its arrays but leaves the rest (activecnt after an unbalanced ref()/unref(), the
         * iteration count, postfork), and loop_init does not reset those, so the next
         * loop(default=True) would inherit them (a run() with nothing to do that never
         * returns). Put it back as it was at program start. */
        memset(&default_loop_struct, 0, sizeof(default_loop_struct));
        if (evloop_default_obj == self)
            evloop_default_obj = NULL;
    }
    else {
        ev_loop_destroy(l);
    }
    self->ev = NULL;
    self->destroy_pending = 0;
    evloop_live_unlink(self);
    if (!from_dealloc)
        Py_DECREF(self);
}

static PyObject *
pyloop_destroy(EvLoop *self, PyObject *unused)
{
    if (self->ev == NULL)
        Py_RETURN_NONE;
    if (self->run_depth > 0 || self->in_poll) {
        /* libev's loop cannot be freed under a running ev_run: finish it first */
        self->destroy_pending = 1;
        ev_break(self->ev, EVBREAK_ALL);
        Py_RETURN_NONE;
    }
    evloop_loop_destroy_now(self, 0);
    Py_RETURN_NONE;
}

/* _stop_all(): what a destroyed hub leaves behind on a loop that outlives it (the default
 * loop): every started watcher and queued callback there was set up for the hub's
 * greenlets, and run by the next hub it would resume greenlets whose hub is gone. */
static PyObject *
pyloop_stop_all(EvLoop *self, PyObject *unused)
{
    if (self->ev == NULL)
        Py_RETURN_NONE;
    Py_INCREF(self);
    evloop_loop_stop_all(self);
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static PyObject *
pyloop_run(EvLoop *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"nowait", "once", NULL};
    int nowait = 0, once = 0, flags = 0;
    unsigned long me;
    EvLoop *prev_running;
    PyObject *result = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pp:run", kwlist, &nowait, &once))
        return NULL;
    if (evloop_loop_alive(self) < 0)
        return NULL;
    me = PyThread_get_thread_ident();
    if (self->run_depth > 0 && self->running_thread != me) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this loop is already running in another thread; each thread "
                        "needs its own loop");
        return NULL;
    }
    if (self->in_poll) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot run the loop from a signal handler that interrupted its poll");
        return NULL;
    }
    if (nowait)
        flags |= EVRUN_NOWAIT;
    if (once)
        flags |= EVRUN_ONCE;

    Py_INCREF(self);
    self->run_depth++;
    self->running_thread = me;
    self->owner_thread = me;
    prev_running = evloop_running;
    evloop_running = self;
    evloop_syserr_errno = 0;

    ev_run(self->ev, flags);

    evloop_running = prev_running;
    if (--self->run_depth == 0)
        self->running_thread = 0;
    if (PyErr_Occurred())   /* defensive: nothing should leave one set */
        evloop_stash_exception(self);
    if (self->exc_type != NULL) {
        PyErr_Restore(self->exc_type, self->exc_value, self->exc_tb);
        self->exc_type = self->exc_value = self->exc_tb = NULL;
        result = NULL;
    }
    else if (evloop_syserr_errno) {
        int err = evloop_syserr_errno;
        evloop_syserr_errno = 0;
        evloop_raise_errno(err, evloop_syserr_msg ? evloop_syserr_msg : NULL);
        result = NULL;
    }
    if (self->destroy_pending && self->run_depth == 0)
        evloop_loop_destroy_now(self, 0);
    Py_DECREF(self);
    if (result != NULL)
        Py_INCREF(result);
    return result;
}

static PyObject *
pyloop_break(EvLoop *self, PyObject *args)
{
    int how = EVBREAK_ONE;
    if (!PyArg_ParseTuple(args, "|i:break_", &how))
        return NULL;
    if (evloop_loop_alive(self) < 0)
        return NULL;
    if (how != EVBREAK_ONE && how != EVBREAK_ALL && how != EVBREAK_CANCEL) {
        PyErr_Format(PyExc_ValueError,
                     "how must be EVBREAK_ONE (1), EVBREAK_ALL (2) or EVBREAK_CANCEL (0), "
                     "not %d", how);
        return NULL;
    }
    ev_break(self->ev, how);
    Py_RETURN_NONE;
}

static PyObject *
pyloop_now(EvLoop *self, PyObject *unused)
{
    if (evloop_loop_alive(self) < 0)
        return NULL;
    return PyFloat_FromDouble(ev_now(self->ev));
}

static PyObject *
pyloop_update_now(EvLoop *self, PyObject *unused)
{
    if (evloop_loop_alive(self) < 0)
        return NULL;
    ev_now_update(self->ev);
    Py_RETURN_NONE;
}

static PyObject *
pyloop_ref(EvLoop *self, PyObject *unused)
{
    if (evloop_loop_alive(self) < 0)
        return NULL;
    ev_ref(self->ev);
    Py_RETURN_NONE;
}

static PyObject *
pyloop_unref(EvLoop *self, PyObject *unused)
{
    if (evloop_loop_alive(self) < 0)
        return NULL;
    ev_unref(self->ev);
    Py_RETURN_NONE;
}

static PyObject *
pyloop_reinit(EvLoop *self, PyObject *unused)
{
    if (evloop_loop_alive(self) < 0)
        return NULL;
    ev_loop_fork(self->ev);
    self->fork_due = 1;
    Py_RETURN_NONE;
}

/* closing_fd(fd): the fd is about to be closed. Make every io watcher of this loop on it
 * pending with its own events, so their callbacks run (and can stop and close the
 * watchers) before the fd number is reused; libev would otherwise keep epoll state for a
 * dead fd. Returns True if some watcher became pending: the caller should close the fd
 * only after the loop dispatched them (gevent defers the close to a check watcher). */
static PyObject *
pyloop_closing_fd(EvLoop *self, PyObject *fdobj)
{
    int fd;
    unsigned int before;
    long v;
    if (evloop_loop_alive(self) < 0)
        return NULL;
    if (!PyLong_Check(fdobj)) {
        PyErr_Format(PyExc_TypeError, "fd must be an int, not %.100s", Py_TYPE(fdobj)->tp_name);
        return NULL;
    }
    /* a socket that is already closed reports fileno() -1 (gevent passes it on): no
     * watcher can be on a negative or huge fd, so nothing is woken */
    v = PyLong_AsLong(fdobj);
    if (v == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return NULL;
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    if (v < 0 || v > INT_MAX)
        Py_RETURN_FALSE;
    fd = (int)v;
    before = ev_pending_count(self->ev);
    /* libev ignores an fd it never watched (fd >= anfdmax) and masks the events with each
     * watcher's own; fd >= 0 is checked above */
    ev_feed_fd_event(self->ev, fd, EV_READ | EV_WRITE);
    return PyBool_FromLong(ev_pending_count(self->ev) > before);
}

/* Drop every queued run_callback entry: none of them will run, their handles read as
 * stopped. (gevent's loops do this when the hub is destroyed, before breaking the loop:
 * callbacks queued for the dead hub's greenlets must not run under the next hub.) */
static PyObject *
pyloop_clear_callbacks(EvLoop *self, PyObject *unused)
{
    if (evloop_loop_alive(self) < 0)
        return NULL;
    evloop_queue_clear(self);
    /* releasing the entries may have run code that queued new ones */
    if (self->ev != NULL && self->cb_head == NULL && ev_is_active(&self->cb_idle))
        ev_idle_stop(self->ev, &self->cb_idle);
    Py_RETURN_NONE;
}

static PyObject *
pyloop_fileno(EvLoop *self, PyObject *unused)
{
    if (evloop_loop_alive(self) < 0)
        return NULL;
    if (self->ev->backend_fd >= 0)
        return PyLong_FromLong(self->ev->backend_fd);
    Py_RETURN_NONE;
}

/* The fds libev itself holds for this loop: the backend's (epoll), the wake-up eventfd or
 * pipe (opened lazily by the first async or signal watcher), inotify's (the first stat
 * watcher) and the timerfd (periodic watchers). They live as long as the loop, so a leak
 * checker that sees them appear during a test must not count them. -1/-2 mean "not
 * opened" in libev's fields. */
static PyObject *
pyloop_internal_fds(EvLoop *self, PyObject *unused)
{
    struct ev_loop *ev;
    int fds[6], n = 0;
    if (evloop_loop_alive(self) < 0)
        return NULL;
    ev = self->ev;
    fds[n++] = ev->backend_fd;
    fds[n++] = ev->evpipe[0];
    fds[n++] = ev->evpipe[1];
#if EV_USE_INOTIFY
    fds[n++] = ev->fs_fd;
#endif
#if EV_USE_SIGNALFD
    fds[n++] = ev->sigfd;
#endif
#if EV_USE_TIMERFD
    fds[n++] = ev->timerfd;
#endif
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        int dup = 0;
        if (fds[i] < 0)
            continue;
        for (int j = 0; j < i; j++)
            dup |= fds[j] == fds[i];  /* eventfd: evpipe[0] is -1, one fd in evpipe[1] */
        if (dup)
            continue;
        PyObject *fd = PyLong_FromLong(fds[i]);
        if (fd == NULL || PyList_Append(list, fd) < 0) {
            Py_XDECREF(fd);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(fd);
    }
    return list;
}

static PyObject *
pyloop_verify(EvLoop *self, PyObject *unused)
{
    if (evloop_loop_alive(self) < 0)
        return NULL;
    ev_verify(self->ev);
    Py_RETURN_NONE;
}

static PyObject *
pyloop_install_sigchld(EvLoop *self, PyObject *unused)
{
    /* the handler is process-wide and serves the default loop's child watchers,
     * whichever loop object asks (gevent calls this on the hub's loop in any thread);
     * without a default loop there is no libev handler and nothing to do */
    if (evloop_loop_alive(self) < 0)
        return NULL;
    if (evloop_sigchld_install() < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
pyloop_reset_sigchld(EvLoop *self, PyObject *unused)
{
    /* the handler is process-wide and serves the default loop's child watchers,
     * whichever loop object asks (gevent calls this on the hub's loop in any thread);
     * without a default loop there is no libev handler and nothing to do */
    if (evloop_loop_alive(self) < 0)
        return NULL;
    evloop_sigchld_reset();
    Py_RETURN_NONE;
}

static PyObject *
pyloop_handle_error_impl(EvLoop *self, PyObject *context, PyObject *type, PyObject *value,
                       PyObject *tb)
{
    PyObject *handler = self->error_handler;
    if (handler != NULL && handler != Py_None) {
        PyObject *meth, *res;
        Py_INCREF(handler);
        meth = PyObject_GetAttrString(handler, "handle_error");
        if (meth == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                Py_DECREF(handler);
                return NULL;
            }
            PyErr_Clear();
            meth = handler;
            Py_INCREF(meth);
        }
        Py_DECREF(handler);
        res = PyObject_CallFunctionObjArgs(meth, context, type, value, tb, NULL);
        Py_DECREF(meth);
        return res;
    }
    /* default: BaseExceptions that are not Exceptions stop the loop */
    if (PyType_Check(type) && !PyErr_GivenExceptionMatches(type, PyExc_Exception)) {
        Py_INCREF(type);
        Py_INCREF(value);
        Py_XINCREF(tb == Py_None ? NULL : tb);
        PyErr_Restore(type, value, tb == Py_None ? NULL : tb);
        return NULL;
    }
    {
        PyObject *err = PySys_GetObject("stderr"); /* borrowed */
        PyObject *msg = PyUnicode_FromFormat("evloop: exception in callback %R\n", context);
        if (msg == NULL) {
            PyErr_Clear();
        }
        else {
            if (err != NULL && err != Py_None)
                PyFile_WriteObject(msg, err, Py_PRINT_RAW);
            Py_DECREF(msg);
            PyErr_Clear();
        }
        if (value != Py_None)
            PyErr_Display(type, value, tb);
    }
    Py_RETURN_NONE;
}

static PyObject *
pyloop_handle_error(EvLoop *self, PyObject *args)
{
    PyObject *context, *type, *value, *tb;
    if (!PyArg_ParseTuple(args, "OOOO:handle_error", &context, &type, &value, &tb))
        return NULL;
    return pyloop_handle_error_impl(self, context, type, value, tb);
}

/* Backpressure on other threads' work. A thread that queues work on a loop running in
 * another thread keeps the GIL (queueing is a few hundred ns of C), while the loop's thread
 * gets the GIL only for its share of the switch interval: a handful of such threads queue
 * faster than the loop can run their callbacks, the backlog grows without bound, and
 * everything queued behind it -- a timer's greenlet, the next step of a chain -- waits
 * for the whole backlog (seconds; asyncio's call_soon_threadsafe pays a system call per
 * call, which hands the GIL over and keeps its backlog short). So once the queue holds
 * EVLOOP_THREADSAFE_BACKLOG entries or more, each further queueing from a thread other
 * than the loop's own (the one that last ran it, or made it) gives the GIL away for a
 * moment: the loop's thread takes it and runs the backlog down. Also while that thread is
 * between two runs: the backlog it will find is bounded the same way. Never on the loop's
 * own thread, where no-one else would run the backlog. Used by run_callback_threadsafe
 * and by evloop.aio's call_soon_threadsafe. */
#define EVLOOP_THREADSAFE_BACKLOG 1024
#define EVLOOP_THREADSAFE_PAUSE_NS 50000

static void
evloop_threadsafe_backpressure(Py_ssize_t backlog)
{
    PyThreadState *ts;
    struct timespec pause = {0, EVLOOP_THREADSAFE_PAUSE_NS};
    if (backlog < EVLOOP_THREADSAFE_BACKLOG)
        return;
    ts = PyEval_SaveThread();
    evloop_park_if_exiting();
    nanosleep(&pause, NULL);
    evloop_park_if_exiting();
    PyEval_RestoreThread(ts);
}

/* threadsafe: 0 run_callback, 1 run_callback_threadsafe, 2 the same but a destroyed loop
 * queues nothing and returns None */
static PyObject *
evloop_run_callback_common(EvLoop *self, PyObject *const *args, Py_ssize_t nargs,
                           int threadsafe)
{
    PyObject *tuple;
    EvCallback *cb;
    if (threadsafe == 2 && self->ev == NULL)
        Py_RETURN_NONE;
    if (evloop_loop_alive(self) < 0)
        return NULL;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "run_callback() needs a callable");
        return NULL;
    }
    if (!PyCallable_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "callback must be callable, not %.100s",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    tuple = evloop_tuple_from_array(args + 1, nargs - 1);
    if (tuple == NULL)
        return NULL;
    cb = evloop_callback_new(args[0], tuple);
    if (cb == NULL) {
        Py_DECREF(tuple);
        return NULL;
    }
    evloop_queue_append(self, cb);
    if (threadsafe) {
        ev_async_send(self->ev, &self->cb_async);
        if (self->owner_thread != PyThread_get_thread_ident())
            evloop_threadsafe_backpressure(self->cb_count);
    }
    return (PyObject *)cb;
}

static PyObject *
pyloop_run_callback(EvLoop *self, PyObject *const *args, Py_ssize_t nargs)
{
    return evloop_run_callback_common(self, args, nargs, 0);
}

static PyObject *
pyloop_run_callback_threadsafe(EvLoop *self, PyObject *const *args, Py_ssize_t nargs)
{
    return evloop_run_callback_common(self, args, nargs, 1);
}

/* For the synchronisation primitives, which queue "wake the next waiter" on the loop of
 * the hub their waiters belong to: if that loop was destroyed (its hub with it), every
 * waiter still in line is an orphan that will never run, and there is nothing to wake. */
static PyObject *
pyloop_run_callback_if_alive(EvLoop *self, PyObject *const *args, Py_ssize_t nargs)
{
    return evloop_run_callback_common(self, args, nargs, 2);
}

/* --- watcher factories --------------------------------------------------------------- */

static const char *evloop_factory_kw_ref = "ref";
static const char *evloop_factory_kw_priority = "priority";

/* Parse "name(positional..., ref=True, priority=None)" with the positional part given by
 * fmt/kwlist through PyArg_ParseTupleAndKeywords. */
#define EVLOOP_NEW_WATCHER(TYPE, STRUCT, var)                                            \
    STRUCT *var = (STRUCT *)(TYPE).tp_alloc(&(TYPE), 0);                                 \
    if (var == NULL)                                                                     \
        return NULL;

static PyObject *
evloop_finish_watcher(EvWatcher *w, EvLoop *loop, const evloop_kind *kind, ev_watcher *evw,
                      PyObject *ref, PyObject *priority)
{
    if (evloop_watcher_setup(w, loop, kind, evw, ref, priority) < 0) {
        Py_DECREF(w);
        return NULL;
    }
    return (PyObject *)w;
}

/* The arguments of a METH_FASTCALL | METH_KEYWORDS factory: out[i] is the argument named
 * names[i], given by position or keyword, or NULL; the first nrequired must be given.
 * gevent makes a timer for every sleep(seconds) and Timeout (``loop.timer(seconds,
 * ref=ref)``) and two io watchers for every socket: PyArg_ParseTupleAndKeywords would
 * build a tuple and a dict for each call and walk its format (measured: ~900 instructions
 * a gevent sleep; this is ~100). The errors are PyArg_ParseTupleAndKeywords's. */
static int
evloop_factory_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames, const char *const *names, PyObject **interned,
                    int nnames, int nrequired, PyObject **out)
{
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    for (int i = 0; i < nnames; i++)
        out[i] = i < nargs ? args[i] : NULL;
    if (nargs > nnames) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (%zd given)", fname,
                     nnames, nargs + nkw);
        return -1;
    }
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int i;
        /* a keyword written in the caller's source is an interned string: compare the
         * pointers first (interned[] is filled on first use) */
        for (i = 0; i < nnames; i++) {
            if (interned[i] == NULL) {
                interned[i] = PyUnicode_InternFromString(names[i]);
                if (interned[i] == NULL)
                    return -1;
            }
            if (key == interned[i])
                break;
        }
        if (i == nnames) {
            for (i = 0; i < nnames; i++) {
                if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0)
                    break;
            }
        }
        if (i == nnames) {
            PyErr_Format(PyExc_TypeError, "%R is an invalid keyword argument for %s()", key,
                         fname);
            return -1;
        }
        if (out[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "argument for %s() given by name ('%s') and "
                         "position (%d)", fname, names[i], i + 1);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    for (int i = 0; i < nrequired; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s' (pos %d)",
                         fname, names[i], i + 1);
            return -1;
        }
    }
    return 0;
}

static PyObject *
pyloop_io(EvLoop *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"fd", "events", "ref", "priority"};
    static PyObject *interned[4];
    PyObject *a[4];
    int fd, events;
    if (evloop_factory_args("io", args, nargs, kwnames, names, interned, 4, 2, a) < 0)
        return NULL;
    if (evloop_loop_alive(self) < 0)
        return NULL;
    if (evloop_check_fd(a[0], &fd) < 0 || evloop_check_events(a[1], &events) < 0)
        return NULL;
    if (evloop_fd_alive(fd) < 0)
        return NULL;
    EVLOOP_NEW_WATCHER(EvIo_Type, EvIo, w);
    ev_io_init(&w->io, (void (*)(struct ev_loop *, ev_io *, int))evloop_watcher_cb, fd,
               events);
    return evloop_finish_watcher(&w->base, self, &evloop_kind_io, (ev_watcher *)&w->io, a[2],
                                 a[3]);
}

static PyObject *
pyloop_timer(EvLoop *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"after", "repeat", "ref", "priority"};
    static PyObject *interned[4];
    PyObject *a[4];
    double after = 0.0, repeat = 0.0;
    if (evloop_factory_args("timer", args, nargs, kwnames, names, interned, 4, 0, a) < 0)
        return NULL;
    if (evloop_loop_alive(self) < 0)
        return NULL;
    if (a[0] && evloop_get_double(a[0], "after", &after) < 0)
        return NULL;
    if (a[1] && evloop_get_double(a[1], "repeat", &repeat) < 0)
        return NULL;
    if (repeat < 0.0) {
        PyErr_Format(PyExc_ValueError, "repeat must be >= 0, not %R", a[1]);
        return NULL;
    }
    EVLOOP_NEW_WATCHER(EvTimer_Type, EvTimer, w);
    ev_timer_init(&w->t, (void (*)(struct ev_loop *, ev_timer *, int))evloop_watcher_cb, after,
                  repeat);
    w->after = after;
    return evloop_finish_watcher(&w->base, self, &evloop_kind_timer, (ev_watcher *)&w->t, a[2],
                                 a[3]);
}

static PyObject *
pyloop_signal(EvLoop *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"signum", "ref", "priority", NULL};
    PyObject *sigobj, *ref = NULL, *priority = NULL;
    long signum;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OO:signal", kwlist, &sigobj, &ref,
                                     &priority))
        return NULL;
    if (evloop_loop_alive(self) < 0)
        return NULL;
    if (!PyLong_Check(sigobj)) {
        PyErr_Format(PyExc_TypeError, "signum must be an int, not %.100s",
                     Py_TYPE(sigobj)->tp_name);
        return NULL;
    }
    signum = PyLong_AsLong(sigobj);
    if (signum == -1 && PyErr_Occurred())
        return NULL;
    if (signum > INT_MAX || signum < INT_MIN) {
        /* as signal.signal(): out of C int range is an OverflowError */
        PyErr_Format(PyExc_OverflowError, "signal number %ld does not fit a C int", signum);
        return NULL;
    }
    if (signum < 1 || signum >= NSIG) {
        PyErr_Format(PyExc_ValueError, "signal number %ld out of range 1..%d", signum,
                     NSIG - 1);
        return NULL;
    }
    if (signum == SIGKILL || signum == SIGSTOP) {
        PyErr_Format(PyExc_ValueError, "signal %ld (%s) cannot be caught", signum,
                     signum == SIGKILL ? "SIGKILL" : "SIGSTOP");
        return NULL;
    }
    {
        /* the C library keeps some numbers for itself (glibc: 32 and 33, for its threads);
         * libev ignores sigaction's refusal, and the watcher would never fire */
        struct sigaction probe;
        if (sigaction((int)signum, NULL, &probe) < 0) {
            char what[96];
            int err = errno;
            snprintf(what, sizeof what, "%s (signal %ld cannot be handled)", strerror(err),
                     signum);
            return evloop_raise_errno(err, what);
        }
    }
    EVLOOP_NEW_WATCHER(EvSignal_Type, EvSignal, w);
    ev_signal_init(&w->s, (void (*)(struct ev_loop *, ev_signal *, int))evloop_watcher_cb,
                   (int)signum);
    return evloop_finish_watcher(&w->base, self, &evloop_kind_signal, (ev_watcher *)&w->s,
                                 ref, priority);
}

#define EVLOOP_SIMPLE_FACTORY(fname, TYPE, STRUCT, evtype, initfn, kind)                  \
    static PyObject *fname(EvLoop *self, PyObject *args, PyObject *kwds)                  \
    {                                                                                    \
        static char *kwlist[] = {"ref", "priority", NULL};                               \
        PyObject *ref = NULL, *priority = NULL;                                          \
        if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO", kwlist, &ref, &priority))     \
            return NULL;                                                                 \
        if (evloop_loop_alive(self) < 0)                                                 \
            return NULL;                                                                 \
        EVLOOP_NEW_WATCHER(TYPE, STRUCT, w);                                             \
        initfn(&w->x, (void (*)(struct ev_loop *, evtype *, int))evloop_watcher_cb);     \
        return evloop_finish_watcher(&w->base, self, &kind, (ev_watcher *)&w->x, ref,    \
                                     priority);                                          \
    }

EVLOOP_SIMPLE_FACTORY(pyloop_idle, EvIdle_Type, EvIdle, ev_idle, ev_idle_init, evloop_kind_idle)
EVLOOP_SIMPLE_FACTORY(pyloop_prepare, EvPrepare_Type, EvPrepare, ev_prepare, ev_prepare_init,
                      evloop_kind_prepare)
EVLOOP_SIMPLE_FACTORY(pyloop_check, EvCheck_Type, EvCheck, ev_check, ev_check_init,
                      evloop_kind_check)
EVLOOP_SIMPLE_FACTORY(pyloop_fork, EvFork_Type, EvFork, ev_fork, ev_fork_init, evloop_kind_fork)

static PyObject *
pyloop_async(EvLoop *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"ref", "priority", NULL};
    PyObject *ref = NULL, *priority = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:async_", kwlist, &ref, &priority))
        return NULL;
    if (evloop_loop_alive(self) < 0)
        return NULL;
    EVLOOP_NEW_WATCHER(EvAsync_Type, EvAsync, w);
    ev_async_init(&w->a, (void (*)(struct ev_loop *, ev_async *, int))evloop_watcher_cb);
    return evloop_finish_watcher(&w->base, self, &evloop_kind_async, (ev_watcher *)&w->a, ref,
                                 priority);
}

static PyObject *
pyloop_child(EvLoop *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"pid", "trace", "ref", "priority", NULL};
    PyObject *pidobj, *ref = NULL, *priority = NULL;
    int trace = 0;
    long pid;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|pOO:child", kwlist, &pidobj, &trace, &ref,
                                     &priority))
        return NULL;
    if (evloop_loop_alive(self) < 0)
        return NULL;
    if (!self->is_default) {
        PyErr_SetString(PyExc_TypeError,
                        "child watchers are only available on the default loop");
        return NULL;
    }
    if (!PyLong_Check(pidobj)) {
        PyErr_Format(PyExc_TypeError, "pid must be an int, not %.100s",
                     Py_TYPE(pidobj)->tp_name);
        return NULL;
    }
    pid = PyLong_AsLong(pidobj);
    if (pid == -1 && PyErr_Occurred())
        return NULL;
    if (pid > INT_MAX) {
        /* as os.waitpid(): out of pid_t range is an OverflowError */
        PyErr_Format(PyExc_OverflowError, "pid %ld is greater than the largest pid_t", pid);
        return NULL;
    }
    if (pid < 0) {
        PyErr_Format(PyExc_ValueError, "pid must be >= 0 (0: any child), not %ld", pid);
        return NULL;
    }
    EVLOOP_NEW_WATCHER(EvChild_Type, EvChild, w);
    ev_async_init(&w->a, (void (*)(struct ev_loop *, ev_async *, int))evloop_watcher_cb);
    w->pid = (int)pid;
    w->trace = trace;
    return evloop_finish_watcher(&w->base, self, &evloop_kind_child, (ev_watcher *)&w->a, ref,
                                 priority);
}

static PyObject *
pyloop_stat(EvLoop *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"path", "interval", "ref", "priority", NULL};
    PyObject *pathobj, *intobj = NULL, *ref = NULL, *priority = NULL, *path = NULL;
    double interval = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OOO:stat", kwlist, &pathobj, &intobj, &ref,
                                     &priority))
        return NULL;
    if (evloop_loop_alive(self) < 0)
        return NULL;
    if (intobj && evloop_get_double(intobj, "interval", &interval) < 0)
        return NULL;
    /* 0 is libev's default poll interval (about 5 s); anything below libev's minimum
     * (about 0.1 s), negative values included, is raised to that minimum when the watcher
     * starts -- gevent passes interval=-1 to ask for the fastest polling */
    if (!PyUnicode_FSConverter(pathobj, &path))
        return NULL;
    EVLOOP_NEW_WATCHER(EvStat_Type, EvStat, w);
    w->path = path; /* libev keeps the char *: the bytes object must outlive the watcher */
    ev_stat_init(&w->st, (void (*)(struct ev_loop *, ev_stat *, int))evloop_watcher_cb,
                 PyBytes_AS_STRING(path), interval);
    return evloop_finish_watcher(&w->base, self, &evloop_kind_stat, (ev_watcher *)&w->st, ref,
                                 priority);
}

/* --- loop attributes ----------------------------------------------------------------- */

/* A destroyed loop is no longer the default one (gevent's loops say so too): a new
 * loop(default=True) makes a new default loop. */
static PyObject *
pyloop_get_default(EvLoop *self, void *c)
{
    return PyBool_FromLong(self->is_default && self->ev != NULL);
}

/* gevent's loops expose libev's priority bounds and a guess of the timer resolution
 * (libev's own: timers are compared against a monotonic clock with µs precision; the
 * poll itself is ms-granular with epoll) */
static PyObject *
pyloop_get_maxpri(EvLoop *self, void *c)
{
    return PyLong_FromLong(EV_MAXPRI);
}

static PyObject *
pyloop_get_minpri(EvLoop *self, void *c)
{
    return PyLong_FromLong(EV_MINPRI);
}

static PyObject *
pyloop_get_approx_timer_resolution(EvLoop *self, void *c)
{
    return PyFloat_FromDouble(0.00001);
}

/* An opaque non-zero int identifying the libev loop, 0 once destroyed (gevent's `ptr`). */
static PyObject *
pyloop_get_ptr(EvLoop *self, void *c)
{
    return PyLong_FromVoidPtr(self->ev);
}

/* libev's "a signal arrived and its watchers are not dispatched yet" flag. */
static PyObject *
pyloop_get_sig_pending(EvLoop *self, void *c)
{
    if (evloop_loop_alive(self) < 0)
        return NULL;
    return PyLong_FromLong(self->ev->sig_pending);
}

static PyObject *
pyloop_get_destroyed(EvLoop *self, void *c)
{
    return PyBool_FromLong(self->ev == NULL);
}

static PyObject *
pyloop_get_polling(EvLoop *self, void *c)
{
    /* readable from other threads (the blocking monitor): set before the GIL is dropped */
    return PyBool_FromLong(self->in_poll);
}

static PyObject *
pyloop_get_iteration(EvLoop *self, void *c)
{
    if (evloop_loop_alive(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(ev_iteration(self->ev));
}

static PyObject *
pyloop_get_depth(EvLoop *self, void *c)
{
    if (evloop_loop_alive(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(ev_depth(self->ev));
}

static PyObject *
pyloop_get_activecnt(EvLoop *self, void *c)
{
    if (evloop_loop_alive(self) < 0)
        return NULL;
    /* the callback queue's idle watcher is ours, not the user's */
    return PyLong_FromLong(self->ev->activecnt - (ev_is_active(&self->cb_idle) ? 1 : 0));
}

static PyObject *
pyloop_get_pendingcnt(EvLoop *self, void *c)
{
    if (evloop_loop_alive(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(ev_pending_count(self->ev));
}

static PyObject *
pyloop_get_backend_int(EvLoop *self, void *c)
{
    if (evloop_loop_alive(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(ev_backend(self->ev));
}

static PyObject *
pyloop_get_backend(EvLoop *self, void *c)
{
    PyObject *names, *r;
    if (evloop_loop_alive(self) < 0)
        return NULL;
    names = evloop_backend_names(ev_backend(self->ev));
    if (names == NULL)
        return NULL;
    if (PyList_GET_SIZE(names) == 1) {
        r = PyList_GET_ITEM(names, 0);
        Py_INCREF(r);
    }
    else {
        r = PyLong_FromUnsignedLong(ev_backend(self->ev));
    }
    Py_DECREF(names);
    return r;
}

static PyObject *
pyloop_get_error_handler(EvLoop *self, void *c)
{
    if (self->error_handler == NULL)
        Py_RETURN_NONE;
    Py_INCREF(self->error_handler);
    return self->error_handler;
}

static int
pyloop_set_error_handler(EvLoop *self, PyObject *value, void *c)
{
    if (value == Py_None)
        value = NULL;
    if (value != NULL && !PyCallable_Check(value)) {
        /* an object whose handle_error is callable (gevent's hub), or a plain callable;
         * anything else would only fail later, inside run(), when a callback raises */
        PyObject *m = PyObject_GetAttrString(value, "handle_error");
        int ok;
        if (m == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError))
                return -1;
            PyErr_Clear();
        }
        ok = m != NULL && PyCallable_Check(m);
        Py_XDECREF(m);
        if (!ok) {
            PyErr_Format(PyExc_TypeError,
                         "error_handler must be None, a callable or an object with a "
                         "handle_error(context, type, value, tb) method, not %.100s",
                         Py_TYPE(value)->tp_name);
            return -1;
        }
    }
    Py_XINCREF(value);
    Py_XSETREF(self->error_handler, value);
    return 0;
}

static PyObject *
pyloop_get_sigchld_installed(EvLoop *self, void *c)
{
    return PyBool_FromLong(self->is_default && evloop_sigchld_installed);
}

static PyObject *
pyloop_get_callback_count(EvLoop *self, void *c)
{
    return PyLong_FromSsize_t(self->cb_count);
}

static PyObject *
pyloop_get_watcher_count(EvLoop *self, void *c)
{
    return PyLong_FromSsize_t(self->nwatchers);
}

static PyObject *
pyloop_watchers(EvLoop *self, PyObject *unused)
{
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (EvWatcher *w = self->watchers; w; w = w->next) {
        if (PyList_Append(list, (PyObject *)w) < 0) {
            Py_DECREF(list);
            return NULL;
        }
    }
    return list;
}

static PyObject *
pyloop_repr(EvLoop *self)
{
    if (self->ev == NULL)
        return PyUnicode_FromFormat("<%s at %p destroyed>", Py_TYPE(self)->tp_name, self);
    PyObject *backend = pyloop_get_backend(self, NULL), *r;
    if (backend == NULL)
        return NULL;
    r = PyUnicode_FromFormat("<%s at %p%s backend=%R watchers=%zd callbacks=%zd>",
                             Py_TYPE(self)->tp_name, self, self->is_default ? " default" : "",
                             backend, self->nwatchers, self->cb_count);
    Py_DECREF(backend);
    return r;
}

/* The loop owns one reference to each started watcher (evloop_watcher_link) and each
 * started watcher one to the loop: reporting both lets the collector free a loop that
 * nothing else refers to. Before, such a loop (dropped without destroy() while a watcher
 * was started) could never be freed: its epoll and wake-up fds and libev's memory leaked. */
static int
pyloop_traverse(EvLoop *self, visitproc visit, void *arg)
{
    Py_VISIT(self->error_handler);
    for (EvCallback *cb = self->cb_head; cb; cb = cb->next) {
        Py_VISIT(cb->callback);
        Py_VISIT(cb->args);
    }
    for (EvWatcher *w = self->watchers; w; w = w->next)
        Py_VISIT(w);
    return 0;
}

/* Reached only when the loop is garbage: nothing outside its own watchers and callbacks
 * refers to it, so nothing can run it again (a running loop is held by run()'s caller).
 * Stop the watchers, dropping the loop's references to them; their references to the loop
 * go with them, and dealloc then destroys the libev loop. */
static int
pyloop_clear(EvLoop *self)
{
    while (self->run_depth == 0 && self->watchers != NULL) {
        EvWatcher *w = self->watchers;
        Py_INCREF(w);
        evloop_watcher_stop_internal(w);
        if (self->watchers == w)
            evloop_watcher_unlink(w);
        Py_DECREF(w);
    }
    Py_CLEAR(self->error_handler);
    evloop_queue_clear(self);
    return 0;
}

static void
pyloop_dealloc(EvLoop *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    /* No started watcher is left (each holds a reference to the loop), so destroying
     * is safe; for the default loop this lets a later loop(default=True) start afresh. */
    evloop_loop_destroy_now(self, 1);
    evloop_queue_clear(self);
    Py_CLEAR(self->error_handler);
    Py_CLEAR(self->exc_type);
    Py_CLEAR(self->exc_value);
    Py_CLEAR(self->exc_tb);
    if (evloop_default_obj == self)
        evloop_default_obj = NULL;
    evloop_live_unlink(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef pyloop_methods[] = {
    {"run", (PyCFunction)(void (*)(void))pyloop_run, METH_VARARGS | METH_KEYWORDS,
     "run(nowait=False, once=False): run until no referenced watcher is active"},
    {"break_", (PyCFunction)pyloop_break, METH_VARARGS, "break_(how=EVBREAK_ONE)"},
    {"now", (PyCFunction)pyloop_now, METH_NOARGS, "the loop's cached monotonic time"},
    {"update_now", (PyCFunction)pyloop_update_now, METH_NOARGS, NULL},
    {"update", (PyCFunction)pyloop_update_now, METH_NOARGS, "old name of update_now()"},
    {"ref", (PyCFunction)pyloop_ref, METH_NOARGS, NULL},
    {"unref", (PyCFunction)pyloop_unref, METH_NOARGS, NULL},
    {"destroy", (PyCFunction)pyloop_destroy, METH_NOARGS,
     "stop every watcher and free the loop; deferred while it runs"},
    {"reinit", (PyCFunction)pyloop_reinit, METH_NOARGS, "after fork, in the child"},
    {"_stop_all", (PyCFunction)pyloop_stop_all, METH_NOARGS,
     "stop every watcher and drop every queued callback; the loop stays usable"},
    {"fileno", (PyCFunction)pyloop_fileno, METH_NOARGS, "the backend's fd, or None"},
    {"internal_fds", (PyCFunction)pyloop_internal_fds, METH_NOARGS,
     "the fds libev holds for this loop (backend, wake-up, inotify, timerfd)"},
    {"closing_fd", (PyCFunction)pyloop_closing_fd, METH_O,
     "closing_fd(fd) -> bool: wake the fd's io watchers before it is closed"},
    {"verify", (PyCFunction)pyloop_verify, METH_NOARGS, NULL},
    {"install_sigchld", (PyCFunction)pyloop_install_sigchld, METH_NOARGS, NULL},
    {"reset_sigchld", (PyCFunction)pyloop_reset_sigchld, METH_NOARGS, NULL},
    {"handle_error", (PyCFunction)pyloop_handle_error, METH_VARARGS,
     "handle_error(context, type, value, tb): where callback exceptions go"},
    {"run_callback", (PyCFunction)(void (*)(void))pyloop_run_callback, METH_FASTCALL,
     "run_callback(func, *args) -> callback handle"},
    {"clear_callbacks", (PyCFunction)pyloop_clear_callbacks, METH_NOARGS,
     "drop every queued run_callback entry"},
    {"run_callback_threadsafe", (PyCFunction)(void (*)(void))pyloop_run_callback_threadsafe,
     METH_FASTCALL, "run_callback_threadsafe(func, *args): from any thread"},
    {"_run_callback_if_alive", (PyCFunction)(void (*)(void))pyloop_run_callback_if_alive,
     METH_FASTCALL, "run_callback_threadsafe(func, *args), or None (nothing queued) on a "
     "destroyed loop"},
    {"watchers", (PyCFunction)pyloop_watchers, METH_NOARGS,
     "the started watchers (for debugging and leak checks)"},
    {"io", (PyCFunction)(void (*)(void))pyloop_io, METH_FASTCALL | METH_KEYWORDS,
     "io(fd, events, ref=True, priority=None)"},
    {"timer", (PyCFunction)(void (*)(void))pyloop_timer, METH_FASTCALL | METH_KEYWORDS,
     "timer(after=0.0, repeat=0.0, ref=True, priority=None)"},
    {"signal", (PyCFunction)(void (*)(void))pyloop_signal, METH_VARARGS | METH_KEYWORDS,
     "signal(signum, ref=True, priority=None)"},
    {"idle", (PyCFunction)(void (*)(void))pyloop_idle, METH_VARARGS | METH_KEYWORDS, NULL},
    {"prepare", (PyCFunction)(void (*)(void))pyloop_prepare, METH_VARARGS | METH_KEYWORDS, NULL},
    {"check", (PyCFunction)(void (*)(void))pyloop_check, METH_VARARGS | METH_KEYWORDS, NULL},
    {"fork", (PyCFunction)(void (*)(void))pyloop_fork, METH_VARARGS | METH_KEYWORDS, NULL},
    {"async_", (PyCFunction)(void (*)(void))pyloop_async, METH_VARARGS | METH_KEYWORDS, NULL},
    /* the pre-3.7 name, still looked up by gevent (getattr: `async` is a keyword) */
    {"async", (PyCFunction)(void (*)(void))pyloop_async, METH_VARARGS | METH_KEYWORDS, NULL},
    {"child", (PyCFunction)(void (*)(void))pyloop_child, METH_VARARGS | METH_KEYWORDS,
     "child(pid, trace=False, ref=True, priority=None)"},
    {"stat", (PyCFunction)(void (*)(void))pyloop_stat, METH_VARARGS | METH_KEYWORDS,
     "stat(path, interval=0.0, ref=True, priority=None)"},
    {NULL}
};

static PyGetSetDef pyloop_getset[] = {
    {"default", (getter)pyloop_get_default, NULL, NULL, NULL},
    {"destroyed", (getter)pyloop_get_destroyed, NULL, NULL, NULL},
    {"MAXPRI", (getter)pyloop_get_maxpri, NULL, "the highest watcher priority", NULL},
    {"MINPRI", (getter)pyloop_get_minpri, NULL, "the lowest watcher priority", NULL},
    {"approx_timer_resolution", (getter)pyloop_get_approx_timer_resolution, NULL,
     "seconds: about the finest timer resolution", NULL},
    {"ptr", (getter)pyloop_get_ptr, NULL, "identifies the libev loop; 0 once destroyed", NULL},
    {"sig_pending", (getter)pyloop_get_sig_pending, NULL,
     "a signal arrived that its watchers have not seen yet", NULL},
    {"iteration", (getter)pyloop_get_iteration, NULL, NULL, NULL},
    {"polling", (getter)pyloop_get_polling, NULL, "the loop sits in its backend poll", NULL},
    {"depth", (getter)pyloop_get_depth, NULL, NULL, NULL},
    {"activecnt", (getter)pyloop_get_activecnt, NULL, NULL, NULL},
    {"pendingcnt", (getter)pyloop_get_pendingcnt, NULL, NULL, NULL},
    {"backend", (getter)pyloop_get_backend, NULL, NULL, NULL},
    {"backend_int", (getter)pyloop_get_backend_int, NULL, NULL, NULL},
    {"error_handler", (getter)pyloop_get_error_handler, (setter)pyloop_set_error_handler, NULL,
     NULL},
    {"sigchld_installed", (getter)pyloop_get_sigchld_installed, NULL, NULL, NULL},
    {"callback_count", (getter)pyloop_get_callback_count, NULL, "queued callbacks", NULL},
    {"watcher_count", (getter)pyloop_get_watcher_count, NULL, "started watchers", NULL},
    {NULL}
};

static PyTypeObject EvLoop_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "evloop.core.loop",
    .tp_basicsize = sizeof(EvLoop),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "loop(flags=None, default=None): a libev event loop",
    .tp_new = pyloop_new,
    .tp_dealloc = (destructor)pyloop_dealloc,
    .tp_traverse = (traverseproc)pyloop_traverse,
    .tp_clear = (inquiry)pyloop_clear,
    .tp_weaklistoffset = offsetof(EvLoop, weakreflist),
    .tp_repr = (reprfunc)pyloop_repr,
    .tp_methods = pyloop_methods,
    .tp_getset = pyloop_getset,
};


/* ------------------------------------------------------------------------------------ */
/* every live loop: exit and fork                                                         */

/* _park_hub_threads(timeout): the atexit handler described with evloop_park_if_exiting. */
static PyObject *
mod_park_hub_threads(PyObject *m, PyObject *timeoutobj)
{
    double timeout, deadline;
    unsigned long me = PyThread_get_thread_ident();
    int others = 0;
    if (evloop_get_double(timeoutobj, "timeout", &timeout) < 0)
        return NULL;
    evloop_parking_thread = me;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    evloop_parking = 1;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    for (EvLoop *l = evloop_live; l; l = l->live_next) {
        if (l->ev != NULL && l->run_depth > 0 && l->running_thread != me) {
            others++;
            ev_async_send(l->ev, &l->cb_async); /* out of its poll, into the parking */
        }
    }
    if (others == 0)
        return PyLong_FromLong(0);
    deadline = ev_time() + timeout;
    Py_BEGIN_ALLOW_THREADS
    while (__atomic_load_n(&evloop_parked, __ATOMIC_SEQ_CST) < others && ev_time() < deadline)
        usleep(200);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(__atomic_load_n(&evloop_parked, __ATOMIC_SEQ_CST));
}

/* os.register_at_fork(after_in_child=...) calls this: every loop inherited by the child
 * shares its epoll fd and wake-up fd with the parent until reinitialised. */
static PyObject *
mod_after_fork_child(PyObject *m, PyObject *unused)
{
    unsigned long me = PyThread_get_thread_ident(); /* pthread_self: the same in the child */
    evloop_parking = 0;   /* a fork made while exiting: the child's threads start afresh */
    evloop_parked = 0;
    for (EvLoop *l = evloop_live; l; l = l->live_next) {
        if (l->ev != NULL) {
            ev_loop_fork(l->ev);
            l->fork_due = 1;
        }
        if (l->run_depth > 0 && l->running_thread != me) {
            /* run() by a thread that does not exist in the child (fork() was called from
             * another thread while it ran the loop, typically sitting in its poll): that
             * run() will never return, so the loop is not running here. Without this,
             * every run() in the child would be refused ("running in another thread"),
             * and destroy() deferred for ever. */
            l->run_depth = 0;
            if (l->ev != NULL)
                l->ev->loop_depth = 0; /* libev's count of that ev_run (loop.depth) */
            l->in_poll = 0;
            l->tstate = NULL;
            l->running_thread = 0;
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef evloop_loop_functions[] = {
    {"_after_fork_child", mod_after_fork_child, METH_NOARGS, NULL},
    {"_park_hub_threads", mod_park_hub_threads, METH_O,
     "_park_hub_threads(timeout): at exit, stop other threads' hubs from taking the GIL "
     "again; returns how many have parked"},
    {NULL}
};

static int
evloop_loop_init(PyObject *m)
{
    if (evloop_add_type(m, "loop", &EvLoop_Type) < 0)
        return -1;
    return PyModule_AddFunctions(m, evloop_loop_functions);
}
