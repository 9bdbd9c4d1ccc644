/*
 * axcl_rt.h: the subset of AXERA's AXCL runtime (libaxcl_rt.so) that axllm uses.
 *
 * This is our own declaration of the vendor ABI, written from the public API
 * documentation (names, signatures, enum values and composed error codes). It is
 * the single source of truth for both sides of the project:
 *   - axllm-core loads the real (or simulated) runtime at run time through the
 *     bindgen output of this file;
 *   - axcl-sim exports exactly these symbols, type-checked against the same
 *     bindgen output at compile time.
 *
 * The functions after the "optional" marker below are resolved one by one: older
 * runtimes (V3.6.x stacks) may lack some of them, and axllm-core falls back
 * without them (docs/hardware-facts.md, F20). Everything before the marker is
 * required.
 *
 * Regenerate the Rust bindings after editing: `cargo run -p xtask -- bindings`.
 */
#ifndef AXLLM_AXCL_RT_H
#define AXLLM_AXCL_RT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- basic types ------------------------------------------------------ */

typedef int32_t axclError;
typedef void *axclrtContext;
typedef void *axclrtEngineIOInfo;
typedef void *axclrtEngineIO;
typedef void *axclrtStream;

#define AXCL_SUCC 0x00
#define AXCL_MAX_DEVICE_COUNT 256
#define AXCLRT_ENGINE_MAX_DIM_CNT 32

typedef struct axclrtDeviceList {
    uint32_t num;
    int32_t devices[AXCL_MAX_DEVICE_COUNT];
} axclrtDeviceList;

typedef struct axclrtEngineIODims {
    int32_t dimCount;
    int32_t dims[AXCLRT_ENGINE_MAX_DIM_CNT];
} axclrtEngineIODims;

/* Enums are passed as plain integers: a value the runtime returns must never be
 * read straight into a Rust enum (an unknown value would be undefined behaviour). */
typedef int32_t axclrtMemMallocPolicy;
#define AXCL_MEM_MALLOC_HUGE_FIRST 0
#define AXCL_MEM_MALLOC_HUGE_ONLY 1
#define AXCL_MEM_MALLOC_NORMAL_ONLY 2
#define AXCL_MEM_MALLOC_SIZE_ALIGN 3

typedef int32_t axclrtMemcpyKind;
#define AXCL_MEMCPY_HOST_TO_HOST 0
#define AXCL_MEMCPY_HOST_TO_DEVICE 1
#define AXCL_MEMCPY_DEVICE_TO_HOST 2
#define AXCL_MEMCPY_DEVICE_TO_DEVICE 3
#define AXCL_MEMCPY_HOST_PHY_TO_DEVICE 4
#define AXCL_MEMCPY_DEVICE_TO_HOST_PHY 5

typedef int32_t axclrtEngineVNpuKind;
#define AXCL_VNPU_DISABLE 0
#define AXCL_VNPU_ENABLE 1
#define AXCL_VNPU_BIG_LITTLE 2
#define AXCL_VNPU_LITTLE_BIG 3

typedef int32_t axclrtEngineDataType;
#define AXCL_DATA_TYPE_NONE 0
#define AXCL_DATA_TYPE_INT4 1
#define AXCL_DATA_TYPE_UINT4 2
#define AXCL_DATA_TYPE_INT8 3
#define AXCL_DATA_TYPE_UINT8 4
#define AXCL_DATA_TYPE_INT16 5
#define AXCL_DATA_TYPE_UINT16 6
#define AXCL_DATA_TYPE_INT32 7
#define AXCL_DATA_TYPE_UINT32 8
#define AXCL_DATA_TYPE_INT64 9
#define AXCL_DATA_TYPE_UINT64 10
#define AXCL_DATA_TYPE_FP4 11
#define AXCL_DATA_TYPE_FP8 12
#define AXCL_DATA_TYPE_FP16 13
#define AXCL_DATA_TYPE_BF16 14
#define AXCL_DATA_TYPE_FP32 15
#define AXCL_DATA_TYPE_FP64 16

typedef int32_t axclrtEngineDataLayout;
#define AXCL_DATA_LAYOUT_NONE 0
#define AXCL_DATA_LAYOUT_NHWC 1
#define AXCL_DATA_LAYOUT_NCHW 2

/* What a card reports about itself. Memory sizes are in KB. 240 bytes on LP64. */
typedef struct axclrtDeviceProperties {
    char swVersion[64];
    uint64_t uid;
    uint32_t pciDomain;
    uint32_t pciBusID;
    uint32_t pciDeviceID;
    int32_t temperature;
    uint32_t totalMemSize;
    uint32_t freeMemSize;
    uint32_t totalCmmSize;
    uint32_t freeCmmSize;
    uint32_t cpuLoading;
    uint32_t npuLoading;
    uint32_t reserved[32];
} axclrtDeviceProperties;

