/*
 * TableCore: the compiled hot paths of pyswoole.memory.table.Table -- get, exists, set and
 * incr/decr -- over exactly the memory layout and locking protocol of the Python code
 * (layout.py): CRC-32 buckets, row images in two copies flipped by a one-byte index, a
 * per-bucket sequence number bumped at the end of each write (readers retry, then lock),
 * Swoole's row spinlocks (spin_acquire in _memory.c) and the table-wide lock for the counters
 * and the pool of conflict rows.
 *
 * It does only the common cases and answers NotImplemented for the rest, which the Python
 * methods then do themselves (and which log or raise there): keys that are not exact str or
 * bytes or are refused (empty, 64 bytes or more), a mapping that is not an exact dict, values
 * that need a conversion (anything but int / float / str / bytes / None of the column's kind),
 * a string longer than its column, an unknown or string column for incr, and a full table.
 * A row lock taken over from a dead or stuck owner is reported through on_forced(how, name).
 */

#define T_HEADER 64
#define T_GLOBAL_SPIN 56
#define T_SLOT_HDR 32
#define T_NXT 4
#define T_UPD 8
#define T_ACT 16
#define T_SPIN 20
#define T_KEYHEAD 72
#define T_KEYMAX 64
#define T_STR_BYTES 0x80000000u
#define T_STR_LEN 0x7fffffffu
#define T_RETRIES 64

enum { T_INT = 1, T_FLOAT = 2, T_STRING = 3 };

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        crc_table[i] = c;
    }
}

static uint32_t crc32_of(const char *p, Py_ssize_t n) { /* == zlib.crc32 */
    uint32_t c = 0xFFFFFFFFu;
    for (Py_ssize_t i = 0; i < n; i++) {
        c = crc_table[(c ^ (uint8_t) p[i]) & 0xFF] ^ (c >> 8);
    }
    return c ^ 0xFFFFFFFFu;
}

typedef struct {
    PyObject *name;
    int type;
    Py_ssize_t offset;
    Py_ssize_t capacity;
} TColumn;

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
    char *base;
    uint64_t mask;
    Py_ssize_t conflict_rows, total, image_size, slot_size, ncols;
    TColumn *cols;
    PyObject *index;     /* column name -> position in cols */
    PyObject *on_forced; /* callable(how, what) */
} TableCore;

typedef struct {
    const char *ptr;
    Py_ssize_t len;
    int is_bytes;
} TKey;

typedef struct {
    TColumn *col;
    int64_t i;
    double d;
    const char *s;
    Py_ssize_t slen;
    uint32_t flag;
} TUpd;

/* 0: usable, 1: leave it to Python */
static int tkey(PyObject *key, TKey *k) {
    if (PyUnicode_CheckExact(key)) {
        k->ptr = PyUnicode_AsUTF8AndSize(key, &k->len);
        if (!k->ptr) {
            PyErr_Clear();
            return 1;
        }
        k->is_bytes = 0;
    } else if (PyBytes_CheckExact(key)) {
        k->ptr = PyBytes_AS_STRING(key);
        k->len = PyBytes_GET_SIZE(key);
        k->is_bytes = 1;
    } else {
        return 1;
    }
    return (k->len == 0 || k->len >= T_KEYMAX) ? 1 : 0;
}

static inline char *t_head(TableCore *t, const TKey *k) {
    return t->base + T_HEADER + (Py_ssize_t) (crc32_of(k->ptr, k->len) & t->mask) * t->slot_size;
}

static inline char *t_img(TableCore *t, char *slot, int copy) {
    return slot + T_SLOT_HDR + copy * t->image_size;
}

static inline uint8_t t_active(char *slot) {
    return __atomic_load_n((uint8_t *) (slot + T_ACT), __ATOMIC_ACQUIRE) & 1;
}

static char *t_find(TableCore *t, char *head, const TKey *k) {
    char *at = head;
    for (Py_ssize_t i = 0; i <= t->conflict_rows; i++) {
        const char *img = t_img(t, at, t_active(at));
        if ((uint8_t) img[0] == k->len && memcmp(img + 2, k->ptr, k->len) == 0) {
            return at;
        }
        int32_t nxt;
        memcpy(&nxt, at + T_NXT, 4);
        if (nxt <= 0 || nxt >= t->total) {
            return NULL;
        }
        at = t->base + T_HEADER + (Py_ssize_t) nxt * t->slot_size;
    }
    return NULL;
}

