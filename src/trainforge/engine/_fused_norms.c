/*
 * trainforge.engine._fused_norms: the L2 norms of a model's float32 CPU gradients in one call.
 *
 * On the CPU every torch kernel costs a few microseconds of dispatch however small its tensor;
 * a small model's gradient check is mostly that. This module reads each gradient through
 * DLPack (torch.utils.dlpack.to_dlpack: its pointer, dtype, device, shape and strides, checked
 * here before a byte is read) and sums its squares in double precision: each norm is the exact
 * norm rounded to float32 (torch's float32 norm sums in float32, off by up to about 1e-5
 * relative on large tensors). NaN and infinity are torch's: NaN when an element is NaN,
 * infinite when an element is, and infinite when the sum of squares is beyond float32's range.
 *
 * norms(params, to_dlpack, tensor_type) -> list[float] | None
 *     params: a tuple of parameters. None when any gradient is missing, is not exactly of
 *     tensor_type (a subclass such as DTensor wraps data held elsewhere: its own pointer is
 *     not its values), or is not a dense float32 CPU tensor; the caller then reads the norms
 *     with torch.
 *
 * vector_loop([enable]) -> bool
 *     Whether the sums run in the AVX2 loop (chosen at import where the processor has AVX2
 *     and FMA); False selects the portable loop, which adds in the same order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>

/* DLPack's ABI (dlpack.h, v0.8 and v1.x), the fields read here. */
typedef struct {
    int32_t device_type;
    int32_t device_id;
} DLDevice;
typedef struct {
    uint8_t code;
    uint8_t bits;
    uint16_t lanes;
} DLDataType;
typedef struct {
    void *data;
    DLDevice device;
    int32_t ndim;
    DLDataType dtype;
    int64_t *shape;
    int64_t *strides;
    uint64_t byte_offset;
} DLTensor;
typedef struct DLManagedTensor {
    DLTensor dl_tensor;
    void *manager_ctx;
    void (*deleter)(struct DLManagedTensor *);
} DLManagedTensor;
typedef struct DLManagedTensorVersioned {
    struct {
        uint32_t major;
        uint32_t minor;
    } version;
    void *manager_ctx;
    void (*deleter)(struct DLManagedTensorVersioned *);
    uint64_t flags;
    DLTensor dl_tensor;
} DLManagedTensorVersioned;

enum { DL_CPU = 1, DL_FLOAT = 2 };

static PyObject *grad_name;

/* The sum of squares, in double: a float32 square never overflows it, and is exact (24
 * significant bits squared fit in double's 53), so a fused multiply-add rounds as a multiply
 * then an add does. SUMS running sums, so that the adds do not wait on each other (one sum is
 * bound by the add's latency: about one element a cycle): sums[j] takes elements j, j + SUMS,
 * j + 2 * SUMS, ... Every build adds in that order, so a norm has one value on every machine. */
#define SUMS 32

/* sums[j] += x[b * SUMS + j]^2 for each of the first `blocks` blocks: the portable loop. */
static void add_blocks(double *sums, const float *x, int64_t blocks) {
    for (int64_t b = 0; b < blocks; b++, x += SUMS) {
        for (int j = 0; j < SUMS; j++) {
            double v = x[j];
            sums[j] += v * v;
        }
    }
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX2_BLOCKS 1
static int avx2_available = 0; /* the processor has AVX2 and FMA (set at import) */

/* add_blocks with AVX2 and FMA: eight vectors of four doubles hold the 32 sums (lane l of
 * vector v is sums[4 * v + l]); each vector widens four floats straight from memory. */
__attribute__((target("avx2,fma"))) static void add_blocks_avx2(double *sums, const float *x,
                                                                 int64_t blocks) {
    __m256d acc[SUMS / 4];
    for (int v = 0; v < SUMS / 4; v++) {
        acc[v] = _mm256_loadu_pd(sums + 4 * v);
    }
    for (int64_t b = 0; b < blocks; b++, x += SUMS) {
        for (int v = 0; v < SUMS / 4; v++) {
            __m256d d = _mm256_cvtps_pd(_mm_loadu_ps(x + 4 * v));
            acc[v] = _mm256_fmadd_pd(d, d, acc[v]);
        }
    }
    for (int v = 0; v < SUMS / 4; v++) {
        _mm256_storeu_pd(sums + 4 * v, acc[v]);
    }
}
#endif

/* add_blocks, or its AVX2 form where the processor has AVX2 and FMA (chosen at import). */
static void (*add_blocks_fastest)(double *, const float *, int64_t) = add_blocks;

static double sum_of_squares(const float *x, int64_t n) {
    double sums[SUMS] = {0.0};
    int64_t blocks = n / SUMS;
    add_blocks_fastest(sums, x, blocks);
    for (int64_t i = blocks * SUMS; i < n; i++) {
        double v = x[i];
        sums[0] += v * v;
    }
    for (int width = SUMS / 2; width > 0; width /= 2) {
        for (int j = 0; j < width; j++) {
            sums[j] += sums[j + width];
        }
    }
    return sums[0];
}

/* The DLTensor inside a capsule from to_dlpack (either DLPack ABI), or NULL. */
static DLTensor *capsule_tensor(PyObject *capsule) {
    if (PyCapsule_IsValid(capsule, "dltensor")) {
        DLManagedTensor *managed = PyCapsule_GetPointer(capsule, "dltensor");
        return managed ? &managed->dl_tensor : NULL;
    }
    if (PyCapsule_IsValid(capsule, "dltensor_versioned")) {
        DLManagedTensorVersioned *managed = PyCapsule_GetPointer(capsule, "dltensor_versioned");
        return managed ? &managed->dl_tensor : NULL;
    }
    return NULL;
}

/* The number of elements of a dense row-major float32 CPU tensor, or -1 for anything else. */
static int64_t dense_float32_elements(const DLTensor *t) {
    if (t->device.device_type != DL_CPU || t->dtype.code != DL_FLOAT || t->dtype.bits != 32 ||
        t->dtype.lanes != 1 || t->ndim < 0) {
        return -1;
    }
    int64_t count = 1;
    for (int32_t d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 0) {
            return 0; /* nothing to read, whatever the strides say */
        }
    }
    for (int32_t d = t->ndim - 1; d >= 0; d--) {
        if (t->strides != NULL && t->shape[d] != 1 && t->strides[d] != count) {
            return -1;
        }
        count *= t->shape[d];
    }
    return count;
}

