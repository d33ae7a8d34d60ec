/* evloop_io.c — the socket fast path: try the system call, wait on the fd only on EAGAIN.
 *
 * Why it exists: a cooperative recv/send is "try; on EAGAIN wait for readiness; retry".
 * Done in Python that raises and catches BlockingIOError on every wait and makes several
 * calls per operation. SockIO does the whole loop in one C call: the system call, the wait
 * on the fd's io watcher (with the socket's timeout), the retry — no Python exception in
 * between — and errno becomes a Python exception only through csrc/evloop_errors.c
 * (evloop_raise_errno, evloop_raise_timeout).
 * _sock_install puts that fast path in evloop.socket.socket's class as recv, recv_into,
 * send and sendall: `sock.recv` is a bound method that holds the socket, as the stdlib's.
 *
 * What it must not do: own the fd, or outlive the socket's hold on it. The Python socket
 * object owns and closes the fd; SockIO only watches it, and close() (called just before
 * the fd is closed, by socket.close and by the socket's finalizer) wakes any greenlet
 * still waiting on it with EBADF and makes every later call raise EBADF, so that nothing
 * reads, writes or waits on a dead, possibly reused, fd. It must not wait in any hub but
 * the calling thread's current one (a socket outlives hubs and moves between threads),
 * and must not accept arguments the stdlib's socket refuses: whatever the fast path does
 * not recognise is judged by the stdlib's own method (evloop_sock_check_args).
 */
#include "evloop_internal.h"
#include <poll.h>
#include <sys/socket.h>


/* a _socket.socket without a fd (evloop/_stdlib_socket.py), set by evloop.socket: the
 * judge of arguments the fast path does not take */
static PyObject *evloop_sock_probe = NULL;

typedef struct {
    PyObject_HEAD
    int fd;               /* -1 once closed */
    double timeout;       /* < 0: block without limit; 0: non-blocking; > 0: seconds */
    /* The hub and loop the watchers below belong to: the hub of the thread that waited
     * last (NULL before the first wait). A wait in another hub rebinds them, or, while a
     * greenlet of that other hub still waits on them, uses watchers of its own. */
    PyObject *hub;        /* strong or NULL */
    EvLoop *loop;         /* strong or NULL */
    EvIo *read_w;         /* created on first wait; strong */
    EvIo *write_w;
    EvTimer *timer;       /* shared by the waits (one greenlet waits per direction) */
    EvTimer *timer_w;
    PyObject *weakreflist;
    /* recv's wait-first hint (evloop_sockio_call): the last recv had to wait for its data;
     * a send has completed since (so the next recv waits before trying); wait-first recvs
     * since the last one that tried first */
    unsigned char read_waited;
    unsigned char wait_first;
    unsigned char probe;
} EvSockIO;

static PyTypeObject EvSockIO_Type;

static int
evloop_sockio_alive(EvSockIO *self)
{
    if (self->fd < 0) {
        evloop_raise_errno(EBADF, "Bad file descriptor");
        return -1;
    }
    return 0;
}

static EvIo *
evloop_sockio_new_io(EvLoop *loop, int fd, int events)
{
    EvIo *w = (EvIo *)EvIo_Type.tp_alloc(&EvIo_Type, 0);
    if (w == NULL)
        return NULL;
    ev_io_init(&w->io, (void (*)(struct ev_loop *, ev_io *, int))evloop_watcher_cb, fd, events);
    if (evloop_watcher_setup(&w->base, loop, &evloop_kind_io, (ev_watcher *)&w->io, NULL,
                             NULL) < 0) {
        Py_DECREF(w);
        return NULL;
    }
    /* SockIO waits only right after a system call on the fd returned EAGAIN, and close()
     * (called before the owner closes the fd) stops these watchers for good */
    w->base.flags |= EVLOOP_W_FD_TRUSTED;
    return w;
}