static void t_report(TableCore *t, int how, const char *what) {
    if (!how || !t->on_forced) {
        return;
    }
    PyObject *type, *value, *tb; /* keep an error already raised by the caller */
    PyErr_Fetch(&type, &value, &tb);
    PyObject *r = PyObject_CallFunction(t->on_forced, "is", how, what);
    if (r) {
        Py_DECREF(r);
    } else {
        PyErr_WriteUnraisable(t->on_forced);
    }
    PyErr_Restore(type, value, tb);
}

static PyObject *t_value(TColumn *c, const char *img) {
    const char *p = img + c->offset;
    if (c->type == T_INT) {
        int64_t v;
        memcpy(&v, p, 8);
        return PyLong_FromLongLong(v);
    }
    if (c->type == T_FLOAT) {
        double d;
        memcpy(&d, p, 8);
        return PyFloat_FromDouble(d);
    }
    uint32_t len;
    memcpy(&len, p, 4);
    Py_ssize_t n = len & T_STR_LEN;
    if (n > c->capacity) {
        n = c->capacity; /* a torn read (it will be retried): stay in bounds */
    }
    if (len & T_STR_BYTES) {
        return PyBytes_FromStringAndSize(p + 4, n);
    }
    return PyUnicode_DecodeUTF8(p + 4, n, "replace");
}

static PyObject *t_row(TableCore *t, const char *img) {
    PyObject *d = PyDict_New();
    if (!d) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < t->ncols; i++) {
        PyObject *v = t_value(&t->cols[i], img);
        if (!v || PyDict_SetItem(d, t->cols[i].name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(v);
    }
    return d;
}

/* the column named `name` (exact str), NULL with no error if unknown */
static TColumn *t_column(TableCore *t, PyObject *name) {
    PyObject *idx = PyDict_GetItemWithError(t->index, name);
    if (!idx) {
        return NULL;
    }
    return &t->cols[PyLong_AsSsize_t(idx)];
}

static void t_apply(char *img, const TUpd *u, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        char *p = img + u[i].col->offset;
        if (u[i].col->type == T_INT) {
            memcpy(p, &u[i].i, 8);
        } else if (u[i].col->type == T_FLOAT) {
            memcpy(p, &u[i].d, 8);
        } else {
            uint32_t len = (uint32_t) u[i].slen | u[i].flag;
            memcpy(p, &len, 4);
            memcpy(p + 4, u[i].s, u[i].slen);
        }
    }
}

static inline void t_flip(char *slot, uint8_t copy) {
    __atomic_store_n((uint8_t *) (slot + T_ACT), copy, __ATOMIC_RELEASE);
}

static inline void t_bump(char *head, int updated) {
    if (updated) {
        uint64_t u;
        memcpy(&u, head + T_UPD, 8);
        u += 1;
        memcpy(head + T_UPD, &u, 8);
    }
    uint32_t s = __atomic_load_n((uint32_t *) head, __ATOMIC_RELAXED);
    __atomic_store_n((uint32_t *) head, s + 1, __ATOMIC_RELEASE);
}

/* Store a new row in the bucket at head (its lock held): the bucket's own slot if free, else
 * a pool slot chained at the end, written before it is linked. -1 if the table is full. */
static int t_place(TableCore *t, char *head, const TKey *k, const TUpd *u, Py_ssize_t n, int *how) {
    uint32_t *glock = (uint32_t *) (t->base + T_GLOBAL_SPIN);
    *how = spin_acquire(glock);
    uint64_t *hdr = (uint64_t *) t->base;
    char *slot, *last = head;
    int64_t free_idx = 0;
    if (t_img(t, head, t_active(head))[0] == 0) {
        slot = head;
    } else {
        free_idx = (int64_t) hdr[5];
        if (!free_idx) {
            spin_release(glock);
            return -1;
        }
        uint64_t level = 1;
        for (Py_ssize_t i = 0; i <= t->conflict_rows; i++) {
            int32_t nxt;
            memcpy(&nxt, last + T_NXT, 4);
            if (nxt <= 0) {
                break;
            }
            last = t->base + T_HEADER + (Py_ssize_t) nxt * t->slot_size;
            level++;
        }
        slot = t->base + T_HEADER + (Py_ssize_t) free_idx * t->slot_size;
        int32_t following;
        memcpy(&following, slot + T_NXT, 4);
        hdr[5] = (uint64_t) (int64_t) following;
        hdr[6] -= 1;
        hdr[3] += 1;
        if (level > hdr[4]) {
            hdr[4] = level;
        }
    }
    hdr[0] += 1;
    hdr[1] += 1;
    spin_release(glock);
    if (slot != head) {
        memset(slot + T_NXT, 0, 4);
    }
    uint8_t copy = t_active(slot) ^ 1;
    char *dst = t_img(t, slot, copy);
    memset(dst, 0, t->image_size);
    dst[0] = (char) k->len;
    dst[1] = (char) k->is_bytes;
    memcpy(dst + 2, k->ptr, k->len);
    t_apply(dst, u, n);
    t_flip(slot, copy);
    if (slot != head) {
        __atomic_store_n((int32_t *) (last + T_NXT), (int32_t) free_idx, __ATOMIC_RELEASE);
    }
    return 0;
}

