/* evloop_internal.h — the seam between the rooms of evloop's C glue: every type, shared
 * variable and function that one room (one csrc/evloop_*.c file) uses from another.
 *
 * Why it exists: the glue is one translation unit (csrc/evloop_unity.c includes libev's
 * ev.c, then each room in layer order), so every function stays `static` and the compiler
 * may inline across rooms. In one unit a room could call any function defined before it;
 * this header is the list of what it may call instead. tests/test_architecture.py fails
 * when a room uses a function or file-scope variable of another room that is not declared
 * here. The rooms, lowest first (a room uses only rooms before it, and the hooks below are
 * how the loop reaches the rooms above it):
 *
 *   errors      evloop_errors.c    C errors -> Python exceptions, callback error reports,
 *                                  the GIL hand-off around the poll, argument checks
 *   signals     evloop_signals.c   the process-wide signal table, SIGCHLD reaping
 *   watcher     evloop_watcher.c   the watcher base type and its libev dispatch
 *   watchers    evloop_watchers.c  the ten watcher kinds
 *   callbacks   evloop_callbacks.c the run_callback queue and its handle type
 *   loop        evloop_loop.c      the loop type
 *   arena       evloop_arena.c     small CPython arena blocks from malloc
 *   hub         evloop_hub.c       Waiter, waiting, the one switch into the hub, sleep
 *   io          evloop_io.c        the socket fast path
 *   aio         evloop_aio.c       evloop.aio's loop, handles and timers
 *   transport   evloop_transport.c evloop.aio's own stream and datagram transports
 *   module      evloop_module.c    evloop._cext and evloop_bootstrap()
 *
 * A new room is one #include line in evloop_unity.c, its declarations here, and its
 * evloop_<room>_init(m) call in evloop_module.c.
 *
 * What it must not do: declare anything of greenlet's C API (only the hub and the rooms
 * above it include greenlet.h), or anything the cffi wrapper needs (that is evloop.h).
 * Declarations only: every function and variable is defined in exactly one room (but the
 * three thread-locals of libev's error record, which C cannot declare ahead).
 */
#ifndef EVLOOP_INTERNAL_H
#define EVLOOP_INTERNAL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <signal.h>
#include "evloop_config.h"
#include "ev.h"
#include "evloop.h"

/* A small function inlined into each caller: the argument handling of the socket fast
 * path's calls (measured: a call is 20-40 instructions cheaper than letting the compiler
 * keep these out of line), the one switch into the hub. */
#if defined(__GNUC__)
#define EVLOOP_HOT static inline __attribute__((always_inline))
#else
#define EVLOOP_HOT static inline
#endif

/* ===================================================================================== */
/* types                                                                                  */

/* Watcher flags. */
#define EVLOOP_W_STARTED     0x01 /* the loop holds a reference and lists the watcher */
#define EVLOOP_W_UNREF       0x02 /* ev_unref has been applied for this watcher */
#define EVLOOP_W_NOREF       0x04 /* user asked ref=False */
#define EVLOOP_W_CLOSED      0x08 /* close() was called: cannot start again */
#define EVLOOP_W_PASS_EVENTS 0x10 /* io: call callback(events, *args) */
#define EVLOOP_W_SIGOWNED    0x20 /* signal: counted in the process-wide signal table */
#define EVLOOP_W_CHILDCOUNT  0x40 /* child: counted towards the SIGCHLD handler */
#define EVLOOP_W_HOOKED      0x80 /* the callback belongs to a room above the loop (the
                                     hub's Waiter): events go to evloop_hooks.watcher_event */
#define EVLOOP_W_FD_TRUSTED  0x100 /* io: the owner knows the fd is open (SockIO: a system
                                      call on it just said EAGAIN); skip the fcntl check */

/* run_callback queue entries */
#define EVLOOP_CB_CALL   0 /* callback(*args) */
#define EVLOOP_CB_HOOKED 1 /* queued by a room above the loop (the hub's sleep(0)): run by
                              evloop_hooks.callback_entry */

struct EvLoop;
struct EvWatcher;
struct AioLoop;

typedef struct evloop_kind {
    const char *name;
    void (*start)(struct ev_loop *, ev_watcher *);
    void (*stop)(struct ev_loop *, ev_watcher *);
    /* checks and side effects before libev sees the watcher; -1 with an exception set */
    int (*prestart)(struct EvWatcher *);
    /* undo what prestart did, after libev stopped the watcher */
    void (*poststop)(struct EvWatcher *);
} evloop_kind;