static EvTimer *
evloop_sockio_new_timer(EvLoop *loop)
{
    EvTimer *t = (EvTimer *)EvTimer_Type.tp_alloc(&EvTimer_Type, 0);
    if (t == NULL)
        return NULL;
    ev_timer_init(&t->t, (void (*)(struct ev_loop *, ev_timer *, int))evloop_watcher_cb, 0.0,
                  0.0);
    if (evloop_watcher_setup(&t->base, loop, &evloop_kind_timer, (ev_watcher *)&t->t, NULL,
                             NULL) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return t;
}

static EvIo *
evloop_sockio_watcher(EvSockIO *self, int events)
{
    EvIo **slot = events == EV_READ ? &self->read_w : &self->write_w;
    if (*slot == NULL)
        *slot = evloop_sockio_new_io(self->loop, self->fd, events);
    return *slot;
}

static EvTimer *
evloop_sockio_timer(EvSockIO *self, int events)
{
    EvTimer **slot = events == EV_READ ? &self->timer : &self->timer_w;
    if (*slot == NULL)
        *slot = evloop_sockio_new_timer(self->loop);
    return *slot;
}

/* A greenlet waits on one of this SockIO's watchers (in whichever loop they belong to).
 * A greenlet abandoned by a destroyed hub does not count: its watchers were stopped, and
 * it holds its own references to them. */
static int
evloop_sockio_busy(EvSockIO *self)
{
    EvWatcher *ws[4] = {(EvWatcher *)self->read_w, (EvWatcher *)self->write_w,
                        (EvWatcher *)self->timer, (EvWatcher *)self->timer_w};
    for (int i = 0; i < 4; i++) {
        if (ws[i] != NULL && ws[i]->loop->ev != NULL && ev_is_active(ws[i]->w))
            return 1;
    }
    return 0;
}

/* hub.loop, alive: a new reference, or NULL with an exception */
static EvLoop *
evloop_hub_live_loop(PyObject *hub)
{
    PyObject *loop = PyObject_GetAttr(hub, evloop_str_loop);
    if (loop == NULL)
        return NULL;
    if (!PyObject_TypeCheck(loop, &EvLoop_Type) || ((EvLoop *)loop)->ev == NULL) {
        if (loop == Py_None || PyObject_TypeCheck(loop, &EvLoop_Type))
            evloop_raise_destroyed(); /* a destroyed hub's loop is None */
        else
            PyErr_SetString(PyExc_TypeError, "hub.loop is not an evloop.core.loop");
        Py_DECREF(loop);
        return NULL;
    }
    return (EvLoop *)loop;
}

/* Make `hub` (the calling thread's) the one this SockIO's watchers belong to. 0: done;
 * 1: a greenlet of another hub still waits on the watchers: *tmp_loop (a new reference)
 * is the loop to make watchers of this wait's own in; -1 with an exception. */
static int
evloop_sockio_bind(EvSockIO *self, PyObject *hub, EvLoop **tmp_loop)
{
    EvLoop *loop = evloop_hub_live_loop(hub);
    if (loop == NULL)
        return -1;
    if (evloop_sockio_busy(self)) {
        *tmp_loop = loop;
        return 1;
    }
    /* the old watchers are stopped: they only kept the old loop alive */
    Py_CLEAR(self->read_w);
    Py_CLEAR(self->write_w);
    Py_CLEAR(self->timer);
    Py_CLEAR(self->timer_w);
    Py_INCREF(hub);
    Py_XSETREF(self->hub, hub);
    Py_XSETREF(self->loop, loop);
    return 0;
}

/* The hub the watchers belong to is the calling thread's: its loop runs in this thread,
 * under it (Hub.run sets loop.error_handler to itself, Hub.destroy unsets it). Field reads
 * only: each wait after EAGAIN is on the hot path, where looking the hub up in the
 * thread's dict cost ~110 instructions a wait (callgrind, a socketpair ping-pong). */
static inline int
evloop_sockio_hub_current(EvSockIO *self)
{
    EvLoop *l = self->loop;
    return l != NULL && l->ev != NULL && l->run_depth > 0 && l->error_handler == self->hub
           && l->running_thread == PyThread_get_thread_ident();
}

/* Wait until the fd is ready for `events`, at most `timeout` seconds (< 0: no limit), in
 * the calling thread's hub (created if it has none). 0 ready; -1 with an exception
 * (socket.timeout on expiry). */
static int
evloop_sockio_wait(EvSockIO *self, int events, double timeout)
{
    PyObject *hub;
    EvLoop *tmp_loop = NULL;
    EvIo *w = NULL;
    EvTimer *t = NULL;
    int r = -1;
    if (evloop_sockio_alive(self) < 0)
        return -1;
    if (evloop_sockio_hub_current(self)) {
        hub = self->hub;
        Py_INCREF(hub);
    }
    else if ((hub = evloop_hub_key != NULL ? evloop_current_hub() : NULL) != NULL)
        Py_INCREF(hub);
    else if (PyErr_Occurred() || (hub = evloop_get_hub()) == NULL)
        return -1;
    if (hub != self->hub || self->loop->ev == NULL) {
        r = evloop_sockio_bind(self, hub, &tmp_loop);
        if (r < 0)
            goto done;
    }
    if (tmp_loop != NULL) {
        w = evloop_sockio_new_io(tmp_loop, self->fd, events);
        if (w != NULL && timeout >= 0.0)
            t = evloop_sockio_new_timer(tmp_loop);
    }
    else {
        w = evloop_sockio_watcher(self, events);
        if (w != NULL && timeout >= 0.0)
            t = evloop_sockio_timer(self, events);
        Py_XINCREF(w);
        Py_XINCREF(t);
    }
    r = -1;
    if (w == NULL || (timeout >= 0.0 && t == NULL))
        goto done;
    r = evloop_hub_wait_timeout(hub, &w->base, t, timeout);
    if (r == 0 && self->fd >= 0) {
        /* the timer fired, perhaps in the very loop iteration the fd became ready (libev
         * runs the timer's callback first): ready wins, as with the stdlib's poll() */
        struct pollfd p = {self->fd, events == EV_READ ? POLLIN : POLLOUT, 0};
        if (poll(&p, 1, 0) > 0)
            r = 1;
    }
    if (r == 0) {
        evloop_raise_timeout();
        r = -1;
    }
    else if (r > 0 && self->fd < 0) { /* closed while we waited, woken by the close itself */
        evloop_raise_errno(EBADF, "Bad file descriptor");
        r = -1;
    }
    else if (r > 0)
        r = 0;
done:
    Py_XDECREF(w);
    Py_XDECREF(t);
    Py_XDECREF(tmp_loop);
    Py_DECREF(hub);
    return r;
}

/* After a system call failed with `err`: 1 = wait and retry, 0 = retry now (EINTR),
 * -1 = raise. */
static int
evloop_sockio_retry(EvSockIO *self, int err, int events, double timeout)
{
    if (err == EINTR)
        return PyErr_CheckSignals() < 0 ? -1 : 0;
    if (err == EAGAIN || err == EWOULDBLOCK) {
        if (timeout == 0.0) {
            evloop_raise_errno(err, NULL); /* BlockingIOError, as a non-blocking socket */
            return -1;
        }
        return evloop_sockio_wait(self, events, timeout) < 0 ? -1 : 1;
    }
    evloop_raise_errno(err, NULL);
    return -1;
}

/* Wait-first. A request/response connection (a server's handler, a client waiting for
 * its answer) alternates recv and send, and the recv right after a send almost always
 * finds nothing yet: tried first, it is a recv() that fails with EAGAIN before every
 * wait, one system call per message more than an epoll server makes (the C floor of
 * benchmarks/loadgen/echo_server.c: 1.00 recv per message; evloop: 1.84, with strace-free
 * counts under the tcp_echo load). So a recv that follows a send, on a SockIO whose last
 * recv had to wait, waits for readability first and then receives: the fd is
 * level-triggered, so data already there wakes it on the loop's next poll, and the recv
 * after the wake finds data. Guessing wrong (the peer had already answered) costs a trip
 * through the hub instead of a system call, so every EVLOOP_PROBE_EVERY-th such recv tries
 * first anyway: data found at once ends wait-first until a recv has to wait again. Not for
 * flags (MSG_PEEK, MSG_DONTWAIT ...), non-blocking sockets (timeout 0), or a recv made in
 * the hub greenlet (which must not wait; tried first it may find data, as before). */
#define EVLOOP_PROBE_EVERY 16

static int
evloop_sockio_wait_first(EvSockIO *self, int flags, double timeout)
{
    self->wait_first = 0;
    if (flags != 0 || timeout == 0.0 || ++self->probe >= EVLOOP_PROBE_EVERY) {
        self->probe = 0;
        return 0;
    }
    if (evloop_sockio_wait(self, EV_READ, timeout) == 0)
        return 1;
    /* in the hub greenlet (rare: a callback reading a socket it knows is readable) the
     * wait refuses before switching; asking first (greenlet's getcurrent) would cost
     * every other wait-first recv ~90 instructions (callgrind, io_pingpong) */
    if (PyErr_ExceptionMatches(evloop_exc_BlockingSwitchOutError)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

/* The fast path's one loop: recv (EV_READ) or send (EV_WRITE) once; on EAGAIN wait for the
 * fd (at most `timeout`) and try again; on EINTR run signal handlers and try again (a recv
 * may wait first, above). Returns the byte count, or -1 with an exception set. */
static Py_ssize_t
evloop_sockio_call(EvSockIO *self, int events, char *buf, size_t len, int flags,
                   double timeout)
{
    int waited = 0;
    if (events == EV_READ && self->wait_first
        && (waited = evloop_sockio_wait_first(self, flags, timeout)) < 0)
        return -1;
    for (;;) {
        ssize_t r;
        int again;
        if (evloop_sockio_alive(self) < 0)
            return -1;
        r = events == EV_READ ? recv(self->fd, buf, len, flags)
                              : send(self->fd, buf, len, flags);
        if (r >= 0) {
            if (events == EV_READ)
                self->read_waited = (unsigned char)waited;
            else
                self->wait_first = self->read_waited;
            return r;
        }
        if ((again = evloop_sockio_retry(self, errno, events, timeout)) < 0)
            return -1;
        waited |= again;
    }
}

static PyObject *
sockio_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "timeout", "hub", NULL};
    PyObject *fdobj, *timeoutobj = Py_None, *hub = Py_None;
    EvLoop *loop = NULL;
    int fd;
    double timeout = -1.0;
    EvSockIO *self;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OO:SockIO", kwlist, &fdobj, &timeoutobj,
                                     &hub))
        return NULL;
    if (evloop_check_fd(fdobj, &fd) < 0)
        return NULL;
    if (timeoutobj != Py_None) {
        if (evloop_get_double(timeoutobj, "timeout", &timeout) < 0)
            return NULL;
        if (timeout < 0.0) {
            PyErr_SetString(PyExc_ValueError, "Timeout value out of range");
            return NULL;
        }
    }
    /* hub: where the watchers start out; without it they are made at the first wait */
    if (hub != Py_None && (loop = evloop_hub_live_loop(hub)) == NULL)
        return NULL;
    self = (EvSockIO *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_XDECREF(loop);
        return NULL;
    }
    self->fd = fd;
    self->timeout = timeout;
    if (loop != NULL) {
        Py_INCREF(hub);
        self->hub = hub;
        self->loop = loop;
    }
    return (PyObject *)self;
}