/* Lock a bucket; the takeover of a dead or stuck owner's lock (how != 0) is reported by
 * t_unlock, once no pointer into Python objects is in use any more. */
static inline int t_lock(char *head) { return spin_acquire((uint32_t *) (head + T_SPIN)); }

static void t_unlock(TableCore *t, char *head, int how, int global_how) {
    spin_release((uint32_t *) (head + T_SPIN));
    if (how) {
        char what[64];
        snprintf(what, sizeof what, "row lock %zd", (Py_ssize_t) ((head - t->base - T_HEADER) / t->slot_size));
        t_report(t, how, what);
    }
    t_report(t, global_how, "the table lock");
}

#define NOT_IMPLEMENTED() return Py_NewRef(Py_NotImplemented)

static PyObject *TableCore_get(TableCore *t, PyObject *const *args, Py_ssize_t nargs) {
    TKey k;
    TColumn *col = NULL;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(key, field=None)");
        return NULL;
    }
    if (tkey(args[0], &k)) {
        NOT_IMPLEMENTED();
    }
    if (nargs == 2 && args[1] != Py_None) {
        if (!PyUnicode_CheckExact(args[1])) {
            NOT_IMPLEMENTED();
        }
        col = t_column(t, args[1]);
        if (!col) {
            if (PyErr_Occurred()) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
    }
    char *head = t_head(t, &k);
    int how = 0;
    for (int attempt = 0; attempt <= T_RETRIES; attempt++) {
        int locked = attempt == T_RETRIES;
        if (locked) {
            how = t_lock(head);
        }
        uint32_t seq = __atomic_load_n((uint32_t *) head, __ATOMIC_ACQUIRE);
        char *slot = t_find(t, head, &k);
        PyObject *res;
        if (slot) {
            const char *img = t_img(t, slot, t_active(slot));
            res = col ? t_value(col, img) : t_row(t, img);
        } else {
            res = Py_NewRef(Py_None);
        }
        if (locked) {
            t_unlock(t, head, how, 0);
            return res;
        }
        if (!res) {
            return NULL;
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n((uint32_t *) head, __ATOMIC_RELAXED) == seq) {
            return res;
        }
        Py_DECREF(res);
    }
    Py_RETURN_NONE; /* not reached */
}

static PyObject *TableCore_exists(TableCore *t, PyObject *key) {
    TKey k;
    if (tkey(key, &k)) {
        NOT_IMPLEMENTED();
    }
    char *head = t_head(t, &k);
    for (int attempt = 0; attempt < T_RETRIES; attempt++) {
        uint32_t seq = __atomic_load_n((uint32_t *) head, __ATOMIC_ACQUIRE);
        int found = t_find(t, head, &k) != NULL;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n((uint32_t *) head, __ATOMIC_RELAXED) == seq) {
            return PyBool_FromLong(found);
        }
    }
    int how = t_lock(head);
    int found = t_find(t, head, &k) != NULL;
    t_unlock(t, head, how, 0);
    return PyBool_FromLong(found);
}

/* The values of `mapping` for known columns; 1: leave it to Python, -1: error. */
static int t_convert(TableCore *t, PyObject *mapping, TUpd *u, Py_ssize_t *n) {
    Py_ssize_t pos = 0;
    PyObject *name, *item;
    *n = 0;
    while (PyDict_Next(mapping, &pos, &name, &item)) {
        TColumn *col = t_column(t, name);
        if (!col) {
            if (PyErr_Occurred()) {
                return -1;
            }
            continue; /* unknown columns are skipped, as Swoole skips them */
        }
        TUpd *x = &u[(*n)++];
        x->col = col;
        x->i = 0;
        x->d = 0.0;
        x->s = "";
        x->slen = 0;
        x->flag = 0;
        if (item == Py_None) {
            continue;
        }
        if (col->type == T_INT) {
            int overflow = 0;
            if (!PyLong_CheckExact(item)) {
                return 1;
            }
            x->i = PyLong_AsLongLongAndOverflow(item, &overflow);
            if (overflow) {
                return 1;
            }
        } else if (col->type == T_FLOAT) {
            if (PyFloat_CheckExact(item)) {
                x->d = PyFloat_AS_DOUBLE(item);
            } else if (PyLong_CheckExact(item)) {
                x->d = PyLong_AsDouble(item);
                if (x->d == -1.0 && PyErr_Occurred()) {
                    PyErr_Clear();
                    return 1;
                }
            } else {
                return 1;
            }
        } else {
            if (PyUnicode_CheckExact(item)) {
                x->s = PyUnicode_AsUTF8AndSize(item, &x->slen);
                if (!x->s) {
                    PyErr_Clear();
                    return 1;
                }
            } else if (PyBytes_CheckExact(item)) {
                x->s = PyBytes_AS_STRING(item);
                x->slen = PyBytes_GET_SIZE(item);
                x->flag = T_STR_BYTES;
            } else {
                return 1;
            }
            if (x->slen > col->capacity) {
                return 1; /* cut and warned about by the Python code */
            }
        }
    }
    return 0;
}

