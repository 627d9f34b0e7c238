/*
 * The write side of runtime/_fastpath.c, included by it once (one translation unit): what
 * leaves a connection's socket.
 *
 * - write_frame: straight to the socket with send() when the transport is open and buffers
 *   nothing, else through transport.write (docs/architecture.md, decision 21);
 * - cork_for_dispatch, send_out, flush_state: writes to other connections made while a
 *   read's callbacks run leave together when they return (decision 22);
 * - send_final: the answer to a client's close, sent to leave with the FIN;
 * - push_conn, queue_frame, broadcast_frame, Pusher: push() and broadcast()'s common case.
 *
 * It expects from _fastpath.c: ConnectionBase, WorkerState (and their type objects),
 * state_of, the interned method names (s_*), status_active and SPLIT_MIN.
 */

/* -- writing ------------------------------------------------------------------------------- */

/* The transport's socket descriptor, looked up once: -1 when it has none, or when bytes
 * written to it would bypass the transport (TLS). */
static int
socket_fd(ConnectionBase *self)
{
#ifdef _WIN32
    return -1;
#else
    PyObject *ssl, *sock, *fileno;
    int fd = -1;
    if (self->sockfd != SOCKFD_UNKNOWN)
        return self->sockfd;
    ssl = PyObject_CallMethodOneArg(self->transport, s_get_extra_info, s_sslcontext);
    sock = ssl == Py_None ? PyObject_CallMethodOneArg(self->transport, s_get_extra_info, s_socket)
                          : NULL;
    if (sock != NULL && sock != Py_None) {
        fileno = PyObject_CallMethodNoArgs(sock, s_fileno);
        if (fileno != NULL) {
            long value = PyLong_AsLong(fileno);
            fd = value >= 0 && value <= INT32_MAX ? (int)value : -1;
            Py_DECREF(fileno);
        }
    }
    Py_XDECREF(ssl);
    Py_XDECREF(sock);
    PyErr_Clear();
    self->sockfd = fd;
    return fd;
#endif
}

static Py_ssize_t
write_buffer_size(ConnectionBase *self)
{
    PyObject *result = PyObject_CallMethodNoArgs(self->transport, s_get_write_buffer_size);
    Py_ssize_t size;
    if (result == NULL)
        return -1;
    size = PyLong_AsSsize_t(result);
    Py_DECREF(result);
    return size;
}

/* transport.is_closing(): 1, 0, or -1 with an exception set. */
static int
transport_closing(ConnectionBase *self)
{
    PyObject *result = PyObject_CallMethodNoArgs(self->transport, s_is_closing);
    int closing;
    if (result == NULL)
        return -1;
    closing = PyObject_IsTrue(result);
    Py_DECREF(result);
    return closing;
}

/*
 * The socket to send() to directly, or -1: a plain socket (not TLS), the transport open
 * (`open` is 1 when the caller has just seen is_closing() return False) and buffering
 * nothing (`buffered`: what get_write_buffer_size() said, -1 if not asked yet). A closing
 * transport's descriptor may already be closed and its number reused by a new connection,
 * so it never qualifies. -2 with an exception set.
 */
static int
direct_fd(ConnectionBase *self, Py_ssize_t buffered, int open)
{
    int fd = socket_fd(self);
    if (fd < 0)
        return -1;
    if (!open) {
        int closing = transport_closing(self);
        if (closing < 0)
            return -2;
        if (closing)
            return -1;
    }
    if (buffered < 0 && (buffered = write_buffer_size(self)) < 0)
        return -2;
    return buffered == 0 ? fd : -1;
}

/*
 * send() `data` (bytes) to `fd` with `flags`; whatever the kernel does not take goes
 * through transport.write, which keeps the order and meets EAGAIN and errors as usual.
 * 1 when the data was taken, 0 when nothing was sent (EAGAIN, or an error the transport
 * will meet and report: the caller writes through it), -1 with an exception set.
 */
static int
send_direct(ConnectionBase *self, int fd, PyObject *data, int flags)
{
#ifndef _WIN32
    Py_ssize_t n = PyBytes_GET_SIZE(data), sent;
    PyObject *rest, *result;
    do {
        sent = send(fd, PyBytes_AS_STRING(data), (size_t)n, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent == n)
        return 1;
    if (sent <= 0)
        return 0;
    rest = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + sent, n - sent);
    if (rest == NULL)
        return -1;
    result = PyObject_CallMethodOneArg(self->transport, s_write, rest);
    Py_DECREF(rest);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 1;
#else
    return 0;
#endif
}