static int
sockio_traverse(EvSockIO *self, visitproc visit, void *arg)
{
    Py_VISIT(self->hub);
    Py_VISIT(self->loop);
    Py_VISIT(self->read_w);
    Py_VISIT(self->write_w);
    Py_VISIT(self->timer);
    Py_VISIT(self->timer_w);
    return 0;
}

static int
sockio_clear(EvSockIO *self)
{
    Py_CLEAR(self->read_w);
    Py_CLEAR(self->write_w);
    Py_CLEAR(self->timer);
    Py_CLEAR(self->timer_w);
    Py_CLEAR(self->hub);
    Py_CLEAR(self->loop);
    return 0;
}

static void
sockio_dealloc(EvSockIO *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    sockio_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The fd is about to be closed: the loop's other io watchers on it — greenlets waiting
 * through another path (socket.wait_read(fileno), evloop.os.nb_read, a second SockIO)
 * and watchers with a callback (select, poll, selectors, a server's listener) — would
 * otherwise wait on a dead fd for ever (epoll forgets a closed fd without an event).
 * A greenlet blocked in hub.wait gets `exc` thrown in (as SockIO's own waiters do); a
 * callback gets one READ|WRITE event, runs after the fd is closed and finds out by
 * itself. libev lists the watchers of an fd in anfds[fd] (ev.c is in this translation
 * unit). The loop may be another thread's: it only runs with the GIL, which we hold,
 * except in its poll, which the wake-up below interrupts. */
static int
evloop_fd_closing(EvLoop *loop, int fd, PyObject *exc)
{
    struct ev_loop *l = loop->ev;
    ev_watcher_list *wl;
    int fed = 0;
    if (l == NULL || fd < 0 || fd >= l->anfdmax)
        return 0;
    /* callbacks first: feeding leaves the list as it is */
    for (wl = l->anfds[fd].head; wl; wl = wl->next) {
        EvWatcher *w = (EvWatcher *)wl->data;
        if (wl->cb == (void *)evloop_watcher_cb && !(w->flags & EVLOOP_W_HOOKED)) {
            ev_feed_event(l, wl, ((ev_io *)wl)->events & (EV_READ | EV_WRITE));
            fed = 1;
        }
    }
    if (fed && evloop_loop_foreign(loop))
        ev_async_send(l, &loop->cb_async);
    /* then the waiting greenlets: cancelling one stops its watcher, which leaves the list */
    for (;;) {
        EvWatcher *found = NULL;
        for (wl = l->anfds[fd].head; wl; wl = wl->next) {
            EvWatcher *w = (EvWatcher *)wl->data;
            if (wl->cb == (void *)evloop_watcher_cb && (w->flags & EVLOOP_W_HOOKED)) {
                found = w;
                break;
            }
        }
        if (found == NULL)
            return 0;
        Py_INCREF(found);
        if (evloop_cancel_wait(found, exc) < 0) {
            Py_DECREF(found);
            return -1;
        }
        if (ev_is_active(found->w)) /* not a Waiter's: stop it, or this would not end */
            evloop_watcher_stop_internal(found);
        Py_DECREF(found);
    }
}

/* evloop_fd_closing in every live loop: the fd number is the process's, and a greenlet of
 * any thread may wait on it (through this SockIO, another one, or a callback watcher). */
static int
evloop_fd_closing_everywhere(int fd, PyObject *exc)
{
    Py_ssize_t n = 0, i;
    EvLoop **loops;
    int rc = 0;
    for (EvLoop *l = evloop_live; l != NULL; l = l->live_next)
        n++;
    if (n == 0)
        return 0;
    loops = PyMem_Malloc((size_t)n * sizeof(EvLoop *));
    if (loops == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    /* held, since what a wake-up drops may run code that destroys a loop; one being
     * deallocated (its stop_all can close sockets) is left alone */
    i = 0;
    for (EvLoop *l = evloop_live; l != NULL && i < n; l = l->live_next) {
        if (Py_REFCNT(l) > 0) {
            Py_INCREF(l);
            loops[i++] = l;
        }
    }
    n = i;
    for (i = 0; i < n; i++) {
        if (rc == 0 && evloop_fd_closing(loops[i], fd, exc) < 0)
            rc = -1;
        Py_DECREF(loops[i]);
    }
    PyMem_Free(loops);
    return rc;
}

/* close(detach=False): the fd is about to be closed by its owner. From now on every call
 * raises EBADF. Wake waiters with EBADF: this SockIO's (in whichever thread's loop they
 * wait), and every other watcher of the fd in every loop. detach=True: the fd stays open
 * (socket.detach hands it on): only this SockIO's waiters. */
static PyObject *
sockio_close(EvSockIO *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"detach", NULL};
    PyObject *exc;
    EvIo *ws[2] = {self->read_w, self->write_w};
    EvTimer *ts[2] = {self->timer, self->timer_w};
    int fd = self->fd, detach = 0, rc = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p:close", kwlist, &detach))
        return NULL;
    if (self->fd < 0)
        Py_RETURN_NONE;
    self->fd = -1;
    exc = evloop_errno_exception(EBADF, "File descriptor was closed in another greenlet");
    if (exc == NULL)
        return NULL;
    /* hold them: cancelling or stopping may run code that drops this SockIO's references */
    for (int i = 0; i < 2; i++) {
        Py_XINCREF(ws[i]);
        Py_XINCREF(ts[i]);
    }
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (ws[i] == NULL)
            continue;
        if (evloop_cancel_wait(&ws[i]->base, exc) < 0)
            rc = -1;
        evloop_watcher_stop_internal(&ws[i]->base);
        ws[i]->base.flags |= EVLOOP_W_CLOSED;
    }
    for (int i = 0; i < 2; i++) {
        if (ts[i] != NULL)
            evloop_watcher_stop_internal(&ts[i]->base);
    }
    if (rc == 0 && !detach)
        rc = evloop_fd_closing_everywhere(fd, exc);
    for (int i = 0; i < 2; i++) {
        Py_XDECREF(ws[i]);
        Py_XDECREF(ts[i]);
    }
    Py_DECREF(exc);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* wait_read/wait_write([timeout]): without an argument the socket's timeout applies (a
 * non-blocking socket's 0.0 meaning "no limit" here: an explicit wait always waits) */
static PyObject *
evloop_sockio_wait_method(EvSockIO *self, PyObject *args, int events, const char *fmt)
{
    PyObject *t = Py_None;
    double timeout = self->timeout;
    if (!PyArg_ParseTuple(args, fmt, &t))
        return NULL;
    if (t != Py_None && evloop_get_double(t, "timeout", &timeout) < 0)
        return NULL;
    if (evloop_sockio_wait(self, events, timeout == 0.0 && t == Py_None ? -1.0 : timeout) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
sockio_wait_read(EvSockIO *self, PyObject *args)
{
    return evloop_sockio_wait_method(self, args, EV_READ, "|O:wait_read");
}

static PyObject *
sockio_wait_write(EvSockIO *self, PyObject *args)
{
    return evloop_sockio_wait_method(self, args, EV_WRITE, "|O:wait_write");
}

/* recv(n) for a large n without a large allocation.
 *
 * CPython's socket.recv(n) (and asyncio's transports, which recv(256 KiB)) allocate an
 * n-byte bytes object, receive into it and shrink it. From 128 KiB glibc's malloc serves
 * that with mmap(); the shrink is an mremap() and the free a munmap(), so glibc never sees
 * a large chunk freed and never raises its mmap threshold: every such recv costs three
 * system calls and page faults (measured: 62% of an asyncio stream echo's CPU time).
 * Instead, for bufsize in (EVLOOP_RECV_DIRECT_MAX, EVLOOP_RECV_SCRATCH], recv() goes into
 * one scratch buffer and only the bytes received are copied into the result, as uvloop
 * does with its read buffer.
 *
 * The buffer is shared by every caller in the process: it is only used with the GIL held,
 * between a recv() that succeeded and the copy right after it, with no Python code, no
 * greenlet switch and no GIL release in between. It is allocated on first use and kept. */
#define EVLOOP_RECV_DIRECT_MAX (32 * 1024)
#define EVLOOP_RECV_SCRATCH (256 * 1024)
static char *evloop_recv_scratch = NULL;

/* Where a recv() of `n` bytes should write: the scratch buffer (1) or a bytes object of
 * its own (0); -1 with MemoryError set. Flags other than 0 (MSG_TRUNC can report more
 * than n, MSG_PEEK ...) always take the direct path, as CPython does it. */
static int
evloop_recv_use_scratch(Py_ssize_t n, int flags)
{
    if (flags != 0 || n <= EVLOOP_RECV_DIRECT_MAX || n > EVLOOP_RECV_SCRATCH)
        return 0;
    if (evloop_recv_scratch == NULL) {
        evloop_recv_scratch = PyMem_RawMalloc(EVLOOP_RECV_SCRATCH);
        if (evloop_recv_scratch == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 1;
}

/* recv's bufsize argument, with CPython's errors; -1 with an exception set. */
static Py_ssize_t
evloop_recv_bufsize(PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred())
        return -1;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "negative buffersize in recv");
        return -1;
    }
    return n;
}

/* --- arguments ---------------------------------------------------------------------------
 *
 * The fast path takes the calls hot code makes: exact ints in range, a buffer the object
 * exports at once, no keywords. Anything else (a bool, an __index__ object, a keyword, a
 * negative size, a str, a buffer too small, an int past the C type) is first judged by the
 * stdlib's own method, called with the same arguments on a _socket.socket without a fd:
 * it raises what a stdlib socket raises (type and message, of the running CPython, for a
 * bound method or a call through the class as CPython words them differently), or it
 * accepts the arguments and fails at the system call with EBADF. Accepted arguments are
 * then converted here as the stdlib converts them. */

#define EVLOOP_FORM_BOUND 0  /* f = sock.recv; f(...) */
#define EVLOOP_FORM_CLASS 1  /* sock.recv(...), socket.recv(sock, ...) */

/* an exact int that fits a Py_ssize_t: 1; anything else 0 (no exception) */
EVLOOP_HOT int
evloop_fast_ssize(PyObject *o, Py_ssize_t *out)
{
    Py_ssize_t v;
    if (!PyLong_CheckExact(o))
        return 0;
    v = PyLong_AsSsize_t(o);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    *out = v;
    return 1;
}

/* an exact int that fits a C int: 1; anything else 0 (no exception) */
EVLOOP_HOT int
evloop_fast_int(PyObject *o, int *out)
{
    long v;
    if (!PyLong_CheckExact(o))
        return 0;
    v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (v < INT_MIN || v > INT_MAX)
        return 0;
    *out = (int)v;
    return 1;
}

/* 0: the stdlib's method accepts these arguments; -1 with its exception set. */
static int
evloop_sock_check_args(const char *name, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames, int form)
{
    PyObject *r;
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    if (evloop_sock_probe == NULL)
        return 0; /* evloop.socket not imported: the conversions below still check */
    if (form == EVLOOP_FORM_BOUND) {
        PyObject *meth = PyObject_GetAttrString(evloop_sock_probe, name);
        if (meth == NULL)
            return -1;
        r = PyObject_Vectorcall(meth, args, (size_t)nargs, kwnames);
        Py_DECREF(meth);
    }
    else {
        PyObject *small[8], **argv = small, *nameobj;
        if (nargs + nkw + 1 > 8) {
            argv = PyMem_Malloc((size_t)(nargs + nkw + 1) * sizeof(PyObject *));
            if (argv == NULL) {
                PyErr_NoMemory();
                return -1;
            }
        }
        argv[0] = evloop_sock_probe;
        for (Py_ssize_t i = 0; i < nargs + nkw; i++)
            argv[i + 1] = args[i];
        nameobj = PyUnicode_FromString(name);
        r = nameobj == NULL ? NULL
                            : PyObject_VectorcallMethod(nameobj, argv, (size_t)(nargs + 1),
                                                        kwnames);
        Py_XDECREF(nameobj);
        if (argv != small)
            PyMem_Free(argv);
    }
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_OSError)) {
        PyObject *type, *value, *tb, *err;
        long code;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        err = value != NULL ? PyObject_GetAttrString(value, "errno") : NULL;
        code = err != NULL && PyLong_Check(err) ? PyLong_AsLong(err) : -1;
        Py_XDECREF(err);
        PyErr_Clear();
        if (code == EBADF) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            return 0;
        }
        PyErr_Restore(type, value, tb);
    }
    return -1;
}

/* The arguments by the stdlib's parameter names `names` (n of them): positional ones
 * first, then keywords. out[i] is borrowed, NULL when not given. */
static int
evloop_sock_collect(const char *name, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames, const char *const *names, int n, PyObject **out)
{
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    for (int i = 0; i < n; i++)
        out[i] = NULL;
    if (nargs > n) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (%zd given)", name, n,
                     nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        out[i] = args[i];
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int j = 0;
        while (j < n && PyUnicode_CompareWithASCIIString(key, names[j]) != 0)
            j++;
        if (j == n || out[j] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", name,
                         key);
            return -1;
        }
        out[j] = args[nargs + k];
    }
    if (out[0] == NULL) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s' (pos 1)", name,
                     names[0]);
        return -1;
    }
    return 0;
}

