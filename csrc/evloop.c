/* evloop.c — libev and the C types of evloop.core, in one translation unit.
 *
 * Why it exists: every event must reach Python without crossing cffi. libev is compiled
 * here (ev.c is included, so the glue can read loop fields such as activecnt, as gevent's
 * cext does), and the loop, watchers and the callback queue are CPython types whose
 * dispatch calls the user's callable directly.
 *
 * What it must not do: let a Python exception escape into libev, let libev see an fd or
 * argument that would make it abort or corrupt memory (libev's asserts are compiled out
 * under NDEBUG), or release the GIL anywhere but around the backend poll.
 *
 * GIL rule: every function here runs with the GIL held. The running loop releases it only
 * between libev's release and acquire callbacks (evloop_release_cb / evloop_acquire_cb).
 */
#include "evloop.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#if EV_USE_EVENTFD
#include <sys/eventfd.h>
#endif

#if defined(__linux__) && defined(__GLIBC__) && (defined(__x86_64__) || defined(__aarch64__))
/* glibc 2.33 turned lstat into a versioned symbol of its own (lstat64@GLIBC_2.33); calling
 * it would limit the wheel to manylinux_2_34. libev's stat watcher only needs lstat, and on
 * these 64-bit ABIs the kernel's struct stat is glibc's, so ask the kernel directly. */
#include <sys/syscall.h>
static int
evloop_lstat(const char *path, struct stat *buf)
{
    return (int)syscall(SYS_newfstatat, AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW);
}
#define lstat(path, buf) evloop_lstat(path, buf)
#endif

#include "ev.c"

/* ------------------------------------------------------------------------------------ */
/* module state                                                                          */

static PyTypeObject EvLoop_Type;
static PyTypeObject EvWatcher_Type;
static PyTypeObject EvIo_Type, EvTimer_Type, EvSignal_Type, EvIdle_Type, EvPrepare_Type,
    EvCheck_Type, EvAsync_Type, EvChild_Type, EvStat_Type, EvFork_Type;
static PyTypeObject EvCallback_Type;

struct EvWaiter;
static int evloop_waiter_switch(struct EvWaiter *self, PyObject *value);
static int evloop_greenlet_resume(struct EvLoop *loop, PyObject *g);
static void evloop_watcher_stop_internal(EvWatcher *self);
static const evloop_kind evloop_kind_io;
static int evloop_hub_leaving(struct EvLoop *loop);
static void evloop_aio_detach_all(EvLoop *evloop);

static PyObject *evloop_empty_tuple = NULL;
static PyObject *evloop_none_tuple = NULL; /* (None,) */
static EvLoop *evloop_default_obj = NULL;   /* borrowed; cleared by dealloc */
static EvLoop *evloop_live = NULL;          /* list of every live loop object */
static PyObject *evloop_stat_result = NULL; /* os.stat_result */

/* libev reports fatal OS errors (epoll_wait failing with something other than EINTR)
 * through one process-wide callback with no loop argument; the loop running in this
 * thread picks the record up. */
static _Thread_local int evloop_syserr_errno = 0;
static _Thread_local const char *evloop_syserr_msg = NULL;
static _Thread_local EvLoop *evloop_running = NULL;

/* Signals: libev lets one loop at a time watch a given signal (a second one trips an
 * assert, i.e. memory corruption under NDEBUG). This table, guarded by the GIL, records the
 * owner and puts the previous handler back when the last watcher of a signal stops. */
typedef struct {
    struct ev_loop *owner;
    int count;
    struct sigaction saved;
} evloop_sigslot;
static evloop_sigslot evloop_sigs[NSIG];

/* Children: evloop compiles libev without its child watchers (EV_CHILD_ENABLE 0 in
 * evloop_config.h): libev's SIGCHLD handler reaps *every* child with waitpid(-1), and a
 * status reaped for nobody is lost to whoever else waits for that child (asyncio's child
 * watchers, subprocess in another thread, the program's own os.waitpid). evloop's child
 * watchers (csrc: "child" below) reap per pid instead: while one is active, an internal
 * signal watcher for SIGCHLD on the default loop calls waitpid(pid, WNOHANG) for the pids
 * that have an active watcher, and waitpid(-1, WNOHANG) only while an any-child (pid 0)
 * watcher is active. The handler is installed while child watchers are active (or on
 * request: install_sigchld) and the previous disposition put back when they stop. */