/*
 * Write `frame` (bytes) to the transport: straight to the socket when direct_fd allows it
 * (what uvloop's write would do next, without its bookkeeping), else transport.write.
 */
static int
write_frame(ConnectionBase *self, PyObject *frame, Py_ssize_t buffered, int open)
{
    PyObject *result;
    WorkerState *state = state_of(self);
    int fd = direct_fd(self, buffered, open), taken = 0;
    if (fd == -2)
        return -1;
    if (state != NULL)
        state->send_bytes += PyBytes_GET_SIZE(frame);
    if (fd >= 0 && (taken = send_direct(self, fd, frame, 0)) != 0)
        return taken < 0 ? -1 : 0;
    result = PyObject_CallMethodOneArg(self->transport, s_write, frame);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

/* -- deferred writes ------------------------------------------------------------------------ */

/* Cork `conn` until the current dispatch ends, if one is running: 1 if corked. */
static int
cork_for_dispatch(ConnectionBase *conn)
{
    WorkerState *state = state_of(conn);
    if (state == NULL || state->depth <= 0)
        return 0;
    if (PyList_Append(state->deferred, (PyObject *)conn) < 0)
        return -1;
    conn->corked = 1;
    return 1;
}

#define JOIN_MAX (64 * 1024) /* deferred writes up to this size are joined into one send */

/*
 * Send what conn.out collected while corked: joined into one buffer (up to JOIN_MAX
 * bytes) and written with write_frame, or dropped if the transport is closing -- what
 * Connection._flush_out does, minus writelines. Returns 1 without touching anything when
 * Connection._flush_out must do it (big or non-bytes items, sends off the loop).
 */
static int
send_out(ConnectionBase *conn)
{
    PyObject *out = conn->out, *frame;
    Py_ssize_t i, count, total = 0;
    int closing;
    if (out == NULL || !PyList_CheckExact(out))
        return 1;
    if ((count = PyList_GET_SIZE(out)) == 0)
        return 0;
    for (i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(out, i);
        if (!PyBytes_CheckExact(item))
            return 1;
        total += PyBytes_GET_SIZE(item);
    }
    if (total > JOIN_MAX || (conn->jobs != NULL && conn->jobs != Py_None) ||
        conn->transport == NULL || conn->transport == Py_None)
        return 1;
    closing = transport_closing(conn);
    if (closing < 0)
        return -1;
    if (count == 1) {
        frame = Py_NewRef(PyList_GET_ITEM(out, 0));
    }
    else {
        char *dst;
        frame = PyBytes_FromStringAndSize(NULL, total);
        if (frame == NULL)
            return -1;
        dst = PyBytes_AS_STRING(frame);
        for (i = 0; i < count; i++) {
            PyObject *item = PyList_GET_ITEM(out, i);
            memcpy(dst, PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item));
            dst += PyBytes_GET_SIZE(item);
        }
    }
    conn->out_bytes = 0;
    if (PyList_SetSlice(out, 0, count, NULL) < 0 ||
        (!closing && write_frame(conn, frame, -1, 1) < 0)) {
        Py_DECREF(frame);
        return -1;
    }
    Py_DECREF(frame);
    return 0;
}