/* an integer argument the stdlib accepted (an int subclass, an __index__ object) */
static int
evloop_arg_ssize(PyObject *o, Py_ssize_t *out)
{
    PyObject *i = PyNumber_Index(o);
    if (i == NULL)
        return -1;
    *out = PyLong_AsSsize_t(i);
    Py_DECREF(i);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static int
evloop_arg_int(PyObject *o, int *out)
{
    PyObject *i = PyNumber_Index(o);
    long v;
    if (i == NULL)
        return -1;
    v = PyLong_AsLong(i);
    Py_DECREF(i);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < INT_MIN || v > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to C int");
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* a contiguous buffer of `data` (writable: for recv_into); -1 with an exception */
static int
evloop_arg_buffer(PyObject *data, Py_buffer *view, int writable)
{
    if (PyObject_GetBuffer(data, view, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0)
        return -1;
    if (!PyBuffer_IsContiguous(view, 'C')) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "a contiguous buffer is required, not '%.100s'",
                     Py_TYPE(data)->tp_name);
        return -1;
    }
    return 0;
}

/* the fast path's buffer: 1 exported, 0 not (no exception) */
EVLOOP_HOT int
evloop_fast_buffer(PyObject *data, Py_buffer *view, int writable)
{
    if (PyObject_GetBuffer(data, view, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return 0;
    }
    /* a simple request gets no strides from a well-behaved exporter (bytes, bytearray,
     * memoryview): contiguous without asking */
    if (view->suboffsets != NULL
        || (view->strides != NULL && !PyBuffer_IsContiguous(view, 'C'))) {
        PyBuffer_Release(view);
        return 0;
    }
    return 1;
}

static const char *const evloop_kw_recv[] = {"bufsize", "flags"};
static const char *const evloop_kw_recv_into[] = {"buffer", "nbytes", "flags"};
static const char *const evloop_kw_send[] = {"data", "flags"};

/* --- the operations ------------------------------------------------------------------- */

EVLOOP_HOT PyObject *
evloop_sockio_recv(EvSockIO *self, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames, int form)
{
    Py_ssize_t n, got;
    int flags = 0;
    PyObject *buf;
    if (kwnames != NULL || nargs < 1 || nargs > 2 || !evloop_fast_ssize(args[0], &n) || n < 0
        || (nargs == 2 && !evloop_fast_int(args[1], &flags))) {
        PyObject *a[2];
        if (evloop_sock_check_args("recv", args, nargs, kwnames, form) < 0
            || evloop_sock_collect("recv", args, nargs, kwnames, evloop_kw_recv, 2, a) < 0
            || evloop_arg_ssize(a[0], &n) < 0 || (a[1] && evloop_arg_int(a[1], &flags) < 0))
            return NULL;
        if (n < 0) {
            PyErr_SetString(PyExc_ValueError, "negative buffersize in recv");
            return NULL;
        }
    }
    if (n == 0) /* as CPython: nothing to read, no system call, no wait (even if closed) */
        return PyBytes_FromStringAndSize(NULL, 0);
    switch (evloop_recv_use_scratch(n, flags)) {
    case -1:
        return NULL;
    case 1:
        /* a wait inside evloop_sockio_call happens only after EAGAIN, before anything was
         * written to the scratch buffer; the copy follows the successful recv() at once */
        got = evloop_sockio_call(self, EV_READ, evloop_recv_scratch, (size_t)n, 0,
                                 self->timeout);
        return got < 0 ? NULL : PyBytes_FromStringAndSize(evloop_recv_scratch, got);
    }
    buf = PyBytes_FromStringAndSize(NULL, n);
    if (buf == NULL)
        return NULL;
    got = evloop_sockio_call(self, EV_READ, PyBytes_AS_STRING(buf), (size_t)n, flags,
                             self->timeout);
    if (got < 0) {
        Py_DECREF(buf);
        return NULL;
    }
    if (got != n && _PyBytes_Resize(&buf, got) < 0)
        return NULL;
    return buf;
}

EVLOOP_HOT PyObject *
evloop_sockio_recv_into(EvSockIO *self, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames, int form)
{
    Py_buffer view;
    Py_ssize_t n = 0;
    int flags = 0;
    int fast = kwnames == NULL && nargs >= 1 && nargs <= 3
               && (nargs < 2 || (evloop_fast_ssize(args[1], &n) && n >= 0))
               && (nargs < 3 || evloop_fast_int(args[2], &flags))
               && evloop_fast_buffer(args[0], &view, 1);
    if (fast && view.len < n) {
        PyBuffer_Release(&view);
        fast = 0;
    }
    if (!fast) {
        PyObject *a[3];
        n = 0;
        flags = 0;
        if (evloop_sock_check_args("recv_into", args, nargs, kwnames, form) < 0
            || evloop_sock_collect("recv_into", args, nargs, kwnames, evloop_kw_recv_into, 3,
                                   a) < 0
            || (a[1] && evloop_arg_ssize(a[1], &n) < 0)
            || (a[2] && evloop_arg_int(a[2], &flags) < 0))
            return NULL;
        if (n < 0) {
            PyErr_SetString(PyExc_ValueError, "negative buffersize in recv_into");
            return NULL;
        }
        if (evloop_arg_buffer(a[0], &view, 1) < 0)
            return NULL;
        if (view.len < n) {
            PyBuffer_Release(&view);
            PyErr_SetString(PyExc_ValueError, "buffer too small for requested bytes");
            return NULL;
        }
    }
    if (n == 0)
        n = view.len;
    if (n == 0) { /* as CPython: an empty buffer, nothing to read, no wait (even if closed) */
        PyBuffer_Release(&view);
        return PyLong_FromLong(0);
    }
    n = evloop_sockio_call(self, EV_READ, view.buf, (size_t)n, flags, self->timeout);
    PyBuffer_Release(&view);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

/* send/sendall's (data[, flags]) into view and *flags; -1 with an exception */
EVLOOP_HOT int
evloop_sockio_send_args(const char *name, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames, int form, Py_buffer *view, int *flags)
{
    PyObject *a[2];
    *flags = 0;
    if (kwnames == NULL && nargs >= 1 && nargs <= 2
        && (nargs < 2 || evloop_fast_int(args[1], flags))
        && evloop_fast_buffer(args[0], view, 0))
        return 0;
    *flags = 0;
    if (evloop_sock_check_args(name, args, nargs, kwnames, form) < 0
        || evloop_sock_collect(name, args, nargs, kwnames, evloop_kw_send, 2, a) < 0
        || (a[1] && evloop_arg_int(a[1], flags) < 0))
        return -1;
    return evloop_arg_buffer(a[0], view, 0);
}

EVLOOP_HOT PyObject *
evloop_sockio_send(EvSockIO *self, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames, int form)
{
    Py_buffer view;
    Py_ssize_t sent;
    int flags;
    if (evloop_sockio_send_args("send", args, nargs, kwnames, form, &view, &flags) < 0)
        return NULL;
    sent = evloop_sockio_call(self, EV_WRITE, view.buf, (size_t)view.len, flags,
                              self->timeout);
    PyBuffer_Release(&view);
    return sent < 0 ? NULL : PyLong_FromSsize_t(sent);
}

/* sendall: the timeout bounds the whole call, as for a blocking stdlib socket. */
EVLOOP_HOT PyObject *
evloop_sockio_sendall(EvSockIO *self, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames, int form)
{
    Py_buffer view;
    int flags;
    Py_ssize_t off = 0;
    double deadline = 0.0;
    if (evloop_sockio_send_args("sendall", args, nargs, kwnames, form, &view, &flags) < 0)
        return NULL;
    if (evloop_sockio_alive(self) < 0) /* also for b"": the stdlib's send() says EBADF */
        goto fail;
    if (self->timeout > 0.0)
        deadline = ev_time() + self->timeout;
    while (off < view.len) {
        ssize_t r;
        double left = self->timeout;
        if (evloop_sockio_alive(self) < 0)
            goto fail;
        r = send(self->fd, (char *)view.buf + off, (size_t)(view.len - off), flags);
        if (r >= 0) {
            off += r;
            continue;
        }
        if (self->timeout > 0.0) {
            left = deadline - ev_time();
            if (left <= 0.0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                evloop_raise_timeout();
                goto fail;
            }
        }
        if (evloop_sockio_retry(self, errno, EV_WRITE, left) < 0)
            goto fail;
    }
    PyBuffer_Release(&view);
    self->wait_first = self->read_waited; /* the next recv may wait first (above) */
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&view);
    return NULL;
}

/* SockIO's own methods (the socket class's are below) */
#define EVLOOP_SOCKIO_METHOD(op)                                                         \
    static PyObject *sockio_##op(EvSockIO *self, PyObject *const *args, Py_ssize_t nargs,  \
                                 PyObject *kwnames)                                      \
    {                                                                                    \
        return evloop_sockio_##op(self, args, nargs, kwnames, EVLOOP_FORM_BOUND);        \
    }
EVLOOP_SOCKIO_METHOD(recv)
EVLOOP_SOCKIO_METHOD(recv_into)
EVLOOP_SOCKIO_METHOD(send)
EVLOOP_SOCKIO_METHOD(sendall)
#undef EVLOOP_SOCKIO_METHOD

static PyObject *
sockio_get_timeout(EvSockIO *self, void *c)
{
    if (self->timeout < 0.0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(self->timeout);
}

static int
sockio_set_timeout(EvSockIO *self, PyObject *value, void *c)
{
    double t;
    if (value == NULL || value == Py_None) {
        self->timeout = -1.0;
        return 0;
    }
    if (evloop_get_double(value, "timeout", &t) < 0)
        return -1;
    if (t < 0.0) {
        PyErr_SetString(PyExc_ValueError, "Timeout value out of range");
        return -1;
    }
    self->timeout = t;
    return 0;
}

static PyObject *
sockio_get_fd(EvSockIO *self, void *c)
{
    return PyLong_FromLong(self->fd);
}

static PyObject *
sockio_get_hub(EvSockIO *self, void *c)
{
    if (self->hub == NULL)
        Py_RETURN_NONE;
    Py_INCREF(self->hub);
    return self->hub;
}

#define EVLOOP_FASTCALL_KW(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS

static PyMethodDef sockio_methods[] = {
    {"recv", EVLOOP_FASTCALL_KW(sockio_recv), "recv(bufsize[, flags])"},
    {"recv_into", EVLOOP_FASTCALL_KW(sockio_recv_into), "recv_into(buffer[, nbytes[, flags]])"},
    {"send", EVLOOP_FASTCALL_KW(sockio_send), "send(data[, flags])"},
    {"sendall", EVLOOP_FASTCALL_KW(sockio_sendall), "sendall(data[, flags])"},
    {"wait_read", (PyCFunction)sockio_wait_read, METH_VARARGS,
     "wait_read(timeout=None): block until readable; socket.timeout on expiry"},
    {"wait_write", (PyCFunction)sockio_wait_write, METH_VARARGS, NULL},
    {"close", (PyCFunction)(void (*)(void))sockio_close, METH_VARARGS | METH_KEYWORDS,
     "close(detach=False): the fd is about to be closed (detach: handed on): wake the "
     "greenlets waiting on it with EBADF; every later call raises EBADF"},
    {NULL}
};

static PyGetSetDef sockio_getset[] = {
    {"timeout", (getter)sockio_get_timeout, (setter)sockio_set_timeout,
     "None: block without limit; 0.0: non-blocking; > 0: seconds per operation", NULL},
    {"fd", (getter)sockio_get_fd, NULL, NULL, NULL},
    {"hub", (getter)sockio_get_hub, NULL,
     "the hub whose loop the watchers belong to (the last one waited in), or None", NULL},
    {NULL}
};

static PyTypeObject EvSockIO_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "evloop.core.SockIO",
    .tp_basicsize = sizeof(EvSockIO),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "SockIO(fd, timeout=None, hub=None): cooperative I/O on a non-blocking fd",
    .tp_new = sockio_new,
    .tp_dealloc = (destructor)sockio_dealloc,
    .tp_traverse = (traverseproc)sockio_traverse,
    .tp_clear = (inquiry)sockio_clear,
    .tp_weaklistoffset = offsetof(EvSockIO, weakreflist),
    .tp_methods = sockio_methods,
    .tp_getset = sockio_getset,
};

/* --- recv, recv_into, send, sendall as methods of the socket class ---------------------
 *
 * A method bound to a SockIO (`sock._io.recv`) holds the SockIO, not the socket: kept
 * after the socket is gone it would use the fd number the socket had, which by then
 * belongs to another connection. So _sock_install(cls) puts these operations in the socket
 * class itself as method descriptors (PyDescr_NewMethod, the type CPython's own C methods
 * have): `sock.recv` is a built-in method bound to the socket, which it keeps alive, as
 * the stdlib's socket methods do; and CPython's specialised calls of method descriptors
 * and built-in methods apply to them. The function finds the socket's SockIO in the
 * class's `_io` slot at the offset its member descriptor gives. */

#if PY_VERSION_HEX >= 0x030C0000
#define EVLOOP_T_OBJECT_EX Py_T_OBJECT_EX
#define EVLOOP_READONLY Py_READONLY
#else
#include <structmember.h> /* 3.10, 3.11: the member types are only there */
#define EVLOOP_T_OBJECT_EX T_OBJECT_EX
#define EVLOOP_READONLY READONLY
#endif

static PyTypeObject *evloop_sock_class = NULL; /* strong; set once by _sock_install */
static Py_ssize_t evloop_sock_io_offset = 0;   /* of its `_io` slot */

/* sock's SockIO, a new reference; NULL with an exception. A socket without one (made by
 * __new__ alone, or whose __init__ failed) has no fd either: EBADF, as a stdlib socket
 * without a fd. */
EVLOOP_HOT EvSockIO *
evloop_sock_io(PyObject *sock)
{
    PyObject *io;
    /* (the method descriptor checked sock's type; this guards the offset read below
     * against any other way of calling these functions) */
    if (!Py_IS_TYPE(sock, evloop_sock_class) && (evloop_sock_class == NULL
                                                || !PyObject_TypeCheck(sock, evloop_sock_class))) {
        PyErr_Format(PyExc_TypeError, "not an evloop socket: %.100s", Py_TYPE(sock)->tp_name);
        return NULL;
    }
    io = *(PyObject **)((char *)sock + evloop_sock_io_offset);
    if (io == NULL) {
        evloop_raise_errno(EBADF, "Bad file descriptor");
        return NULL;
    }
    if (!Py_IS_TYPE(io, &EvSockIO_Type) && !PyObject_TypeCheck(io, &EvSockIO_Type)) {
        PyErr_Format(PyExc_TypeError, "%.100s._io is not an evloop.core.SockIO",
                     Py_TYPE(sock)->tp_name);
        return NULL;
    }
    Py_INCREF(io); /* the call may wait: whatever happens to sock._io meanwhile */
    return (EvSockIO *)io;
}

#define EVLOOP_SOCK_METHOD(op)                                                           \
    static PyObject *evloop_sock_##op(PyObject *sock, PyObject *const *args,              \
                                      Py_ssize_t nargs, PyObject *kwnames)               \
    {                                                                                    \
        EvSockIO *io = evloop_sock_io(sock);                                             \
        PyObject *r;                                                                     \
        if (io == NULL)                                                                  \
            return NULL;                                                                 \
        r = evloop_sockio_##op(io, args, nargs, kwnames, EVLOOP_FORM_CLASS);             \
        Py_DECREF(io);                                                                   \
        return r;                                                                        \
    }