struct EvChild;
static struct EvChild *evloop_children = NULL; /* active child watchers (default loop) */
static ev_signal evloop_sigchld_w;            /* the internal SIGCHLD watcher */
static ev_prepare evloop_children_again_w;    /* another any-child look, next iteration */
static int evloop_sigchld_installed = 0;      /* evloop_sigchld_w is started */
static int evloop_child_watchers = 0;
static PyObject *evloop_sigchld_hook = NULL;  /* called once per SIGCHLD received */

/* ------------------------------------------------------------------------------------ */
/* errors: the one place where C error codes become Python exceptions                     */

static PyObject *
evloop_raise_errno(int err, const char *what)
{
    PyObject *args;
    if (what)
        args = Py_BuildValue("(is)", err, what);
    else
        args = Py_BuildValue("(is)", err, strerror(err));
    if (args == NULL)
        return NULL;
    /* OSError's constructor picks the subclass (ConnectionRefusedError, ...). */
    PyObject *exc = PyObject_Call(PyExc_OSError, args, NULL);
    Py_DECREF(args);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
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

static PyObject *pyloop_handle_error_impl(EvLoop *self, PyObject *context, PyObject *type,
                                        PyObject *value, PyObject *tb);

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

static PyObject *
evloop_tuple_from_array(PyObject *const *items, Py_ssize_t n)
{
    PyObject *t = PyTuple_New(n);
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
/* signal and SIGCHLD bookkeeping                                                         */

static int evloop_ensure_evpipe(EvLoop *self);
static void evloop_sigchld_cb(struct ev_loop *l, ev_signal *w, int revents);
static void evloop_children_again_cb(struct ev_loop *l, ev_prepare *w, int revents);

/* Install evloop's SIGCHLD handler (the internal signal watcher, unreferenced) on the
 * default loop and make it look for exited children at its next iteration (a child that
 * exited before its watcher started, or while the handler was down, sent no signal we
 * heard). Without a default loop there is nothing to do. -1 with ValueError when another
 * loop watches SIGCHLD (libev lets one loop at a time watch a signal). */
static int
evloop_sigchld_install(void)
{
    EvLoop *d = evloop_default_obj;
    evloop_sigslot *slot = &evloop_sigs[SIGCHLD];
    if (d == NULL || d->ev == NULL)
        return 0;
    if (!evloop_sigchld_installed) {
        if (slot->count > 0 && slot->owner != d->ev) {
            PyErr_Format(PyExc_ValueError,
                         "signal %d (SIGCHLD) is already watched by another loop; child "
                         "watchers need it on the default loop", SIGCHLD);
            return -1;
        }
        if (evloop_ensure_evpipe(d) < 0)
            return -1;
        if (slot->count == 0) {
            sigaction(SIGCHLD, NULL, &slot->saved);
            slot->owner = d->ev;
        }
        slot->count++;
        ev_signal_init(&evloop_sigchld_w, evloop_sigchld_cb, SIGCHLD);
        ev_prepare_init(&evloop_children_again_w, evloop_children_again_cb);
        ev_signal_start(d->ev, &evloop_sigchld_w);
        ev_unref(d->ev);
        evloop_sigchld_installed = 1;
    }
    /* EV_CUSTOM: a look of our own, not a signal to pass on to the hook */
    ev_feed_event(d->ev, &evloop_sigchld_w, EV_CUSTOM);
    return 0;
}

/* Take evloop's SIGCHLD handler down; the disposition from before it is put back when no
 * other signal watcher of the default loop watches SIGCHLD. */
static void
evloop_sigchld_reset(void)
{
    EvLoop *d = evloop_default_obj;
    evloop_sigslot *slot = &evloop_sigs[SIGCHLD];
    int undelivered = 0;
    if (!evloop_sigchld_installed)
        return;
    evloop_sigchld_installed = 0;
    if (d != NULL && d->ev != NULL) {
        if (ev_is_active(&evloop_children_again_w)) {
            ev_ref(d->ev);
            ev_prepare_stop(d->ev, &evloop_children_again_w);
        }
        ev_ref(d->ev);
        /* a pending look is dropped; a pending signal is handed on below */
        undelivered = (ev_clear_pending(d->ev, &evloop_sigchld_w) & EV_SIGNAL) != 0;
        ev_signal_stop(d->ev, &evloop_sigchld_w);
    }
    if (--slot->count == 0) {
        /* libev set SIG_DFL when its last watcher stopped; put back what was there */
        sigaction(SIGCHLD, &slot->saved, NULL);
        slot->owner = NULL;
        /* A SIGCHLD libev's handler caught that the loop has not dispatched to us yet (the
         * watcher of a child reaped by a waitpid of its owner stops first) would reach
         * nobody: hand it to the disposition now in place (the Python-level handler). */
        undelivered |= signals[SIGCHLD - 1].pending != 0;
        if (undelivered) {
            signals[SIGCHLD - 1].pending = 0;
            raise(SIGCHLD);
        }
    }
}

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
static const evloop_kind evloop_kind_fork; /* defined with the fork watcher type */

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
        if (func != NULL && cb->kind == EVLOOP_CB_GREENLET_SWITCH) {
            /* sleep(0): resume the yielding greenlet (its sleep clears this entry if it
             * is interrupted first, so a stale entry never resumes it) */
            if (evloop_greenlet_resume(self, func) < 0)
                evloop_report_error(self, (PyObject *)cb);
            Py_DECREF(func);
        }
        else if (func != NULL && cb->kind == EVLOOP_CB_WAITER_SWITCH) {
            /* sleep(0): resume the greenlet; errors were reported to the hub already */
            if (evloop_waiter_switch((struct EvWaiter *)func, PyTuple_GET_ITEM(args, 0)) < 0)
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
    if (cb != NULL && evloop_hub_leaving(self->loop)) {
        Py_DECREF(cb);
        cb = NULL; /* the rest of this iteration's events are not dispatched */
    }
    if (cb != NULL && (self->flags & EVLOOP_W_SWITCH)) {
        /* hub.wait(): resume the greenlet blocked on this watcher, from inside libev's
         * dispatch; the hub continues here when some greenlet switches back to it */
        int r;
        Py_INCREF(args);
        r = evloop_waiter_switch((struct EvWaiter *)cb,
                                 PyTuple_GET_SIZE(args) ? PyTuple_GET_ITEM(args, 0) : Py_None);
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
            self->flags &= ~EVLOOP_W_SWITCH;
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
    self->flags &= ~EVLOOP_W_SWITCH;
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
    const unsigned int mask = EVLOOP_W_SWITCH | EVLOOP_W_PASS_EVENTS;
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
    self->flags &= ~EVLOOP_W_SWITCH;
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
    self->flags &= ~EVLOOP_W_SWITCH;
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

static PyObject *
watcher_exit(EvWatcher *self, PyObject *args)
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
        self->flags &= ~EVLOOP_W_SWITCH;
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
    self->flags &= ~EVLOOP_W_SWITCH;
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
    {"__exit__", (PyCFunction)watcher_exit, METH_VARARGS, NULL},
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

typedef struct { EvWatcher base; ev_io io; } EvIo;

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

typedef struct { EvWatcher base; ev_timer t; double after; } EvTimer;

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

typedef struct { EvWatcher base; ev_signal s; } EvSignal;

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

typedef struct { EvWatcher base; ev_idle x; } EvIdle;
typedef struct { EvWatcher base; ev_prepare x; } EvPrepare;
typedef struct { EvWatcher base; ev_check x; } EvCheck;
typedef struct { EvWatcher base; ev_fork x; } EvFork;

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

typedef struct { EvWatcher base; ev_async a; } EvAsync;

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

/* evloop's own child watcher (libev's are compiled out, see evloop_children above). The
 * embedded libev watcher is an ev_async that is never sent: it makes the watcher active
 * (keeping run() going unless ref=False) and carries the EV_CHILD event the SIGCHLD pass
 * feeds it, so dispatch, priorities, ref and pending work as for every other kind. */
typedef struct EvChild {
    EvWatcher base;
    ev_async a;
    int pid;                    /* > 0: that child; 0: any child */
    int trace;                  /* also report stops and continues */
    int rpid, rstatus;          /* the last state change reported */
    int seen;                   /* scratch of evloop_children_reap */
    struct EvChild *cprev, *cnext; /* in evloop_children while active */
} EvChild;

/* Hand a reaped state change to every active watcher of that pid and every any-child
 * watcher (a stop or continue only to those with trace), as libev's childcb did. */
static int
evloop_child_deliver(struct ev_loop *l, int rpid, int status)
{
    int traced = WIFSTOPPED(status) || WIFCONTINUED(status), any_fed = 0;
    for (EvChild *c = evloop_children; c; c = c->cnext) {
        if ((c->pid == rpid || c->pid == 0) && (!traced || c->trace)) {
            c->rpid = rpid;
            c->rstatus = status;
            ev_feed_event(l, &c->a, EV_CHILD);
            any_fed |= c->pid == 0;
        }
    }
    return any_fed; /* an any-child watcher got it */
}

static int
evloop_waitpid(int pid, int *status, int options)
{
    int r;
    do
        r = waitpid(pid, status, options);
    while (r < 0 && errno == EINTR);
    return r;
}

/* One pass after SIGCHLD: waitpid(pid, WNOHANG) once per pid that has an active watcher
 * (ECHILD: somebody else reaped it; the watcher stays silent, as libev's would). Only
 * while an any-child watcher is active, also waitpid(-1, WNOHANG), unless a watched pid's
 * report already went to the any-child watchers: one child per report, and another look
 * at the next iteration, after the callbacks ran (they usually stop a one-shot any-child
 * watcher, which must not swallow more children than it reports). Runs no Python code,
 * so the list cannot change under it. */
static void
evloop_children_reap(struct ev_loop *l)
{
    EvChild *c, *d;
    int any = 0, anytrace = 0, any_fed = 0, status, r;
    for (c = evloop_children; c; c = c->cnext)
        c->seen = 0;
    for (c = evloop_children; c; c = c->cnext) {
        int trace = 0;
        if (c->pid == 0) {
            any = 1;
            anytrace |= c->trace;
            continue;
        }
        if (c->seen)
            continue;
        for (d = c; d; d = d->cnext) {
            if (d->pid == c->pid) {
                d->seen = 1;
                trace |= d->trace;
            }
        }
        r = evloop_waitpid(c->pid, &status, WNOHANG | (trace ? WUNTRACED | WCONTINUED : 0));
        if (r > 0)
            any_fed |= evloop_child_deliver(l, r, status);
    }
    if (any) {
        /* one child per report: none more when a watched pid went to them already */
        if (!any_fed) {
            r = evloop_waitpid(-1, &status,
                               WNOHANG | (anytrace ? WUNTRACED | WCONTINUED : 0));
            if (r > 0)
                any_fed = evloop_child_deliver(l, r, status);
        }
        if (any_fed) {
            /* not fed now: libev runs what is fed during dispatch before the callbacks
             * fed earlier; the prepare stage comes after them */
            if (!ev_is_active(&evloop_children_again_w)) {
                ev_prepare_start(l, &evloop_children_again_w);
                ev_unref(l);
            }
        }
    }
}

static void
evloop_children_again_cb(struct ev_loop *l, ev_prepare *w, int revents)
{
    ev_ref(l);
    ev_prepare_stop(l, w);
    if (evloop_sigchld_installed)
        ev_feed_event(l, &evloop_sigchld_w, EV_CUSTOM);
}

/* The internal SIGCHLD watcher's callback: reap, then (for a signal really received, not
 * a look of our own) call the hook evloop.os installs to run the Python-level SIGCHLD
 * handler, which evloop's handler displaces meanwhile. */
static void
evloop_sigchld_cb(struct ev_loop *l, ev_signal *w, int revents)
{
    evloop_children_reap(l);
    if ((revents & EV_SIGNAL) && evloop_sigchld_hook != NULL && evloop_default_obj != NULL) {
        PyObject *hook = evloop_sigchld_hook;
        PyObject *res;
        Py_INCREF(hook);
        res = PyObject_CallNoArgs(hook);
        if (res == NULL)
            evloop_report_error(evloop_default_obj, hook);
        else
            Py_DECREF(res);
        Py_DECREF(hook);
    }
}

static void
evloop_start_child(struct ev_loop *l, ev_watcher *w)
{
    EvChild *c = (EvChild *)w->data;
    if (ev_is_active(&c->a))
        return;
    ev_async_start(l, &c->a);
    c->cprev = NULL;
    c->cnext = evloop_children;
    if (evloop_children != NULL)
        evloop_children->cprev = c;
    evloop_children = c;
}

static void
evloop_stop_child(struct ev_loop *l, ev_watcher *w)
{
    EvChild *c = (EvChild *)w->data;
    int was_active = ev_is_active(&c->a);
    ev_async_stop(l, &c->a);    /* also drops a pending report (rpid/rstatus keep it) */
    if (!was_active)
        return;
    if (c->cprev != NULL)
        c->cprev->cnext = c->cnext;
    else
        evloop_children = c->cnext;
    if (c->cnext != NULL)
        c->cnext->cprev = c->cprev;
    c->cprev = c->cnext = NULL;
}

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

typedef struct { EvWatcher base; ev_stat st; PyObject *path; } EvStat;

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

/* ------------------------------------------------------------------------------------ */
/* the loop                                                                               */

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
        PyErr_SetString(PyExc_OSError,
                        "could not create the event loop (no usable backend)");
        return NULL;
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
    evloop_aio_detach_all(self);
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

static PyObject *
pyloop_io(EvLoop *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "events", "ref", "priority", NULL};
    PyObject *fdobj, *evobj, *ref = NULL, *priority = NULL;
    int fd, events;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OO:io", kwlist, &fdobj, &evobj, &ref,
                                     &priority))
        return NULL;
    if (evloop_loop_alive(self) < 0)
        return NULL;
    if (evloop_check_fd(fdobj, &fd) < 0 || evloop_check_events(evobj, &events) < 0)
        return NULL;
    if (evloop_fd_alive(fd) < 0)
        return NULL;
    EVLOOP_NEW_WATCHER(EvIo_Type, EvIo, w);
    ev_io_init(&w->io, (void (*)(struct ev_loop *, ev_io *, int))evloop_watcher_cb, fd,
               events);
    return evloop_finish_watcher(&w->base, self, &evloop_kind_io, (ev_watcher *)&w->io, ref,
                                 priority);
}

static PyObject *
pyloop_timer(EvLoop *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"after", "repeat", "ref", "priority", NULL};
    PyObject *afterobj = NULL, *repeatobj = NULL, *ref = NULL, *priority = NULL;
    double after = 0.0, repeat = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOOO:timer", kwlist, &afterobj, &repeatobj,
                                     &ref, &priority))
        return NULL;
    if (evloop_loop_alive(self) < 0)
        return NULL;
    if (afterobj && evloop_get_double(afterobj, "after", &after) < 0)
        return NULL;
    if (repeatobj && evloop_get_double(repeatobj, "repeat", &repeat) < 0)
        return NULL;
    if (repeat < 0.0) {
        PyErr_Format(PyExc_ValueError, "repeat must be >= 0, not %R", repeatobj);
        return NULL;
    }
    EVLOOP_NEW_WATCHER(EvTimer_Type, EvTimer, w);
    ev_timer_init(&w->t, (void (*)(struct ev_loop *, ev_timer *, int))evloop_watcher_cb, after,
                  repeat);
    w->after = after;
    return evloop_finish_watcher(&w->base, self, &evloop_kind_timer, (ev_watcher *)&w->t, ref,
                                 priority);
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
    {"io", (PyCFunction)(void (*)(void))pyloop_io, METH_VARARGS | METH_KEYWORDS,
     "io(fd, events, ref=True, priority=None)"},
    {"timer", (PyCFunction)(void (*)(void))pyloop_timer, METH_VARARGS | METH_KEYWORDS,
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
/* the hub's hot path (one translation unit: it uses the loop and watcher internals)      */

#include "evloop_hub.c"
#include "evloop_io.c"
#include "evloop_aio.c"
#include "evloop_transport.c"

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

/* ------------------------------------------------------------------------------------ */
/* module                                                                                 */

static PyObject *
mod_get_version(PyObject *m, PyObject *unused)
{
    return PyUnicode_FromFormat("libev-%d.%02d", ev_version_major(), ev_version_minor());
}

static PyObject *
mod_get_header_version(PyObject *m, PyObject *unused)
{
    return PyUnicode_FromFormat("libev-%d.%02d", EV_VERSION_MAJOR, EV_VERSION_MINOR);
}

static PyObject *
mod_supported_backends(PyObject *m, PyObject *unused)
{
    return evloop_backend_names(ev_supported_backends());
}

static PyObject *
mod_recommended_backends(PyObject *m, PyObject *unused)
{
    return evloop_backend_names(ev_recommended_backends());
}

static PyObject *
mod_embeddable_backends(PyObject *m, PyObject *unused)
{
    return evloop_backend_names(ev_embeddable_backends());
}

static PyObject *
mod_time(PyObject *m, PyObject *unused)
{
    return PyFloat_FromDouble(ev_time());
}

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

/* evloop.os installs a callable here: called with no arguments, from the default loop,
 * once per SIGCHLD that evloop's handler received (None: nothing is called). */
static PyObject *
mod_set_sigchld_hook(PyObject *m, PyObject *hook)
{
    if (hook != Py_None && !PyCallable_Check(hook)) {
        PyErr_Format(PyExc_TypeError, "the SIGCHLD hook must be callable or None, not %.100s",
                     Py_TYPE(hook)->tp_name);
        return NULL;
    }
    Py_XSETREF(evloop_sigchld_hook, hook == Py_None ? NULL : Py_NewRef(hook));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"get_version", mod_get_version, METH_NOARGS, "libev's version, as linked"},
    {"get_header_version", mod_get_header_version, METH_NOARGS,
     "libev's version, as compiled against"},
    {"supported_backends", mod_supported_backends, METH_NOARGS, NULL},
    {"recommended_backends", mod_recommended_backends, METH_NOARGS, NULL},
    {"embeddable_backends", mod_embeddable_backends, METH_NOARGS, NULL},
    {"time", mod_time, METH_NOARGS, "libev's ev_time(): wall-clock time"},
    {"_after_fork_child", mod_after_fork_child, METH_NOARGS, NULL},
    {"_set_sigchld_hook", mod_set_sigchld_hook, METH_O,
     "_set_sigchld_hook(callable or None): called once per SIGCHLD evloop's handler got"},
    {"_park_hub_threads", mod_park_hub_threads, METH_O,
     "_park_hub_threads(timeout): at exit, stop other threads' hubs from taking the GIL "
     "again; returns how many have parked"},
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
    {"_io_configure", mod_io_configure, METH_VARARGS, NULL},
    {"_sock_install", mod_sock_install, METH_O,
     "_sock_install(cls): recv, recv_into, send, sendall, __del__ as C methods of cls"},
    {"_recv", (PyCFunction)(void (*)(void))mod_recv, METH_FASTCALL,
     "_recv(sock, bufsize): one non-blocking recv on sock.fileno(), without a large "
     "allocation"},
    {"_new_waiter", mod_new_waiter, METH_O, "Waiter(hub), fast"},
    {"_greenlet_enter", (PyCFunction)(void (*)(void))mod_greenlet_enter, METH_FASTCALL,
     "Greenlet.run() began"},
    {"_greenlet_leave", (PyCFunction)(void (*)(void))mod_greenlet_leave, METH_FASTCALL,
     "Greenlet.run() ended"},
    {"_greenlets_running", mod_greenlets_running, METH_NOARGS,
     "Greenlet.run() bodies entered and not yet left (all threads)"},
    {"_aio_configure", mod_aio_configure, METH_VARARGS, NULL},
    {"_aio_transport_types", mod_aio_transport_types, METH_VARARGS, NULL},
    {NULL}
};

