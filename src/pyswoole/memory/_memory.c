/*
 * Compiled helpers of pyswoole.memory (optional: the package falls back to pure Python
 * without them, and PYSWOOLE_NO_EXTENSIONS=1 forces that).
 *
 * Cell: a 32-bit unsigned or 64-bit signed integer at an offset of a shared buffer (an
 * anonymous mmap made before fork), changed with C11/GCC atomics -- Swoole\Atomic and
 * Swoole\Atomic\Long (ext-src/swoole_atomic.cc): add/sub return the new value, values wrap
 * as the C types do, cmpset is a compare-and-swap, and wait/wakeup are Swoole's futex pair
 * (wait: if the value is 1 make it 0 and return at once, else sleep while it is 0; wakeup: if
 * it is 0 make it 1 and wake up to n waiters).
 *
 * SpinLocks: the per-row lock of Swoole\Table (TableRow::lock in src/memory/table.cc): a
 * 32-bit lock word and the owner's pid side by side in the shared buffer. acquire() spins,
 * then yields; if the owner process no longer exists (kill(pid, 0) == ESRCH) or the lock has
 * been held for more than 2 s (SW_TABLE_FORCE_UNLOCK_TIME), the lock is taken over, as Swoole
 * does, and acquire() says so (1: owner dead, 2: timeout) so the caller can log it. The GIL
 * is released while waiting, so a thread of the same process holding the lock can go on.
 *
 * TableCore (_table.h): Table's get/exists/set/incr in C over the same layout and locks.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <sched.h>
#include <pthread.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#define FORCE_UNLOCK_MS 2000

static pid_t current_pid;

static void refresh_pid(void) { current_pid = getpid(); }

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
    char *ptr;
    int wide; /* 0: uint32, 1: int64 */
} Cell;

static int get_view(PyObject *buffer, Py_ssize_t offset, Py_ssize_t need, Py_buffer *view, char **ptr) {
    if (PyObject_GetBuffer(buffer, view, PyBUF_WRITABLE) < 0) {
        return -1;
    }
    if (offset < 0 || offset + need > view->len || (offset % need) != 0) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "offset out of range or misaligned");
        return -1;
    }
    *ptr = (char *) view->buf + offset;
    return 0;
}

static int Cell_init(Cell *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"buffer", "offset", "wide", NULL};
    PyObject *buffer;
    Py_ssize_t offset;
    int wide = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "On|p", kwlist, &buffer, &offset, &wide)) {
        return -1;
    }
    if (self->has_view) {
        PyErr_SetString(PyExc_RuntimeError, "Cell already initialised");
        return -1;
    }
    if (get_view(buffer, offset, wide ? 8 : 4, &self->view, &self->ptr) < 0) {
        return -1;
    }
    self->has_view = 1;
    self->wide = wide;
    return 0;
}

static void Cell_dealloc(Cell *self) {
    if (self->has_view) {
        PyBuffer_Release(&self->view);
    }
    Py_TYPE(self)->tp_free((PyObject *) self);
}

/* Any Python int, reduced modulo 2**64 (as the C casts in swoole_atomic.cc reduce it). */
static int as_bits(PyObject *value, uint64_t *out) {
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "an int is required, not %s", Py_TYPE(value)->tp_name);
        return -1;
    }
    unsigned long long bits = PyLong_AsUnsignedLongLongMask(value);
    if (bits == (unsigned long long) -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = (uint64_t) bits;
    return 0;
}

static PyObject *cell_value(Cell *self, uint64_t bits) {
    if (self->wide) {
        return PyLong_FromLongLong((long long) (int64_t) bits);
    }
    return PyLong_FromUnsignedLong((unsigned long) (uint32_t) bits);
}

static PyObject *Cell_add(Cell *self, PyObject *const *args, Py_ssize_t nargs) {
    uint64_t v = 1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "add() takes at most 1 argument");
        return NULL;
    }
    if (nargs == 1 && as_bits(args[0], &v) < 0) {
        return NULL;
    }
    if (self->wide) {
        return cell_value(self, (uint64_t) __atomic_add_fetch((int64_t *) self->ptr, (int64_t) v, __ATOMIC_SEQ_CST));
    }
    return cell_value(self, __atomic_add_fetch((uint32_t *) self->ptr, (uint32_t) v, __ATOMIC_SEQ_CST));
}

static PyObject *Cell_sub(Cell *self, PyObject *const *args, Py_ssize_t nargs) {
    uint64_t v = 1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "sub() takes at most 1 argument");
        return NULL;
    }
    if (nargs == 1 && as_bits(args[0], &v) < 0) {
        return NULL;
    }
    if (self->wide) {
        return cell_value(self, (uint64_t) __atomic_sub_fetch((int64_t *) self->ptr, (int64_t) v, __ATOMIC_SEQ_CST));
    }
    return cell_value(self, __atomic_sub_fetch((uint32_t *) self->ptr, (uint32_t) v, __ATOMIC_SEQ_CST));
}