typedef struct EvWatcher {
    PyObject_HEAD
    struct EvLoop *loop;        /* strong */
    PyObject *callback;         /* strong or NULL */
    PyObject *args;             /* strong tuple, never NULL */
    struct EvWatcher *prev;     /* in loop->watchers while EVLOOP_W_STARTED */
    struct EvWatcher *next;
    const evloop_kind *kind;
    ev_watcher *w;              /* the libev struct embedded in the subtype */
    unsigned int flags;
    PyObject *weakreflist;
} EvWatcher;

/* the kinds (csrc/evloop_watchers.c): the base and the embedded libev struct */
typedef struct { EvWatcher base; ev_io io; } EvIo;
typedef struct { EvWatcher base; ev_timer t; double after; } EvTimer;
typedef struct { EvWatcher base; ev_signal s; } EvSignal;
typedef struct { EvWatcher base; ev_idle x; } EvIdle;
typedef struct { EvWatcher base; ev_prepare x; } EvPrepare;
typedef struct { EvWatcher base; ev_check x; } EvCheck;
typedef struct { EvWatcher base; ev_fork x; } EvFork;
typedef struct { EvWatcher base; ev_async a; } EvAsync;
typedef struct { EvWatcher base; ev_stat st; PyObject *path; } EvStat;

/* evloop's own child watcher (libev's are compiled out, see csrc/evloop_signals.c). The
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

typedef struct EvCallback {
    PyObject_HEAD
    PyObject *callback;         /* NULL once run or stopped */
    PyObject *args;
    struct EvCallback *next;    /* queue link, owned reference while queued */
    int queued;
    int kind;                   /* EVLOOP_CB_* */
} EvCallback;

typedef struct EvLoop {
    PyObject_HEAD
    struct ev_loop *ev;         /* NULL once destroyed */
    int is_default;
    int in_poll;                /* between release and acquire callbacks */
    int run_depth;              /* our own nesting count of run() */
    int destroy_pending;
    int fork_due;               /* reinit() was called (after fork): the fork watchers have
                                   not run yet (see evloop_fork_watchers_due) */
    unsigned long running_thread;
    unsigned long owner_thread; /* the thread that made the loop or last ran it */
    PyThreadState *tstate;      /* saved while the poll runs without the GIL */
    PyObject *error_handler;    /* strong or NULL */
    /* an exception to raise out of run() */
    PyObject *exc_type, *exc_value, *exc_tb;
    /* run_callback queue */
    EvCallback *cb_head, *cb_tail;
    Py_ssize_t cb_count;
    ev_prepare cb_prepare;      /* runs the queue before each poll; unreferenced */
    ev_idle cb_idle;            /* active while the queue is not empty: keeps run() going
                                   and makes the poll non-blocking */
    ev_async cb_async;          /* wakes the loop for run_callback_threadsafe */
    /* started watchers, so destroy() can stop them and drop their references */
    EvWatcher *watchers;
    Py_ssize_t nwatchers;
    /* evloop.aio loops bound to this loop: owned by csrc/evloop_aio.c (the loop never
     * reads it; the aio room detaches them through evloop_hooks.loop_destroying) */
    struct AioLoop *aio_loops;
    /* every live loop, for fork handling */
    struct EvLoop *live_prev, *live_next;
    PyObject *weakreflist;
} EvLoop;

/* ===================================================================================== */
/* hooks: how the loop's dispatch reaches the rooms above it                             */

/* The watcher, callbacks and loop rooms know nothing of hubs, greenlets or asyncio; the
 * rooms that do register these at module init (evloop_hub_init, evloop_aio_init). Owned
 * by csrc/evloop_watcher.c; all NULL until then. */
typedef struct evloop_hooks_t {
    /* An event of a watcher flagged EVLOOP_W_HOOKED, whose callback is `callback`, with
     * args[0] (or None) as `value`. 0 done, 1 the watcher must stop (it can never be
     * waited on again), -1 error (reported by the dispatch). */
    int (*watcher_event)(PyObject *callback, PyObject *value);
    /* A queue entry of kind EVLOOP_CB_HOOKED with its callback `func` (its args are the
     * queueing room's business: sleep(0)'s are (None,)). 0 done, -1 error (reported by
     * the queue). */
    int (*callback_entry)(EvLoop *loop, PyObject *func);
    /* Asked while run() has an exception pending (loop->exc_type): nonzero when the
     * loop's owner is leaving and no further event of this iteration may be dispatched. */
    int (*loop_leaving)(EvLoop *loop);
    /* The loop is about to be destroyed: detach whatever is bound to it. */
    void (*loop_destroying)(EvLoop *loop);
} evloop_hooks_t;
static evloop_hooks_t evloop_hooks;