EVLOOP_SOCK_METHOD(recv)
EVLOOP_SOCK_METHOD(recv_into)
EVLOOP_SOCK_METHOD(send)
EVLOOP_SOCK_METHOD(sendall)
#undef EVLOOP_SOCK_METHOD

/* socket.__del__ (the class's tp_finalize calls it): the stdlib's finalizer, which
 * closes the fd of a socket that was never closed (with a ResourceWarning), preceded by
 * what close() does first: the SockIO refuses the fd from now on and wakes every waiter
 * on it. In C, so that the warning names the line that dropped the socket, as it does for
 * a stdlib socket. */
static PyObject *
evloop_sock_finalize(PyObject *sock, PyObject *unused)
{
    PyObject *io, *r;
    if (evloop_sock_class == NULL || !PyObject_TypeCheck(sock, evloop_sock_class)) {
        PyErr_Format(PyExc_TypeError, "not an evloop socket: %.100s", Py_TYPE(sock)->tp_name);
        return NULL;
    }
    Py_INCREF(Py_None);
    r = Py_None;
    io = *(PyObject **)((char *)sock + evloop_sock_io_offset);
    if (io != NULL && PyObject_TypeCheck(io, &EvSockIO_Type)) {
        Py_INCREF(io);
        Py_DECREF(r);
        r = sockio_close((EvSockIO *)io, evloop_empty_tuple, NULL);
        Py_DECREF(io);
    }
    /* _socket.socket.__del__(sock), also after a failure above (it keeps the exception):
     * the fd must be closed */
    if (evloop_sock_probe != NULL && Py_TYPE(evloop_sock_probe)->tp_finalize != NULL)
        Py_TYPE(evloop_sock_probe)->tp_finalize(sock);
    return r;
}