/* Send what conn.out collected: send_out, or Connection._flush_out where it must. */
static int
write_out(ConnectionBase *conn)
{
    PyObject *result;
    int status = send_out(conn);
    if (status <= 0)
        return status;
    result = PyObject_CallMethodNoArgs((PyObject *)conn, s_flush_out);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

/* Uncork a deferred connection and send what it collected. */
static int
flush_conn(PyObject *obj)
{
    ((ConnectionBase *)obj)->corked = 0;
    return write_out((ConnectionBase *)obj);
}

/*
 * A corked connection holding this many bytes sends them now and goes on collecting: past
 * one join's worth, holding more saves no syscall, and what the kernel would take at once
 * would count against socket_buffer_size (a burst bigger than the limit to a fast reader
 * would be refused). Smaller when the limit leaves little room above the high watermark.
 */
static Py_ssize_t
early_flush(WorkerState *state)
{
    if (state == NULL || state->buffer_slack >= JOIN_MAX)
        return JOIN_MAX;
    return state->buffer_slack > 0 ? state->buffer_slack : 1;
}


/* Write what every deferred connection of `state` collected (the outermost dispatch ended).
 * One connection's failure does not keep the others' writes back: it is reported after. */
static int
flush_state(WorkerState *state)
{
    PyObject *conns, *type = NULL, *value = NULL, *tb = NULL;
    Py_ssize_t i, count = PyList_GET_SIZE(state->deferred);
    if (count == 0)
        return 0;
    conns = PyList_GetSlice(state->deferred, 0, count);
    if (conns == NULL || PyList_SetSlice(state->deferred, 0, count, NULL) < 0) {
        Py_XDECREF(conns);
        return -1;
    }
    for (i = 0; i < count; i++) {
        PyObject *conn = PyList_GET_ITEM(conns, i);
        if (PyObject_TypeCheck(conn, &ConnectionBaseType)) {
            if (flush_conn(conn) < 0 && type == NULL)
                PyErr_Fetch(&type, &value, &tb);
            else if (PyErr_Occurred())
                PyErr_WriteUnraisable(conn);
        }
    }
    Py_DECREF(conns);
    if (type != NULL) {
        PyErr_Restore(type, value, tb);
        return -1;
    }
    return 0;
}

/* flush_deferred(state): flush_state for the Python dispatch loop (Connection.data_received). */
static PyObject *
flush_deferred(PyObject *module, PyObject *arg)
{
    if (!Py_IS_TYPE(arg, &WorkerStateType)) {
        PyErr_SetString(PyExc_TypeError, "flush_deferred() needs a WorkerState");
        return NULL;
    }
    if (flush_state((WorkerState *)arg) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* -- the close reply ------------------------------------------------------------------------ */

/*
 * send_final(data) -> bool: the connection's last bytes, just before the transport closes:
 * sent with MSG_MORE when the transport is open, buffers nothing and has a plain socket, so
 * that the close() right after puts the FIN in the same segment (one packet less for the
 * peer to take). False, sending nothing, where that does not apply: the caller writes.
 */
static PyObject *
cb_send_final(ConnectionBase *self, PyObject *data)
{
#ifdef _WIN32
    Py_RETURN_FALSE;
#else
    int fd, unread = 0, taken;
    if (!PyBytes_CheckExact(data) || self->transport == NULL || self->transport == Py_None)
        Py_RETURN_FALSE;
    fd = direct_fd(self, -1, 0);
    if (fd == -2)
        return NULL;
    /* unread input makes close() send RST, which would drop the held bytes */
    if (fd < 0 || ioctl(fd, FIONREAD, &unread) < 0 || unread > 0)
        Py_RETURN_FALSE;
    taken = send_direct(self, fd, data, MSG_MORE);
    if (taken < 0)
        return NULL;
    if (taken > 0 && state_of(self) != NULL)
        state_of(self)->send_bytes += PyBytes_GET_SIZE(data);
    return PyBool_FromLong(taken);
#endif
}

/* -- push ---------------------------------------------------------------------------------- */

/* A final, unmasked, RSV-free frame header for `opcode` and `n` payload bytes (RFC 6455
 * section 5.2) into dst; returns its length (2, 4 or 10). */
static Py_ssize_t
put_header(unsigned char *dst, int opcode, Py_ssize_t n)
{
    dst[0] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        dst[1] = (unsigned char)n;
        return 2;
    }
    if (n < 65536) {
        dst[1] = 126;
        dst[2] = (unsigned char)(n >> 8);
        dst[3] = (unsigned char)n;
        return 4;
    }
    {
        uint64_t len = (uint64_t)n;
        int i;
        dst[1] = 127;
        for (i = 0; i < 8; i++)
            dst[2 + i] = (unsigned char)(len >> (56 - 8 * i));
        return 10;
    }
}

static PyObject *
frame_of(int opcode, const char *src, Py_ssize_t n)
{
    unsigned char header[10];
    Py_ssize_t hlen = put_header(header, opcode, n);
    PyObject *frame = PyBytes_FromStringAndSize(NULL, hlen + n);
    if (frame == NULL)
        return NULL;
    memcpy(PyBytes_AS_STRING(frame), header, hlen);
    memcpy(PyBytes_AS_STRING(frame) + hlen, src, n);
    return frame;
}

/*
 * push()'s common case: `conn` is an established WebSocket connection without compression
 * and without sends waiting off the loop; `data` is a str sent as text (opcode 1) or bytes
 * sent as binary (opcode 2), with flags FIN only. The frame is queued as queue_frame does
 * (refused while `limit` bytes are queued; bytes of 16 KiB or more: header and payload
 * appended uncopied while corked, else left to push(), which writes both with one writev).
 * Returns a new reference to True, or to NotImplemented for anything else (the Python push()
 * then handles it, and reports an overflow), or NULL with an exception.
 */
static int queue_frame(ConnectionBase *conn, PyObject *frame, Py_ssize_t limit);

/* A frame queued for `count` clients, counted by opcode (pyswoole.metrics: _wscore.h's
 * ws_out_*): messages and payload bytes, the header (2, 4 or 10 bytes, unmasked) excluded. */
static void
count_sent(PyObject *frame, Py_ssize_t count)
{
    const unsigned char *f = (const unsigned char *)PyBytes_AS_STRING(frame);
    Py_ssize_t size = PyBytes_GET_SIZE(frame), b1;
    if (size < 2 || count <= 0)
        return;
    b1 = f[1] & 0x7F;
    ws_out_msgs[f[0] & 0x0F] += (unsigned long long)count;
    ws_out_bytes[f[0] & 0x0F] +=
        (unsigned long long)count * (unsigned long long)(size - (b1 < 126 ? 2 : b1 == 126 ? 4 : 10));
}

enum { DEST_ERROR = -1, DEST_FULL, DEST_OUT, DEST_WRITE };

/*
 * Where a frame for `conn` goes, as push() decides (Connection.send_message): DEST_FULL when
 * `limit` bytes are already queued -- the transport's buffer plus conn.out (refused, Swoole's
 * output buffer overflow) --, else DEST_OUT (append it to conn.out: the connection is
 * corked, or has just been corked for the running dispatch) or DEST_WRITE (write it now;
 * *buffered is what the transport buffers). DEST_ERROR with an exception set.
 */
static int
destination(ConnectionBase *conn, Py_ssize_t limit, Py_ssize_t *buffered)
{
    WorkerState *state = state_of(conn);
    int corked;
    *buffered = -1;
    if (conn->corked && conn->out_bytes >= early_flush(state) && write_out(conn) < 0)
        return DEST_ERROR;
    if (conn->corked && !conn->wpaused && state != NULL && conn->out_bytes < state->buffer_slack)
        return DEST_OUT; /* under the limit without asking the transport (see WorkerState) */
    if ((*buffered = write_buffer_size(conn)) < 0)
        return DEST_ERROR;
    if (*buffered + conn->out_bytes >= limit)
        return DEST_FULL;
    if (conn->corked)
        return DEST_OUT;
    corked = cork_for_dispatch(conn);
    return corked < 0 ? DEST_ERROR : corked ? DEST_OUT : DEST_WRITE;
}

static PyObject *
push_conn(PyObject *conn_obj, PyObject *data, long opcode, long flags, Py_ssize_t limit)
{
    ConnectionBase *conn;
    PyObject *frame;
    int status;
    if (!PyObject_TypeCheck(conn_obj, &ConnectionBaseType))
        Py_RETURN_NOTIMPLEMENTED;
    conn = (ConnectionBase *)conn_obj;
    if (conn->status != status_active || flags != 1 ||
        (conn->deflate != NULL && conn->deflate != Py_None) ||
        (conn->jobs != NULL && conn->jobs != Py_None) || conn->out == NULL ||
        !PyList_CheckExact(conn->out) || conn->transport == NULL || conn->transport == Py_None)
        Py_RETURN_NOTIMPLEMENTED;
    if (opcode == 1 && PyUnicode_CheckExact(data)) {
        Py_ssize_t n;
        const char *src = PyUnicode_AsUTF8AndSize(data, &n);
        if (src == NULL) {
            PyErr_Clear(); /* a lone surrogate: push() raises the encoder's error */
            Py_RETURN_NOTIMPLEMENTED;
        }
        frame = frame_of(1, src, n);
    }
    else if (opcode == 2 && PyBytes_CheckExact(data) && PyBytes_GET_SIZE(data) < SPLIT_MIN) {
        frame = frame_of(2, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    }
    else if (opcode == 2 && PyBytes_CheckExact(data)) {
        /* big: the header alone, then the payload uncopied, while corked (a read's own
         * writes or a deferred connection); else push() writes both with one writev */
        unsigned char header[10];
        PyObject *head;
        Py_ssize_t buffered;
        status = destination(conn, limit, &buffered);
        if (status == DEST_ERROR)
            return NULL;
        if (status != DEST_OUT)
            Py_RETURN_NOTIMPLEMENTED;
        head = PyBytes_FromStringAndSize(
            (const char *)header, put_header(header, 2, PyBytes_GET_SIZE(data)));
        if (head == NULL)
            return NULL;
        status = PyList_Append(conn->out, head);
        conn->out_bytes += PyBytes_GET_SIZE(head);
        Py_DECREF(head);
        if (status < 0 || PyList_Append(conn->out, data) < 0)
            return NULL;
        conn->out_bytes += PyBytes_GET_SIZE(data);
        if (state_of(conn) != NULL)
            state_of(conn)->response_count++;
        ws_out_msgs[2]++; /* (pyswoole.metrics) */
        ws_out_bytes[2] += (unsigned long long)PyBytes_GET_SIZE(data);
        Py_RETURN_TRUE;
    }
    else {
        Py_RETURN_NOTIMPLEMENTED;
    }
    if (frame == NULL)
        return NULL;
    status = queue_frame(conn, frame, limit);
    if (status > 0)
        count_sent(frame, 1);
    Py_DECREF(frame);
    if (status < 0)
        return NULL;
    if (status == 0)
        Py_RETURN_NOTIMPLEMENTED;
    Py_RETURN_TRUE;
}

/*
 * Send `frame` on `conn` as push() and broadcast() do: appended to conn.out while corked;
 * else refused (0) when the transport already buffers `limit` bytes; else corked until the
 * running dispatch ends, or written now. 1 when taken, -1 on error.
 */
static int
queue_frame(ConnectionBase *conn, PyObject *frame, Py_ssize_t limit)
{
    Py_ssize_t buffered;
    WorkerState *state = state_of(conn);
    switch (destination(conn, limit, &buffered)) {
    case DEST_OUT:
        if (PyList_Append(conn->out, frame) < 0)
            return -1;
        conn->out_bytes += PyBytes_GET_SIZE(frame);
        if (state != NULL)
            state->response_count++; /* a message queued for the client (stats()) */
        return 1;
    case DEST_WRITE:
        if (write_frame(conn, frame, buffered, 0) < 0)
            return -1;
        if (state != NULL)
            state->response_count++;
        return 1;
    case DEST_FULL:
        return 0;
    default:
        return -1;
    }
}

/*
 * broadcast_frame(conns, frame, limit) -> (sent, rest)
 *
 * broadcast()'s loop for an encoded, uncompressed frame: for each connection of the iterable
 * (None entries allowed), skip it unless it is an open, established WebSocket, then queue
 * `frame` as push() does (corked, refused over `limit`, deferred or written). Connections
 * that need Python -- compression, sends waiting off the loop, not a ConnectionBase -- come
 * back in `rest`, in order. `sent` counts the connections the frame was queued on.
 */
static PyObject *
broadcast_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *iter, *item, *rest, *frame;
    Py_ssize_t limit, sent = 0;
    if (nargs != 3 || !PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "broadcast_frame(conns, frame: bytes, limit)");
        return NULL;
    }
    frame = args[1];
    limit = PyLong_AsSsize_t(args[2]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    rest = PyList_New(0);
    iter = rest == NULL ? NULL : PyObject_GetIter(args[0]);
    if (iter == NULL) {
        Py_XDECREF(rest);
        return NULL;
    }
    while ((item = PyIter_Next(iter)) != NULL) {
        ConnectionBase *conn = (ConnectionBase *)item;
        int status;
        if (item == Py_None) {
            Py_DECREF(item);
            continue;
        }
        if (!PyObject_TypeCheck(item, &ConnectionBaseType) ||
            (conn->deflate != NULL && conn->deflate != Py_None) ||
            (conn->jobs != NULL && conn->jobs != Py_None) || conn->out == NULL ||
            !PyList_CheckExact(conn->out)) {
            status = PyList_Append(rest, item);
            Py_DECREF(item);
            if (status < 0)
                goto error;
            continue;
        }
        if (conn->status != status_active || conn->closed || conn->transport == NULL ||
            conn->transport == Py_None) {
            Py_DECREF(item);
            continue;
        }
        status = queue_frame(conn, frame, limit);
        if (status == 0 && state_of(conn) != NULL)
            state_of(conn)->buffer_overflows++; /* refused: the output buffer is full */
        Py_DECREF(item);
        if (status < 0)
            goto error;
        sent += status;
    }
    Py_DECREF(iter);
    count_sent(frame, sent); /* (the same frame for all: counted once) */
    if (PyErr_Occurred()) {
        Py_DECREF(rest);
        return NULL;
    }
    return Py_BuildValue("(nN)", sent, rest);
error:
    Py_DECREF(iter);
    Py_DECREF(rest);
    return NULL;
}

/*
 * Pusher(table, limit, fallback): the server's push(fd, data, opcode=1, flags=1) with its
 * common case compiled (from the thread that created it: the event loop's). `table` is the worker's dict of connections by fd; calls that
 * push_conn does not take (another process's fd, a closed one, compression, a big or
 * fragmented message, keyword arguments, an overflow...) go to `fallback` unchanged, the
 * Python push(), which stays the one place that reports errors.
 */
typedef struct {
    PyObject_HEAD
    PyObject *table;
    PyObject *fallback;
    Py_ssize_t limit;
    unsigned long thread; /* the event loop's thread: any other goes to fallback */
    vectorcallfunc vectorcall;
} Pusher;

static PyObject *
pusher_call(Pusher *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    /* only an exact int fd: 1.0 and True hash as 1, but push() refuses them (TypeError);
     * only from the loop's thread (push() hands other threads' calls to the loop) */
    if (kwnames == NULL && nargs >= 2 && nargs <= 4 && PyLong_CheckExact(args[0]) &&
        PyThread_get_thread_ident() == self->thread) {
        PyObject *conn = PyDict_GetItemWithError(self->table, args[0]);
        long opcode = 1, flags = 1;
        if (conn == NULL && PyErr_Occurred())
            return NULL;
        if (nargs >= 3 && PyLong_CheckExact(args[2]))
            opcode = PyLong_AsLong(args[2]);
        else if (nargs >= 3)
            opcode = -1;
        if (nargs == 4 && PyLong_CheckExact(args[3]))
            flags = PyLong_AsLong(args[3]);
        else if (nargs == 4)
            flags = -1;
        if (PyErr_Occurred())
            PyErr_Clear(); /* out of range: not the common case */
        else if (conn != NULL) {
            PyObject *result;
            Py_INCREF(conn); /* a callback cannot drop it from the table under us */
            result = push_conn(conn, args[1], opcode, flags, self->limit);
            Py_DECREF(conn);
            if (result != Py_NotImplemented)
                return result;
            Py_DECREF(result);
        }
    }
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

static PyObject *
pusher_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    PyObject *table, *fallback;
    Py_ssize_t limit;
    Pusher *self;
    if (!PyArg_ParseTuple(args, "O!nO:Pusher", &PyDict_Type, &table, &limit, &fallback))
        return NULL;
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "fallback must be callable");
        return NULL;
    }
    self = (Pusher *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    self->table = Py_NewRef(table);
    self->fallback = Py_NewRef(fallback);
    self->limit = limit;
    self->thread = PyThread_get_thread_ident();
    self->vectorcall = (vectorcallfunc)pusher_call;
    return (PyObject *)self;
}

static int
pusher_traverse(Pusher *self, visitproc visit, void *arg)
{
    Py_VISIT(self->table);
    Py_VISIT(self->fallback);
    return 0;
}

static int
pusher_clear(Pusher *self)
{
    Py_CLEAR(self->table);
    Py_CLEAR(self->fallback);
    return 0;
}

static void
pusher_dealloc(Pusher *self)
{
    PyObject_GC_UnTrack(self);
    pusher_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject PusherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyswoole.runtime._fastpath.Pusher",
    .tp_basicsize = sizeof(Pusher),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Pusher(table, limit, fallback): push(fd, data, opcode=1, flags=1), compiled.",
    .tp_new = pusher_new,
    .tp_traverse = (traverseproc)pusher_traverse,
    .tp_clear = (inquiry)pusher_clear,
    .tp_dealloc = (destructor)pusher_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Pusher, vectorcall),
};
