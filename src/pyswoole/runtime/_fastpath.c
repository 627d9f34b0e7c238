/*
 * The compiled read path of a connection (optional; runtime/connection.py falls back to
 * its pure-Python Connection without it, and PYSWOOLE_NO_EXTENSIONS=1 forces that).
 *
 * ConnectionBase is the base class of runtime.connection.Connection. It holds the fields the
 * per-message path touches (as C members, which Python reads and writes like slots) and
 * speaks asyncio's buffered protocol: the event loop reads straight into the worker's
 * read buffer (get_buffer) and calls buffer_updated(n), in C, with no bytes object made for
 * the read and no Python frame entered before the user's callback.
 *
 * buffer_updated takes the fast path only when the WebSocket state machine has nothing in
 * progress (the same test WebSocket.receive_data makes before its own compiled fast path):
 * it turns the read's leading complete, simple frames into Frame objects (ws_parse_simple,
 * shared with protocol/_speedups.c) and hands the rest of the read, if any, to
 * WebSocket.receive_data -- exactly what receive_data itself does with the whole read --
 * then calls on_message(app, frame) for each event with writes corked and writes what the
 * callbacks pushed in one write. The HTTP phase, raw TCP and a state machine with something
 * in progress go to Connection.data_received as bytes. So the Python code stays the one
 * place where the protocol is judged, and the compiled path does what data_received does.
 *
 * Pusher is the server's push(fd, data, opcode, flags) with its common case compiled: a whole
 * text (str) or small binary message to an established, uncompressed connection of this
 * worker with nothing waiting off the loop. Anything else goes to the Python push().
 */
#include "../protocol/_wscore.h"
#include <stddef.h>
#ifndef _WIN32
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#ifndef MSG_NOSIGNAL /* macOS: CPython ignores SIGPIPE anyway */
#define MSG_NOSIGNAL 0
#endif
#ifndef MSG_MORE
#define MSG_MORE 0
#endif
#else
#include <windows.h>
#endif

#ifdef Py_T_OBJECT /* 3.12+ */
#define M_OBJECT Py_T_OBJECT
#define M_BOOL Py_T_BOOL
#define M_INT Py_T_INT
#define M_DOUBLE Py_T_DOUBLE
#define M_SSIZE Py_T_PYSSIZET
#define M_READONLY Py_READONLY
#else
#define M_OBJECT T_OBJECT
#define M_BOOL T_BOOL
#define M_INT T_INT
#define M_DOUBLE T_DOUBLE
#define M_SSIZE T_PYSSIZET
#define M_READONLY READONLY
#endif

/* What configure() was given: WebSocket's type and the slots read here, Frame's type, the
 * OPEN state's value, and WEBSOCKET_STATUS_ACTIVE. */
enum {
    WS_BUF, WS_STATE, WS_MSG_OPCODE, WS_CLOSE_SENT, WS_PARTIAL_DONE, WS_FD, WS_MAX_SIZE,
    WS_OUT, WS_CLOSE_TRANSPORT, WS_FIELDS
};
static const char *ws_field_names[WS_FIELDS] = {
    "_buf", "state", "_msg_opcode", "close_sent", "_partial_done", "fd", "max_message_size",
    "_out", "close_transport",
};
static PyObject *ws_type;
static PyObject *frame_type;
static PyObject *send_data_type;
static Py_ssize_t ws_offsets[WS_FIELDS];
static long ws_open = -1;
static int status_active = -1;
static PyTypeObject ConnectionBaseType;

static PyObject *s_data_received, *s_request_count, *s_callback_result, *s_callback_failed,
    *s_after_read, *s_write, *s_is_closing, *s_get_write_buffer_size, *s_get_extra_info,
    *s_socket, *s_sslcontext, *s_fileno, *s_receive_data, *s_data, *s_flush_out;

#define SPLIT_MIN (16 * 1024) /* as websocket_server._SPLIT_MIN: bigger binary is not copied */

