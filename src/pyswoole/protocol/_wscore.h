/*
 * The compiled core of RFC 6455 receiving, shared by pyswoole's two extension modules:
 * protocol/_speedups.c (parse_simple, called by the Python state machine) and
 * runtime/_fastpath.c (the connection's read path, which parses straight from the buffer
 * the event loop read into). Each module compiles its own copy of these static functions;
 * they are written once, here.
 *
 * Nothing here decides a protocol error: ws_parse_simple() stops at the first frame that is
 * not the common case, and the pure-Python state machine (protocol/websocket.py) handles
 * that frame and everything after it.
 */
#ifndef PYSWOOLE_WSCORE_H
#define PYSWOOLE_WSCORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#ifdef Py_T_OBJECT_EX /* 3.12+ */
#define SLOT_OBJECT Py_T_OBJECT_EX
#define SLOT_READONLY Py_READONLY
#else
#include <structmember.h>
#define SLOT_OBJECT T_OBJECT_EX
#define SLOT_READONLY READONLY
#endif

/* XOR n bytes of src with the 4-byte mask m repeated, into dst (RFC 6455 section 5.3). */
static void
xor_mask(const unsigned char *src, unsigned char *dst, Py_ssize_t n, const unsigned char *m)
{
    Py_ssize_t i = 0;
    uint32_t mask32;
    uint64_t mask64;
    memcpy(&mask32, m, 4);
    mask64 = ((uint64_t)mask32 << 32) | mask32;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, src + i, 8);
        word ^= mask64;
        memcpy(dst + i, &word, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ m[i & 3];
}

/*
 * Where a __slots__ class keeps the named attributes: their offsets in the instance, read
 * from its member descriptors, so C code reads or fills them with a pointer access instead
 * of an attribute lookup. A name that is not a plain writable object slot gets -1.
 */
static int
load_offsets(PyTypeObject *tp, PyObject *const *names, int count, Py_ssize_t *offsets)
{
    int i;
    for (i = 0; i < count; i++) {
        PyObject *descr = PyObject_GetAttr((PyObject *)tp, names[i]);
        offsets[i] = -1;
        if (descr == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError))
                return -1;
            PyErr_Clear(); /* an instance attribute, not a slot */
            continue;
        }
        if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
            if (member->type == SLOT_OBJECT && !(member->flags & SLOT_READONLY))
                offsets[i] = member->offset;
        }
        Py_DECREF(descr);
    }
    return 0;
}