static PyObject *Cell_get(Cell *self, PyObject *unused) {
    if (self->wide) {
        return cell_value(self, (uint64_t) __atomic_load_n((int64_t *) self->ptr, __ATOMIC_SEQ_CST));
    }
    return cell_value(self, __atomic_load_n((uint32_t *) self->ptr, __ATOMIC_SEQ_CST));
}

static PyObject *Cell_set(Cell *self, PyObject *value) {
    uint64_t v;
    if (as_bits(value, &v) < 0) {
        return NULL;
    }
    if (self->wide) {
        __atomic_store_n((int64_t *) self->ptr, (int64_t) v, __ATOMIC_SEQ_CST);
    } else {
        __atomic_store_n((uint32_t *) self->ptr, (uint32_t) v, __ATOMIC_SEQ_CST);
    }
    Py_RETURN_NONE;
}

static PyObject *Cell_cmpset(Cell *self, PyObject *const *args, Py_ssize_t nargs) {
    uint64_t cmp, val;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "cmpset() takes exactly 2 arguments");
        return NULL;
    }
    if (as_bits(args[0], &cmp) < 0 || as_bits(args[1], &val) < 0) {
        return NULL;
    }
    int ok;
    if (self->wide) {
        int64_t expected = (int64_t) cmp;
        ok = __atomic_compare_exchange_n((int64_t *) self->ptr, &expected, (int64_t) val, 0,
                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    } else {
        uint32_t expected = (uint32_t) cmp;
        ok = __atomic_compare_exchange_n((uint32_t *) self->ptr, &expected, (uint32_t) val, 0,
                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
    return PyBool_FromLong(ok);
}

static int cas32(uint32_t *p, uint32_t expected, uint32_t value) {
    return __atomic_compare_exchange_n(p, &expected, value, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

static PyObject *Cell_wait(Cell *self, PyObject *const *args, Py_ssize_t nargs) {
    double timeout = 1.0;
    if (self->wide) {
        PyErr_SetString(PyExc_TypeError, "wait() is only for 32-bit cells");
        return NULL;
    }
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "wait() takes at most 1 argument");
        return NULL;
    }
    if (nargs == 1) {
        timeout = PyFloat_AsDouble(args[0]);
        if (timeout == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
    }
    uint32_t *p = (uint32_t *) self->ptr;
    if (cas32(p, 1, 0)) {
        Py_RETURN_TRUE;
    }
#ifdef __linux__
    long ret;
    Py_BEGIN_ALLOW_THREADS
    if (timeout > 0) {
        struct timespec ts;
        ts.tv_sec = (time_t) timeout;
        ts.tv_nsec = (long) ((timeout - (double) ts.tv_sec) * 1e9);
        ret = syscall(SYS_futex, p, FUTEX_WAIT, 0, &ts, NULL, 0);
    } else {
        ret = syscall(SYS_futex, p, FUTEX_WAIT, 0, NULL, NULL, 0);
    }
    Py_END_ALLOW_THREADS
    if (ret == 0 && cas32(p, 1, 0)) {
        Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
#else
    PyErr_SetString(PyExc_OSError, "futex is Linux-only");
    return NULL;
#endif
}

static PyObject *Cell_wakeup(Cell *self, PyObject *const *args, Py_ssize_t nargs) {
    long n = 1;
    if (self->wide) {
        PyErr_SetString(PyExc_TypeError, "wakeup() is only for 32-bit cells");
        return NULL;
    }
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "wakeup() takes at most 1 argument");
        return NULL;
    }
    if (nargs == 1) {
        n = PyLong_AsLong(args[0]);
        if (n == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    uint32_t *p = (uint32_t *) self->ptr;
    if (cas32(p, 0, 1)) {
#ifdef __linux__
        syscall(SYS_futex, p, FUTEX_WAKE, (int) n, NULL, NULL, 0);
#endif
    }
    Py_RETURN_TRUE;
}

static PyMethodDef Cell_methods[] = {
    {"add", (PyCFunction) (void (*)(void)) Cell_add, METH_FASTCALL, "Add; the new value."},
    {"sub", (PyCFunction) (void (*)(void)) Cell_sub, METH_FASTCALL, "Subtract; the new value."},
    {"get", (PyCFunction) Cell_get, METH_NOARGS, "The value."},
    {"set", (PyCFunction) Cell_set, METH_O, "Store a value."},
    {"cmpset", (PyCFunction) (void (*)(void)) Cell_cmpset, METH_FASTCALL, "Compare and swap."},
    {"wait", (PyCFunction) (void (*)(void)) Cell_wait, METH_FASTCALL, "Swoole's futex wait."},
    {"wakeup", (PyCFunction) (void (*)(void)) Cell_wakeup, METH_FASTCALL, "Swoole's futex wakeup."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CellType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyswoole.memory._memory.Cell",
    .tp_basicsize = sizeof(Cell),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An atomic integer in a shared buffer.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc) Cell_init,
    .tp_dealloc = (destructor) Cell_dealloc,
    .tp_methods = Cell_methods,
};

/* ---------------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
} SpinLocks;

static int SpinLocks_init(SpinLocks *self, PyObject *args, PyObject *kwds) {
    PyObject *buffer;
    if (!PyArg_ParseTuple(args, "O", &buffer)) {
        return -1;
    }
    if (self->has_view) {
        PyErr_SetString(PyExc_RuntimeError, "SpinLocks already initialised");
        return -1;
    }
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_WRITABLE) < 0) {
        return -1;
    }
    self->has_view = 1;
    return 0;
}

static void SpinLocks_dealloc(SpinLocks *self) {
    if (self->has_view) {
        PyBuffer_Release(&self->view);
    }
    Py_TYPE(self)->tp_free((PyObject *) self);
}

static uint32_t *lock_word(SpinLocks *self, PyObject *arg) {
    Py_ssize_t offset = PyLong_AsSsize_t(arg);
    if (offset == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!self->has_view || offset < 0 || offset + 8 > self->view.len || (offset & 3)) {
        PyErr_SetString(PyExc_ValueError, "lock offset out of range or misaligned");
        return NULL;
    }
    return (uint32_t *) ((char *) self->view.buf + offset);
}

/* Swoole's TableRow::lock: 0 taken, 1 taken over from a dead owner, 2 taken over after 2 s.
 * Called with the GIL held; releases it while waiting. */
static int spin_acquire(uint32_t *lock) {
    int32_t *owner = (int32_t *) (lock + 1);
    if (__atomic_load_n(lock, __ATOMIC_RELAXED) == 0 && cas32(lock, 0, 1)) {
        __atomic_store_n(owner, current_pid, __ATOMIC_RELAXED);
        return 0;
    }
    int forced = 0;
    Py_BEGIN_ALLOW_THREADS
    long long start = 0;
    for (;;) {
        int got = 0;
        for (unsigned n = 1; n < 1024; n <<= 1) {
            for (unsigned i = 0; i < n; i++) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            }
            if (__atomic_load_n(lock, __ATOMIC_RELAXED) == 0 && cas32(lock, 0, 1)) {
                got = 1;
                break;
            }
        }
        if (got) {
            break;
        }
        pid_t holder = (pid_t) __atomic_load_n(owner, __ATOMIC_RELAXED);
        if (holder > 0 && holder != current_pid && kill(holder, 0) < 0 && errno == ESRCH) {
            forced = 1; /* the owner died holding it: take it over */
            break;
        }
        if (start == 0) {
            start = now_ms();
        } else if (now_ms() - start > FORCE_UNLOCK_MS) {
            forced = 2;
            break;
        }
        sched_yield();
    }
    __atomic_store_n(lock, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(owner, current_pid, __ATOMIC_RELAXED);
    Py_END_ALLOW_THREADS
    return forced;
}

static void spin_release(uint32_t *lock) { __atomic_store_n(lock, 0, __ATOMIC_RELEASE); }

static PyObject *SpinLocks_acquire(SpinLocks *self, PyObject *arg) {
    uint32_t *lock = lock_word(self, arg);
    if (!lock) {
        return NULL;
    }
    return PyLong_FromLong(spin_acquire(lock));
}

static PyObject *SpinLocks_release(SpinLocks *self, PyObject *arg) {
    uint32_t *lock = lock_word(self, arg);
    if (!lock) {
        return NULL;
    }
    spin_release(lock);
    Py_RETURN_NONE;
}

static PyMethodDef SpinLocks_methods[] = {
    {"acquire", (PyCFunction) SpinLocks_acquire, METH_O,
     "Lock the word at offset: 0, or 1/2 if taken over from a dead/stuck owner."},
    {"release", (PyCFunction) SpinLocks_release, METH_O, "Unlock the word at offset."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SpinLocksType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyswoole.memory._memory.SpinLocks",
    .tp_basicsize = sizeof(SpinLocks),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Swoole's table row locks (lock word + owner pid) in a shared buffer.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc) SpinLocks_init,
    .tp_dealloc = (destructor) SpinLocks_dealloc,
    .tp_methods = SpinLocks_methods,
};

#include "_table.h"

static struct PyModuleDef memory_module = {
    PyModuleDef_HEAD_INIT, "pyswoole.memory._memory",
    "Compiled helpers of pyswoole.memory: atomic cells and table row locks.", -1, NULL,
};

PyMODINIT_FUNC
PyInit__memory(void)
{
    refresh_pid();
    crc_init();
    pthread_atfork(NULL, NULL, refresh_pid);
    if (PyType_Ready(&CellType) < 0 || PyType_Ready(&SpinLocksType) < 0 ||
        PyType_Ready(&TableCoreType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&memory_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&CellType);
    if (PyModule_AddObject(m, "Cell", (PyObject *) &CellType) < 0) {
        Py_DECREF(&CellType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&SpinLocksType);
    if (PyModule_AddObject(m, "SpinLocks", (PyObject *) &SpinLocksType) < 0) {
        Py_DECREF(&SpinLocksType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&TableCoreType);
    if (PyModule_AddObject(m, "TableCore", (PyObject *) &TableCoreType) < 0) {
        Py_DECREF(&TableCoreType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