/*
 * WorkerState: what a worker's connections share, one object per worker (Worker.state):
 * - request_count: requests and messages handled (Worker.request_count, max_request);
 * - read_buffer: the bytearray the event loop reads into for every connection in turn;
 * - depth/deferred: while a read's callbacks run (depth > 0), a connection that gets a write
 *   is corked and listed in `deferred`; when the outermost dispatch ends, flush_deferred
 *   sends each one's writes at once. A broadcast of every message of a read to 1,000
 *   clients is then one write per client, not one per message and client.
 */
typedef struct {
    PyObject_HEAD
    Py_ssize_t request_count;
    PyObject *read_buffer;
    PyObject *deferred;
    int depth;
} WorkerState;

static PyTypeObject WorkerStateType;

static PyObject *
state_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    WorkerState *self;
    Py_ssize_t size = 0;
    static char *kwlist[] = {"read_buffer_size", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|n:WorkerState", kwlist, &size))
        return NULL;
    self = (WorkerState *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    self->deferred = PyList_New(0);
    self->read_buffer = size > 0 ? PyByteArray_FromStringAndSize(NULL, size) : Py_NewRef(Py_None);
    if (self->deferred == NULL || self->read_buffer == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
state_traverse(WorkerState *self, visitproc visit, void *arg)
{
    Py_VISIT(self->read_buffer);
    Py_VISIT(self->deferred);
    return 0;
}

static int
state_clear(WorkerState *self)
{
    Py_CLEAR(self->read_buffer);
    Py_CLEAR(self->deferred);
    return 0;
}

static void
state_dealloc(WorkerState *self)
{
    PyObject_GC_UnTrack(self);
    state_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef state_members[] = {
    {"request_count", M_SSIZE, offsetof(WorkerState, request_count), 0, NULL},
    {"read_buffer", M_OBJECT, offsetof(WorkerState, read_buffer), M_READONLY, NULL},
    {"deferred", M_OBJECT, offsetof(WorkerState, deferred), M_READONLY, NULL},
    {"depth", M_INT, offsetof(WorkerState, depth), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject WorkerStateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyswoole.runtime._fastpath.WorkerState",
    .tp_basicsize = sizeof(WorkerState),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "WorkerState(read_buffer_size=0): what a worker's connections share.",
    .tp_new = state_new,
    .tp_traverse = (traverseproc)state_traverse,
    .tp_clear = (inquiry)state_clear,
    .tp_dealloc = (destructor)state_dealloc,
    .tp_members = state_members,
};

typedef struct {
    PyObject_HEAD
    PyObject *transport;
    PyObject *ws;
    PyObject *on_message;
    PyObject *app;
    PyObject *worker;
    PyObject *out;
    PyObject *deflate;
    PyObject *jobs;
    PyObject *state; /* the worker's WorkerState */
    double last_recv;
    int status;
    int sockfd; /* the socket, for direct sends: SOCKFD_UNKNOWN until looked up, -1 if none */
    char corked;
    char closed;
} ConnectionBase;

#define SOCKFD_UNKNOWN (-2)

static double
monotonic(void)
{
#ifndef _WIN32
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* time.monotonic()'s clock on Linux and macOS */
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
#else
    return (double)GetTickCount64() / 1000.0;
#endif
}

static int
is_true_slot(PyObject *obj, Py_ssize_t offset)
{
    PyObject *value = SLOT_AT(obj, offset);
    int truth;
    if (value == NULL)
        return 1; /* unset: not a state this path knows */
    truth = PyObject_IsTrue(value);
    if (truth < 0) {
        PyErr_Clear();
        return 1;
    }
    return truth;
}

/* True when ws has nothing in progress: no buffered bytes, OPEN, no fragmented message,
 * no close sent, no partly validated frame (WebSocket.receive_data's own fast-path test). */
static int
ws_idle(PyObject *ws)
{
    PyObject *buf, *state;
    long value;
    if ((PyObject *)Py_TYPE(ws) != ws_type)
        return 0;
    buf = SLOT_AT(ws, ws_offsets[WS_BUF]);
    if (buf == NULL || !PyByteArray_CheckExact(buf) || PyByteArray_GET_SIZE(buf) != 0)
        return 0;
    state = SLOT_AT(ws, ws_offsets[WS_STATE]);
    if (state == NULL || !PyLong_CheckExact(state))
        return 0;
    value = PyLong_AsLong(state);
    if (value != ws_open) {
        PyErr_Clear();
        return 0;
    }
    return !is_true_slot(ws, ws_offsets[WS_MSG_OPCODE]) &&
           !is_true_slot(ws, ws_offsets[WS_CLOSE_SENT]) &&
           !is_true_slot(ws, ws_offsets[WS_PARTIAL_DONE]);
}

/* configure(websocket_type, frame_type, send_data_type, open_state, status_active) */
static PyObject *
configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *names[WS_FIELDS];
    int i, failed = 0;
    long open_state, active;
    if (nargs != 5 || !PyType_Check(args[0]) || !PyType_Check(args[1]) ||
        !PyType_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "configure(websocket_type, frame_type, send_data_type, "
                                         "open_state, status_active)");
        return NULL;
    }
    open_state = PyLong_AsLong(args[3]);
    active = PyLong_AsLong(args[4]);
    if (PyErr_Occurred())
        return NULL;
    for (i = 0; i < WS_FIELDS; i++) {
        names[i] = PyUnicode_InternFromString(ws_field_names[i]);
        if (names[i] == NULL) {
            while (--i >= 0)
                Py_DECREF(names[i]);
            return NULL;
        }
    }
    if (load_offsets((PyTypeObject *)args[0], names, WS_FIELDS, ws_offsets) < 0)
        failed = 1;
    for (i = 0; i < WS_FIELDS; i++) {
        Py_DECREF(names[i]);
        if (!failed && ws_offsets[i] < 0) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not a writable slot",
                         ((PyTypeObject *)args[0])->tp_name, ws_field_names[i]);
            failed = 1;
        }
    }
    if (failed)
        return NULL;
    Py_XSETREF(ws_type, Py_NewRef(args[0]));
    Py_XSETREF(frame_type, Py_NewRef(args[1]));
    Py_XSETREF(send_data_type, Py_NewRef(args[2]));
    ws_open = open_state;
    status_active = (int)active;
    Py_RETURN_NONE;
}

/* -- ConnectionBase ------------------------------------------------------------------------ */

static int
cb_traverse(ConnectionBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->transport);
    Py_VISIT(self->ws);
    Py_VISIT(self->on_message);
    Py_VISIT(self->app);
    Py_VISIT(self->worker);
    Py_VISIT(self->out);
    Py_VISIT(self->deflate);
    Py_VISIT(self->jobs);
    Py_VISIT(self->state);
    return 0;
}