/* ===================================================================================== */
/* errors (csrc/evloop_errors.c)                                                           */

static PyObject *evloop_empty_tuple;   /* () */
static PyObject *evloop_none_tuple;    /* (None,) */

/* libev reports fatal OS errors (epoll_wait failing with something other than EINTR)
 * through one process-wide callback with no loop argument (evloop_syserr_cb); the loop
 * running in this thread (run(), csrc/evloop_loop.c) picks the record up. Defined here,
 * not in the errors room: a thread-local has no tentative definition in C (GCC 14+
 * refuses the declaration-then-definition the other shared variables use). */
static _Thread_local int evloop_syserr_errno = 0;
static _Thread_local const char *evloop_syserr_msg = NULL;
static _Thread_local EvLoop *evloop_running = NULL; /* the loop run() runs here */
/* the exit-time parking of threads left in their hubs (see evloop_park_if_exiting) */
static volatile int evloop_parking;
static unsigned long evloop_parking_thread;
static volatile int evloop_parked;

static int evloop_errors_init(PyObject *m);
/* The one place a C error code becomes a Python exception: OSError(err, what or
 * strerror(err)), as the subclass OSError's constructor picks (BlockingIOError,
 * ConnectionResetError, ...). Returns NULL. */
static PyObject *evloop_raise_errno(int err, const char *what);
/* The same exception as a new object, not raised (thrown into waiters later). */
static PyObject *evloop_errno_exception(int err, const char *what);
/* OSError(msg) without an errno (libev failed and left none). Returns NULL. */
static PyObject *evloop_raise_oserror(const char *msg);
/* socket.timeout("timed out") (TimeoutError until evloop.socket configured it). */
static PyObject *evloop_raise_timeout(void);
static void evloop_set_timeout_exception(PyObject *exc);
static PyObject *evloop_raise_destroyed(void);
static void evloop_syserr_cb(const char *msg);
static void evloop_stash_exception(EvLoop *self);
static void evloop_report_error(EvLoop *self, PyObject *context);
static int evloop_check_fd(PyObject *fdobj, int *out);
static int evloop_fd_alive(int fd);
static PyObject *evloop_tuple_from_array(PyObject *const *items, Py_ssize_t n);
static int evloop_get_double(PyObject *obj, const char *what, double *out);
static void evloop_release_cb(struct ev_loop *l);
static void evloop_acquire_cb(struct ev_loop *l);
/* without the GIL, where a thread gives it away: park for ever if the process is exiting */
static void evloop_park_if_exiting(void);

/* ===================================================================================== */
/* signals (csrc/evloop_signals.c)                                                        */

/* libev lets one loop at a time watch a signal: the owner and the disposition to put back */
typedef struct {
    struct ev_loop *owner;
    int count;
    struct sigaction saved;
} evloop_sigslot;
static evloop_sigslot evloop_sigs[NSIG];
static int evloop_sigchld_installed;   /* evloop's SIGCHLD watcher is started */
static int evloop_child_watchers;      /* active child watchers */

static int evloop_signals_init(PyObject *m);
static int evloop_sigchld_install(void);
static void evloop_sigchld_reset(void);
static void evloop_start_child(struct ev_loop *l, ev_watcher *w);
static void evloop_stop_child(struct ev_loop *l, ev_watcher *w);

/* ===================================================================================== */
/* watcher base (csrc/evloop_watcher.c)                                                   */

static PyTypeObject EvWatcher_Type;

static int evloop_watcher_init(PyObject *m);
static void evloop_watcher_cb(struct ev_loop *l, ev_watcher *w, int revents);
static int evloop_watcher_setup(EvWatcher *self, EvLoop *loop, const evloop_kind *kind,
                                ev_watcher *w, PyObject *ref, PyObject *priority);
static int evloop_watcher_can_start(EvWatcher *self);
static int evloop_watcher_set_callback(EvWatcher *self, PyObject *const *args,
                                       Py_ssize_t nargs);
static int evloop_watcher_activate(EvWatcher *self);
static PyObject *evloop_start_with(EvWatcher *self, PyObject *const *args, Py_ssize_t nargs,
                                   int pass_events);
static void evloop_watcher_stop_internal(EvWatcher *self);
static void evloop_watcher_stop_and_forget(EvWatcher *self);
static void evloop_watcher_unlink(EvWatcher *self);
/* the base type's slots, shared by every kind's type */
static void watcher_dealloc(EvWatcher *self);
static int watcher_traverse(EvWatcher *self, visitproc visit, void *arg);
static int watcher_clear(EvWatcher *self);
static PyObject *watcher_repr(EvWatcher *self);

