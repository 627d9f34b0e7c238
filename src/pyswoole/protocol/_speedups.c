/*
 * Optional compiled helpers for the protocol core (pyswoole.protocol.frames).
 *
 * apply_mask(data, mask) -> bytes: XOR data with the 4-byte mask repeated
 * (RFC 6455 section 5.3). Same behaviour as the pure-Python reference in frames.py;
 * the tests run both (PYSWOOLE_NO_EXTENSIONS=1 selects the reference).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

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

static PyObject *
apply_mask(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, mask;
    PyObject *result;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply_mask() takes exactly 2 arguments");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &mask, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes");
        goto error;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL)
        goto error;
    xor_mask((const unsigned char *)data.buf, (unsigned char *)PyBytes_AS_STRING(result),
             data.len, (const unsigned char *)mask.buf);
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;

error:
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return NULL;
}

/* Interned attribute names of Frame, set from C (Frame is a __slots__ class). */
static PyObject *str_fd, *str_data, *str_opcode, *str_finish, *str_flags;
static PyObject *frame_names[5]; /* the five above, in that order */
static PyObject *ONE, *TWO;

#ifdef Py_T_OBJECT_EX /* 3.12+ */
#define SLOT_OBJECT Py_T_OBJECT_EX
#define SLOT_READONLY Py_READONLY
#else
#include <structmember.h>
#define SLOT_OBJECT T_OBJECT_EX
#define SLOT_READONLY READONLY
#endif

/*
 * Where a frame type keeps its five slots: their offsets in the instance, read once per type
 * from its member descriptors, so parse_simple fills a fresh instance with five stores
 * instead of five attribute lookups. A type whose attributes are not plain object slots
 * gets offset -1, and parse_simple then falls back to setattr.
 */
static PyObject *slots_type; /* strong reference to the type the offsets belong to */
static Py_ssize_t slot_offsets[5];

static int
load_slot_offsets(PyTypeObject *tp)
{
    int i;
    for (i = 0; i < 5; i++) {
        PyObject *descr = PyObject_GetAttr((PyObject *)tp, frame_names[i]);
        slot_offsets[i] = -1;
        if (descr == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError))
                return -1;
            PyErr_Clear(); /* an instance attribute: setattr will do */
            continue;
        }
        if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
            if (member->type == SLOT_OBJECT && !(member->flags & SLOT_READONLY))
                slot_offsets[i] = member->offset;
        }
        Py_DECREF(descr);
    }
    Py_XSETREF(slots_type, Py_NewRef((PyObject *)tp));
    return 0;
}

/* Fill the five slots of `frame` (fresh from tp_alloc, so all NULL). */
static int
fill_frame(PyObject *frame, PyObject *values[5])
{
    int i;
    for (i = 0; i < 5; i++) {
        Py_ssize_t offset = slot_offsets[i];
        if (offset >= 0)
            *(PyObject **)((char *)frame + offset) = Py_NewRef(values[i]);
        else if (PyObject_SetAttr(frame, frame_names[i], values[i]) < 0)
            return -1;
    }
    return 0;
}

/*
 * parse_simple(data, pos, fd, max_size, frame_type) -> (frames, pos)
 *
 * The common case of RFC 6455 receiving, compiled: from offset `pos`, turn every complete,
 * masked, FIN, RSV-free text or binary frame of at most `max_size` payload bytes into a
 * `frame_type` instance (text decoded as UTF-8). Stops at the first frame that is anything
 * else (incomplete, fragmented, control, compressed, oversize, invalid UTF-8...) and returns
 * the offset reached: the pure-Python parser handles that frame and everything after it,
 * including every error. So this function never decides a protocol error itself.
 */
