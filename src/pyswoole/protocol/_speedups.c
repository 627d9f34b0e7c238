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

static PyObject *
apply_mask(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, mask;
    PyObject *result;
    const unsigned char *src;
    unsigned char *dst;
    Py_ssize_t n, i = 0;
    uint64_t mask64;
    uint32_t mask32;

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
    n = data.len;
    result = PyBytes_FromStringAndSize(NULL, n);
    if (result == NULL)
        goto error;
    src = (const unsigned char *)data.buf;
    dst = (unsigned char *)PyBytes_AS_STRING(result);
    memcpy(&mask32, mask.buf, 4);
    mask64 = ((uint64_t)mask32 << 32) | mask32;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, src + i, 8);
        word ^= mask64;
        memcpy(dst + i, &word, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ ((const unsigned char *)mask.buf)[i & 3];
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;

error:
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return NULL;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL,
     "apply_mask(data, mask) -> bytes: XOR data with the 4-byte mask repeated."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "pyswoole.protocol._speedups",
    "Compiled helpers for pyswoole's protocol core.", -1, speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
