/* evloop_transport.c — evloop.aio's own stream transport (TCP and Unix sockets), in C, and
 * the datagram and pipe transports made of the same machinery.
 *
 * Why it exists: a server or client on an asyncio loop spends its time in the transport:
 * readable -> recv -> protocol.data_received(bytes), and transport.write() -> send. asyncio's
 * selector transport does each step in Python (and reads with a fresh 256 KiB allocation per
 * recv). Here the type evloop.aio's StreamTransport derives from does them in C: the read
 * callback receives into a buffer reused by every transport and calls the protocol's
 * data_received (or, for an asyncio.BufferedProtocol, get_buffer/recv_into/buffer_updated)
 * directly; write() sends at once and queues only what the kernel did not take, written
 * later with one sendmsg per writable event; writelines() is one sendmsg; flow control
 * (pause_writing/resume_writing with the write buffer limits), pause/resume reading,
 * write_eof, close and abort are C too. The type is a real subclass of asyncio.Transport:
 * it is made at run time (_aio_stream_transport_type) with asyncio.Transport as its base,
 * whose only storage is BaseTransport's `_extra` slot, which this struct lays out first.
 *
 * Its reader and writer are the asyncio loop's own (aio_add_fd / aio_fd_remove in
 * evloop_aio.c): a handle whose callback is a bound C method of the transport, so readiness
 * is queued and run in the loop's batch like any asyncio reader, a stopped loop pauses it,
 * and the loop's selector view, close() and rebinding see it.
 *
 * The pipe transports (connect_read_pipe/connect_write_pipe, and so a subprocess's pipes)
 * are the same struct and functions with read()/write()/writev() (StreamTr.pipe), as two
 * more types: one with asyncio.ReadTransport's methods, one with asyncio.WriteTransport's.
 *
 * What it must not do: own policy that asyncio's users can observe beyond what asyncio's
 * transport does (the error messages, the order of protocol calls and the exception-handler
 * contexts are asyncio's, see Lib/asyncio/selector_events.py and, for pipes, unix_events.py);
 * call the protocol outside the loop's batch; keep a pointer into a caller's mutable buffer
 * past the call (what is queued is a bytes object: the caller's own when it is bytes, else a
 * copy). Connection setup and
 * teardown that touch asyncio's Server and logging (connection_made scheduling, the
 * connection_lost call, reprs, ResourceWarning) are Python: evloop/aio.py, StreamTransport.
 * Included by evloop_unity.c after evloop_aio.c (one translation unit); what it uses of
 * evloop_aio.c is declared in evloop_internal.h.
 */

#include "evloop_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#define TR_MAX_SIZE (256 * 1024)   /* asyncio's max_size: one recv reads at most this */
#define TR_IOV_MAX 64              /* iovecs per sendmsg */
#define TR_CONNLOST_WARN 5         /* asyncio's constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES */

/* StreamTr.pipe: what the fd is. A pipe transport (asyncio's _UnixReadPipeTransport and
 * _UnixWritePipeTransport) is the same machinery with read()/write()/writev() instead of
 * recv()/send()/sendmsg() (which a pipe refuses: ENOTSOCK); what differs at EOF, at the
 * peer's close and in its messages is Python (evloop/aio.py: ReadPipeTransport,
 * WritePipeTransport). */
#define TR_SOCKET 0
#define TR_READ_PIPE 1
#define TR_WRITE_PIPE 2

typedef struct {
    PyObject *obj;              /* a bytes object (strong) */
    Py_ssize_t off;             /* first byte not yet sent */
    PyObject *addr;             /* datagrams: the destination (strong), or NULL */
} TrChunk;

typedef struct {
    PyObject_HEAD
    PyObject *extra;            /* asyncio.BaseTransport's `_extra` slot (its storage) */
    AioLoop *loop;              /* strong; NULL after connection_lost */
    PyObject *sock;             /* the socket.socket (strong); NULL after connection_lost */
    PyObject *protocol;         /* strong */
    PyObject *context;          /* 3.15+: the Context callbacks run in, or NULL */
    PyObject *fdobj;            /* the fd as an int */
    unsigned char dgram;        /* a datagram transport (other reader and writer) */
    PyObject *empty_waiter;     /* loop.sendfile(): a future set once the queue is empty */
    PyObject *server;           /* the asyncio Server of an accepted connection, or NULL */
    /* datagram transports only */
    PyObject *address;          /* the address given to create_datagram_endpoint, or NULL */
    PyObject *raddr_obj;        /* the last source address made into a Python object */
    struct sockaddr_storage raddr; /* ... and its sockaddr */
    socklen_t raddr_len;
    PyObject *saddr_obj;        /* the last destination address parsed ... */
    struct sockaddr_storage saddr; /* ... into this sockaddr */
    socklen_t saddr_len;
    int family;
    unsigned char connected;    /* a peer address: send() instead of sendto() */
    int fd;
    int conn_lost;              /* asyncio's _conn_lost: connection_lost is scheduled */
    int late_writes;            /* pipes: writes after close() (asyncio counts them in its
                                   _conn_lost, which its pipe's writer does not check) */
    unsigned char closing, eof, paused, protocol_paused, protocol_connected, buffered;
    unsigned char pipe;         /* TR_SOCKET, or a pipe transport: read()/write() on a pipe */
    Py_ssize_t high, low;       /* write buffer limits */
    TrChunk *q;                 /* the write queue: q[qhead .. qhead+qlen) */
    Py_ssize_t qcap, qhead, qlen;
    Py_ssize_t qbytes;          /* bytes queued */
    PyObject *weakreflist;
    PyObject *dict;             /* pipe transports: the instance __dict__ (asyncio's pipe
                                   transports have one, and code and tests set attributes
                                   on them: CPython's test_subprocess mocks pause_reading) */
} StreamTr;

static PyObject *tr_buffered_protocol = NULL;  /* asyncio.BufferedProtocol */
static PyObject *tr_logger = NULL;             /* asyncio's logger ("asyncio") */
static PyObject *tr_kw_context = NULL;         /* ("context",) */
static char *tr_scratch = NULL;                /* the reused receive buffer, TR_MAX_SIZE */
static PyObject *tr_str_call_soon = NULL, *tr_str_data_received = NULL,
    *tr_str_get_buffer = NULL, *tr_str_buffer_updated = NULL, *tr_minus_one = NULL,
    *tr_str_datagram_received = NULL;

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                    */

static int
tr_check_loop(StreamTr *self)
{
    if (self->loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the transport has no loop (connection lost)");
        return -1;
    }
    return 0;
}