static PyObject *
parse_simple(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, max_size, n;
    PyObject *fd, *frame_type, *frames, *result, *end_obj;
    const unsigned char *buf;
    PyTypeObject *tp;

    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "parse_simple() takes exactly 5 arguments");
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    fd = args[2];
    max_size = PyLong_AsSsize_t(args[3]);
    if (max_size == -1 && PyErr_Occurred())
        return NULL;
    frame_type = args[4];
    if (!PyType_Check(frame_type)) {
        PyErr_SetString(PyExc_TypeError, "frame_type must be a type");
        return NULL;
    }
    tp = (PyTypeObject *)frame_type;
    if (frame_type != slots_type && load_slot_offsets(tp) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    buf = (const unsigned char *)view.buf;
    n = view.len;
    frames = PyList_New(0);
    if (frames == NULL)
        goto error;
    while (n - pos >= 2) {
        unsigned char b0 = buf[pos], b1 = buf[pos + 1];
        Py_ssize_t length = b1 & 0x7F, hlen = 6, end;
        int opcode = b0 & 0x0F;
        PyObject *payload, *frame, *values[5];
        if ((b0 & 0xF0) != 0x80 || !(b1 & 0x80) || (opcode != 1 && opcode != 2))
            break; /* not FIN, RSV set, unmasked, or not text/binary: Python decides */
        if (length == 126) {
            if (n - pos < 4)
                break;
            length = ((Py_ssize_t)buf[pos + 2] << 8) | buf[pos + 3];
            hlen = 8;
        }
        else if (length == 127) {
            break; /* 64-bit lengths are rare and big: leave them to Python */
        }
        if (length > max_size)
            break;
        end = pos + hlen + length;
        if (end > n)
            break;
        if (opcode == 1) {
            /* unmask on the stack or in a temporary buffer, then decode */
            unsigned char small[512];
            unsigned char *tmp = length <= (Py_ssize_t)sizeof(small) ? small
                                                                     : PyMem_Malloc(length);
            if (tmp == NULL) {
                PyErr_NoMemory();
                goto error;
            }
            xor_mask(buf + pos + hlen, tmp, length, buf + pos + hlen - 4);
            payload = PyUnicode_DecodeUTF8((const char *)tmp, length, NULL);
            if (tmp != small)
                PyMem_Free(tmp);
            if (payload == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                    goto error;
                PyErr_Clear();
                break; /* invalid UTF-8: Python fails the connection with 1007 */
            }
        }
        else {
            payload = PyBytes_FromStringAndSize(NULL, length);
            if (payload == NULL)
                goto error;
            xor_mask(buf + pos + hlen, (unsigned char *)PyBytes_AS_STRING(payload), length,
                     buf + pos + hlen - 4);
        }
        frame = tp->tp_alloc(tp, 0);
        if (frame == NULL) {
            Py_DECREF(payload);
            goto error;
        }
        values[0] = fd;
        values[1] = payload;
        values[2] = opcode == 1 ? ONE : TWO;
        values[3] = Py_True;
        values[4] = ONE;
        if (fill_frame(frame, values) < 0) {
            Py_DECREF(payload);
            Py_DECREF(frame);
            goto error;
        }
        Py_DECREF(payload);
        if (PyList_Append(frames, frame) < 0) {
            Py_DECREF(frame);
            goto error;
        }
        Py_DECREF(frame);
        pos = end;
    }
    PyBuffer_Release(&view);
    result = PyTuple_New(2);
    if (result == NULL || (end_obj = PyLong_FromSsize_t(pos)) == NULL) {
        Py_XDECREF(result);
        Py_DECREF(frames);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, frames);
    PyTuple_SET_ITEM(result, 1, end_obj);
    return result;

error:
    Py_XDECREF(frames);
    PyBuffer_Release(&view);
    return NULL;
}

/*
 * encode_text(data: str) -> bytes
 *
 * One final, unmasked, RSV-free text frame (RFC 6455 section 5.2) carrying `data` encoded
 * as UTF-8: the same bytes as encode_frame(1, data.encode()) in frames.py, built in one
 * allocation. A str that cannot be encoded (a lone surrogate) raises UnicodeEncodeError,
 * as str.encode() does.
 */
static PyObject *
encode_text(PyObject *self, PyObject *arg)
{
    PyObject *encoded = NULL, *result;
    const char *src;
    Py_ssize_t n, hlen;
    unsigned char *dst;

    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "encode_text() argument must be str");
        return NULL;
    }
    if (PyUnicode_IS_COMPACT_ASCII(arg)) {
        /* ASCII is its own UTF-8: copy straight from the str, no intermediate bytes */
        src = (const char *)PyUnicode_DATA(arg);
        n = PyUnicode_GET_LENGTH(arg);
    }
    else {
        encoded = PyUnicode_AsUTF8String(arg);
        if (encoded == NULL)
            return NULL;
        src = PyBytes_AS_STRING(encoded);
        n = PyBytes_GET_SIZE(encoded);
    }
    hlen = n < 126 ? 2 : n < 65536 ? 4 : 10;
    result = PyBytes_FromStringAndSize(NULL, hlen + n);
    if (result == NULL) {
        Py_XDECREF(encoded);
        return NULL;
    }
    dst = (unsigned char *)PyBytes_AS_STRING(result);
    dst[0] = 0x81;
    if (hlen == 2) {
        dst[1] = (unsigned char)n;
    }
    else if (hlen == 4) {
        dst[1] = 126;
        dst[2] = (unsigned char)(n >> 8);
        dst[3] = (unsigned char)n;
    }
    else {
        uint64_t len = (uint64_t)n;
        int i;
        dst[1] = 127;
        for (i = 0; i < 8; i++)
            dst[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    }
    memcpy(dst + hlen, src, n);
    Py_XDECREF(encoded);
    return result;
}