static PyObject *TableCore_set(TableCore *t, PyObject *const *args, Py_ssize_t nargs) {
    TKey k;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set(key, value)");
        return NULL;
    }
    if (tkey(args[0], &k) || !PyDict_CheckExact(args[1])) {
        NOT_IMPLEMENTED();
    }
    TUpd stack[16];
    TUpd *u = stack;
    if (t->ncols > 16) {
        u = PyMem_Malloc(sizeof(TUpd) * (size_t) t->ncols);
        if (!u) {
            return PyErr_NoMemory();
        }
    }
    Py_ssize_t n;
    PyObject *res = NULL;
    int r = t_convert(t, args[1], u, &n);
    if (r) {
        res = r < 0 ? NULL : Py_NewRef(Py_NotImplemented);
        goto done;
    }
    char *head = t_head(t, &k);
    int how = t_lock(head), global_how = 0;
    char *slot = t_find(t, head, &k);
    if (slot) {
        uint8_t copy = t_active(slot);
        char *dst = t_img(t, slot, copy ^ 1);
        memcpy(dst, t_img(t, slot, copy), t->image_size);
        t_apply(dst, u, n);
        t_flip(slot, copy ^ 1);
        t_bump(head, 1);
        res = Py_NewRef(Py_True);
    } else if (t_place(t, head, &k, u, n, &global_how) == 0) {
        t_bump(head, 0);
        res = Py_NewRef(Py_True);
    } else {
        res = Py_NewRef(Py_NotImplemented); /* full: the Python code logs and says False */
    }
    t_unlock(t, head, how, global_how);
done:
    if (u != stack) {
        PyMem_Free(u);
    }
    return res;
}

/* step(key, column, by, sign): incr/decr */
static PyObject *TableCore_step(TableCore *t, PyObject *const *args, Py_ssize_t nargs) {
    TKey k;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "step(key, column, by, sign)");
        return NULL;
    }
    if (tkey(args[0], &k) || !PyUnicode_CheckExact(args[1])) {
        NOT_IMPLEMENTED();
    }
    TColumn *col = t_column(t, args[1]);
    if (!col) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        NOT_IMPLEMENTED();
    }
    long sign = PyLong_AsLong(args[3]);
    if (col->type == T_STRING || (sign != 1 && sign != -1)) {
        NOT_IMPLEMENTED();
    }
    TUpd u = {col, 0, 0.0, "", 0, 0};
    PyObject *by = args[2];
    int64_t istep = 0;
    double dstep = 0.0;
    if (col->type == T_INT) {
        int overflow = 0;
        if (PyLong_CheckExact(by)) {
            istep = PyLong_AsLongLongAndOverflow(by, &overflow);
        } else if (PyFloat_CheckExact(by)) {
            double v = PyFloat_AS_DOUBLE(by);
            if (!(v > -9.2e18 && v < 9.2e18)) {
                NOT_IMPLEMENTED();
            }
            istep = (int64_t) v; /* int(by) truncates toward zero */
        } else {
            NOT_IMPLEMENTED();
        }
        if (overflow || istep == INT64_MIN) {
            NOT_IMPLEMENTED();
        }
        if (sign < 0) {
            istep = -istep;
        }
    } else {
        if (PyFloat_CheckExact(by)) {
            dstep = PyFloat_AS_DOUBLE(by);
        } else if (PyLong_CheckExact(by)) {
            dstep = PyLong_AsDouble(by);
            if (dstep == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                NOT_IMPLEMENTED();
            }
        } else {
            NOT_IMPLEMENTED();
        }
        dstep *= (double) sign;
    }
    char *head = t_head(t, &k);
    int how = t_lock(head), global_how = 0;
    char *slot = t_find(t, head, &k);
    PyObject *res;
    if (slot) {
        uint8_t copy = t_active(slot);
        char *src = t_img(t, slot, copy), *dst = t_img(t, slot, copy ^ 1);
        memcpy(dst, src, t->image_size);
        if (col->type == T_INT) {
            int64_t old;
            memcpy(&old, src + col->offset, 8);
            u.i = (int64_t) ((uint64_t) old + (uint64_t) istep); /* a C long wraps */
        } else {
            double old;
            memcpy(&old, src + col->offset, 8);
            u.d = old + dstep;
        }
        t_apply(dst, &u, 1);
        t_flip(slot, copy ^ 1);
        t_bump(head, 1);
    } else {
        u.i = istep;
        u.d = dstep;
        if (t_place(t, head, &k, &u, 1, &global_how) != 0) {
            t_unlock(t, head, how, global_how);
            NOT_IMPLEMENTED(); /* full */
        }
        t_bump(head, 0);
    }
    t_unlock(t, head, how, global_how);
    res = col->type == T_INT ? PyLong_FromLongLong(u.i) : PyFloat_FromDouble(u.d);
    return res;
}