static int
cb_clear(ConnectionBase *self)
{
    Py_CLEAR(self->transport);
    Py_CLEAR(self->ws);
    Py_CLEAR(self->on_message);
    Py_CLEAR(self->app);
    Py_CLEAR(self->worker);
    Py_CLEAR(self->out);
    Py_CLEAR(self->deflate);
    Py_CLEAR(self->jobs);
    Py_CLEAR(self->state);
    return 0;
}

static void
cb_dealloc(ConnectionBase *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    cb_clear(self);
    tp->tp_free((PyObject *)self);
}

static PyObject *
cb_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    ConnectionBase *self = (ConnectionBase *)PyType_GenericNew(tp, args, kwargs);
    if (self != NULL)
        self->sockfd = SOCKFD_UNKNOWN;
    return (PyObject *)self;
}

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
 * Write `frame` (bytes) to the transport, which buffers `buffered` bytes (-1: not asked
 * yet); `open` is 1 when the caller has just seen transport.is_closing() return False.
 * With the transport open and nothing buffered, the frame goes straight to the socket with
 * send() (what uvloop's write would do next, without its bookkeeping); whatever the kernel
 * does not take then goes through transport.write, which keeps the order and handles
 * EAGAIN and errors as usual. A closing transport's descriptor may already be closed, and
 * its number reused by a new connection: that frame goes to transport.write, never send().
 */
static int
write_frame(ConnectionBase *self, PyObject *frame, Py_ssize_t buffered, int open)
{
    PyObject *result;
#ifndef _WIN32
    int fd = socket_fd(self);
    if (fd >= 0 && !open) {
        int closing = transport_closing(self);
        if (closing < 0)
            return -1;
        open = !closing;
    }
    if (fd >= 0 && open) {
        Py_ssize_t n = PyBytes_GET_SIZE(frame), sent;
        if (buffered < 0 && (buffered = write_buffer_size(self)) < 0)
            return -1;
        if (buffered == 0) {
            do {
                sent = send(fd, PyBytes_AS_STRING(frame), (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
            } while (sent < 0 && errno == EINTR);
            if (sent == n)
                return 0;
            if (sent > 0) {
                PyObject *rest = PyBytes_FromStringAndSize(PyBytes_AS_STRING(frame) + sent,
                                                           n - sent);
                if (rest == NULL)
                    return -1;
                result = PyObject_CallMethodOneArg(self->transport, s_write, rest);
                Py_DECREF(rest);
                if (result == NULL)
                    return -1;
                Py_DECREF(result);
                return 0;
            }
            /* EAGAIN, or an error the transport will meet and report: its write decides */
        }
    }
#endif
    result = PyObject_CallMethodOneArg(self->transport, s_write, frame);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

static WorkerState *
state_of(ConnectionBase *self)
{
    return self->state != NULL && Py_IS_TYPE(self->state, &WorkerStateType)
               ? (WorkerState *)self->state
               : NULL;
}

/* get_buffer(sizehint): the worker's read buffer (the loop reads into it; buffer_updated
 * consumes it before returning, so one buffer serves every connection of a worker). */
static PyObject *
cb_get_buffer(ConnectionBase *self, PyObject *sizehint)
{
    WorkerState *state = state_of(self);
    if (state == NULL || !PyByteArray_CheckExact(state->read_buffer) ||
        PyByteArray_GET_SIZE(state->read_buffer) == 0) {
        PyErr_SetString(PyExc_RuntimeError, "get_buffer(): the connection has no read buffer");
        return NULL;
    }
    return Py_NewRef(state->read_buffer);
}

/* worker.request_count += count */
static int
add_request_count(ConnectionBase *self, Py_ssize_t count)
{
    WorkerState *state = state_of(self);
    if (state == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the connection has no worker state");
        return -1;
    }
    state->request_count += count;
    return 0;
}

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

static int write_frame(ConnectionBase *self, PyObject *frame, Py_ssize_t buffered, int open);

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
    if (PyList_SetSlice(out, 0, count, NULL) < 0 ||
        (!closing && write_frame(conn, frame, -1, 1) < 0)) {
        Py_DECREF(frame);
        return -1;
    }
    Py_DECREF(frame);
    return 0;
}

/* Uncork a deferred connection and send what it collected. */
static int
flush_conn(PyObject *obj)
{
    ConnectionBase *conn = (ConnectionBase *)obj;
    PyObject *result;
    int status;
    conn->corked = 0;
    status = send_out(conn);
    if (status <= 0)
        return status;
    result = PyObject_CallMethodNoArgs(obj, s_flush_out);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
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

/* Call on_message(app, frame) for each event with writes corked, as Connection.data_received
 * does: a SendData's bytes join the corked writes; a callback's Exception is its own
 * (logged through _callback_failed), a result goes to app.callback_result; anything else
 * (KeyboardInterrupt...) propagates. */
static int
dispatch(ConnectionBase *self, PyObject *frames)
{
    Py_ssize_t i, count = PyList_GET_SIZE(frames);
    PyObject *on_message = Py_NewRef(self->on_message), *app = Py_NewRef(self->app);
    WorkerState *state = state_of(self);
    int status = add_request_count(self, count); /* first, as data_received counts */
    if (status < 0) {
        Py_DECREF(on_message);
        Py_DECREF(app);
        return -1;
    }
    state->depth++;
    self->corked = 1;
    for (i = 0; i < PyList_GET_SIZE(frames); i++) {
        PyObject *frame = PyList_GET_ITEM(frames, i), *args[2] = {app, frame}, *result;
        if (Py_IS_TYPE(frame, (PyTypeObject *)send_data_type)) {
            /* a pong, in arrival order among the replies to messages */
            PyObject *data = PyObject_GetAttr(frame, s_data);
            if (data == NULL || PyList_Append(self->out, data) < 0) {
                Py_XDECREF(data);
                status = -1;
                break;
            }
            Py_DECREF(data);
            continue;
        }
        result = PyObject_Vectorcall(on_message, args, 2, NULL);
        if (result == NULL) {
            PyObject *type, *value, *tb, *logged;
            if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                status = -1;
                break;
            }
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            if (tb != NULL)
                PyException_SetTraceback(value, tb);
            logged = PyObject_CallMethodObjArgs((PyObject *)self, s_callback_failed, frame,
                                                value, NULL);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            if (logged == NULL) {
                status = -1;
                break;
            }
            Py_DECREF(logged);
        }
        else if (result != Py_None) {
            PyObject *handled = PyObject_CallMethodOneArg(app, s_callback_result, result);
            Py_DECREF(result);
            if (handled == NULL) {
                status = -1;
                break;
            }
            Py_DECREF(handled);
        }
        else {
            Py_DECREF(result);
        }
    }
    self->corked = 0;
    Py_DECREF(on_message);
    Py_DECREF(app);
    if (--state->depth == 0 && PyList_GET_SIZE(state->deferred) > 0) {
        /* the other connections' writes go out even when a callback raised through */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (flush_state(state) < 0) {
            if (type == NULL) {
                PyErr_Fetch(&type, &value, &tb);
                status = -1;
            }
            else {
                PyErr_WriteUnraisable((PyObject *)self);
            }
        }
        PyErr_Restore(type, value, tb);
    }
    return status;
}

/* After the callbacks: what they pushed goes out in one write. The common case (small
 * frames, nothing off the loop, nothing queued by the protocol) is done here; anything else
 * by Connection._after_read, the same code the pure-Python path runs. */
static int
after_read(ConnectionBase *self, PyObject *ws)
{
    PyObject *proto_out = SLOT_AT(ws, ws_offsets[WS_OUT]), *result;
    int status = 1;
    if ((proto_out == NULL || (PyByteArray_CheckExact(proto_out) &&
                               PyByteArray_GET_SIZE(proto_out) == 0)) &&
        !is_true_slot(ws, ws_offsets[WS_CLOSE_TRANSPORT]))
        status = send_out(self);
    if (status <= 0)
        return status;
    result = PyObject_CallMethodNoArgs((PyObject *)self, s_after_read);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

static PyObject *
data_received(ConnectionBase *self, const char *buf, Py_ssize_t n)
{
    PyObject *data = PyBytes_FromStringAndSize(buf, n), *result;
    if (data == NULL)
        return NULL;
    result = PyObject_CallMethodOneArg((PyObject *)self, s_data_received, data);
    Py_DECREF(data);
    return result;
}

/* buffer_updated(nbytes): nbytes were read into the read buffer. */
static PyObject *
cb_buffer_updated(ConnectionBase *self, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg), pos;
    const unsigned char *buf;
    PyObject *ws = self->ws, *frames, *fd, *max_obj;
    Py_ssize_t max_size;
    WorkerState *state;
    if (n == -1 && PyErr_Occurred())
        return NULL;
    state = state_of(self);
    if (state == NULL || !PyByteArray_CheckExact(state->read_buffer) || n < 0 ||
        n > PyByteArray_GET_SIZE(state->read_buffer)) {
        PyErr_SetString(PyExc_RuntimeError, "buffer_updated() without get_buffer()");
        return NULL;
    }
    buf = (const unsigned char *)PyByteArray_AS_STRING(state->read_buffer);
    if (ws == NULL || ws == Py_None || ws_type == NULL || self->on_message == NULL ||
        self->on_message == Py_None || self->app == NULL || self->out == NULL ||
        !PyList_CheckExact(self->out) || !ws_idle(ws))
        return data_received(self, (const char *)buf, n);
    fd = SLOT_AT(ws, ws_offsets[WS_FD]);
    max_obj = SLOT_AT(ws, ws_offsets[WS_MAX_SIZE]);
    if (fd == NULL || max_obj == NULL)
        return data_received(self, (const char *)buf, n);
    max_size = PyLong_AsSsize_t(max_obj);
    if (max_size == -1 && PyErr_Occurred())
        return NULL;
    self->last_recv = monotonic();
    frames = PyList_New(0);
    if (frames == NULL)
        return NULL;
    Py_INCREF(ws);
    pos = ws_parse_simple(buf, n, 0, fd, max_size, (PyTypeObject *)frame_type, frames);
    if (pos < 0)
        goto error;
    if (pos < n) {
        /* The rest of the read goes to the state machine before any callback runs, as in
         * data_received: its events follow the compiled ones in the same dispatch. */
        PyObject *rest = PyBytes_FromStringAndSize((const char *)buf + pos, n - pos), *more;
        if (rest == NULL)
            goto error;
        more = PyObject_CallMethodOneArg(ws, s_receive_data, rest);
        Py_DECREF(rest);
        if (more == NULL)
            goto error;
        if (PyList_SetSlice(frames, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, more) < 0) {
            Py_DECREF(more);
            goto error;
        }
        Py_DECREF(more);
    }
    if (PyList_GET_SIZE(frames) > 0 && dispatch(self, frames) < 0)
        goto error;
    if (after_read(self, ws) < 0)
        goto error;
    Py_DECREF(frames);
    Py_DECREF(ws);
    Py_RETURN_NONE;
error:
    Py_DECREF(frames);
    Py_DECREF(ws);
    return NULL;
}

/*
 * send_final(data) -> bool: the connection's last bytes, just before the transport closes:
 * sent with MSG_MORE when the transport is open, buffers nothing and has a plain socket, so
 * that the close() right after puts the FIN in the same segment (one packet less for the
 * peer to take). False, sending nothing, where that does not apply: the caller writes.
 */
static PyObject *
cb_send_final(ConnectionBase *self, PyObject *data)
{
#ifndef _WIN32
    Py_ssize_t n, sent, buffered;
    int fd, closing;
    if (!PyBytes_CheckExact(data) || self->transport == NULL || self->transport == Py_None)
        Py_RETURN_FALSE;
    fd = socket_fd(self);
    if (fd < 0)
        Py_RETURN_FALSE;
    closing = transport_closing(self);
    if (closing < 0)
        return NULL;
    if (closing)
        Py_RETURN_FALSE;
    buffered = write_buffer_size(self);
    if (buffered < 0)
        return NULL;
    if (buffered > 0)
        Py_RETURN_FALSE;
    {
        /* unread input makes close() send RST, which would drop the held bytes */
        int unread = 0;
        if (ioctl(fd, FIONREAD, &unread) < 0 || unread > 0)
            Py_RETURN_FALSE;
    }
    n = PyBytes_GET_SIZE(data);
    do {
        sent = send(fd, PyBytes_AS_STRING(data), (size_t)n,
                    MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE);
    } while (sent < 0 && errno == EINTR);
    if (sent == n)
        Py_RETURN_TRUE;
    if (sent > 0) {
        PyObject *rest = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + sent, n - sent),
                 *result;
        if (rest == NULL)
            return NULL;
        result = PyObject_CallMethodOneArg(self->transport, s_write, rest);
        Py_DECREF(rest);
        if (result == NULL)
            return NULL;
        Py_DECREF(result);
        Py_RETURN_TRUE;
    }
#endif
    Py_RETURN_FALSE;
}

static PyMethodDef cb_methods[] = {
    {"get_buffer", (PyCFunction)cb_get_buffer, METH_O,
     "get_buffer(sizehint) -> the worker's read buffer (asyncio.BufferedProtocol)."},
    {"send_final", (PyCFunction)cb_send_final, METH_O,
     "send_final(data) -> bool: the last bytes before close, to leave with the FIN."},
    {"buffer_updated", (PyCFunction)cb_buffer_updated, METH_O,
     "buffer_updated(nbytes): handle nbytes read into the buffer (asyncio.BufferedProtocol)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef cb_members[] = {
    {"transport", M_OBJECT, offsetof(ConnectionBase, transport), 0, NULL},
    {"ws", M_OBJECT, offsetof(ConnectionBase, ws), 0, NULL},
    {"on_message", M_OBJECT, offsetof(ConnectionBase, on_message), 0, NULL},
    {"app", M_OBJECT, offsetof(ConnectionBase, app), 0, NULL},
    {"worker", M_OBJECT, offsetof(ConnectionBase, worker), 0, NULL},
    {"out", M_OBJECT, offsetof(ConnectionBase, out), 0, NULL},
    {"deflate", M_OBJECT, offsetof(ConnectionBase, deflate), 0, NULL},
    {"_jobs", M_OBJECT, offsetof(ConnectionBase, jobs), 0, NULL},
    {"_state", M_OBJECT, offsetof(ConnectionBase, state), 0, NULL},
    {"last_recv", M_DOUBLE, offsetof(ConnectionBase, last_recv), 0, NULL},
    {"status", M_INT, offsetof(ConnectionBase, status), 0, NULL},
    {"corked", M_BOOL, offsetof(ConnectionBase, corked), 0, NULL},
    {"closed", M_BOOL, offsetof(ConnectionBase, closed), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ConnectionBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyswoole.runtime._fastpath.ConnectionBase",
    .tp_basicsize = sizeof(ConnectionBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The compiled part of a connection: its hot fields and buffered read path.",
    .tp_traverse = (traverseproc)cb_traverse,
    .tp_clear = (inquiry)cb_clear,
    .tp_dealloc = (destructor)cb_dealloc,
    .tp_methods = cb_methods,
    .tp_members = cb_members,
    .tp_new = cb_new,
};

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
 * sent as binary (opcode 2), with flags FIN only. The frame is appended to conn.out while
 * corked, else written unless the transport already buffers `limit` bytes (bytes of 16 KiB
 * or more: header and payload appended while corked; uncorked, push() writes them). Returns a new reference to True, or to NotImplemented for anything else (the
 * Python push() then handles it, and reports an overflow), or NULL with an exception.
 */
static int queue_frame(ConnectionBase *conn, PyObject *frame, Py_ssize_t limit);

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
        if (!conn->corked) {
            Py_ssize_t buffered = write_buffer_size(conn);
            if (buffered < 0)
                return NULL;
            status = buffered >= limit ? 0 : cork_for_dispatch(conn);
            if (status < 0)
                return NULL;
            if (status == 0)
                Py_RETURN_NOTIMPLEMENTED;
        }
        head = PyBytes_FromStringAndSize(
            (const char *)header, put_header(header, 2, PyBytes_GET_SIZE(data)));
        if (head == NULL)
            return NULL;
        status = PyList_Append(conn->out, head);
        Py_DECREF(head);
        if (status < 0 || PyList_Append(conn->out, data) < 0)
            return NULL;
        Py_RETURN_TRUE;
    }
    else {
        Py_RETURN_NOTIMPLEMENTED;
    }
    if (frame == NULL)
        return NULL;
    status = queue_frame(conn, frame, limit);
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
    int status;
    if (conn->corked)
        return PyList_Append(conn->out, frame) < 0 ? -1 : 1;
    buffered = write_buffer_size(conn);
    if (buffered < 0)
        return -1;
    if (buffered >= limit)
        return 0;
    status = cork_for_dispatch(conn);
    if (status != 0)
        return status < 0 || PyList_Append(conn->out, frame) < 0 ? -1 : 1;
    return write_frame(conn, frame, buffered, 0) < 0 ? -1 : 1;
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
        Py_DECREF(item);
        if (status < 0)
            goto error;
        sent += status;
    }
    Py_DECREF(iter);
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
 * common case compiled. `table` is the worker's dict of connections by fd; calls that
 * push_conn does not take (another process's fd, a closed one, compression, a big or
 * fragmented message, keyword arguments, an overflow...) go to `fallback` unchanged, the
 * Python push(), which stays the one place that reports errors.
 */
typedef struct {
    PyObject_HEAD
    PyObject *table;
    PyObject *fallback;
    Py_ssize_t limit;
    vectorcallfunc vectorcall;
} Pusher;

static PyObject *
pusher_call(Pusher *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames == NULL && nargs >= 2 && nargs <= 4) {
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

static PyMethodDef fastpath_methods[] = {
    {"broadcast_frame", (PyCFunction)(void (*)(void))broadcast_frame, METH_FASTCALL,
     "broadcast_frame(conns, frame, limit) -> (sent, rest): broadcast()'s common case."},
    {"flush_deferred", (PyCFunction)flush_deferred, METH_O,
     "flush_deferred(state): write what the connections corked during a dispatch collected."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "configure(websocket_type, frame_type, send_data_type, open_state, status_active)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT, "pyswoole.runtime._fastpath",
    "The compiled read path of pyswoole's connections.", -1, fastpath_methods,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    PyObject *module;
    if (wscore_init() < 0)
        return NULL;
    s_data_received = PyUnicode_InternFromString("data_received");
    s_request_count = PyUnicode_InternFromString("request_count");
    s_callback_result = PyUnicode_InternFromString("callback_result");
    s_callback_failed = PyUnicode_InternFromString("_callback_failed");
    s_after_read = PyUnicode_InternFromString("_after_read");
    s_write = PyUnicode_InternFromString("write");
    s_is_closing = PyUnicode_InternFromString("is_closing");
    s_get_write_buffer_size = PyUnicode_InternFromString("get_write_buffer_size");
    s_get_extra_info = PyUnicode_InternFromString("get_extra_info");
    s_socket = PyUnicode_InternFromString("socket");
    s_sslcontext = PyUnicode_InternFromString("sslcontext");
    s_fileno = PyUnicode_InternFromString("fileno");
    s_receive_data = PyUnicode_InternFromString("receive_data");
    s_data = PyUnicode_InternFromString("data");
    s_flush_out = PyUnicode_InternFromString("_flush_out");
    if (!s_data_received || !s_request_count || !s_callback_result || !s_callback_failed ||
        !s_after_read || !s_write || !s_is_closing || !s_get_write_buffer_size ||
        !s_get_extra_info || !s_socket || !s_sslcontext || !s_fileno || !s_receive_data ||
        !s_data || !s_flush_out)
        return NULL;
    if (PyType_Ready(&ConnectionBaseType) < 0 || PyType_Ready(&PusherType) < 0 ||
        PyType_Ready(&WorkerStateType) < 0)
        return NULL;
    module = PyModule_Create(&fastpath_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObject(module, "ConnectionBase", Py_NewRef(&ConnectionBaseType)) < 0) {
        Py_DECREF(&ConnectionBaseType);
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddObject(module, "Pusher", Py_NewRef(&PusherType)) < 0) {
        Py_DECREF(&PusherType);
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddObject(module, "WorkerState", Py_NewRef(&WorkerStateType)) < 0) {
        Py_DECREF(&WorkerStateType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