/* head_fields(data, end) -> (target, [(name, value), ...]) or None
 *
 * The request-target and the field lines of a request head that llhttp has already
 * validated (see http._quick_upgrade): data[:end] is "GET " target " HTTP/1.1" CRLF, then
 * field lines, then an empty line (RFC 9112 sections 2-5). Names come back lower-cased,
 * values without their surrounding OWS (SP / HTAB, RFC 9110 section 5.6.3), both decoded
 * as latin-1: the same as the pure-Python loop there. None if the bytes do not have that
 * shape (the caller then uses the full parser).
 */
static PyObject *
head_fields(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *p, *stop, *line, *eol, *colon, *v, *ve;
    Py_ssize_t end, i;
    PyObject *target, *fields, *name, *value, *pair, *result;

    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "head_fields(data: bytes, end: int)");
        return NULL;
    }
    end = PyLong_AsSsize_t(args[1]);
    if (end == -1 && PyErr_Occurred())
        return NULL;
    if (end < 18 || end > PyBytes_GET_SIZE(args[0]))
        Py_RETURN_NONE;
    p = PyBytes_AS_STRING(args[0]);
    stop = p + end - 2; /* the final CRLF: the empty line */
    if (memcmp(p, "GET ", 4) != 0)
        Py_RETURN_NONE;
    eol = memchr(p, '\r', stop - p);
    if (eol == NULL || eol - p < 14 || memcmp(eol - 9, " HTTP/1.1", 9) != 0)
        Py_RETURN_NONE;
    for (v = p + 4; v < eol - 9; v++) {
        if (*v == ' ' || *v == '\t') /* llhttp lets extra SP around the target through */
            Py_RETURN_NONE;
    }
    if (eol - 9 == p + 4)
        Py_RETURN_NONE;
    target = PyUnicode_DecodeLatin1(p + 4, (eol - 9) - (p + 4), NULL);
    if (target == NULL)
        return NULL;
    fields = PyList_New(0);
    if (fields == NULL) {
        Py_DECREF(target);
        return NULL;
    }
    line = eol + 2;
    while (line < stop) {
        eol = memchr(line, '\r', stop - line);
        colon = memchr(line, ':', (eol ? eol : stop) - line);
        if (eol == NULL || colon == NULL || colon == line)
            goto shape;
        name = PyUnicode_New(colon - line, 127);
        if (name == NULL)
            goto error;
        for (i = 0; i < colon - line; i++) {
            unsigned char c = (unsigned char)line[i];
            if (c >= 0x80) { /* llhttp allows only tchar: cannot happen */
                Py_DECREF(name);
                goto shape;
            }
            PyUnicode_1BYTE_DATA(name)[i] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        }
        v = colon + 1;
        ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        value = PyUnicode_DecodeLatin1(v, ve - v, NULL);
        if (value == NULL) {
            Py_DECREF(name);
            goto error;
        }
        pair = PyTuple_Pack(2, name, value);
        Py_DECREF(name);
        Py_DECREF(value);
        if (pair == NULL || PyList_Append(fields, pair) < 0) {
            Py_XDECREF(pair);
            goto error;
        }
        Py_DECREF(pair);
        line = eol + 2;
    }
    result = PyTuple_Pack(2, target, fields);
    Py_DECREF(target);
    Py_DECREF(fields);
    return result;
shape:
    Py_DECREF(target);
    Py_DECREF(fields);
    Py_RETURN_NONE;
error:
    Py_DECREF(target);
    Py_DECREF(fields);
    return NULL;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL,
     "apply_mask(data, mask) -> bytes: XOR data with the 4-byte mask repeated."},
    {"parse_simple", (PyCFunction)(void (*)(void))parse_simple, METH_FASTCALL,
     "parse_simple(data, pos, fd, max_size, frame_type) -> (frames, pos)"},
    {"encode_text", (PyCFunction)encode_text, METH_O,
     "encode_text(data) -> bytes: one final unmasked text frame carrying data as UTF-8."},
    {"head_fields", (PyCFunction)(void (*)(void))head_fields, METH_FASTCALL,
     "head_fields(data, end) -> (target, fields) | None: cut a validated GET head."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "pyswoole.protocol._speedups",
    "Compiled helpers for pyswoole's protocol core.", -1, speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    str_fd = PyUnicode_InternFromString("fd");
    str_data = PyUnicode_InternFromString("data");
    str_opcode = PyUnicode_InternFromString("opcode");
    str_finish = PyUnicode_InternFromString("finish");
    str_flags = PyUnicode_InternFromString("flags");
    ONE = PyLong_FromLong(1);
    TWO = PyLong_FromLong(2);
    if (!str_fd || !str_data || !str_opcode || !str_finish || !str_flags || !ONE || !TWO)
        return NULL;
    frame_names[0] = str_fd;
    frame_names[1] = str_data;
    frame_names[2] = str_opcode;
    frame_names[3] = str_finish;
    frame_names[4] = str_flags;
    return PyModule_Create(&speedups_module);
}