/* ---- composed error codes ---------------------------------------------
 * code = 0x80000000 | (module & 0x7F) << 24 | 0x30 << 16 | sub << 8 | id
 * module: runtime 0x00; sub-modules: device 0x01, context 0x02, stream 0x03,
 * task 0x04, memory 0x05, config 0x06, engine 0x07.
 * ids: the generic AXCL_ERROR_E values below, or sub-module ids >= 0x80. */
#define AXCL_ERR_FAIL 0x01
#define AXCL_ERR_NULL_POINTER 0x02
#define AXCL_ERR_ILLEGAL_PARAM 0x03
#define AXCL_ERR_UNSUPPORT 0x04
#define AXCL_ERR_TIMEOUT 0x05
#define AXCL_ERR_BUSY 0x06
#define AXCL_ERR_NO_MEMORY 0x07
#define AXCL_ERR_ENCODE 0x08
#define AXCL_ERR_DECODE 0x09
#define AXCL_ERR_UNEXPECT_RESPONSE 0x0A
#define AXCL_ERR_OPEN 0x0B
#define AXCL_ERR_EXECUTE_FAIL 0x0C

#define AXCL_SUBMOD_DEVICE 0x01
#define AXCL_SUBMOD_CONTEXT 0x02
#define AXCL_SUBMOD_STREAM 0x03
#define AXCL_SUBMOD_TASK 0x04
#define AXCL_SUBMOD_MEMORY 0x05
#define AXCL_SUBMOD_CONFIG 0x06
#define AXCL_SUBMOD_ENGINE 0x07

#define AXCL_ERR_DEVICE_INVALID_ID 0x84
#define AXCL_ERR_DEVICE_NO_ACTIVE_DEVICE 0x85
#define AXCL_ERR_CONTEXT_CREATE 0x81
#define AXCL_ERR_CONTEXT_DESTROY 0x82
#define AXCL_ERR_CONTEXT_BIND_THREAD 0x83
#define AXCL_ERR_CONTEXT_NO_BIND_CONTEXT 0x84
#define AXCL_ERR_ENGINE_INVALID_INDEX 0x81

/* ---- init / finalize -------------------------------------------------- */

/* Once per process, before any other call. `config` may be NULL. */
axclError axclInit(const char *config);
axclError axclFinalize(void);

/* ---- devices and contexts --------------------------------------------- */

axclError axclrtGetDeviceCount(uint32_t *count);
/* Device ids are bus-derived numbers (for example 129), not 0..n-1. */
axclError axclrtGetDeviceList(axclrtDeviceList *deviceList);
/* Binds the device's implicit default context to the calling thread. */
axclError axclrtSetDevice(int32_t deviceId);
axclError axclrtResetDevice(int32_t deviceId);
axclError axclrtGetDevice(int32_t *deviceId);
axclError axclrtCreateContext(axclrtContext *context, int32_t deviceId);
axclError axclrtDestroyContext(axclrtContext context);
axclError axclrtSetCurrentContext(axclrtContext context);
axclError axclrtGetCurrentContext(axclrtContext *context);

/* ---- device memory ---------------------------------------------------- */

/* Device addresses are physical addresses on the card: never dereference them. */
axclError axclrtMalloc(void **devPtr, size_t size, axclrtMemMallocPolicy policy);
axclError axclrtFree(void *devPtr);
axclError axclrtMemset(void *devPtr, uint8_t value, size_t count);
axclError axclrtMemcpy(void *dstPtr, const void *srcPtr, size_t count, axclrtMemcpyKind kind);

/* ---- engine ----------------------------------------------------------- */

axclError axclrtEngineInit(axclrtEngineVNpuKind npuKind);
axclError axclrtEngineFinalize(void);
/* `modelPath` is a path on the host. */
axclError axclrtEngineLoadFromFile(const char *modelPath, uint64_t *modelId);
/* `model` must be device memory holding the model file's bytes. */
axclError axclrtEngineLoadFromMem(const void *model, uint64_t modelSize, uint64_t *modelId);
axclError axclrtEngineUnload(uint64_t modelId);
axclError axclrtEngineCreateContext(uint64_t modelId, uint64_t *contextId);

axclError axclrtEngineGetIOInfo(uint64_t modelId, axclrtEngineIOInfo *ioInfo);
axclError axclrtEngineDestroyIOInfo(axclrtEngineIOInfo ioInfo);
axclError axclrtEngineGetShapeGroupsCount(axclrtEngineIOInfo ioInfo, int32_t *count);
uint32_t axclrtEngineGetNumInputs(axclrtEngineIOInfo ioInfo);
uint32_t axclrtEngineGetNumOutputs(axclrtEngineIOInfo ioInfo);
uint64_t axclrtEngineGetInputSizeByIndex(axclrtEngineIOInfo ioInfo, uint32_t group, uint32_t index);
uint64_t axclrtEngineGetOutputSizeByIndex(axclrtEngineIOInfo ioInfo, uint32_t group, uint32_t index);
const char *axclrtEngineGetInputNameByIndex(axclrtEngineIOInfo ioInfo, uint32_t index);
const char *axclrtEngineGetOutputNameByIndex(axclrtEngineIOInfo ioInfo, uint32_t index);
int32_t axclrtEngineGetInputIndexByName(axclrtEngineIOInfo ioInfo, const char *name);
int32_t axclrtEngineGetOutputIndexByName(axclrtEngineIOInfo ioInfo, const char *name);
axclError axclrtEngineGetInputDims(axclrtEngineIOInfo ioInfo, uint32_t group, uint32_t index, axclrtEngineIODims *dims);
axclError axclrtEngineGetOutputDims(axclrtEngineIOInfo ioInfo, uint32_t group, uint32_t index, axclrtEngineIODims *dims);
axclError axclrtEngineGetInputDataType(axclrtEngineIOInfo ioInfo, uint32_t index, axclrtEngineDataType *type);
axclError axclrtEngineGetOutputDataType(axclrtEngineIOInfo ioInfo, uint32_t index, axclrtEngineDataType *type);