static PyMethodDef evloop_sock_defs[] = {
    {"recv", EVLOOP_FASTCALL_KW(evloop_sock_recv),
     "recv(bufsize[, flags]) -> data\n\nReceive up to bufsize bytes, waiting cooperatively "
     "(the socket's timeout applies)."},
    {"recv_into", EVLOOP_FASTCALL_KW(evloop_sock_recv_into),
     "recv_into(buffer, [nbytes[, flags]]) -> nbytes_read\n\nReceive into buffer, waiting "
     "cooperatively."},
    {"send", EVLOOP_FASTCALL_KW(evloop_sock_send),
     "send(data[, flags]) -> count\n\nSend data, waiting cooperatively until some can be "
     "sent."},
    {"sendall", EVLOOP_FASTCALL_KW(evloop_sock_sendall),
     "sendall(data[, flags])\n\nSend all of data, waiting cooperatively; the timeout bounds "
     "the whole call."},
    {"__del__", (PyCFunction)evloop_sock_finalize, METH_NOARGS,
     "Before the stdlib's finalizer closes the fd of a socket never closed: make its SockIO "
     "refuse the fd and wake every waiter on it, as close() does."},
    {NULL}
};

/* _sock_install(cls): put recv, recv_into, send, sendall and __del__ in cls, whose `_io`
 * slot holds each instance's SockIO. Once per process (evloop.socket.socket). */
