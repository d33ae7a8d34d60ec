/* evloop.h — the C objects behind evloop.core, shared by the glue's translation units.
 *
 * Why it exists: the loop, watcher and callback types are plain CPython extension types
 * defined in C, so a libev event reaches its Python callable through one C call
 * (PyObject_Vectorcall) and Python code calls their methods without a cffi crossing.
 * What it must not do: expose libev internals to Python, or hold the GIL-free poll state
 * anywhere but in the loop object (each thread may run its own loop).
 */
#ifndef EVLOOP_H
#define EVLOOP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "evloop_config.h"
#include "ev.h"

/* Watcher flags. */
#define EVLOOP_W_STARTED     0x01 /* the loop holds a reference and lists the watcher */
#define EVLOOP_W_UNREF       0x02 /* ev_unref has been applied for this watcher */
#define EVLOOP_W_NOREF       0x04 /* user asked ref=False */
#define EVLOOP_W_CLOSED      0x08 /* close() was called: cannot start again */
#define EVLOOP_W_PASS_EVENTS 0x10 /* io: call callback(events, *args) */
#define EVLOOP_W_SIGOWNED    0x20 /* signal: counted in the process-wide signal table */
#define EVLOOP_W_CHILDCOUNT  0x40 /* child: counted towards the SIGCHLD handler */
#define EVLOOP_W_SWITCH      0x80 /* callback is a Waiter: switch to its greenlet (hub) */
#define EVLOOP_W_FD_TRUSTED  0x100 /* io: the owner knows the fd is open (SockIO: a system
                                      call on it just said EAGAIN); skip the fcntl check */

/* run_callback queue entries */
#define EVLOOP_CB_CALL          0 /* callback(*args) */
#define EVLOOP_CB_WAITER_SWITCH 1 /* callback is a Waiter: waiter.switch(args[0]) */
#define EVLOOP_CB_GREENLET_SWITCH 2 /* callback is a greenlet yielding in sleep(0) */

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
    /* evloop.aio loops bound to this loop (csrc/evloop_aio.c): detached before destroy */
    struct AioLoop *aio_loops;
    /* every live loop, for fork handling */
    struct EvLoop *live_prev, *live_next;
    PyObject *weakreflist;
} EvLoop;

#endif