/* ===================================================================================== */
/* watcher kinds (csrc/evloop_watchers.c)                                                 */

static PyTypeObject EvIo_Type, EvTimer_Type, EvSignal_Type, EvIdle_Type, EvPrepare_Type,
    EvCheck_Type, EvAsync_Type, EvChild_Type, EvStat_Type, EvFork_Type;
static const evloop_kind evloop_kind_io, evloop_kind_timer, evloop_kind_signal,
    evloop_kind_idle, evloop_kind_prepare, evloop_kind_check, evloop_kind_fork,
    evloop_kind_async, evloop_kind_child, evloop_kind_stat;

static int evloop_watchers_init(PyObject *m);
static int evloop_check_events(PyObject *obj, int *out);

/* ===================================================================================== */
/* callback queue (csrc/evloop_callbacks.c)                                               */

static PyTypeObject EvCallback_Type;

static int evloop_callbacks_init(PyObject *m);
static EvCallback *evloop_callback_new(PyObject *func, PyObject *args);
static void evloop_queue_append(EvLoop *self, EvCallback *cb);
static void evloop_queue_clear(EvLoop *self);
static void evloop_run_callbacks(struct ev_loop *l, ev_prepare *w, int revents);

/* ===================================================================================== */
/* loop (csrc/evloop_loop.c)                                                              */

static PyTypeObject EvLoop_Type;
static EvLoop *evloop_default_obj;     /* borrowed; cleared by dealloc */
static EvLoop *evloop_live;            /* list of every live loop object */

static int evloop_loop_init(PyObject *m);
static int evloop_loop_alive(EvLoop *self);
static int evloop_loop_foreign(EvLoop *loop);
static int evloop_ensure_evpipe(EvLoop *self);
static PyObject *evloop_backend_names(unsigned int backends);
static PyObject *evloop_run_callback_common(EvLoop *self, PyObject *const *args,
                                            Py_ssize_t nargs, int threadsafe);
static void evloop_threadsafe_backpressure(Py_ssize_t backlog);
static PyObject *pyloop_handle_error_impl(EvLoop *self, PyObject *context, PyObject *type,
                                          PyObject *value, PyObject *tb);

/* ===================================================================================== */
/* arena (csrc/evloop_arena.c)                                                            */

static void evloop_install_arena_cache(void);

/* ===================================================================================== */
/* hub (csrc/evloop_hub.c)                                                                */

static PyObject *evloop_str_loop;      /* interned "loop" */
static PyObject *evloop_hub_key;       /* interned "evloop.hub" */
/* raised by a wait in the hub greenlet itself (SockIO's wait-first takes it as "try first") */
static PyObject *evloop_exc_BlockingSwitchOutError;

/* undo(arg) of evloop_hub_switch */
typedef void (*evloop_hub_undo)(void *arg);

static int evloop_hub_init(PyObject *m);
static int evloop_hub_ready(void);
static PyObject *evloop_current_hub(void);
static PyObject *evloop_get_hub(void);
static int evloop_hub_report(PyObject *hub, PyObject *context);
EVLOOP_HOT PyObject *evloop_hub_switch(PyObject *hub, PyObject *const *what,
                                     evloop_hub_undo undo, void *arg);
static int evloop_hub_wait_timeout(PyObject *hub, EvWatcher *w, EvTimer *timer,
                                   double timeout);
static int evloop_cancel_wait(EvWatcher *w, PyObject *exc);

/* ===================================================================================== */
/* io (csrc/evloop_io.c)                                                                  */

static int evloop_io_init(PyObject *m);

/* ===================================================================================== */
/* aio (csrc/evloop_aio.c)                                                                */

static int evloop_aio_init(PyObject *m);
/* the loop's reader/writer table, used by the transports (d: AIO_READ or AIO_WRITE);
 * struct AioLoop and AIO_READ/AIO_WRITE are defined in evloop_aio.c, which the unity file
 * includes before evloop_transport.c (the transports read its `closed` and `debug`) */
static PyTypeObject AioLoop_Type;
static PyObject *aio_add_fd(struct AioLoop *self, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames, int d);
static int aio_fd_remove(struct AioLoop *self, int fd, int d);

/* ===================================================================================== */
/* transport (csrc/evloop_transport.c)                                                    */

static int evloop_transport_init(PyObject *m);

/* ===================================================================================== */
/* module (csrc/evloop_module.c)                                                          */

static int evloop_add_type(PyObject *m, const char *name, PyTypeObject *t);

#endif