static PyObject *
mod_sock_install(PyObject *m, PyObject *cls)
{
    PyObject *member;
    PyMemberDef *def;
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "_sock_install() needs a class");
        return NULL;
    }
    if (evloop_sock_class != NULL) {
        if ((PyObject *)evloop_sock_class == cls)
            Py_RETURN_NONE;
        PyErr_SetString(PyExc_RuntimeError, "_sock_install(): another class is installed");
        return NULL;
    }
    /* the slot's member descriptor (a class attribute lookup returns it as it is) */
    member = PyObject_GetAttrString(cls, "_io");
    if (member == NULL)
        PyErr_Clear();
    def = member != NULL && Py_IS_TYPE(member, &PyMemberDescr_Type)
          ? ((PyMemberDescrObject *)member)->d_member : NULL;
    Py_XDECREF(member); /* the class keeps it, and so its PyMemberDef */
    if (def == NULL || def->type != EVLOOP_T_OBJECT_EX || (def->flags & EVLOOP_READONLY)) {
        PyErr_Format(PyExc_TypeError, "%.100s needs a writable `_io` entry in __slots__",
                     ((PyTypeObject *)cls)->tp_name);
        return NULL;
    }
    for (PyMethodDef *d = evloop_sock_defs; d->ml_name != NULL; d++) {
        PyObject *descr = PyDescr_NewMethod((PyTypeObject *)cls, d);
        int rc;
        if (descr == NULL)
            return NULL;
        rc = PyObject_SetAttrString(cls, d->ml_name, descr);
        Py_DECREF(descr);
        if (rc < 0)
            return NULL;
    }
    evloop_sock_io_offset = def->offset;
    Py_INCREF(cls);
    evloop_sock_class = (PyTypeObject *)cls;
    Py_RETURN_NONE;
}

