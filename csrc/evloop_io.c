/* evloop_io.c — the socket fast path: try the system call, wait on the fd only on EAGAIN.
 *
 * Why it exists: a cooperative recv/send is "try; on EAGAIN wait for readiness; retry".
 * Done in Python that raises and catches BlockingIOError on every wait and makes several
 * calls per operation. SockIO does the whole loop in one C call: the system call, the wait
 * on the fd's io watcher (with the socket's timeout), the retry — no Python exception in
 * between — and errno becomes a Python exception only through evloop_raise_errno.
 *
 * What it must not do: own the fd. The Python socket object owns and closes it; SockIO
 * only watches it, and close() (called just before the fd is closed) wakes any greenlet
 * still waiting on it with EBADF so that nothing waits on a dead, possibly reused, fd.
 * Included by evloop.c (one translation unit).
 */
#include <sys/socket.h>

static PyObject *evloop_exc_timeout = NULL; /* socket.timeout, set by evloop.socket */

typedef struct {
    PyObject_HEAD
    int fd;               /* -1 once closed */
    double timeout;       /* < 0: block without limit; 0: non-blocking; > 0: seconds */
    PyObject *hub;        /* strong */
    EvLoop *loop;         /* strong */
    EvIo *read_w;         /* created on first wait; strong */
    EvIo *write_w;
    EvTimer *timer;       /* shared by the waits (one greenlet waits per direction) */
    EvTimer *timer_w;
    PyObject *weakreflist;
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
evloop_sockio_watcher(EvSockIO *self, int events)
{
    EvIo **slot = events == EV_READ ? &self->read_w : &self->write_w;
    if (*slot == NULL) {
        EvIo *w = (EvIo *)EvIo_Type.tp_alloc(&EvIo_Type, 0);
        if (w == NULL)
            return NULL;
        ev_io_init(&w->io, (void (*)(struct ev_loop *, ev_io *, int))evloop_watcher_cb,
                   self->fd, events);
        if (evloop_watcher_setup(&w->base, self->loop, &evloop_kind_io, (ev_watcher *)&w->io,
                                 NULL, NULL) < 0) {
            Py_DECREF(w);
            return NULL;
        }
        /* SockIO waits only right after a system call on the fd returned EAGAIN, and
         * close() (called before the owner closes the fd) stops these watchers for good */
        w->base.flags |= EVLOOP_W_FD_TRUSTED;
        *slot = w;
    }
    return *slot;
}

static EvTimer *
evloop_sockio_timer(EvSockIO *self, int events)
{
    EvTimer **slot = events == EV_READ ? &self->timer : &self->timer_w;
    if (*slot == NULL) {
        EvTimer *t = (EvTimer *)EvTimer_Type.tp_alloc(&EvTimer_Type, 0);
        if (t == NULL)
            return NULL;
        ev_timer_init(&t->t, (void (*)(struct ev_loop *, ev_timer *, int))evloop_watcher_cb,
                      0.0, 0.0);
        if (evloop_watcher_setup(&t->base, self->loop, &evloop_kind_timer, (ev_watcher *)&t->t,
                                 NULL, NULL) < 0) {
            Py_DECREF(t);
            return NULL;
        }
        *slot = t;
    }
    return *slot;
}

/* Wait until the fd is ready for `events`, at most `timeout` seconds (< 0: no limit).
 * 0 ready; -1 with an exception (socket.timeout on expiry). */
static int
evloop_sockio_wait(EvSockIO *self, int events, double timeout)
{
    EvIo *w;
    EvTimer *t = NULL;
    int r;
    if (evloop_sockio_alive(self) < 0)
        return -1;
    if (self->loop->ev == NULL) {
        evloop_raise_destroyed();
        return -1;
    }
    w = evloop_sockio_watcher(self, events);
    if (w == NULL)
        return -1;
    if (timeout >= 0.0 && (t = evloop_sockio_timer(self, events)) == NULL)
        return -1;
    r = evloop_hub_wait_timeout(self->hub, &w->base, t, timeout);
    if (r == 0) {
        PyErr_SetString(evloop_exc_timeout ? evloop_exc_timeout : PyExc_TimeoutError,
                        "timed out");
        return -1;
    }
    if (r < 0)
        return -1;
    if (self->fd < 0) { /* closed while we waited, woken by the close itself */
        evloop_raise_errno(EBADF, "Bad file descriptor");
        return -1;
    }
    return 0;
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

/* The fast path's one loop: recv (EV_READ) or send (EV_WRITE) once; on EAGAIN wait for the
 * fd (at most `timeout`) and try again; on EINTR run signal handlers and try again.
 * Returns the byte count, or -1 with an exception set. */
static Py_ssize_t
evloop_sockio_call(EvSockIO *self, int events, char *buf, size_t len, int flags,
                   double timeout)
{
    for (;;) {
        ssize_t r;
        if (evloop_sockio_alive(self) < 0)
            return -1;
        r = events == EV_READ ? recv(self->fd, buf, len, flags)
                              : send(self->fd, buf, len, flags);
        if (r >= 0)
            return r;
        if (evloop_sockio_retry(self, errno, events, timeout) < 0)
            return -1;
    }
}

static PyObject *
sockio_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "timeout", "hub", NULL};
    PyObject *fdobj, *timeoutobj = Py_None, *hub = Py_None, *loop;
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
    if (hub == Py_None) {
        hub = evloop_get_hub();
        if (hub == NULL)
            return NULL;
    }
    else {
        Py_INCREF(hub);
    }
    loop = PyObject_GetAttr(hub, evloop_str_loop);
    if (loop == NULL || !PyObject_TypeCheck(loop, &EvLoop_Type)) {
        if (loop != NULL)
            PyErr_SetString(PyExc_TypeError, "hub.loop is not an evloop.core.loop");
        Py_XDECREF(loop);
        Py_DECREF(hub);
        return NULL;
    }
    self = (EvSockIO *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(loop);
        Py_DECREF(hub);
        return NULL;
    }
    self->fd = fd;
    self->timeout = timeout;
    self->hub = hub;
    self->loop = (EvLoop *)loop;
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
 * unit). */
