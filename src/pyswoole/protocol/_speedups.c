/*
 * Optional compiled helpers for the protocol core (pyswoole.protocol.frames).
 *
 * apply_mask(data, mask) -> bytes: XOR data with the 4-byte mask repeated
 * (RFC 6455 section 5.3). Same behaviour as the pure-Python reference in frames.py;
 * the tests run both (PYSWOOLE_NO_EXTENSIONS=1 selects the reference).
 *
 * parse_simple wraps ws_parse_simple from _wscore.h, which the runtime's compiled read path
 * (runtime/_fastpath.c) shares.
 */
#include "_wscore.h"

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

/*
 * parse_simple(data, pos, fd, max_size, frame_type) -> (frames, pos)
 *
 * The common case of RFC 6455 receiving, compiled: from offset `pos`, turn every complete,
 * masked, FIN, RSV-free text or binary frame of at most `max_size` bytes, its header
 * included (Swoole's package_max_length), into a `frame_type` instance (text decoded as
 * UTF-8, flags FIN|MASK = 33). Stops at the first frame that is anything
 * else (incomplete, fragmented, control, compressed, oversize, invalid UTF-8...) and returns
 * the offset reached: the pure-Python parser handles that frame and everything after it,
 * including every error. So this function never decides a protocol error itself.
 */
static PyObject *
parse_simple(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, max_size;
    PyObject *frames, *result, *end;

    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "parse_simple() takes exactly 5 arguments");
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    max_size = PyLong_AsSsize_t(args[3]);
    if (max_size == -1 && PyErr_Occurred())
        return NULL;
    if (!PyType_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "frame_type must be a type");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    frames = PyList_New(0);
    if (frames == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    pos = ws_parse_simple((const unsigned char *)view.buf, view.len, pos, args[2], max_size,
                          (PyTypeObject *)args[4], frames);
    PyBuffer_Release(&view);
    if (pos < 0) {
        Py_DECREF(frames);
        return NULL;
    }
    result = PyTuple_New(2);
    if (result == NULL || (end = PyLong_FromSsize_t(pos)) == NULL) {
        Py_XDECREF(result);
        Py_DECREF(frames);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, frames); /* no Py_BuildValue: this runs once per read */
    PyTuple_SET_ITEM(result, 1, end);
    return result;
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
    {"ws_counts", (PyCFunction)ws_counts, METH_NOARGS,
     "ws_counts() -> 64 ints: messages/payload bytes by opcode received, then sent."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "pyswoole.protocol._speedups",
    "Compiled helpers for pyswoole's protocol core.", -1, speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (wscore_init() < 0)
        return NULL;
    return PyModule_Create(&speedups_module);
}