static int TableCore_init(TableCore *t, PyObject *args, PyObject *kwds) {
    PyObject *buffer, *columns, *on_forced;
    Py_ssize_t size, conflict_rows, image_size, slot_size;
    if (!PyArg_ParseTuple(args, "OnnnnOO", &buffer, &size, &conflict_rows, &image_size,
                          &slot_size, &columns, &on_forced)) {
        return -1;
    }
    if (t->has_view) {
        PyErr_SetString(PyExc_RuntimeError, "TableCore already initialised");
        return -1;
    }
    if (size <= 0 || (size & (size - 1)) || !PyList_Check(columns)) {
        PyErr_SetString(PyExc_ValueError, "bad table geometry");
        return -1;
    }
    if (PyObject_GetBuffer(buffer, &t->view, PyBUF_WRITABLE) < 0) {
        return -1;
    }
    t->has_view = 1;
    if (t->view.len < T_HEADER + (size + conflict_rows) * slot_size) {
        PyErr_SetString(PyExc_ValueError, "buffer too small for the table");
        return -1;
    }
    t->base = t->view.buf;
    t->mask = (uint64_t) size - 1;
    t->conflict_rows = conflict_rows;
    t->total = size + conflict_rows;
    t->image_size = image_size;
    t->slot_size = slot_size;
    t->ncols = PyList_GET_SIZE(columns);
    t->cols = PyMem_Calloc((size_t) (t->ncols ? t->ncols : 1), sizeof(TColumn));
    t->index = PyDict_New();
    if (!t->cols || !t->index) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < t->ncols; i++) {
        PyObject *name;
        int type;
        Py_ssize_t offset, capacity;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(columns, i), "Uinn", &name, &type, &offset, &capacity)) {
            return -1;
        }
        Py_INCREF(name);
        t->cols[i] = (TColumn){name, type, offset, capacity};
        PyObject *pos = PyLong_FromSsize_t(i);
        if (!pos || PyDict_SetItem(t->index, name, pos) < 0) {
            Py_XDECREF(pos);
            return -1;
        }
        Py_DECREF(pos);
    }
    Py_INCREF(on_forced);
    t->on_forced = on_forced;
    return 0;
}

static void TableCore_dealloc(TableCore *t) {
    if (t->cols) {
        for (Py_ssize_t i = 0; i < t->ncols; i++) {
            Py_XDECREF(t->cols[i].name);
        }
        PyMem_Free(t->cols);
    }
    Py_XDECREF(t->index);
    Py_XDECREF(t->on_forced);
    if (t->has_view) {
        PyBuffer_Release(&t->view);
    }
    Py_TYPE(t)->tp_free((PyObject *) t);
}

static PyMethodDef TableCore_methods[] = {
    {"get", (PyCFunction) (void (*)(void)) TableCore_get, METH_FASTCALL, "Row or field, or None."},
    {"exists", (PyCFunction) TableCore_exists, METH_O, "Whether the row exists."},
    {"set", (PyCFunction) (void (*)(void)) TableCore_set, METH_FASTCALL, "Write a row."},
    {"step", (PyCFunction) (void (*)(void)) TableCore_step, METH_FASTCALL, "incr / decr."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TableCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyswoole.memory._memory.TableCore",
    .tp_basicsize = sizeof(TableCore),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The compiled hot paths of Table (NotImplemented: the Python code does it).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc) TableCore_init,
    .tp_dealloc = (destructor) TableCore_dealloc,
    .tp_methods = TableCore_methods,
};