static int
evloop_fd_closing(EvLoop *loop, int fd, PyObject *exc)
{
    struct ev_loop *l = loop->ev;
    ev_watcher_list *wl;
    if (l == NULL || fd < 0 || fd >= l->anfdmax)
        return 0;
    /* callbacks first: feeding leaves the list as it is */
    for (wl = l->anfds[fd].head; wl; wl = wl->next) {
        EvWatcher *w = (EvWatcher *)wl->data;
        if (wl->cb == (void *)evloop_watcher_cb && !(w->flags & EVLOOP_W_SWITCH))
            ev_feed_event(l, wl, ((ev_io *)wl)->events & (EV_READ | EV_WRITE));
    }
    /* then the waiting greenlets: cancelling one stops its watcher, which leaves the list */
    for (;;) {
        EvWatcher *found = NULL;
        for (wl = l->anfds[fd].head; wl; wl = wl->next) {
            EvWatcher *w = (EvWatcher *)wl->data;
            if (wl->cb == (void *)evloop_watcher_cb && (w->flags & EVLOOP_W_SWITCH)) {
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

/* close(detach=False): the fd is about to be closed by its owner. Wake waiters with
 * EBADF: this SockIO's, and every other watcher of the fd in the loop. detach=True: the
 * fd stays open (socket.detach hands it on): only this SockIO's waiters. */
static PyObject *
sockio_close(EvSockIO *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"detach", NULL};
    PyObject *exc;
    EvIo *ws[2] = {self->read_w, self->write_w};
    int fd = self->fd, detach = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p:close", kwlist, &detach))
        return NULL;
    if (self->fd < 0)
        Py_RETURN_NONE;
    self->fd = -1;
    exc = PyObject_CallFunction(PyExc_OSError, "is", EBADF,
                                "File descriptor was closed in another greenlet");
    if (exc == NULL)
        return NULL;
    for (int i = 0; i < 2; i++) {
        if (ws[i] != NULL && evloop_cancel_wait(&ws[i]->base, exc) < 0) {
            Py_DECREF(exc);
            return NULL;
        }
        if (ws[i] != NULL) {
            Py_INCREF(ws[i]);
            evloop_watcher_stop_internal(&ws[i]->base);
            ws[i]->base.flags |= EVLOOP_W_CLOSED;
            Py_DECREF(ws[i]);
        }
    }
    if (self->timer)
        evloop_watcher_stop_internal(&self->timer->base);
    if (self->timer_w)
        evloop_watcher_stop_internal(&self->timer_w->base);
    if (!detach && evloop_fd_closing(self->loop, fd, exc) < 0) {
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(exc);
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

static PyObject *
sockio_recv(EvSockIO *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t n, got;
    int flags = 0;
    PyObject *buf;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "recv(bufsize[, flags])");
        return NULL;
    }
    if ((n = evloop_recv_bufsize(args[0])) < 0)
        return NULL;
    if (nargs == 2) {
        flags = (int)PyLong_AsLong(args[1]);
        if (flags == -1 && PyErr_Occurred())
            return NULL;
    }
    if (n == 0) /* as CPython: nothing to read, no system call, no wait */
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

static PyObject *
sockio_recv_into(EvSockIO *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t n = 0;
    int flags = 0;
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "recv_into(buffer[, nbytes[, flags]])");
        return NULL;
    }
    if (nargs >= 2) {
        n = PyLong_AsSsize_t(args[1]);
        if (n == -1 && PyErr_Occurred())
            return NULL;
    }
    if (nargs == 3) {
        flags = (int)PyLong_AsLong(args[2]);
        if (flags == -1 && PyErr_Occurred())
            return NULL;
    }
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "negative buffersize in recv_into");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError)) { /* as CPython's recv_into */
            PyErr_Format(PyExc_TypeError,
                         "recv_into() argument 'buffer' must be read-write bytes-like "
                         "object, not %.100s", Py_TYPE(args[0])->tp_name);
        }
        return NULL;
    }
    if (n == 0)
        n = view.len;
    else if (view.len < n) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "buffer too small for requested bytes");
        return NULL;
    }
    if (n == 0) { /* an empty buffer: nothing to read, do not wait for data */
        PyBuffer_Release(&view);
        return PyLong_FromLong(0);
    }
    n = evloop_sockio_call(self, EV_READ, view.buf, (size_t)n, flags, self->timeout);
    PyBuffer_Release(&view);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *
sockio_send(EvSockIO *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t sent;
    int flags = 0;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "send(data[, flags])");
        return NULL;
    }
    if (nargs == 2) {
        flags = (int)PyLong_AsLong(args[1]);
        if (flags == -1 && PyErr_Occurred())
            return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    sent = evloop_sockio_call(self, EV_WRITE, view.buf, (size_t)view.len, flags,
                              self->timeout);
    PyBuffer_Release(&view);
    return sent < 0 ? NULL : PyLong_FromSsize_t(sent);
}

/* sendall: the timeout bounds the whole call, as for a blocking stdlib socket. */
static PyObject *
sockio_sendall(EvSockIO *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    int flags = 0;
    Py_ssize_t off = 0;
    double deadline = 0.0;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "sendall(data[, flags])");
        return NULL;
    }
    if (nargs == 2) {
        flags = (int)PyLong_AsLong(args[1]);
        if (flags == -1 && PyErr_Occurred())
            return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
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
                PyErr_SetString(evloop_exc_timeout ? evloop_exc_timeout : PyExc_TimeoutError,
                                "timed out");
                goto fail;
            }
        }
        if (evloop_sockio_retry(self, errno, EV_WRITE, left) < 0)
            goto fail;
    }
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&view);
    return NULL;
}

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

static PyMethodDef sockio_methods[] = {
    {"recv", (PyCFunction)(void (*)(void))sockio_recv, METH_FASTCALL, "recv(bufsize[, flags])"},
    {"recv_into", (PyCFunction)(void (*)(void))sockio_recv_into, METH_FASTCALL,
     "recv_into(buffer[, nbytes[, flags]])"},
    {"send", (PyCFunction)(void (*)(void))sockio_send, METH_FASTCALL, "send(data[, flags])"},
    {"sendall", (PyCFunction)(void (*)(void))sockio_sendall, METH_FASTCALL,
     "sendall(data[, flags])"},
    {"wait_read", (PyCFunction)sockio_wait_read, METH_VARARGS,
     "wait_read(timeout=None): block until readable; socket.timeout on expiry"},
    {"wait_write", (PyCFunction)sockio_wait_write, METH_VARARGS, NULL},
    {"close", (PyCFunction)(void (*)(void))sockio_close, METH_VARARGS | METH_KEYWORDS,
     "close(detach=False): the fd is about to be closed (detach: handed on): wake the "
     "greenlets waiting on it with EBADF"},
    {NULL}
};

static PyGetSetDef sockio_getset[] = {
    {"timeout", (getter)sockio_get_timeout, (setter)sockio_set_timeout,
     "None: block without limit; 0.0: non-blocking; > 0: seconds per operation", NULL},
    {"fd", (getter)sockio_get_fd, NULL, NULL, NULL},
    {"hub", (getter)sockio_get_hub, NULL, NULL, NULL},
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

static PyObject *
mod_io_configure(PyObject *m, PyObject *timeout_exc)
{
    Py_INCREF(timeout_exc);
    Py_XSETREF(evloop_exc_timeout, timeout_exc);
    Py_RETURN_NONE;
}