/* A slot's value (borrowed; NULL when unset), given its offset from load_offsets. */
#define SLOT_AT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/*
 * Messages and payload bytes by opcode (pyswoole.metrics), for this process: received ones
 * counted by ws_parse_simple, sent ones by the write paths of runtime/_fastpath.c (one array
 * index per frame; a continuation frame's bytes go to index 0). Each module has its own
 * copy; metrics.py adds them to the pure-Python counts (protocol/websocket.py) when it
 * publishes. Payload bytes: the frame's payload length as on the wire (no header or mask).
 */
static unsigned long long ws_in_msgs[16], ws_in_bytes[16], ws_out_msgs[16], ws_out_bytes[16];

/* ws_counts() -> 64 ints: received messages, received bytes, sent messages, sent bytes,
 * 16 each (by opcode). */
static PyObject *
ws_counts(PyObject *module, PyObject *unused)
{
    unsigned long long *arrays[4] = {ws_in_msgs, ws_in_bytes, ws_out_msgs, ws_out_bytes};
    PyObject *result = PyTuple_New(64);
    int i;
    if (result == NULL)
        return NULL;
    for (i = 0; i < 64; i++) {
        PyObject *value = PyLong_FromUnsignedLongLong(arrays[i >> 4][i & 15]);
        if (value == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyTuple_SET_ITEM(result, i, value);
    }
    return result;
}

/* Frame's five attributes, in the order frame_values below fills them. */
#define FRAME_FIELDS 5
static PyObject *frame_names[FRAME_FIELDS]; /* fd, data, opcode, finish, flags */
static PyObject *frame_type_cached;         /* strong reference: the type of frame_offsets */
static Py_ssize_t frame_offsets[FRAME_FIELDS];
static PyObject *ONE, *TWO;
/* The flags of a delivered message, as Swoole reports them: FIN|MASK (SWOOLE_WEBSOCKET_FLAG_*
 * 1|32), the header bits of every frame this parser accepts (protocol/websocket.py). */
#define WS_FLAGS_MESSAGE 33
static PyObject *FLAGS_MESSAGE;

/* Interned names and constants; call once from the module's init. */
static int
wscore_init(void)
{
    static const char *names[FRAME_FIELDS] = {"fd", "data", "opcode", "finish", "flags"};
    int i;
    for (i = 0; i < FRAME_FIELDS; i++) {
        frame_names[i] = PyUnicode_InternFromString(names[i]);
        if (frame_names[i] == NULL)
            return -1;
    }
    ONE = PyLong_FromLong(1);
    TWO = PyLong_FromLong(2);
    FLAGS_MESSAGE = PyLong_FromLong(WS_FLAGS_MESSAGE);
    return ONE && TWO && FLAGS_MESSAGE ? 0 : -1;
}

/* A new `tp` instance (a Frame) with its five attributes set: slots through their offsets
 * (read once per type), anything else with setattr. */
static PyObject *
new_frame(PyTypeObject *tp, PyObject *values[FRAME_FIELDS])
{
    PyObject *frame;
    int i;
    if ((PyObject *)tp != frame_type_cached) {
        if (load_offsets(tp, frame_names, FRAME_FIELDS, frame_offsets) < 0)
            return NULL;
        Py_XSETREF(frame_type_cached, Py_NewRef((PyObject *)tp));
    }
    frame = tp->tp_alloc(tp, 0);
    if (frame == NULL)
        return NULL;
    for (i = 0; i < FRAME_FIELDS; i++) {
        Py_ssize_t offset = frame_offsets[i];
        if (offset >= 0) {
            SLOT_AT(frame, offset) = Py_NewRef(values[i]);
        }
        else if (PyObject_SetAttr(frame, frame_names[i], values[i]) < 0) {
            Py_DECREF(frame);
            return NULL;
        }
    }
    return frame;
}

/*
 * The common case of receiving, compiled: from offset `pos` of buf[0:n], turn every
 * complete, masked, FIN, RSV-free text or binary frame of at most `max_size` bytes, header
 * included (Swoole's package_max_length), into a `tp` instance (text decoded as UTF-8, flags
 * FIN|MASK) appended to `frames`. Stops at the first
 * frame that is anything else (incomplete, fragmented, control, compressed, oversize,
 * invalid UTF-8...). Returns the offset reached, or -1 with an exception set.
 */
static Py_ssize_t
ws_parse_simple(const unsigned char *buf, Py_ssize_t n, Py_ssize_t pos, PyObject *fd,
                Py_ssize_t max_size, PyTypeObject *tp, PyObject *frames)
{
    while (n - pos >= 2) {
        unsigned char b0 = buf[pos], b1 = buf[pos + 1];
        Py_ssize_t length = b1 & 0x7F, hlen = 6, end;
        int opcode = b0 & 0x0F;
        PyObject *payload, *frame, *values[FRAME_FIELDS];
        if ((b0 & 0xF0) != 0x80 || !(b1 & 0x80) || (opcode != 1 && opcode != 2))
            break; /* not FIN, RSV set, unmasked, or not text/binary: Python decides */
        if (length == 126) {
            if (n - pos < 4)
                break;
            length = ((Py_ssize_t)buf[pos + 2] << 8) | buf[pos + 3];
            hlen = 8;
        }
        else if (length == 127) {
            uint64_t wide = 0;
            int i;
            if (n - pos < 10)
                break;
            for (i = 0; i < 8; i++)
                wide = (wide << 8) | buf[pos + 2 + i];
            if (wide > (uint64_t)max_size)
                break; /* oversize, or the invalid top bit set: Python decides */
            length = (Py_ssize_t)wide;
            hlen = 14;
        }
        if (length > max_size - hlen || length > n - pos - hlen)
            break; /* oversize with its header (Python fails it with 1009), or not all here */
        end = pos + hlen + length;
        if (opcode == 1) {
            /* unmask on the stack or in a temporary buffer, then decode */
            unsigned char small[512];
            unsigned char *tmp = length <= (Py_ssize_t)sizeof(small) ? small
                                                                     : PyMem_Malloc(length);
            if (tmp == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            xor_mask(buf + pos + hlen, tmp, length, buf + pos + hlen - 4);
            payload = PyUnicode_DecodeUTF8((const char *)tmp, length, NULL);
            if (tmp != small)
                PyMem_Free(tmp);
            if (payload == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                    return -1;
                PyErr_Clear();
                break; /* invalid UTF-8: Python fails the connection with 1007 */
            }
        }
        else {
            payload = PyBytes_FromStringAndSize(NULL, length);
            if (payload == NULL)
                return -1;
            xor_mask(buf + pos + hlen, (unsigned char *)PyBytes_AS_STRING(payload), length,
                     buf + pos + hlen - 4);
        }
        values[0] = fd;
        values[1] = payload;
        values[2] = opcode == 1 ? ONE : TWO;
        values[3] = Py_True;
        values[4] = FLAGS_MESSAGE;
        frame = new_frame(tp, values);
        Py_DECREF(payload);
        if (frame == NULL)
            return -1;
        if (PyList_Append(frames, frame) < 0) {
            Py_DECREF(frame);
            return -1;
        }
        Py_DECREF(frame);
        ws_in_msgs[opcode]++;
        ws_in_bytes[opcode] += (unsigned long long)length;
        pos = end;
    }
    return pos;
}

#endif /* PYSWOOLE_WSCORE_H */