static struct PyModuleDef evloop_moduledef = {
    PyModuleDef_HEAD_INIT, "evloop._cext",
    "evloop's C types; import them from evloop.core", -1, module_methods,
};

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

/* --- small arena blocks from malloc --------------------------------------------------------
 *
 * CPython 3.11+ gives each greenlet its own 16 KiB frame data-stack chunk from the arena
 * allocator, which is mmap/munmap: two system calls and page faults per greenlet (strace:
 * 5114 mmap for 5000 greenlets; ~8 us of a ~9 us spawn-to-finish, ~5 us per greenlet that
 * suspends while others are alive). Blocks up to 64 KiB are served by malloc instead, which
 * recycles them without system calls; obmalloc's 1 MiB arenas still use the previous
 * allocator and go back to the OS. A pointer set records which blocks came from malloc, so
 * blocks allocated before evloop was imported are still freed by the previous allocator.
 * Arena functions are always called with the GIL held. EVLOOP_ARENA_CACHE=0 turns it off.
 */
#define EVLOOP_SMALL_BLOCK (64 * 1024)
#define EVLOOP_TOMBSTONE ((void *)1)
static PyObjectArenaAllocator evloop_arena_prev;
static void **evloop_blocks = NULL;
static size_t evloop_blocks_cap = 0, evloop_blocks_live = 0, evloop_blocks_used = 0;

