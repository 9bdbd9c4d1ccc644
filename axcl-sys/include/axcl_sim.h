/*
 * axcl_sim.h: extra symbols exported only by axcl-sim, the CPU stand-in for the
 * AXCL runtime. The real libaxcl_rt.so does not have them; axllm-core resolves
 * them optionally, so their presence is how a process knows it runs on the
 * simulator.
 *
 * Environment: AXCL_SIM_CONFIG (see axclSimConfigure); AXCL_SIM_TRACE_FILE=path
 * makes every axclrtResetDevice and axclFinalize append a line
 * "<pid> <call> <status>" to that file, to prove a process released the card.
 *
 * Regenerate the Rust bindings after editing: `cargo run -p xtask -- bindings`.
 */
#ifndef AXLLM_AXCL_SIM_H
#define AXLLM_AXCL_SIM_H

#include "axcl_rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Counters of every call kind and of the bytes moved, since the last reset. */
typedef struct axclSimCounters {
    uint64_t calls;             /* every runtime call that would cross PCIe */
    uint64_t malloc_calls;
    uint64_t free_calls;
    uint64_t memset_calls;
    uint64_t h2d_calls;
    uint64_t d2h_calls;
    uint64_t d2d_calls;
    uint64_t h2d_bytes;
    uint64_t d2h_bytes;
    uint64_t d2d_bytes;
    uint64_t bind_calls;        /* SetInput/OutputBufferByIndex */
    uint64_t execute_calls;     /* all engine executions */
    uint64_t post_execute_calls;/* executions of post (lm_head) models */
    uint64_t load_calls;
    uint64_t latency_ns;        /* total simulated latency charged to callers */
    uint64_t live_allocations;  /* device allocations alive now (not reset) */
    uint64_t live_bytes;        /* device bytes alive now (not reset) */
    uint64_t peak_bytes;        /* high-water mark of live_bytes (not reset) */
    uint64_t live_models;       /* loaded engine models alive now (not reset) */
    uint64_t pinned_copies;     /* H2D/D2H copies whose host side was an axclrtMallocHost block */
    uint64_t live_host_blocks;  /* axclrtMallocHost blocks alive now (not reset) */
} axclSimCounters;

/* Version string of the simulator, for example "axcl-sim 0.1.0". */
const char *axclSimVersion(void);

axclError axclSimGetCounters(axclSimCounters *out);
axclError axclSimResetCounters(void);

/*
 * Applies a configuration: entries separated by ';', each `key=value`.
 * The same text in the environment variable AXCL_SIM_CONFIG is applied by axclInit.
 *   exec_us=F        latency of one execute of a decoder-layer model (microseconds)
 *   prefill_us=F     latency of one execute of a prefill shape group of a decoder-layer
 *                    model (its indices hold more than one position); default: exec_us
 *   post_us=F        latency of one execute of a post model
 *   call_us=F        fixed latency of every call that crosses PCIe (the request; an
 *                    asynchronous call costs its caller only this)
 *   sync_us=F        what a synchronous call waits beyond its work (the completion
 *                    round trip an asynchronous chain saves)
 *   h2d_mbps=F       host-to-device bandwidth (MB/s; 0 = infinite)
 *   d2h_mbps=F       device-to-host bandwidth
 *   d2d_mbps=F       on-card copy bandwidth
 *   pageable_us=F    extra cost of an H2D/D2H copy whose host side is not an
 *                    axclrtMallocHost block (page pinning per transfer)
 *   mem_mb=N         device memory (CMM) size (default 7040); loaded models' weights count
 *                    against it as axclrtEngineGetUsage reports them
 *   fail=KIND:N[:CODE]   the Nth call of KIND (counted from this setting) fails with CODE
 *   lose_device=KIND:N   at the Nth call of KIND the device is lost: every later call
 *                        fails until axclrtResetDevice
 *   abort=KIND:N         the Nth call of KIND aborts the process
 *   linear_padding=freeze|decay  what a gate-0 (padding) row does to the state of a Qwen3.5
 *                    linear-attention layer: leaves it unchanged (default), or runs as a
 *                    zeroed token that shifts the convolution history and decays the state
 *   linear_indices=ignore|check  whether linear-attention layers read indices: ignored
 *                    (default), or an execute fails unless real rows carry consecutive
 *                    positions and padding rows 0
 *   min_output_rows=N    a prefill execute with fewer than N valid rows leaves `output`
 *                    unwritten (0, the default: always written)
 *   costs=config|header  executes of models whose file carries a cost take that device
 *                    time instead of exec_us/prefill_us/post_us (the call's costs are added)
 *   time_scale=F     multiplies every simulated duration (default 1; host CPU is not scaled)
 *   reset                clears latencies (prefill_us back to exec_us), faults and the four
 *                        behaviours above
 * KIND: malloc, free, memset, memcpy, h2d, d2h, d2d, load, bind, execute, any.
 * Returns AXCL_SUCC, or an ILLEGAL_PARAM code when the text does not parse
 * (nothing is applied then).
 */
axclError axclSimConfigure(const char *spec);

/* Describes the most recent failed call on the calling thread; never NULL,
 * empty when there was none. Valid until the thread's next runtime call. */
const char *axclSimLastErrorMessage(void);

#ifdef __cplusplus
}
#endif

#endif /* AXLLM_AXCL_SIM_H */