axclError axclrtEngineCreateIO(axclrtEngineIOInfo ioInfo, axclrtEngineIO *io);
axclError axclrtEngineDestroyIO(axclrtEngineIO io);
/* Buffers must be device memory; the binding is (address, byte size). */
axclError axclrtEngineSetInputBufferByIndex(axclrtEngineIO io, uint32_t index, const void *dataBuffer, uint64_t size);
axclError axclrtEngineSetOutputBufferByIndex(axclrtEngineIO io, uint32_t index, const void *dataBuffer, uint64_t size);
/* Synchronous; `group` selects the shape group. */
axclError axclrtEngineExecute(uint64_t modelId, uint64_t contextId, uint32_t group, axclrtEngineIO io);

/* ---- streams: ordered queues of asynchronous work --------------------- */

axclError axclrtCreateStream(axclrtStream *stream);
axclError axclrtDestroyStream(axclrtStream stream);
/* Waits until everything queued on `stream` has finished. */
axclError axclrtSynchronizeStream(axclrtStream stream);
/* Queues the copy; host memory must stay valid until the stream is synchronised. */
axclError axclrtMemcpyAsync(void *dstPtr, const void *srcPtr, size_t count, axclrtMemcpyKind kind, axclrtStream stream);
/* Queues the execution with the IO object's bindings as they are now. */
axclError axclrtEngineExecuteAsync(uint64_t modelId, uint64_t contextId, uint32_t group, axclrtEngineIO io,
                                   axclrtStream stream);

/* ==== optional: resolved one by one (older runtimes may lack them) ======= */

/* ---- identification ----------------------------------------------------- */

/* The SoC name, for example "AX650N"; a static string. */
const char *axclrtGetSocName(void);
axclError axclrtGetVersion(int32_t *major, int32_t *minor, int32_t *patch);
/* The implicit context of `deviceId` (the one axclrtSetDevice binds). */
axclError axclrtGetDefaultContext(axclrtContext *context, int32_t deviceId);
/* totalCmmSize / freeCmmSize (KB): the only free-memory query of the runtime. */
axclError axclrtGetDeviceProperties(int32_t deviceId, axclrtDeviceProperties *properties);

/* ---- host and cached memory --------------------------------------------- */

/* Host memory owned by the runtime (pinned: cheaper H2D/D2H copies). */
axclError axclrtMallocHost(void **hostPtr, size_t size);
axclError axclrtFreeHost(void *hostPtr);
/* Cached device memory: the caller keeps coherence with Flush / Invalidate. */
axclError axclrtMallocCached(void **devPtr, size_t size, axclrtMemMallocPolicy policy);
axclError axclrtMemFlush(void *devPtr, size_t size);
axclError axclrtMemInvalidate(void *devPtr, size_t size);

/* ---- engine queries ------------------------------------------------------ */

/* The vNPU kind the engine was initialised with (by any process). */
axclError axclrtEngineGetVNpuKind(axclrtEngineVNpuKind *npuKind);
/* The compiler version string of a loaded model. */
const char *axclrtEngineGetModelCompilerVersion(uint64_t modelId);
/* System and CMM bytes the model file at `modelPath` (on the host) needs once loaded. */
axclError axclrtEngineGetUsage(const char *modelPath, int64_t *sysSize, int64_t *cmmSize);
axclError axclrtEngineGetInputDataLayout(axclrtEngineIOInfo ioInfo, uint32_t index, axclrtEngineDataLayout *layout);
axclError axclrtEngineGetOutputDataLayout(axclrtEngineIOInfo ioInfo, uint32_t index, axclrtEngineDataLayout *layout);
/* The (address, size) bound to a tensor of `io`. */
axclError axclrtEngineGetInputBufferByIndex(axclrtEngineIO io, uint32_t index, void **dataBuffer, uint64_t *size);
axclError axclrtEngineGetOutputBufferByIndex(axclrtEngineIO io, uint32_t index, void **dataBuffer, uint64_t *size);

#ifdef __cplusplus
}
#endif

#endif /* AXLLM_AXCL_RT_H */
