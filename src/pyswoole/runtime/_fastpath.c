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
 * text (str) or binary message to an established, uncompressed connection of this worker
 * with nothing waiting off the loop. Anything else goes to the Python push(). The write
 * side -- direct sends, deferred writes, push and broadcast -- is in _fastpath_write.h.
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
    WS_OUT, WS_CLOSE_TRANSPORT, WS_INPUT_PENDING, WS_FIELDS
};
static const char *ws_field_names[WS_FIELDS] = {
    "_buf", "state", "_msg_opcode", "close_sent", "_partial_done", "fd", "max_message_size",
    "_out", "close_transport", "input_pending",
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
    *s_socket, *s_sslcontext, *s_fileno, *s_receive_data, *s_data, *s_flush_out,
    *s_track_reply;

#define SPLIT_MIN (16 * 1024) /* as websocket_server._SPLIT_MIN: bigger binary is not copied */

/*
 * WorkerState: what a worker's connections share, one object per worker (Worker.state):
 * - request_count: requests and messages handled (Worker.request_count, max_request);
 * - read_buffer: the bytearray the event loop reads into for every connection in turn;
 * - depth/deferred: while a read's callbacks run (depth > 0), a connection that gets a write
 *   is corked and listed in `deferred`; when the outermost dispatch ends, flush_deferred
 *   sends each one's writes at once. A broadcast of every message of a read to 1,000
 *   clients is then one write per client, not one per message and client.
 * - buffer_slack: socket_buffer_size minus the high watermark. A transport that has not
 *   said pause_writing buffers at most the high watermark, so a corked connection with
 *   fewer than buffer_slack bytes in `out` is under the limit without asking the
 *   transport its size (runtime/flow.py).
 */
typedef struct {
    PyObject_HEAD
    Py_ssize_t request_count;
    /* bytes read from and written to clients, messages queued for them (stats()) */
    Py_ssize_t recv_bytes, send_bytes, response_count;
    /* messages refused because `limit` bytes were queued (pyswoole.metrics) */
    Py_ssize_t buffer_overflows;
    Py_ssize_t buffer_slack;
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
    {"recv_bytes", M_SSIZE, offsetof(WorkerState, recv_bytes), 0, NULL},
    {"send_bytes", M_SSIZE, offsetof(WorkerState, send_bytes), 0, NULL},
    {"response_count", M_SSIZE, offsetof(WorkerState, response_count), 0, NULL},
    {"buffer_overflows", M_SSIZE, offsetof(WorkerState, buffer_overflows), 0, NULL},
    {"read_buffer", M_OBJECT, offsetof(WorkerState, read_buffer), M_READONLY, NULL},
    {"deferred", M_OBJECT, offsetof(WorkerState, deferred), M_READONLY, NULL},
    {"depth", M_INT, offsetof(WorkerState, depth), 0, NULL},
    {"buffer_slack", M_SSIZE, offsetof(WorkerState, buffer_slack), 0, NULL},
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
    Py_ssize_t out_bytes; /* the bytes in `out` */
    int status;
    int sockfd; /* the socket, for direct sends: SOCKFD_UNKNOWN until looked up, -1 if none */
    char corked;
    char closed;
    char wpaused; /* the transport said pause_writing (and not yet resume_writing) */
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

/* True for b"" or an empty bytearray: WebSocket._buf and _out when they hold nothing (b""
 * until there is something to hold). */
static int
empty_bytes(PyObject *obj)
{
    return obj != NULL && ((PyBytes_CheckExact(obj) && PyBytes_GET_SIZE(obj) == 0) ||
                           (PyByteArray_CheckExact(obj) && PyByteArray_GET_SIZE(obj) == 0));
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
    if (!empty_bytes(buf))
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

#include "_fastpath_write.h"

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
            if (data == NULL || !PyBytes_Check(data) || PyList_Append(self->out, data) < 0) {
                if (data != NULL && !PyBytes_Check(data))
                    PyErr_SetString(PyExc_TypeError, "SendData.data must be bytes");
                Py_XDECREF(data);
                status = -1;
                break;
            }
            self->out_bytes += PyBytes_GET_SIZE(data);
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
            if (handled != Py_None) {
                /* an async def callback's task: a close waits for it */
                PyObject *tracked =
                    PyObject_CallMethodOneArg((PyObject *)self, s_track_reply, handled);
                Py_DECREF(handled);
                if (tracked == NULL) {
                    status = -1;
                    break;
                }
                handled = tracked;
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
 * frames, nothing off the loop, nothing queued by the protocol, the state machine idle
 * again: nothing held for later) is done here; anything else by Connection._after_read,
 * the same code the pure-Python path runs. */
static int
after_read(ConnectionBase *self, PyObject *ws)
{
    PyObject *proto_out = SLOT_AT(ws, ws_offsets[WS_OUT]), *result;
    int status = 1;
    if ((proto_out == NULL || empty_bytes(proto_out)) &&
        !is_true_slot(ws, ws_offsets[WS_CLOSE_TRANSPORT]) &&
        !is_true_slot(ws, ws_offsets[WS_INPUT_PENDING]) && ws_idle(ws))
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
    state->recv_bytes += n; /* (what goes to data_received is counted there) */
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
    {"out_bytes", M_SSIZE, offsetof(ConnectionBase, out_bytes), 0, NULL},
    {"_write_paused", M_BOOL, offsetof(ConnectionBase, wpaused), 0, NULL},
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

static PyMethodDef fastpath_methods[] = {
    {"broadcast_frame", (PyCFunction)(void (*)(void))broadcast_frame, METH_FASTCALL,
     "broadcast_frame(conns, frame, limit) -> (sent, rest): broadcast()'s common case."},
    {"flush_deferred", (PyCFunction)flush_deferred, METH_O,
     "flush_deferred(state): write what the connections corked during a dispatch collected."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "configure(websocket_type, frame_type, send_data_type, open_state, status_active)"},
    {"ws_counts", (PyCFunction)ws_counts, METH_NOARGS,
     "ws_counts() -> 64 ints: messages/payload bytes by opcode received, then sent."},
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
    s_track_reply = PyUnicode_InternFromString("_track_reply");
    if (!s_data_received || !s_request_count || !s_callback_result || !s_callback_failed ||
        !s_after_read || !s_write || !s_is_closing || !s_get_write_buffer_size ||
        !s_get_extra_info || !s_socket || !s_sslcontext || !s_fileno || !s_receive_data ||
        !s_data || !s_flush_out || !s_track_reply)
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