/* _recv(sock, bufsize): one non-blocking recv() on sock.fileno(), as sock.recv(bufsize)
 * on a non-blocking socket (BlockingIOError when nothing is there), through the scratch
 * buffer above. evloop.aio's socket transport reads with it; it never waits and never
 * releases the GIL (MSG_DONTWAIT: also on a socket left in blocking mode). */
static PyObject *evloop_str_fileno = NULL;

static PyObject *
mod_recv(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *fdobj, *buf;
    Py_ssize_t n;
    long fd;
    ssize_t got;
    int scratch;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_recv(sock, bufsize)");
        return NULL;
    }
    if ((n = evloop_recv_bufsize(args[1])) < 0)
        return NULL;
    if (evloop_str_fileno == NULL &&
        (evloop_str_fileno = PyUnicode_InternFromString("fileno")) == NULL)
        return NULL;
    fdobj = PyObject_CallMethodNoArgs(args[0], evloop_str_fileno);
    if (fdobj == NULL)
        return NULL;
    fd = PyLong_AsLong(fdobj);
    Py_DECREF(fdobj);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > INT_MAX) /* a closed socket's fileno() is -1: EBADF, as sock.recv */
        return evloop_raise_errno(EBADF, "Bad file descriptor");
    if (n == 0)
        return PyBytes_FromStringAndSize(NULL, 0);
    scratch = evloop_recv_use_scratch(n, 0);
    if (scratch < 0)
        return NULL;
    if (scratch) {
        got = recv((int)fd, evloop_recv_scratch, (size_t)n, MSG_DONTWAIT);
        if (got < 0)
            return evloop_raise_errno(errno, NULL);
        return PyBytes_FromStringAndSize(evloop_recv_scratch, got);
    }
    buf = PyBytes_FromStringAndSize(NULL, n);
    if (buf == NULL)
        return NULL;
    got = recv((int)fd, PyBytes_AS_STRING(buf), (size_t)n, MSG_DONTWAIT);
    if (got < 0) {
        int err = errno;
        Py_DECREF(buf);
        return evloop_raise_errno(err, NULL);
    }
    if (got != n && _PyBytes_Resize(&buf, got) < 0)
        return NULL;
    return buf;
}

/* _io_configure(socket.timeout, probe): set by evloop.socket */
static PyObject *
mod_io_configure(PyObject *m, PyObject *args)
{
    PyObject *timeout_exc, *probe;
    if (!PyArg_ParseTuple(args, "OO:_io_configure", &timeout_exc, &probe))
        return NULL;
    Py_INCREF(timeout_exc);
    evloop_set_timeout_exception(timeout_exc);
    Py_INCREF(probe);
    Py_XSETREF(evloop_sock_probe, probe);
    Py_RETURN_NONE;
}

static PyMethodDef evloop_io_functions[] = {
    {"_io_configure", mod_io_configure, METH_VARARGS, NULL},
    {"_sock_install", mod_sock_install, METH_O,
     "_sock_install(cls): recv, recv_into, send, sendall, __del__ as C methods of cls"},
    {"_recv", (PyCFunction)(void (*)(void))mod_recv, METH_FASTCALL,
     "_recv(sock, bufsize): one non-blocking recv on sock.fileno(), without a large "
     "allocation"},
    {NULL}
};

static int
evloop_io_init(PyObject *m)
{
    if (evloop_add_type(m, "SockIO", &EvSockIO_Type) < 0)
        return -1;
    return PyModule_AddFunctions(m, evloop_io_functions);
}