/* debug mode: asyncio's debug log lines ("%r pauses reading", ...) */
static int
tr_debug(StreamTr *self, const char *what)
{
    PyObject *r;
    if (self->loop == NULL || !self->loop->debug || tr_logger == NULL)
        return 0;
    r = PyObject_CallMethod(tr_logger, "debug", "sO", what, (PyObject *)self);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The reader's and writer's callbacks: bound C methods made for each registration (not
 * kept: a transport that keeps a bound method of itself is a reference cycle, and asyncio
 * expects a failed connection to be freed without the garbage collector). */
static PyObject *tr_read_ready(StreamTr *self, PyObject *unused);
static PyObject *tr_write_ready(StreamTr *self, PyObject *unused);
static PyObject *tr_dgram_read_ready(StreamTr *self, PyObject *unused);
static PyObject *tr_dgram_sendto_ready(StreamTr *self, PyObject *unused);
static PyMethodDef tr_cb_defs[4] = {
    {"_read_ready", (PyCFunction)tr_read_ready, METH_NOARGS, NULL},
    {"_write_ready", (PyCFunction)tr_write_ready, METH_NOARGS, NULL},
    {"_read_ready", (PyCFunction)tr_dgram_read_ready, METH_NOARGS, NULL},
    {"_sendto_ready", (PyCFunction)tr_dgram_sendto_ready, METH_NOARGS, NULL},
};

/* start the reader (d=AIO_READ) or writer through the loop */
static int
tr_add_io(StreamTr *self, int d)
{
    PyObject *args[3], *h, *cb;
    if (tr_check_loop(self) < 0)
        return -1;
    cb = PyCFunction_New(&tr_cb_defs[(self->dgram ? 2 : 0) + (d == AIO_READ ? 0 : 1)],
                         (PyObject *)self);
    if (cb == NULL)
        return -1;
    args[0] = self->fdobj;
    args[1] = cb;
    if (self->context != NULL) {
        args[2] = self->context;
        h = aio_add_fd(self->loop, args, 2, tr_kw_context, d);
    }
    else {
        h = aio_add_fd(self->loop, args, 2, NULL, d);
    }
    Py_DECREF(cb);
    if (h == NULL)
        return -1;
    Py_DECREF(h);
    return 0;
}

static void
tr_remove_io(StreamTr *self, int d)
{
    if (self->loop != NULL && !self->loop->closed && aio_fd_remove(self->loop, self->fd, d) < 0)
        PyErr_WriteUnraisable((PyObject *)self);  /* only a debug-mode repr can fail */
}

/* loop.call_soon(callback, arg) with the transport's context */
static int
tr_call_soon(StreamTr *self, PyObject *callback, PyObject *arg)
{
    PyObject *args[4], *res;
    if (tr_check_loop(self) < 0)
        return -1;
    args[0] = (PyObject *)self->loop;
    args[1] = callback;
    args[2] = arg;
    if (self->context != NULL) {
        args[3] = self->context;
        res = PyObject_VectorcallMethod(tr_str_call_soon, args,
                                        3 | PY_VECTORCALL_ARGUMENTS_OFFSET, tr_kw_context);
    }
    else {
        res = PyObject_VectorcallMethod(tr_str_call_soon, args,
                                        3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

static int
tr_is_fatal_signal(void)
{
    return PyErr_ExceptionMatches(PyExc_SystemExit)
        || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
}

/* The current exception goes to self._fatal_error(exc, message) (Python: it logs or calls
 * the exception handler as asyncio does, then _force_close). 0, or -1 when the exception is
 * SystemExit/KeyboardInterrupt (left set, to propagate) or _fatal_error itself failed. */
static int
tr_fatal(StreamTr *self, const char *message)
{
    PyObject *type, *value, *tb, *msg, *res;
    if (tr_is_fatal_signal())
        return -1;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    msg = PyUnicode_FromString(message);
    if (msg == NULL) {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return -1;
    }
    res = PyObject_CallMethod((PyObject *)self, "_fatal_error", "OO",
                              value ? value : Py_None, msg);
    Py_DECREF(msg);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

/* a protocol callback (pause_writing/resume_writing) failed: the exception handler */
static int
tr_report(StreamTr *self, const char *message)
{
    PyObject *type, *value, *tb, *ctx, *res;
    if (tr_is_fatal_signal())
        return -1;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    ctx = Py_BuildValue("{s:s,s:O,s:O,s:O}", "message", message, "exception",
                        value ? value : Py_None, "transport", (PyObject *)self, "protocol",
                        self->protocol ? self->protocol : Py_None);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (ctx == NULL)
        return -1;
    if (self->loop == NULL) {
        Py_DECREF(ctx);
        return 0;
    }
    res = PyObject_CallMethod((PyObject *)self->loop, "call_exception_handler", "O", ctx);
    Py_DECREF(ctx);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* the write queue                                                                            */

static void
tr_queue_clear(StreamTr *self)
{
    for (Py_ssize_t i = 0; i < self->qlen; i++) {
        Py_DECREF(self->q[self->qhead + i].obj);
        Py_XDECREF(self->q[self->qhead + i].addr);
    }
    self->qhead = self->qlen = 0;
    self->qbytes = 0;
}

/* append data[off:] (obj is a bytes object, referenced) */
static int
tr_queue_push(StreamTr *self, PyObject *obj, Py_ssize_t off)
{
    if (self->qhead + self->qlen == self->qcap) {
        if (self->qhead > 0) {
            memmove(self->q, self->q + self->qhead, (size_t)self->qlen * sizeof(TrChunk));
            self->qhead = 0;
        }
        if (self->qlen == self->qcap) {
            Py_ssize_t n = self->qcap ? self->qcap * 2 : 8;
            TrChunk *q = PyMem_Realloc(self->q, (size_t)n * sizeof(TrChunk));
            if (q == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            self->q = q;
            self->qcap = n;
        }
    }
    Py_INCREF(obj);
    self->q[self->qhead + self->qlen].obj = obj;
    self->q[self->qhead + self->qlen].off = off;
    self->q[self->qhead + self->qlen].addr = NULL;
    self->qlen++;
    self->qbytes += PyBytes_GET_SIZE(obj) - off;
    return 0;
}

/* queue what was not sent of a caller's buffer: bytes objects by reference, anything
 * else copied (the caller may change or resize it after write() returns) */
static int
tr_queue_rest(StreamTr *self, PyObject *data, const char *buf, Py_ssize_t len, Py_ssize_t sent)
{
    PyObject *copy;
    int r;
    if (PyBytes_CheckExact(data))
        return tr_queue_push(self, data, sent);
    copy = PyBytes_FromStringAndSize(buf + sent, len - sent);
    if (copy == NULL)
        return -1;
    r = tr_queue_push(self, copy, 0);
    Py_DECREF(copy);
    return r;
}

/* drop n sent bytes from the head of the queue */
static void
tr_queue_consume(StreamTr *self, Py_ssize_t n)
{
    self->qbytes -= n;
    while (n > 0 && self->qlen > 0) {
        TrChunk *c = &self->q[self->qhead];
        Py_ssize_t left = PyBytes_GET_SIZE(c->obj) - c->off;
        if (n < left) {
            c->off += n;
            return;
        }
        n -= left;
        Py_DECREF(c->obj);
        self->qhead++;
        self->qlen--;
    }
    if (self->qlen == 0)
        self->qhead = 0;
}

static ssize_t
tr_sendmsg(StreamTr *self, struct iovec *iov, int n)
{
    struct msghdr msg;
    ssize_t r;
    int fd = self->fd;
    if (self->pipe) {
        do {
            r = writev(fd, iov, n);
        } while (r < 0 && errno == EINTR);
        return r;
    }
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)n;
    do {
        r = sendmsg(fd, &msg, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* flow control                                                                               */

static int
tr_maybe_pause_protocol(StreamTr *self)
{
    PyObject *res;
    if (self->qbytes <= self->high || self->protocol_paused)
        return 0;
    self->protocol_paused = 1;
    res = PyObject_CallMethod(self->protocol, "pause_writing", NULL);
    if (res == NULL)
        return tr_report(self, "protocol.pause_writing() failed");
    Py_DECREF(res);
    return 0;
}

static int
tr_maybe_resume_protocol(StreamTr *self)
{
    PyObject *res;
    if (!self->protocol_paused || self->qbytes > self->low)
        return 0;
    self->protocol_paused = 0;
    res = PyObject_CallMethod(self->protocol, "resume_writing", NULL);
    if (res == NULL)
        return tr_report(self, "protocol.resume_writing() failed");
    Py_DECREF(res);
    return 0;
}

static int
tr_set_limits(StreamTr *self, PyObject *high_o, PyObject *low_o)
{
    Py_ssize_t high = 0, low = 0;
    if (high_o != NULL && high_o != Py_None) {
        high = PyNumber_AsSsize_t(high_o, PyExc_OverflowError);
        if (high == -1 && PyErr_Occurred())
            return -1;
    }
    if (low_o != NULL && low_o != Py_None) {
        low = PyNumber_AsSsize_t(low_o, PyExc_OverflowError);
        if (low == -1 && PyErr_Occurred())
            return -1;
    }
    if (high_o == NULL || high_o == Py_None) {
        if (low_o == NULL || low_o == Py_None)
            high = 64 * 1024;
        else
            high = 4 * low;
    }
    if (low_o == NULL || low_o == Py_None)
        low = high / 4;
    if (!(high >= low && low >= 0)) {
        PyErr_Format(PyExc_ValueError, "high (%zd) must be >= low (%zd) must be >= 0",
                     high, low);
        return -1;
    }
    self->high = high;
    self->low = low;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* closing                                                                                    */

static PyObject *
tr_lost_cb(StreamTr *self)
{
    return PyObject_GetAttrString((PyObject *)self, "_call_connection_lost");
}

/* asyncio's _force_close(exc) */
static int
tr_force_close(StreamTr *self, PyObject *exc)
{
    PyObject *cb;
    int r;
    if (self->conn_lost)
        return 0;
    if (self->qlen > 0) {
        tr_queue_clear(self);
        tr_remove_io(self, AIO_WRITE);
    }
    if (!self->closing || self->pipe == TR_WRITE_PIPE) {
        self->closing = 1;
        tr_remove_io(self, AIO_READ);
    }
    self->conn_lost++;
    cb = tr_lost_cb(self);
    if (cb == NULL)
        return -1;
    r = tr_call_soon(self, cb, exc);
    Py_DECREF(cb);
    return r;
}

static PyObject *
tr_py_force_close(StreamTr *self, PyObject *exc)
{
    if (tr_force_close(self, exc) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
tr_py_abort(StreamTr *self, PyObject *unused)
{
    if (tr_force_close(self, Py_None) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int
tr_close(StreamTr *self)
{
    PyObject *cb;
    int r;
    if (self->closing)
        return 0;
    self->closing = 1;
    /* a write pipe keeps watching for its reader's close while it flushes */
    if (self->pipe != TR_WRITE_PIPE || self->qlen == 0)
        tr_remove_io(self, AIO_READ);
    if (self->qlen > 0)
        return 0;   /* flushed first: the writer calls connection_lost when done */
    self->conn_lost++;
    tr_remove_io(self, AIO_WRITE);
    cb = tr_lost_cb(self);
    if (cb == NULL)
        return -1;
    r = tr_call_soon(self, cb, Py_None);
    Py_DECREF(cb);
    return r;
}

static PyObject *
tr_py_close(StreamTr *self, PyObject *unused)
{
    if (tr_close(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------------------------- */
/* reading                                                                                    */

static int
tr_on_eof(StreamTr *self)
{
    PyObject *res;
    int keep_open;
    if (tr_debug(self, "%r received EOF") < 0)
        return -1;
    res = PyObject_CallMethod(self->protocol, "eof_received", NULL);
    if (res == NULL)
        return tr_fatal(self, "Fatal error: protocol.eof_received() call failed.");
    keep_open = PyObject_IsTrue(res);
    Py_DECREF(res);
    if (keep_open < 0)
        return tr_fatal(self, "Fatal error: protocol.eof_received() call failed.");
    if (keep_open) {
        /* the protocol may still write; nothing more can be read */
        tr_remove_io(self, AIO_READ);
        return 0;
    }
    return tr_close(self);
}

static ssize_t
tr_recv(StreamTr *self, char *buf, Py_ssize_t len)
{
    ssize_t n;
    do {
        n = self->pipe ? read(self->fd, buf, (size_t)len) : recv(self->fd, buf, (size_t)len, 0);
    } while (n < 0 && errno == EINTR);
    return n;
}

/* what asyncio's pipe transports do at EOF and at the reader's close: Python
 * (_pipe_eof: eof_received then connection_lost, whatever eof_received returns;
 * _pipe_peer_closed: connection_lost, BrokenPipeError if data was still queued) */
static int
tr_pipe_call(StreamTr *self, const char *method)
{
    PyObject *r = PyObject_CallMethod((PyObject *)self, method, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

#define TR_READ_ERROR(self) ((self)->pipe ? "Fatal read error on pipe transport" \
                                          : "Fatal read error on socket transport")
#define TR_WRITE_ERROR(self) ((self)->pipe ? "Fatal write error on pipe transport" \
                                           : "Fatal write error on socket transport")

static int
tr_read_buffered(StreamTr *self)
{
    PyObject *buf, *res, *args[2];
    Py_buffer view;
    ssize_t n;
    int err;
    args[0] = self->protocol;
    args[1] = tr_minus_one;
    buf = PyObject_VectorcallMethod(tr_str_get_buffer, args,
                                    2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (buf == NULL)
        return tr_fatal(self, "Fatal error: protocol.get_buffer() call failed.");
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) {
        Py_DECREF(buf);
        return tr_fatal(self, "Fatal error: protocol.get_buffer() call failed.");
    }
    if (view.len == 0) {
        PyBuffer_Release(&view);
        Py_DECREF(buf);
        PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
        return tr_fatal(self, "Fatal error: protocol.get_buffer() call failed.");
    }
    n = tr_recv(self, view.buf, view.len);
    err = errno;
    PyBuffer_Release(&view);
    Py_DECREF(buf);
    if (n < 0) {
        if (err == EAGAIN || err == EWOULDBLOCK)
            return 0;
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return tr_fatal(self, TR_READ_ERROR(self));
    }
    if (n == 0)
        return self->pipe ? tr_pipe_call(self, "_pipe_eof") : tr_on_eof(self);
    args[1] = PyLong_FromSsize_t(n);
    if (args[1] == NULL)
        return -1;
    res = PyObject_VectorcallMethod(tr_str_buffer_updated, args,
                                    2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(args[1]);
    if (res == NULL)
        return tr_fatal(self, "Fatal error: protocol.buffer_updated() call failed.");
    Py_DECREF(res);
    return 0;
}

/* the reader's callback: one receive, then the protocol */
static PyObject *
tr_read_ready(StreamTr *self, PyObject *unused)
{
    PyObject *data, *res, *args[2], *proto;
    ssize_t n;
    int rc;
    if (self->conn_lost || self->protocol == NULL || self->fdobj == NULL)
        Py_RETURN_NONE;
    Py_INCREF(self);
    proto = self->protocol;
    Py_INCREF(proto);
    if (self->pipe == TR_WRITE_PIPE) {
        /* a write pipe is readable when its reader closed its end */
        rc = tr_pipe_call(self, "_pipe_peer_closed");
        goto done;
    }
    if (self->buffered && !self->pipe) {   /* asyncio's pipes call data_received only */
        rc = tr_read_buffered(self);
        goto done;
    }
    if (tr_scratch == NULL) {
        tr_scratch = PyMem_RawMalloc(TR_MAX_SIZE);
        if (tr_scratch == NULL) {
            PyErr_NoMemory();
            rc = -1;
            goto done;
        }
    }
    n = tr_recv(self, tr_scratch, TR_MAX_SIZE);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            rc = 0;
            goto done;
        }
        PyErr_SetFromErrno(PyExc_OSError);
        rc = tr_fatal(self, TR_READ_ERROR(self));
        goto done;
    }
    if (n == 0) {
        rc = self->pipe ? tr_pipe_call(self, "_pipe_eof") : tr_on_eof(self);
        goto done;
    }
    data = PyBytes_FromStringAndSize(tr_scratch, n);
    if (data == NULL) {
        rc = -1;
        goto done;
    }
    args[0] = proto;
    args[1] = data;
    res = PyObject_VectorcallMethod(tr_str_data_received, args,
                                    2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(data);
    if (res == NULL) {
        /* asyncio's pipe lets the protocol's exception out of the reader's callback (the
         * loop reports it; the pipe stays open); its socket transport closes */
        rc = self->pipe ? -1
             : tr_fatal(self, "Fatal error: protocol.data_received() call failed.");
        goto done;
    }
    Py_DECREF(res);
    rc = 0;
done:
    Py_DECREF(proto);
    Py_DECREF(self);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
tr_py_pause_reading(StreamTr *self, PyObject *unused)
{
    if (self->closing || self->paused)
        Py_RETURN_NONE;
    self->paused = 1;
    tr_remove_io(self, AIO_READ);
    if (tr_debug(self, "%r pauses reading") < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
tr_py_resume_reading(StreamTr *self, PyObject *unused)
{
    if (self->closing || !self->paused)
        Py_RETURN_NONE;
    self->paused = 0;
    if (tr_add_io(self, AIO_READ) < 0 || tr_debug(self, "%r resumes reading") < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
tr_py_is_reading(StreamTr *self, PyObject *unused)
{
    return PyBool_FromLong(!self->paused && !self->closing);
}

/* what asyncio schedules after connection_made: start reading unless paused or closed */
static PyObject *
tr_py_start_reading(StreamTr *self, PyObject *unused)
{
    if (self->closing || self->paused || self->loop == NULL)
        Py_RETURN_NONE;
    if (tr_add_io(self, AIO_READ) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------------------------- */
/* writing                                                                                    */

static int
tr_write_refused(StreamTr *self, const char *what)
{
    if (self->fdobj == NULL) {
        /* made without its constructor (cls.__new__(cls)): it has no socket */
        PyErr_Format(PyExc_RuntimeError, "%s() on a transport that was never set up", what);
        return 1;
    }
    if (self->eof) {
        PyErr_Format(PyExc_RuntimeError, "Cannot call %s() after write_eof()", what);
        return 1;
    }
    if (self->empty_waiter != NULL) {
        PyErr_Format(PyExc_RuntimeError, "unable to %s; sendfile is in progress", what);
        return 1;
    }
    return 0;
}

/* the empty waiter (loop.sendfile waits for the queue to drain): its result or exception */
static int
tr_empty_waiter_done(StreamTr *self, PyObject *exc)
{
    PyObject *w = self->empty_waiter, *r;
    if (w == NULL)
        return 0;
    if (exc != NULL)
        r = PyObject_CallMethod(w, "set_exception", "O", exc);
    else
        r = PyObject_CallMethod(w, "set_result", "O", Py_None);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* write() after the connection was lost: counted, and logged past a threshold */
static PyObject *
tr_write_lost(StreamTr *self)
{
    if (self->conn_lost + self->late_writes >= TR_CONNLOST_WARN && tr_logger != NULL) {
        PyObject *r = PyObject_CallMethod(tr_logger, "warning", "s", self->pipe
                                          ? "pipe closed by peer or os.write(pipe, data) "
                                            "raised exception."
                                          : "socket.send() raised exception.");
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    if (self->conn_lost)
        self->conn_lost++;
    else
        self->late_writes++;    /* a pipe still flushing its queue after close() */
    Py_RETURN_NONE;
}

static int
tr_check_bytes_like(PyObject *data)
{
    if (PyBytes_Check(data) || PyByteArray_Check(data) || PyMemoryView_Check(data))
        return 0;
    PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not '%.100s'",
                 Py_TYPE(data)->tp_name);
    return -1;
}

static PyObject *
tr_py_write(StreamTr *self, PyObject *data)
{
    Py_buffer view;
    ssize_t n = 0;
    if (tr_check_bytes_like(data) < 0 || tr_write_refused(self, "write"))
        return NULL;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len == 0) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    if (self->conn_lost || (self->pipe && self->closing)) {
        PyBuffer_Release(&view);
        return tr_write_lost(self);
    }
    if (self->qlen == 0) {
        /* nothing queued: try to send now */
        do {
            n = self->pipe ? write(self->fd, view.buf, (size_t)view.len)
                           : send(self->fd, view.buf, (size_t)view.len, MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                PyBuffer_Release(&view);
                PyErr_SetFromErrno(PyExc_OSError);
                if (tr_fatal(self, TR_WRITE_ERROR(self)) < 0)
                    return NULL;
                Py_RETURN_NONE;
            }
            n = 0;
        }
        if (n == view.len) {
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
        if (tr_add_io(self, AIO_WRITE) < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    if (tr_queue_rest(self, data, view.buf, view.len, n) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    PyBuffer_Release(&view);
    if (tr_maybe_pause_protocol(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* the writer's callback: send what is queued, one sendmsg */
static PyObject *
tr_write_ready(StreamTr *self, PyObject *unused)
{
    struct iovec iov[TR_IOV_MAX];
    int niov = 0;
    ssize_t n;
    if (self->conn_lost || self->qlen == 0 || self->fdobj == NULL)
        Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < self->qlen && niov < TR_IOV_MAX; i++) {
        TrChunk *c = &self->q[self->qhead + i];
        iov[niov].iov_base = PyBytes_AS_STRING(c->obj) + c->off;
        iov[niov].iov_len = (size_t)(PyBytes_GET_SIZE(c->obj) - c->off);
        niov++;
    }
    n = tr_sendmsg(self, iov, niov);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            Py_RETURN_NONE;
        PyObject *exc = PyObject_CallFunction(PyExc_OSError, "is", errno, strerror(errno));
        int rc;
        if (exc == NULL)
            return NULL;
        tr_remove_io(self, AIO_WRITE);
        tr_queue_clear(self);
        Py_INCREF(self);
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        rc = tr_fatal(self, TR_WRITE_ERROR(self));
        if (rc == 0)
            rc = tr_empty_waiter_done(self, exc);
        Py_DECREF(exc);
        Py_DECREF(self);
        if (rc < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    Py_INCREF(self);
    tr_queue_consume(self, n);
    if (tr_maybe_resume_protocol(self) < 0) {    /* may write more */
        Py_DECREF(self);
        return NULL;
    }
    if (self->qlen == 0) {
        tr_remove_io(self, AIO_WRITE);
        if (tr_empty_waiter_done(self, NULL) < 0) {
            Py_DECREF(self);
            return NULL;
        }
        if (self->closing) {
            PyObject *r;
            if (self->pipe == TR_WRITE_PIPE)
                tr_remove_io(self, AIO_READ);
            r = PyObject_CallMethod((PyObject *)self, "_call_connection_lost", "O", Py_None);
            Py_DECREF(self);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
            Py_RETURN_NONE;
        }
        if (self->eof && !self->pipe && shutdown(self->fd, SHUT_WR) < 0) {
            /* the peer may be gone already: the next read reports it */
        }
    }
    Py_DECREF(self);
    Py_RETURN_NONE;
}

/* writelines(list_of_data): everything in one sendmsg when nothing is queued */
static PyObject *
tr_py_writelines(StreamTr *self, PyObject *list)
{
    PyObject *seq;
    Py_ssize_t count, total = 0, sent = 0, i;
    struct iovec iov[TR_IOV_MAX];
    Py_buffer views[TR_IOV_MAX];
    int nviews = 0, was_empty;
    if (tr_write_refused(self, "writelines"))
        return NULL;
    seq = PySequence_Fast(list, "writelines() argument must be iterable");
    if (seq == NULL)
        return NULL;
    count = PySequence_Fast_GET_SIZE(seq);
    for (i = 0; i < count; i++) {
        if (tr_check_bytes_like(PySequence_Fast_GET_ITEM(seq, i)) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    if (count == 0) {
        Py_DECREF(seq);
        Py_RETURN_NONE;
    }
    if (self->conn_lost || (self->pipe && self->closing)) {
        Py_DECREF(seq);
        return tr_write_lost(self);
    }
    if (self->qlen == 0 && count <= TR_IOV_MAX) {
        ssize_t n;
        for (i = 0; i < count; i++) {
            if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, i), &views[i],
                                   PyBUF_SIMPLE) < 0)
                goto fail;
            nviews++;
            iov[i].iov_base = views[i].buf;
            iov[i].iov_len = (size_t)views[i].len;
            total += views[i].len;
        }
        if (total == 0)
            goto release;
        n = tr_sendmsg(self, iov, (int)count);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                PyErr_SetFromErrno(PyExc_OSError);
                for (i = 0; i < nviews; i++)
                    PyBuffer_Release(&views[i]);
                Py_DECREF(seq);
                if (tr_fatal(self, TR_WRITE_ERROR(self)) < 0)
                    return NULL;
                Py_RETURN_NONE;
            }
            n = 0;
        }
        sent = n;
        if (sent == total)
            goto release;
        if (tr_add_io(self, AIO_WRITE) < 0)
            goto fail;
        /* queue the rest of each item */
        for (i = 0; i < count; i++) {
            Py_ssize_t len = views[i].len;
            if (sent >= len) {
                sent -= len;
                continue;
            }
            if (tr_queue_rest(self, PySequence_Fast_GET_ITEM(seq, i), views[i].buf, len,
                              sent) < 0)
                goto fail;
            sent = 0;
        }
        goto release;
    }
    /* something is queued already (the writer is on), or too many items: queue them all */
    was_empty = self->qlen == 0;
    for (i = 0; i < count; i++) {
        Py_buffer v;
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        int r;
        if (PyObject_GetBuffer(item, &v, PyBUF_SIMPLE) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
        r = v.len > 0 ? tr_queue_rest(self, item, v.buf, v.len, 0) : 0;
        PyBuffer_Release(&v);
        if (r < 0) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    if (was_empty && self->qlen > 0 && tr_add_io(self, AIO_WRITE) < 0)
        return NULL;
    if (tr_maybe_pause_protocol(self) < 0)
        return NULL;
    Py_RETURN_NONE;
release:
    for (i = 0; i < nviews; i++)
        PyBuffer_Release(&views[i]);
    Py_DECREF(seq);
    if (tr_maybe_pause_protocol(self) < 0)
        return NULL;
    Py_RETURN_NONE;
fail:
    for (i = 0; i < nviews; i++)
        PyBuffer_Release(&views[i]);
    Py_DECREF(seq);
    return NULL;
}

static PyObject *
tr_py_write_eof(StreamTr *self, PyObject *unused)
{
    if (self->closing || self->eof || self->fdobj == NULL)
        Py_RETURN_NONE;
    if (self->pipe) {
        /* a pipe has no half close: its write end is closed once the queue is flushed */
        if (tr_close(self) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    self->eof = 1;
    if (self->qlen == 0 && shutdown(self->fd, SHUT_WR) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *
tr_py_can_write_eof(StreamTr *self, PyObject *unused)
{
    Py_RETURN_TRUE;
}

static PyObject *
tr_py_get_write_buffer_size(StreamTr *self, PyObject *unused)
{
    return PyLong_FromSsize_t(self->qbytes);
}

static PyObject *
tr_py_get_write_buffer_limits(StreamTr *self, PyObject *unused)
{
    return Py_BuildValue("(nn)", self->low, self->high);
}

static PyObject *
tr_py_set_write_buffer_limits(StreamTr *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"high", "low", NULL};
    PyObject *high = Py_None, *low = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:set_write_buffer_limits", kwlist,
                                     &high, &low))
        return NULL;
    if (tr_set_limits(self, high, low) < 0)
        return NULL;
    if (self->protocol != NULL && tr_maybe_pause_protocol(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------------------------- */
/* protocol, setup, teardown                                                                  */

static int
tr_set_protocol(StreamTr *self, PyObject *protocol)
{
    int b = tr_buffered_protocol ? PyObject_IsInstance(protocol, tr_buffered_protocol) : 0;
    if (b < 0)
        return -1;
    Py_INCREF(protocol);
    Py_XSETREF(self->protocol, protocol);
    self->buffered = (unsigned char)b;
    self->protocol_connected = 1;
    return 0;
}

static PyObject *
tr_py_set_protocol(StreamTr *self, PyObject *protocol)
{
    if (tr_set_protocol(self, protocol) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
tr_py_get_protocol(StreamTr *self, PyObject *unused)
{
    PyObject *p = self->protocol ? self->protocol : Py_None;
    Py_INCREF(p);
    return p;
}

static PyObject *
tr_py_is_closing(StreamTr *self, PyObject *unused)
{
    return PyBool_FromLong(self->closing);
}

static PyObject *
tr_py_get_extra_info(StreamTr *self, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames)
{
    static const char *const names[] = {"name", "default"};
    PyObject *a[2] = {NULL, Py_None}, *v;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get_extra_info(name, default=None)");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        a[i] = args[i];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        int j = PyUnicode_CompareWithASCIIString(k, names[0]) == 0 ? 0
              : PyUnicode_CompareWithASCIIString(k, names[1]) == 0 ? 1 : -1;
        if (j < 0 || (j < nargs)) {
            PyErr_Format(PyExc_TypeError, "get_extra_info() got an unexpected keyword "
                         "argument %R", k);
            return NULL;
        }
        a[j] = args[nargs + i];
    }
    if (a[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "get_extra_info() missing argument 'name'");
        return NULL;
    }
    if (self->extra == NULL || !PyDict_Check(self->extra)) {
        Py_INCREF(a[1]);
        return a[1];
    }
    v = PyDict_GetItemWithError(self->extra, a[0]);
    if (v == NULL) {
        if (PyErr_Occurred())
            return NULL;
        v = a[1];
    }
    Py_INCREF(v);
    return v;
}

/* _setup(loop, sock, fd, protocol, extra, context): the C state; the rest of asyncio's
 * constructor is Python (StreamTransport.__init__) */
static PyObject *
tr_py_setup(StreamTr *self, PyObject *args)
{
    PyObject *loop, *sock, *protocol, *extra, *context;
    int fd;
    if (!PyArg_ParseTuple(args, "OOiOO!O:_setup", &loop, &sock, &fd, &protocol,
                          &PyDict_Type, &extra, &context))
        return NULL;
    if (!PyObject_TypeCheck(loop, &AioLoop_Type)) {
        PyErr_Format(PyExc_TypeError, "the loop must be an evloop.aio.Loop, not %R", loop);
        return NULL;
    }
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "the socket is closed");
        return NULL;
    }
    Py_INCREF(loop);
    Py_XSETREF(self->loop, (AioLoop *)loop);
    Py_INCREF(sock);
    Py_XSETREF(self->sock, sock);
    Py_INCREF(extra);
    Py_XSETREF(self->extra, extra);
    if (context != Py_None) {
        Py_INCREF(context);
        Py_XSETREF(self->context, context);
    }
    Py_XSETREF(self->fdobj, PyLong_FromLong(fd));
    if (self->fdobj == NULL)
        return NULL;
    self->fd = fd;
    if (tr_set_limits(self, NULL, NULL) < 0 || tr_set_protocol(self, protocol) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* after connection_lost ran: let go of the loop, the protocol and the socket; returns the
 * socket (to be closed by the caller) */
static PyObject *
tr_py_detach(StreamTr *self, PyObject *unused)
{
    PyObject *sock = self->sock;
    self->sock = NULL;
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->context);
    tr_queue_clear(self);
    if (sock == NULL)
        Py_RETURN_NONE;
    return sock;
}

/* ---------------------------------------------------------------------------------------- */
/* the type                                                                                   */

static int
tr_traverse(StreamTr *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->extra);
    Py_VISIT(self->loop);
    Py_VISIT(self->sock);
    Py_VISIT(self->protocol);
    Py_VISIT(self->context);
    Py_VISIT(self->empty_waiter);
    Py_VISIT(self->server);
    Py_VISIT(self->address);
    Py_VISIT(self->raddr_obj);
    Py_VISIT(self->saddr_obj);
    Py_VISIT(self->dict);
    for (Py_ssize_t i = 0; i < self->qlen; i++)
        Py_VISIT(self->q[self->qhead + i].addr);
    return 0;
}

static int
tr_clear(StreamTr *self)
{
    Py_CLEAR(self->extra);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->context);
    Py_CLEAR(self->empty_waiter);
    Py_CLEAR(self->server);
    Py_CLEAR(self->address);
    Py_CLEAR(self->raddr_obj);
    Py_CLEAR(self->saddr_obj);
    Py_CLEAR(self->dict);
    return 0;
}

static void
tr_dealloc(StreamTr *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    /* __del__ (evloop/aio.py: the "unclosed transport" ResourceWarning, closing the
     * socket) is the type's tp_finalize; a dealloc by reference count must call it */
    if (tp->tp_finalize != NULL
        && PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return;     /* resurrected */
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    tr_clear(self);
    tr_queue_clear(self);
    Py_CLEAR(self->fdobj);
    PyMem_Free(self->q);
    self->q = NULL;
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

#define TR_FLAG_GETTER(NAME, EXPR)                                                      \
    static PyObject *NAME(StreamTr *self, void *c) { return PyBool_FromLong(EXPR); }
TR_FLAG_GETTER(tr_get_closing, self->closing)
TR_FLAG_GETTER(tr_get_eof, self->eof)
TR_FLAG_GETTER(tr_get_paused, self->paused)
TR_FLAG_GETTER(tr_get_protocol_paused, self->protocol_paused)
TR_FLAG_GETTER(tr_get_protocol_connected, self->protocol_connected)

static PyObject *
tr_get_conn_lost(StreamTr *self, void *c)
{
    return PyLong_FromLong(self->conn_lost + self->late_writes);
}

static PyObject *
tr_get_obj(StreamTr *self, void *c)
{
    PyObject *v = *(PyObject **)((char *)self + (Py_ssize_t)c);
    if (v == NULL)
        v = Py_None;
    Py_INCREF(v);
    return v;
}

static PyObject *
tr_get_sock_fd(StreamTr *self, void *c)
{
    return PyLong_FromLong(self->fd);
}

static PyObject *
tr_get_high(StreamTr *self, void *c)
{
    return PyLong_FromSsize_t(self->high);
}

static PyObject *
tr_get_low(StreamTr *self, void *c)
{
    return PyLong_FromSsize_t(self->low);
}

static PyObject *
tr_get_empty_waiter(StreamTr *self, void *c)
{
    PyObject *v = self->empty_waiter ? self->empty_waiter : Py_None;
    Py_INCREF(v);
    return v;
}

static int
tr_set_empty_waiter(StreamTr *self, PyObject *v, void *c)
{
    if (v == Py_None)
        v = NULL;
    Py_XINCREF(v);
    Py_XSETREF(self->empty_waiter, v);
    return 0;
}

static PyObject *
tr_get_server(StreamTr *self, void *c)
{
    PyObject *v = self->server ? self->server : Py_None;
    Py_INCREF(v);
    return v;
}

static int
tr_set_server(StreamTr *self, PyObject *v, void *c)
{
    if (v == NULL || v == Py_None)
        v = NULL;
    Py_XINCREF(v);
    Py_XSETREF(self->server, v);
    return 0;
}

static PyGetSetDef tr_getset[] = {
    {"_server", (getter)tr_get_server, (setter)tr_set_server, NULL, NULL},
    {"_empty_waiter", (getter)tr_get_empty_waiter, (setter)tr_set_empty_waiter, NULL, NULL},
    {"_closing", (getter)tr_get_closing, NULL, NULL, NULL},
    {"_eof", (getter)tr_get_eof, NULL, NULL, NULL},
    {"_paused", (getter)tr_get_paused, NULL, NULL, NULL},
    {"_protocol_paused", (getter)tr_get_protocol_paused, NULL, NULL, NULL},
    {"_protocol_connected", (getter)tr_get_protocol_connected, NULL, NULL, NULL},
    {"_conn_lost", (getter)tr_get_conn_lost, NULL, NULL, NULL},
    {"_loop", (getter)tr_get_obj, NULL, NULL, (void *)offsetof(StreamTr, loop)},
    {"_sock", (getter)tr_get_obj, NULL, NULL, (void *)offsetof(StreamTr, sock)},
    {"_protocol", (getter)tr_get_obj, NULL, NULL, (void *)offsetof(StreamTr, protocol)},
    {"_sock_fd", (getter)tr_get_sock_fd, NULL, NULL, NULL},
    {"_high_water", (getter)tr_get_high, NULL, NULL, NULL},
    {"_low_water", (getter)tr_get_low, NULL, NULL, NULL},
    {NULL}
};

static PyMethodDef tr_methods[] = {
    {"_setup", (PyCFunction)tr_py_setup, METH_VARARGS, NULL},
    {"_detach", (PyCFunction)tr_py_detach, METH_NOARGS, NULL},
    {"_read_ready", (PyCFunction)tr_read_ready, METH_NOARGS, NULL},
    {"_write_ready", (PyCFunction)tr_write_ready, METH_NOARGS, NULL},
    {"_start_reading", (PyCFunction)tr_py_start_reading, METH_NOARGS, NULL},
    {"_force_close", (PyCFunction)tr_py_force_close, METH_O, NULL},
    {"write", (PyCFunction)tr_py_write, METH_O,
     "write(data): send data (bytes-like), queueing what the socket does not take now"},
    {"writelines", (PyCFunction)tr_py_writelines, METH_O,
     "writelines(list_of_data): write each item, with one sendmsg"},
    {"write_eof", (PyCFunction)tr_py_write_eof, METH_NOARGS,
     "write_eof(): shut the write side down once the queue is flushed"},
    {"can_write_eof", (PyCFunction)tr_py_can_write_eof, METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)tr_py_get_write_buffer_size, METH_NOARGS, NULL},
    {"get_write_buffer_limits", (PyCFunction)tr_py_get_write_buffer_limits, METH_NOARGS,
     "(low, high)"},
    {"set_write_buffer_limits", (PyCFunction)(void (*)(void))tr_py_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, "set_write_buffer_limits(high=None, low=None)"},
    {"pause_reading", (PyCFunction)tr_py_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)tr_py_resume_reading, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)tr_py_is_reading, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)tr_py_is_closing, METH_NOARGS, NULL},
    {"close", (PyCFunction)tr_py_close, METH_NOARGS,
     "close(): stop reading; connection_lost(None) once the write queue is flushed"},
    {"abort", (PyCFunction)tr_py_abort, METH_NOARGS,
     "abort(): close now, dropping the write queue; connection_lost(None)"},
    {"set_protocol", (PyCFunction)tr_py_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)tr_py_get_protocol, METH_NOARGS, NULL},
    {"get_extra_info", (PyCFunction)(void (*)(void))tr_py_get_extra_info,
     METH_FASTCALL | METH_KEYWORDS, "get_extra_info(name, default=None)"},
    {NULL}
};

static PyMemberDef tr_members[] = {
#if PY_VERSION_HEX >= 0x030C0000
    {"__weaklistoffset__", Py_T_PYSSIZET, offsetof(StreamTr, weakreflist), Py_READONLY},
#else
    {"__weaklistoffset__", T_PYSSIZET, offsetof(StreamTr, weakreflist), READONLY},
#endif
    {NULL}
};

static PyType_Slot tr_slots[] = {
    {Py_tp_dealloc, (void *)tr_dealloc},
    {Py_tp_traverse, (void *)tr_traverse},
    {Py_tp_clear, (void *)tr_clear},
    {Py_tp_methods, (void *)tr_methods},
    {Py_tp_getset, (void *)tr_getset},
    {Py_tp_members, (void *)tr_members},
    {Py_tp_doc, (void *)"evloop.aio's stream transport"},
    {0, NULL}
};

static PyType_Spec tr_spec = {
    .name = "evloop.aio.StreamTransport",
    .basicsize = sizeof(StreamTr),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = tr_slots,
};

/* ---------------------------------------------------------------------------------------- */
/* pipe transports (loop.connect_read_pipe / connect_write_pipe, subprocess pipes): the same  */
/* struct and functions, read()/write() instead of recv()/send() (StreamTr.pipe), and each    */
/* type with the methods of asyncio's ReadTransport or WriteTransport only.                   */

/* _pipe_setup(kind): after _setup; 1 a read pipe, 2 a write pipe */
static PyObject *
tr_py_pipe_setup(StreamTr *self, PyObject *arg)
{
    long kind = PyLong_AsLong(arg);
    if (kind == -1 && PyErr_Occurred())
        return NULL;
    if (kind != TR_READ_PIPE && kind != TR_WRITE_PIPE) {
        PyErr_Format(PyExc_ValueError, "_pipe_setup(): kind %ld is not 1 or 2", kind);
        return NULL;
    }
    self->pipe = (unsigned char)kind;
    Py_RETURN_NONE;
}

/* transport._pipe = None: the transport forgets its pipe (it will not close it); asyncio's
 * pipe transports allow it, and CPython's test_events does it to an unclosed transport */
static int
tr_set_pipe(StreamTr *self, PyObject *v, void *c)
{
    if (v == NULL || (v != Py_None && v != self->sock)) {
        PyErr_SetString(PyExc_AttributeError, "_pipe can only be set to None");
        return -1;
    }
    if (v == Py_None)
        Py_CLEAR(self->sock);
    return 0;
}

static PyGetSetDef pipe_getset[] = {
    {"_closing", (getter)tr_get_closing, NULL, NULL, NULL},
    {"_paused", (getter)tr_get_paused, NULL, NULL, NULL},
    {"_protocol_paused", (getter)tr_get_protocol_paused, NULL, NULL, NULL},
    {"_conn_lost", (getter)tr_get_conn_lost, NULL, NULL, NULL},
    {"_loop", (getter)tr_get_obj, NULL, NULL, (void *)offsetof(StreamTr, loop)},
    {"_pipe", (getter)tr_get_obj, (setter)tr_set_pipe, NULL,
     (void *)offsetof(StreamTr, sock)},
    {"_protocol", (getter)tr_get_obj, NULL, NULL, (void *)offsetof(StreamTr, protocol)},
    {"_fileno", (getter)tr_get_sock_fd, NULL, NULL, NULL},
    {"_high_water", (getter)tr_get_high, NULL, NULL, NULL},
    {"_low_water", (getter)tr_get_low, NULL, NULL, NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL}
};

static PyMethodDef rp_methods[] = {
    {"_setup", (PyCFunction)tr_py_setup, METH_VARARGS, NULL},
    {"_pipe_setup", (PyCFunction)tr_py_pipe_setup, METH_O, NULL},
    {"_detach", (PyCFunction)tr_py_detach, METH_NOARGS, NULL},
    {"_read_ready", (PyCFunction)tr_read_ready, METH_NOARGS, NULL},
    {"_start_reading", (PyCFunction)tr_py_start_reading, METH_NOARGS, NULL},
    {"_force_close", (PyCFunction)tr_py_force_close, METH_O, NULL},
    {"pause_reading", (PyCFunction)tr_py_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)tr_py_resume_reading, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)tr_py_is_reading, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)tr_py_is_closing, METH_NOARGS, NULL},
    {"close", (PyCFunction)tr_py_close, METH_NOARGS,
     "close(): stop reading; connection_lost(None), then the pipe is closed"},
    {"set_protocol", (PyCFunction)tr_py_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)tr_py_get_protocol, METH_NOARGS, NULL},
    {"get_extra_info", (PyCFunction)(void (*)(void))tr_py_get_extra_info,
     METH_FASTCALL | METH_KEYWORDS, "get_extra_info(name, default=None)"},
    {NULL}
};

static PyMethodDef wp_methods[] = {
    {"_setup", (PyCFunction)tr_py_setup, METH_VARARGS, NULL},
    {"_pipe_setup", (PyCFunction)tr_py_pipe_setup, METH_O, NULL},
    {"_detach", (PyCFunction)tr_py_detach, METH_NOARGS, NULL},
    {"_read_ready", (PyCFunction)tr_read_ready, METH_NOARGS, NULL},
    {"_write_ready", (PyCFunction)tr_write_ready, METH_NOARGS, NULL},
    {"_start_reading", (PyCFunction)tr_py_start_reading, METH_NOARGS, NULL},
    {"_force_close", (PyCFunction)tr_py_force_close, METH_O, NULL},
    {"write", (PyCFunction)tr_py_write, METH_O,
     "write(data): write data (bytes-like), queueing what the pipe does not take now"},
    {"writelines", (PyCFunction)tr_py_writelines, METH_O,
     "writelines(list_of_data): write each item, with one writev"},
    {"write_eof", (PyCFunction)tr_py_write_eof, METH_NOARGS,
     "write_eof(): close the pipe once the queue is flushed"},
    {"can_write_eof", (PyCFunction)tr_py_can_write_eof, METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)tr_py_get_write_buffer_size, METH_NOARGS, NULL},
    {"get_write_buffer_limits", (PyCFunction)tr_py_get_write_buffer_limits, METH_NOARGS,
     "(low, high)"},
    {"set_write_buffer_limits", (PyCFunction)(void (*)(void))tr_py_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, "set_write_buffer_limits(high=None, low=None)"},
    {"is_closing", (PyCFunction)tr_py_is_closing, METH_NOARGS, NULL},
    {"close", (PyCFunction)tr_py_close, METH_NOARGS,
     "close(): connection_lost(None) once the write queue is flushed, then the pipe is closed"},
    {"abort", (PyCFunction)tr_py_abort, METH_NOARGS,
     "abort(): close now, dropping the write queue; connection_lost(None)"},
    {"set_protocol", (PyCFunction)tr_py_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)tr_py_get_protocol, METH_NOARGS, NULL},
    {"get_extra_info", (PyCFunction)(void (*)(void))tr_py_get_extra_info,
     METH_FASTCALL | METH_KEYWORDS, "get_extra_info(name, default=None)"},
    {NULL}
};

static PyMemberDef pipe_members[] = {
#if PY_VERSION_HEX >= 0x030C0000
    {"__weaklistoffset__", Py_T_PYSSIZET, offsetof(StreamTr, weakreflist), Py_READONLY},
    {"__dictoffset__", Py_T_PYSSIZET, offsetof(StreamTr, dict), Py_READONLY},
#else
    {"__weaklistoffset__", T_PYSSIZET, offsetof(StreamTr, weakreflist), READONLY},
    {"__dictoffset__", T_PYSSIZET, offsetof(StreamTr, dict), READONLY},
#endif
    {NULL}
};

static PyType_Slot rp_slots[] = {
    {Py_tp_dealloc, (void *)tr_dealloc},
    {Py_tp_traverse, (void *)tr_traverse},
    {Py_tp_clear, (void *)tr_clear},
    {Py_tp_methods, (void *)rp_methods},
    {Py_tp_getset, (void *)pipe_getset},
    {Py_tp_members, (void *)pipe_members},
    {Py_tp_doc, (void *)"evloop.aio's read pipe transport"},
    {0, NULL}
};

static PyType_Slot wp_slots[] = {
    {Py_tp_dealloc, (void *)tr_dealloc},
    {Py_tp_traverse, (void *)tr_traverse},
    {Py_tp_clear, (void *)tr_clear},
    {Py_tp_methods, (void *)wp_methods},
    {Py_tp_getset, (void *)pipe_getset},
    {Py_tp_members, (void *)pipe_members},
    {Py_tp_doc, (void *)"evloop.aio's write pipe transport"},
    {0, NULL}
};

static PyType_Spec rp_spec = {
    .name = "evloop.aio.ReadPipeTransport",
    .basicsize = sizeof(StreamTr),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = rp_slots,
};

static PyType_Spec wp_spec = {
    .name = "evloop.aio.WritePipeTransport",
    .basicsize = sizeof(StreamTr),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = wp_slots,
};

/* ---------------------------------------------------------------------------------------- */
/* datagram transports (UDP, Unix datagram sockets): the same struct, another type            */
/*                                                                                            */
/* asyncio's _SelectorDatagramTransport, in C: one recvfrom per readable event, the source     */
/* address made into asyncio's Python form (and reused while it repeats: an echo peer sends    */
/* from one address), datagram_received(data, addr); sendto() sends at once and queues        */
/* (data, addr) only when the socket would block; OSError from either goes to                  */
/* protocol.error_received. The differences between CPython versions (empty datagrams, the    */
/* per-datagram size the write buffer counts) are parameters set by evloop.aio.               */

static int tr_dgram_send_empty = 1;        /* 3.13+: sendto(b'') sends an empty datagram */
static Py_ssize_t tr_dgram_header = 8;     /* 3.13+: bytes counted per queued datagram */

/* a sockaddr as the socket module gives it (AF_INET, AF_INET6, AF_UNIX); NULL, no error
 * set, for another family */
static PyObject *
tr_addr_to_python(struct sockaddr *sa, socklen_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (len == 0)
        Py_RETURN_NONE;
    switch (sa->sa_family) {
    case AF_INET: {
        struct sockaddr_in *a = (struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host)) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", host, (int)ntohs(a->sin_port));
    }
    case AF_INET6: {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(siII)", host, (int)ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned int)a->sin6_scope_id);
    }
    case AF_UNIX: {
        struct sockaddr_un *a = (struct sockaddr_un *)sa;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        if (len > off && a->sun_path[0] == 0)   /* Linux's abstract namespace: bytes */
            return PyBytes_FromStringAndSize(a->sun_path, (Py_ssize_t)(len - off));
        if (len <= off)
            return PyUnicode_DecodeFSDefaultAndSize("", 0);
        return PyUnicode_DecodeFSDefaultAndSize(a->sun_path,
                                                (Py_ssize_t)strnlen(a->sun_path, len - off));
    }
    default:
        return NULL;
    }
}

/* addr (the Python form) as a sockaddr for this transport's family: 1, or 0 when it is not
 * the plain form handled here (a host name, a scoped IPv6 address, a wrong type ...): the
 * caller then lets socket.sendto() judge and convert it. No exception is left set. */
static int
tr_addr_from_python(StreamTr *self, PyObject *addr, struct sockaddr_storage *ss,
                    socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (self->family == AF_INET || self->family == AF_INET6) {
        Py_ssize_t n;
        const char *host;
        long port;
        if (!PyTuple_CheckExact(addr))
            return 0;
        n = PyTuple_GET_SIZE(addr);
        if ((self->family == AF_INET && n != 2) || n < 2 || n > 4
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(addr, 0))
            || !PyLong_CheckExact(PyTuple_GET_ITEM(addr, 1)))
            return 0;
        host = PyUnicode_AsUTF8(PyTuple_GET_ITEM(addr, 0));
        port = PyLong_AsLong(PyTuple_GET_ITEM(addr, 1));
        if (host == NULL || port < 0 || port > 65535) {
            PyErr_Clear();
            return 0;
        }
        if (self->family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)ss;
            if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
                return 0;
            a->sin_family = AF_INET;
            a->sin_port = htons((unsigned short)port);
            *len = sizeof(*a);
            return 1;
        }
        else {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
            unsigned long flow = 0, scope = 0;
            if (n > 2) {
                if (!PyLong_CheckExact(PyTuple_GET_ITEM(addr, 2)))
                    return 0;
                flow = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 2));
            }
            if (n > 3) {
                if (!PyLong_CheckExact(PyTuple_GET_ITEM(addr, 3)))
                    return 0;
                scope = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 3));
            }
            if (PyErr_Occurred() || flow > 0xfffff || scope > 0xffffffffUL) {
                PyErr_Clear();
                return 0;
            }
            if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
                return 0;
            a->sin6_family = AF_INET6;
            a->sin6_port = htons((unsigned short)port);
            a->sin6_flowinfo = htonl((uint32_t)flow);
            a->sin6_scope_id = (uint32_t)scope;
            *len = sizeof(*a);
            return 1;
        }
    }
    if (self->family == AF_UNIX) {
        struct sockaddr_un *a = (struct sockaddr_un *)ss;
        const char *path;
        Py_ssize_t plen;
        PyObject *enc = NULL;
        if (PyUnicode_CheckExact(addr)) {
            enc = PyUnicode_EncodeFSDefault(addr);
            if (enc == NULL) {
                PyErr_Clear();
                return 0;
            }
            path = PyBytes_AS_STRING(enc);
            plen = PyBytes_GET_SIZE(enc);
        }
        else if (PyBytes_CheckExact(addr)) {
            path = PyBytes_AS_STRING(addr);
            plen = PyBytes_GET_SIZE(addr);
        }
        else {
            return 0;
        }
        if (plen == 0 || (size_t)plen >= sizeof(a->sun_path)
            || (memchr(path, 0, (size_t)plen) != NULL && path[0] != 0)) {
            Py_XDECREF(enc);
            return 0;
        }
        a->sun_family = AF_UNIX;
        memcpy(a->sun_path, path, (size_t)plen);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen
                           + (path[0] != 0 ? 1 : 0));
        Py_XDECREF(enc);
        return 1;
    }
    return 0;
}

/* send one datagram: 1 sent, 0 would block, -1 error set (OSError or what sock.sendto raised) */
static int
tr_dgram_send(StreamTr *self, PyObject *data, PyObject *addr)
{
    Py_buffer view;
    ssize_t n;
    struct sockaddr *sa = NULL;
    socklen_t salen = 0;
    if (!self->connected && addr != Py_None && addr != NULL) {
        /* the same object as last time (an echo replies to the address object
         * datagram_received was given, which is reused while the source repeats): its
         * sockaddr is known; anything else is converted again */
        if (addr != self->saddr_obj) {
            if (!tr_addr_from_python(self, addr, &self->saddr, &self->saddr_len)) {
                /* not a plain address: the socket module converts (or rejects) it */
                PyObject *r;
                Py_CLEAR(self->saddr_obj);
                r = PyObject_CallMethod(self->sock, "sendto", "OO", data, addr);
                if (r == NULL) {
                    if (PyErr_ExceptionMatches(PyExc_BlockingIOError)
                        || PyErr_ExceptionMatches(PyExc_InterruptedError)) {
                        PyErr_Clear();
                        return 0;
                    }
                    return -1;
                }
                Py_DECREF(r);
                return 1;
            }
            Py_INCREF(addr);
            Py_XSETREF(self->saddr_obj, addr);
        }
        sa = (struct sockaddr *)&self->saddr;
        salen = self->saddr_len;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return -1;
    do {
        if (sa != NULL)
            n = sendto(self->fd, view.buf, (size_t)view.len, MSG_NOSIGNAL, sa, salen);
        else
            n = send(self->fd, view.buf, (size_t)view.len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    PyBuffer_Release(&view);
    if (n >= 0)
        return 1;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    if (errno == EDESTADDRREQ && sa == NULL) {
        /* no destination and not connected: what socket.send says */
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* an OSError from a send or receive goes to protocol.error_received(exc) */
static int
tr_error_received(StreamTr *self)
{
    PyObject *type, *value, *tb, *r;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    r = PyObject_CallMethod(self->protocol, "error_received", "O", value ? value : Py_None);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *
tr_dgram_read_ready(StreamTr *self, PyObject *unused)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    PyObject *data, *addr, *proto, *res;
    ssize_t n;
    int rc = 0;
    if (self->conn_lost || self->protocol == NULL)
        Py_RETURN_NONE;
    if (tr_scratch == NULL) {
        tr_scratch = PyMem_RawMalloc(TR_MAX_SIZE);
        if (tr_scratch == NULL)
            return PyErr_NoMemory();
    }
    Py_INCREF(self);
    proto = self->protocol;
    Py_INCREF(proto);
    memset(&ss, 0, sizeof(ss));
    do {
        n = recvfrom(self->fd, tr_scratch, TR_MAX_SIZE, 0, (struct sockaddr *)&ss, &sslen);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            PyErr_SetFromErrno(PyExc_OSError);
            rc = tr_error_received(self);
        }
        goto done;
    }
    if (sslen > sizeof(ss))
        sslen = sizeof(ss);
    if (self->raddr_obj != NULL && sslen == self->raddr_len
        && memcmp(&ss, &self->raddr, sslen) == 0) {
        addr = self->raddr_obj;
        Py_INCREF(addr);
    }
    else {
        addr = tr_addr_to_python((struct sockaddr *)&ss, sslen);
        if (addr == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_OSError, "evloop.aio: address family %d",
                             (int)ss.ss_family);
            rc = tr_fatal(self, "Fatal read error on datagram transport");
            goto done;
        }
        Py_INCREF(addr);
        Py_XSETREF(self->raddr_obj, addr);
        memcpy(&self->raddr, &ss, sslen);
        self->raddr_len = sslen;
    }
    data = PyBytes_FromStringAndSize(tr_scratch, n);
    if (data == NULL) {
        Py_DECREF(addr);
        rc = -1;
        goto done;
    }
    {
        PyObject *args[3] = {proto, data, addr};
        res = PyObject_VectorcallMethod(tr_str_datagram_received, args,
                                        3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    Py_DECREF(data);
    Py_DECREF(addr);
    if (res == NULL)
        rc = -1;    /* as asyncio: the loop reports it ("Exception in callback") */
    else
        Py_DECREF(res);
done:
    Py_DECREF(proto);
    Py_DECREF(self);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int
tr_dgram_queue(StreamTr *self, PyObject *data, PyObject *addr)
{
    PyObject *copy;
    Py_ssize_t len;
    if (PyBytes_CheckExact(data)) {
        copy = data;
        Py_INCREF(copy);
    }
    else {
        copy = PyBytes_FromObject(data);
        if (copy == NULL)
            return -1;
    }
    len = PyBytes_GET_SIZE(copy);
    if (tr_queue_push(self, copy, 0) < 0) {
        Py_DECREF(copy);
        return -1;
    }
    Py_DECREF(copy);
    Py_INCREF(addr);
    self->q[self->qhead + self->qlen - 1].addr = addr;
    self->qbytes += tr_dgram_header;
    (void)len;
    return 0;
}

static PyObject *
tr_dgram_sendto(StreamTr *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *data, *addr = Py_None;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int r;
    if (nargs + nkw < 1 || nargs + nkw > 2) {
        PyErr_SetString(PyExc_TypeError, "sendto(data, addr=None)");
        return NULL;
    }
    data = args[0];
    if (nargs == 2)
        addr = args[1];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_CompareWithASCIIString(k, "addr") == 0 && nargs < 2)
            addr = args[nargs + i];
        else if (PyUnicode_CompareWithASCIIString(k, "data") == 0 && nargs == 0)
            data = args[nargs + i];
        else {
            PyErr_Format(PyExc_TypeError, "sendto() got an unexpected keyword argument %R", k);
            return NULL;
        }
    }
    if (tr_check_bytes_like(data) < 0
        || (self->fdobj == NULL && tr_write_refused(self, "sendto")))
        return NULL;
    if (!tr_dgram_send_empty) {
        int empty = PyObject_Size(data) == 0;
        if (empty)
            Py_RETURN_NONE;
        if (PyErr_Occurred())
            return NULL;
    }
    if (self->address != NULL) {
        if (addr != Py_None) {
            int eq = PyObject_RichCompareBool(addr, self->address, Py_EQ);
            if (eq < 0)
                return NULL;
            if (!eq) {
                PyErr_Format(PyExc_ValueError, "Invalid address: must be None or %S",
                             self->address);
                return NULL;
            }
        }
        addr = self->address;
    }
    if (self->conn_lost && self->address != NULL)
        return tr_write_lost(self);
    if (self->qlen == 0) {
        if (self->protocol == NULL || self->loop == NULL) {
            /* connection_lost ran (an unconnected endpoint): asyncio's send fails on the
             * closed socket, EBADF to error_received; there is no protocol any more */
            Py_RETURN_NONE;
        }
        r = tr_dgram_send(self, data, addr);
        if (r == 1)
            Py_RETURN_NONE;
        if (r < 0) {
            if (PyErr_ExceptionMatches(PyExc_OSError)) {
                if (tr_error_received(self) < 0)
                    return NULL;
                Py_RETURN_NONE;
            }
            if (tr_fatal(self, "Fatal write error on datagram transport") < 0)
                return NULL;
            Py_RETURN_NONE;
        }
        if (tr_add_io(self, AIO_WRITE) < 0)
            return NULL;
    }
    if (tr_dgram_queue(self, data, addr) < 0)
        return NULL;
    if (tr_maybe_pause_protocol(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
tr_dgram_sendto_ready(StreamTr *self, PyObject *unused)
{
    Py_INCREF(self);
    while (self->qlen > 0) {
        TrChunk c = self->q[self->qhead];
        int r;
        self->qhead++;
        self->qlen--;
        self->qbytes -= PyBytes_GET_SIZE(c.obj) + tr_dgram_header;
        r = tr_dgram_send(self, c.obj, c.addr ? c.addr : Py_None);
        if (r == 0) {
            /* would block: back to the head, try again later */
            self->qhead--;
            self->qlen++;
            self->qbytes += PyBytes_GET_SIZE(c.obj) + tr_dgram_header;
            break;
        }
        Py_DECREF(c.obj);
        Py_XDECREF(c.addr);
        if (r < 0) {
            int rc;
            if (PyErr_ExceptionMatches(PyExc_OSError))
                rc = tr_error_received(self);
            else
                rc = tr_fatal(self, "Fatal write error on datagram transport");
            Py_DECREF(self);
            if (rc < 0)
                return NULL;
            Py_RETURN_NONE;
        }
    }
    if (self->qlen == 0)
        self->qhead = 0;
    if (tr_maybe_resume_protocol(self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (self->qlen == 0) {
        tr_remove_io(self, AIO_WRITE);
        if (self->closing) {
            PyObject *r = PyObject_CallMethod((PyObject *)self, "_call_connection_lost", "O",
                                              Py_None);
            Py_DECREF(self);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
            Py_RETURN_NONE;
        }
    }
    Py_DECREF(self);
    Py_RETURN_NONE;
}

/* _dgram_setup(family, address, connected): after _setup */
static PyObject *
tr_dgram_setup(StreamTr *self, PyObject *args)
{
    PyObject *address;
    int family, connected;
    if (!PyArg_ParseTuple(args, "iOp:_dgram_setup", &family, &address, &connected))
        return NULL;
    self->family = family;
    self->connected = (unsigned char)connected;
    if (address != Py_None) {
        Py_INCREF(address);
        Py_XSETREF(self->address, address);
    }
    else {
        Py_CLEAR(self->address);
    }
    self->dgram = 1;
    Py_RETURN_NONE;
}

static PyObject *
tr_get_address(StreamTr *self, void *c)
{
    PyObject *v = self->address ? self->address : Py_None;
    Py_INCREF(v);
    return v;
}

static PyGetSetDef dg_getset[] = {
    {"_server", (getter)tr_get_server, (setter)tr_set_server, NULL, NULL},
    {"_closing", (getter)tr_get_closing, NULL, NULL, NULL},
    {"_protocol_paused", (getter)tr_get_protocol_paused, NULL, NULL, NULL},
    {"_protocol_connected", (getter)tr_get_protocol_connected, NULL, NULL, NULL},
    {"_conn_lost", (getter)tr_get_conn_lost, NULL, NULL, NULL},
    {"_loop", (getter)tr_get_obj, NULL, NULL, (void *)offsetof(StreamTr, loop)},
    {"_sock", (getter)tr_get_obj, NULL, NULL, (void *)offsetof(StreamTr, sock)},
    {"_protocol", (getter)tr_get_obj, NULL, NULL, (void *)offsetof(StreamTr, protocol)},
    {"_sock_fd", (getter)tr_get_sock_fd, NULL, NULL, NULL},
    {"_high_water", (getter)tr_get_high, NULL, NULL, NULL},
    {"_low_water", (getter)tr_get_low, NULL, NULL, NULL},
    {"_address", (getter)tr_get_address, NULL, NULL, NULL},
    {NULL}
};

static PyMethodDef dg_methods[] = {
    {"_setup", (PyCFunction)tr_py_setup, METH_VARARGS, NULL},
    {"_dgram_setup", (PyCFunction)tr_dgram_setup, METH_VARARGS, NULL},
    {"_detach", (PyCFunction)tr_py_detach, METH_NOARGS, NULL},
    {"_read_ready", (PyCFunction)tr_dgram_read_ready, METH_NOARGS, NULL},
    {"_sendto_ready", (PyCFunction)tr_dgram_sendto_ready, METH_NOARGS, NULL},
    {"_start_reading", (PyCFunction)tr_py_start_reading, METH_NOARGS, NULL},
    {"_force_close", (PyCFunction)tr_py_force_close, METH_O, NULL},
    {"sendto", (PyCFunction)(void (*)(void))tr_dgram_sendto, METH_FASTCALL | METH_KEYWORDS,
     "sendto(data, addr=None): send one datagram, queueing it if the socket would block"},
    {"get_write_buffer_size", (PyCFunction)tr_py_get_write_buffer_size, METH_NOARGS, NULL},
    {"get_write_buffer_limits", (PyCFunction)tr_py_get_write_buffer_limits, METH_NOARGS,
     "(low, high)"},
    {"set_write_buffer_limits", (PyCFunction)(void (*)(void))tr_py_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, "set_write_buffer_limits(high=None, low=None)"},
    {"is_closing", (PyCFunction)tr_py_is_closing, METH_NOARGS, NULL},
    {"close", (PyCFunction)tr_py_close, METH_NOARGS,
     "close(): stop receiving; connection_lost(None) once the queue is sent"},
    {"abort", (PyCFunction)tr_py_abort, METH_NOARGS,
     "abort(): close now, dropping the queue; connection_lost(None)"},
    {"set_protocol", (PyCFunction)tr_py_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)tr_py_get_protocol, METH_NOARGS, NULL},
    {"get_extra_info", (PyCFunction)(void (*)(void))tr_py_get_extra_info,
     METH_FASTCALL | METH_KEYWORDS, "get_extra_info(name, default=None)"},
    {NULL}
};

static PyType_Slot dg_slots[] = {
    {Py_tp_dealloc, (void *)tr_dealloc},
    {Py_tp_traverse, (void *)tr_traverse},
    {Py_tp_clear, (void *)tr_clear},
    {Py_tp_methods, (void *)dg_methods},
    {Py_tp_getset, (void *)dg_getset},
    {Py_tp_members, (void *)tr_members},
    {Py_tp_doc, (void *)"evloop.aio's datagram transport"},
    {0, NULL}
};

static PyType_Spec dg_spec = {
    .name = "evloop.aio.DatagramTransport",
    .basicsize = sizeof(StreamTr),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = dg_slots,
};

/* ---------------------------------------------------------------------------------------- */

static int
tr_check_base(PyObject *base)
{
    PyTypeObject *t = (PyTypeObject *)base;
    if (t->tp_basicsize != (Py_ssize_t)offsetof(StreamTr, loop) || t->tp_itemsize != 0
        || t->tp_dictoffset != 0 || t->tp_weaklistoffset != 0) {
        PyErr_Format(PyExc_TypeError,
                     "%R does not have asyncio.BaseTransport's layout (one __slots__ entry, "
                     "no __dict__): evloop.aio's transports cannot derive from it", base);
        return -1;
    }
    return 0;
}

static PyObject *
tr_make_type(PyType_Spec *spec, PyObject *bases)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(bases); i++) {
        PyObject *b = PyTuple_GET_ITEM(bases, i);
        if (!PyType_Check(b)) {
            PyErr_Format(PyExc_TypeError, "not a class: %R", b);
            return NULL;
        }
        if (tr_check_base(b) < 0)
            return NULL;
    }
    return PyType_FromSpecWithBases(spec, bases);
}

/* _aio_transport_types(stream_bases, datagram_bases, asyncio.BufferedProtocol,
 *                      asyncio's logger, dgram_send_empty, dgram_header)
 * -> (stream type, datagram type): called once by evloop.aio. Each base's instances must be exactly an object with BaseTransport's one slot
 * (`_extra`), which StreamTr lays out as its first field. */
static PyObject *
mod_aio_transport_types(PyObject *m, PyObject *args)
{
    PyObject *base, *dbase, *buffered, *logger, *stream, *dgram, *res;
    int send_empty;
    Py_ssize_t header;
    if (!PyArg_ParseTuple(args, "O!O!OOpn:_aio_transport_types", &PyTuple_Type, &base,
                          &PyTuple_Type, &dbase, &buffered, &logger, &send_empty, &header))
        return NULL;
    if (tr_kw_context == NULL) {
        tr_kw_context = Py_BuildValue("(s)", "context");
        tr_str_call_soon = PyUnicode_InternFromString("call_soon");
        tr_str_data_received = PyUnicode_InternFromString("data_received");
        tr_str_datagram_received = PyUnicode_InternFromString("datagram_received");
        tr_str_get_buffer = PyUnicode_InternFromString("get_buffer");
        tr_str_buffer_updated = PyUnicode_InternFromString("buffer_updated");
        tr_minus_one = PyLong_FromLong(-1);
        if (tr_kw_context == NULL || tr_str_call_soon == NULL || tr_str_data_received == NULL
            || tr_str_datagram_received == NULL || tr_str_get_buffer == NULL
            || tr_str_buffer_updated == NULL || tr_minus_one == NULL)
            return NULL;
    }
    Py_INCREF(buffered);
    Py_XSETREF(tr_buffered_protocol, buffered);
    Py_INCREF(logger);
    Py_XSETREF(tr_logger, logger);
    tr_dgram_send_empty = send_empty;
    tr_dgram_header = header;
    stream = tr_make_type(&tr_spec, base);
    if (stream == NULL)
        return NULL;
    dgram = tr_make_type(&dg_spec, dbase);
    if (dgram == NULL) {
        Py_DECREF(stream);
        return NULL;
    }
    res = PyTuple_Pack(2, stream, dgram);
    Py_DECREF(stream);
    Py_DECREF(dgram);
    return res;
}

/* _aio_pipe_types(read_bases, write_bases) -> (read pipe type, write pipe type): called once
 * by evloop.aio, after _aio_transport_types (which sets what the transports share). */
static PyObject *
mod_aio_pipe_types(PyObject *m, PyObject *args)
{
    PyObject *rbase, *wbase, *rp, *wp, *res;
    if (!PyArg_ParseTuple(args, "O!O!:_aio_pipe_types", &PyTuple_Type, &rbase, &PyTuple_Type,
                          &wbase))
        return NULL;
    if (tr_kw_context == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_aio_pipe_types() before _aio_transport_types()");
        return NULL;
    }
    rp = tr_make_type(&rp_spec, rbase);
    if (rp == NULL)
        return NULL;
    wp = tr_make_type(&wp_spec, wbase);
    if (wp == NULL) {
        Py_DECREF(rp);
        return NULL;
    }
    res = PyTuple_Pack(2, rp, wp);
    Py_DECREF(rp);
    Py_DECREF(wp);
    return res;
}

static PyMethodDef evloop_transport_functions[] = {
    {"_aio_transport_types", mod_aio_transport_types, METH_VARARGS, NULL},
    {"_aio_pipe_types", mod_aio_pipe_types, METH_VARARGS, NULL},
    {NULL}
};

static int
evloop_transport_init(PyObject *m)
{
    return PyModule_AddFunctions(m, evloop_transport_functions);
}