static size_t
evloop_block_hash(void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static int
evloop_blocks_grow(void)
{
    size_t cap = evloop_blocks_cap ? evloop_blocks_cap : 1024;
    void **old = evloop_blocks, **table;
    size_t oldcap = evloop_blocks_cap;
    while (evloop_blocks_live * 4 >= cap)
        cap *= 2;
    table = (void **)calloc(cap, sizeof(void *));
    if (table == NULL)
        return -1;
    for (size_t i = 0; i < oldcap; i++) {
        void *p = old[i];
        if (p != NULL && p != EVLOOP_TOMBSTONE) {
            size_t j = evloop_block_hash(p) & (cap - 1);
            while (table[j] != NULL)
                j = (j + 1) & (cap - 1);
            table[j] = p;
        }
    }
    free(old);
    evloop_blocks = table;
    evloop_blocks_cap = cap;
    evloop_blocks_used = evloop_blocks_live;
    return 0;
}

static void *
evloop_arena_alloc(void *ctx, size_t size)
{
    void *p;
    size_t j;
    if (size > EVLOOP_SMALL_BLOCK)
        return evloop_arena_prev.alloc(evloop_arena_prev.ctx, size);
    if ((evloop_blocks_used + 1) * 2 > evloop_blocks_cap && evloop_blocks_grow() < 0)
        return evloop_arena_prev.alloc(evloop_arena_prev.ctx, size);
    p = malloc(size);
    if (p == NULL)
        return evloop_arena_prev.alloc(evloop_arena_prev.ctx, size);
    j = evloop_block_hash(p) & (evloop_blocks_cap - 1);
    while (evloop_blocks[j] != NULL && evloop_blocks[j] != EVLOOP_TOMBSTONE)
        j = (j + 1) & (evloop_blocks_cap - 1);
    if (evloop_blocks[j] == NULL)
        evloop_blocks_used++;
    evloop_blocks[j] = p;
    evloop_blocks_live++;
    return p;
}

static void
evloop_arena_free(void *ctx, void *ptr, size_t size)
{
    if (ptr != NULL && size <= EVLOOP_SMALL_BLOCK && evloop_blocks_cap) {
        size_t j = evloop_block_hash(ptr) & (evloop_blocks_cap - 1);
        while (evloop_blocks[j] != NULL) {
            if (evloop_blocks[j] == ptr) {
                evloop_blocks[j] = EVLOOP_TOMBSTONE;
                evloop_blocks_live--;
                free(ptr);
                return;
            }
            j = (j + 1) & (evloop_blocks_cap - 1);
        }
    }
    evloop_arena_prev.free(evloop_arena_prev.ctx, ptr, size);
}

static void
evloop_install_arena_cache(void)
{
    static PyObjectArenaAllocator mine = {NULL, evloop_arena_alloc, evloop_arena_free};
    const char *env = getenv("EVLOOP_ARENA_CACHE");
    if (env != NULL && strcmp(env, "0") == 0)
        return;
    PyObject_GetArenaAllocator(&evloop_arena_prev);
    if (evloop_arena_prev.alloc == evloop_arena_alloc)
        return;
    PyObject_SetArenaAllocator(&mine);
}

/* Called once by evloop.core through the cffi module: builds evloop._cext and registers it
 * in sys.modules. Returns 0, or -1 with a Python exception printed by cffi's caller. */
int
evloop_bootstrap(void)
{
    PyObject *m, *modules, *os;
    static int done = 0;
    if (done)
        return 0;
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

    evloop_empty_tuple = PyTuple_New(0);
    evloop_none_tuple = PyTuple_Pack(1, Py_None);
    if (evloop_empty_tuple == NULL || evloop_none_tuple == NULL)
        return -1;

    m = PyModule_Create(&evloop_moduledef);
    if (m == NULL)
        return -1;
    if (evloop_add_type(m, "watcher", &EvWatcher_Type) < 0
        || evloop_add_type(m, "loop", &EvLoop_Type) < 0
        || evloop_add_type(m, "io", &EvIo_Type) < 0
        || evloop_add_type(m, "timer", &EvTimer_Type) < 0
        || evloop_add_type(m, "signal", &EvSignal_Type) < 0
        || evloop_add_type(m, "idle", &EvIdle_Type) < 0
        || evloop_add_type(m, "prepare", &EvPrepare_Type) < 0
        || evloop_add_type(m, "check", &EvCheck_Type) < 0
        || evloop_add_type(m, "async_", &EvAsync_Type) < 0
        || evloop_add_type(m, "child", &EvChild_Type) < 0
        || evloop_add_type(m, "stat", &EvStat_Type) < 0
        || evloop_add_type(m, "fork", &EvFork_Type) < 0
        || evloop_add_type(m, "callback", &EvCallback_Type) < 0
        || evloop_add_type(m, "Waiter", &EvWaiter_Type) < 0
        || evloop_add_type(m, "SockIO", &EvSockIO_Type) < 0
        || evloop_add_type(m, "AioLoop", &AioLoop_Type) < 0
        || evloop_add_type(m, "AioHandle", &AioHandle_Type) < 0
        || evloop_add_type(m, "AioTimerHandle", &AioTimer_Type) < 0)
        goto fail;
#define ADDINT(name, value)                                                              \
    if (PyModule_AddIntConstant(m, name, value) < 0)                                     \
        goto fail;
    ADDINT("UNDEF", EV_UNDEF);
    ADDINT("NONE", EV_NONE);
    ADDINT("READ", EV_READ);
    ADDINT("WRITE", EV_WRITE);
    ADDINT("TIMER", EV_TIMER);
    ADDINT("PERIODIC", EV_PERIODIC);
    ADDINT("SIGNAL", EV_SIGNAL);
    ADDINT("CHILD", EV_CHILD);
    ADDINT("STAT", EV_STAT);
    ADDINT("IDLE", EV_IDLE);
    ADDINT("PREPARE", EV_PREPARE);
    ADDINT("CHECK", EV_CHECK);
    ADDINT("EMBED", EV_EMBED);
    ADDINT("FORK", EV_FORK);
    ADDINT("CLEANUP", EV_CLEANUP);
    ADDINT("ASYNC", EV_ASYNC);
    ADDINT("CUSTOM", EV_CUSTOM);
    ADDINT("ERROR", EV_ERROR);
    ADDINT("MINPRI", EV_MINPRI);
    ADDINT("MAXPRI", EV_MAXPRI);
    ADDINT("EVBREAK_CANCEL", EVBREAK_CANCEL);
    ADDINT("EVBREAK_ONE", EVBREAK_ONE);
    ADDINT("EVBREAK_ALL", EVBREAK_ALL);
    ADDINT("EVFLAG_AUTO", EVFLAG_AUTO);
    ADDINT("EVFLAG_NOENV", EVFLAG_NOENV);
    ADDINT("EVFLAG_FORKCHECK", EVFLAG_FORKCHECK);
    ADDINT("EVFLAG_NOINOTIFY", EVFLAG_NOINOTIFY);
    ADDINT("EVFLAG_SIGNALFD", EVFLAG_SIGNALFD);
    ADDINT("EVFLAG_NOSIGMASK", EVFLAG_NOSIGMASK);
    ADDINT("EVBACKEND_SELECT", EVBACKEND_SELECT);
    ADDINT("EVBACKEND_POLL", EVBACKEND_POLL);
    ADDINT("EVBACKEND_EPOLL", EVBACKEND_EPOLL);
    ADDINT("EVBACKEND_KQUEUE", EVBACKEND_KQUEUE);
    ADDINT("EVBACKEND_PORT", EVBACKEND_PORT);
#undef ADDINT

    modules = PyImport_GetModuleDict(); /* borrowed */
    if (PyDict_SetItemString(modules, "evloop._cext", m) < 0)
        goto fail;
    Py_DECREF(m);
    ev_set_syserr_cb(evloop_syserr_cb);
    evloop_install_arena_cache();
    done = 1;
    return 0;
fail:
    Py_DECREF(m);
    return -1;
}
