/* evloop_signals.c — the process-wide signal table and SIGCHLD reaping.
 *
 * Why it exists: signals are process-wide while libev loops are not. libev lets one loop
 * at a time watch a given signal (a second trips an assert: memory corruption under
 * NDEBUG), so the table here records each signal's owner loop and the disposition to put
 * back. libev's own child watchers are compiled out (EV_CHILD_ENABLE 0); evloop reaps per
 * pid from an internal SIGCHLD watcher on the default loop and feeds the child watchers.
 *
 * What it must not do: reap a child nobody here watches (waitpid(-1) only while an
 * any-child watcher is active), keep SIGCHLD's handler installed once no child watcher
 * needs it, or run Python code while walking the child list.
 */
#include "evloop_internal.h"

/* Signals: libev lets one loop at a time watch a given signal (a second one trips an
 * assert, i.e. memory corruption under NDEBUG). This table, guarded by the GIL, records the
 * owner and puts the previous handler back when the last watcher of a signal stops
 * (evloop_sigslot is declared in evloop_internal.h: the signal watcher kind uses it). */
static evloop_sigslot evloop_sigs[NSIG];

/* Children: evloop compiles libev without its child watchers (EV_CHILD_ENABLE 0 in
 * evloop_config.h): libev's SIGCHLD handler reaps *every* child with waitpid(-1), and a
 * status reaped for nobody is lost to whoever else waits for that child (asyncio's child
 * watchers, subprocess in another thread, the program's own os.waitpid). evloop's child
 * watchers (the "child" kind, csrc/evloop_watchers.c) reap per pid instead: while one is
 * active, an internal signal watcher for SIGCHLD on the default loop calls
 * waitpid(pid, WNOHANG) for the pids that have an active watcher, and
 * waitpid(-1, WNOHANG) only while an any-child (pid 0) watcher is active. The handler is installed while child watchers are active (or on
 * request: install_sigchld) and the previous disposition put back when they stop. */
struct EvChild;
static struct EvChild *evloop_children = NULL; /* active child watchers (default loop) */
static ev_signal evloop_sigchld_w;            /* the internal SIGCHLD watcher */
static ev_prepare evloop_children_again_w;    /* another any-child look, next iteration */
static int evloop_sigchld_installed = 0;      /* evloop_sigchld_w is started */
static int evloop_child_watchers = 0;
static PyObject *evloop_sigchld_hook = NULL;  /* called once per SIGCHLD received */


/* ------------------------------------------------------------------------------------ */
/* signal and SIGCHLD bookkeeping                                                         */

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

static PyMethodDef evloop_signals_functions[] = {
    {"_set_sigchld_hook", mod_set_sigchld_hook, METH_O,
     "_set_sigchld_hook(callable or None): called once per SIGCHLD evloop's handler got"},
    {NULL}
};

static int
evloop_signals_init(PyObject *m)
{
    return PyModule_AddFunctions(m, evloop_signals_functions);
}