/* The norm of one parameter's gradient; 0 when read, 1 when it needs torch, -1 on error. */
static int gradient_norm(PyObject *param, PyObject *to_dlpack, PyObject *tensor_type,
                         double *norm) {
    PyObject *grad = PyObject_GetAttr(param, grad_name);
    if (grad == NULL) {
        return -1;
    }
    if ((PyObject *)Py_TYPE(grad) != tensor_type) { /* None, or a tensor subclass */
        Py_DECREF(grad);
        return 1;
    }
    PyObject *capsule = PyObject_CallOneArg(to_dlpack, grad);
    Py_DECREF(grad);
    if (capsule == NULL) { /* a tensor DLPack cannot carry (sparse, conjugate, ...) */
        PyErr_Clear();
        return 1;
    }
    int status = 1;
    DLTensor *t = capsule_tensor(capsule);
    if (t == NULL) {
        PyErr_Clear();
    } else {
        int64_t count = dense_float32_elements(t);
        if (count == 0 || (count > 0 && t->data != NULL)) {
            const float *data = (const float *)((const char *)t->data + t->byte_offset);
            double squares = count ? sum_of_squares(data, count) : 0.0;
            *norm = squares > FLT_MAX ? INFINITY : (double)(float)sqrt(squares);
            status = 0;
        }
    }
    Py_DECREF(capsule); /* the capsule's destructor releases the tensor */
    return status;
}

static PyObject *norms(PyObject *self, PyObject *args) {
    PyObject *params, *to_dlpack, *tensor_type;
    if (!PyArg_ParseTuple(args, "O!OO!:norms", &PyTuple_Type, &params, &to_dlpack, &PyType_Type,
                          &tensor_type)) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(params);
    PyObject *result = PyList_New(n);
    if (result == NULL) {
        return NULL;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        double norm = 0.0;
        int status = gradient_norm(PyTuple_GET_ITEM(params, k), to_dlpack, tensor_type, &norm);
        if (status != 0) {
            Py_DECREF(result);
            if (status < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        PyObject *value = PyFloat_FromDouble(norm);
        if (value == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(result, k, value);
    }
    return result;
}

/* vector_loop(False) selects the portable loop (tests check that the two give the same sums),
 * vector_loop(True) the AVX2 one where the processor has it; it returns whether AVX2 is used. */
static PyObject *vector_loop(PyObject *self, PyObject *args) {
    int enable = -1;
    if (!PyArg_ParseTuple(args, "|p:vector_loop", &enable)) {
        return NULL;
    }
#ifdef HAVE_AVX2_BLOCKS
    if (enable >= 0) {
        add_blocks_fastest = enable && avx2_available ? add_blocks_avx2 : add_blocks;
    }
    return PyBool_FromLong(add_blocks_fastest == add_blocks_avx2);
#else
    Py_RETURN_FALSE;
#endif
}

static PyMethodDef methods[] = {
    {"vector_loop", vector_loop, METH_VARARGS,
     "vector_loop([enable]) -> bool: select the AVX2 or portable loop; whether AVX2 is used."},
    {"norms", norms, METH_VARARGS,
     "norms(params, to_dlpack, tensor_type) -> list[float] | None: float32 CPU gradient norms."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fused_norms",
    "The L2 norms of a model's float32 CPU gradients in one call.", -1, methods,
};

/* Raised whenever norms() changes: a build left from older sources is not used. */
#define INTERFACE_VERSION 2

PyMODINIT_FUNC PyInit__fused_norms(void) {
#ifdef HAVE_AVX2_BLOCKS
    __builtin_cpu_init();
    avx2_available = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (avx2_available) {
        add_blocks_fastest = add_blocks_avx2;
    }
#endif
    grad_name = PyUnicode_InternFromString("grad");
    if (grad_name == NULL) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "INTERFACE_VERSION", INTERFACE_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
