//go:build ax650 && cgo

package ax650runner

// The cgo glue over the axllm C ABI (include/axllm.h, static library
// libaxllm.a from `cargo build --release -p axllm-capi`). build.sh points
// CGO_CFLAGS at the header's directory and CGO_LDFLAGS at the library's.
// The NPU runtime itself (libaxcl_rt.so, or the simulator the runner's
// --runtime flag names) is loaded by axllm at run time, so the binary has no
// dependency on board-only libraries.

/*
#cgo LDFLAGS: -laxllm -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
#include <stdlib.h>
#include "axllm.h"

extern void goAX650Progress(void *user_data, uint32_t loaded, uint32_t total);

static void ax650_progress(void *user_data, uint32_t loaded, uint32_t total) {
	goAX650Progress(user_data, loaded, total);
}

static void ax650_set_progress(axllm_load_params *p) {
	p->progress = ax650_progress;
	p->progress_user_data = NULL;
}
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/ollama/ollama/llm"
)

// call runs one axllm function and reads axllm_last_error() on the same OS
// thread (the message is per thread).
func call(name string, f func() C.axllm_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := f()
	if st == C.AXLLM_OK {
		return nil
	}
	return &EngineError{Call: name, Status: llm.AxllmStatus(st), Message: C.GoString(C.axllm_last_error())}
}

func libraryVersion() string { return C.GoString(C.axllm_version()) }

type axllmEngine struct {
	model *C.axllm_model
	info  Info
	once  sync.Once
}

// cStrings copies ss into a C array of C strings (cgo forbids passing Go
// memory that holds Go pointers); free releases both.
func cStrings(ss []string) (arr **C.char, free func()) {
	if len(ss) == 0 {
		return nil, func() {}
	}
	arr = (**C.char)(C.malloc(C.size_t(len(ss)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	list := unsafe.Slice(arr, len(ss))
	for i, s := range ss {
		list[i] = C.CString(s)
	}
	return arr, func() {
		for _, p := range list {
			C.free(unsafe.Pointer(p))
		}
		C.free(unsafe.Pointer(arr))
	}
}

// cStringOrNil is NULL for "" (axllm's default).
func cStringOrNil(s string) *C.char {
	if s == "" {
		return nil
	}
	return C.CString(s)
}

func loadEngine(dir string, opts LoadOptions, progress LoadProgress) (Engine, error) {
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))

	loadProgress.Store(&progress)
	defer loadProgress.Store(nil)

	var params C.axllm_load_params
	if err := call("axllm_load_default_params", func() C.axllm_status {
		return C.axllm_load_default_params(&params, C.size_t(unsafe.Sizeof(params)))
	}); err != nil {
		return nil, err
	}
	C.ax650_set_progress(&params)
	params.device_index = C.uint32_t(opts.Device)
	params.runtime_library = cStringOrNil(opts.Runtime)
	defer C.free(unsafe.Pointer(params.runtime_library))
	params.schedule = cStringOrNil(opts.Schedule)
	defer C.free(unsafe.Pointer(params.schedule))
	roots, freeRoots := cStrings(opts.LinkRoots)
	defer freeRoots()
	params.link_roots = roots
	params.n_link_roots = C.size_t(len(opts.LinkRoots))
	params.kv_slots = C.uint32_t(opts.KVSlots)
	if opts.KVSlots == 0 {
		params.kv_slots = C.AXLLM_KV_SLOTS_AUTO
	}

	var m *C.axllm_model
	if err := call("axllm_model_load", func() C.axllm_status {
		return C.axllm_model_load(cdir, &params, &m)
	}); err != nil {
		return nil, err
	}

	var ci C.axllm_model_info
	if err := call("axllm_model_get_info", func() C.axllm_status {
		return C.axllm_model_get_info(m, &ci, C.size_t(unsafe.Sizeof(ci)))
	}); err != nil {
		C.axllm_model_free(m)
		return nil, err
	}
	return &axllmEngine{model: m, info: Info{
		ContextLength: int(ci.context_length),
		MaxPrefill:    int(ci.max_prefill),
		VocabSize:     int(ci.vocab_size),
		Layers:        int(ci.layers),
		HiddenSize:    int(ci.hidden_size),
		Chunk:         int(ci.chunk),
		MemoryBytes:   uint64(ci.device_memory_bytes),
		DeviceID:      int(ci.device_id),
		KVSlots:       int(ci.kv_slots),
	}}, nil
}

func (e *axllmEngine) Info() Info { return e.info }

// Diagnostics implements Diagnoser: axllm_model_diagnostics's JSON.
func (e *axllmEngine) Diagnostics() (json.RawMessage, error) {
	buf := make([]byte, 2048)
	for {
		var n C.size_t
		err := call("axllm_model_diagnostics", func() C.axllm_status {
			return C.axllm_model_diagnostics(e.model, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n)
		})
		if ee, ok := err.(*EngineError); ok && ee.Status == llm.AxllmErrBufferTooSmall && int(n)+1 > len(buf) {
			buf = make([]byte, int(n)+1)
			continue
		}
		if err != nil {
			return nil, err
		}
		return json.RawMessage(buf[:n]), nil
	}
}

// RenderChat implements ChatRenderer: axllm_model_render_chat.
func (e *axllmEngine) RenderChat(request []byte) (string, error) {
	creq := C.CString(string(request))
	defer C.free(unsafe.Pointer(creq))
	buf := make([]byte, 4096)
	for {
		var n C.size_t
		err := call("axllm_model_render_chat", func() C.axllm_status {
			return C.axllm_model_render_chat(e.model, creq, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n)
		})
		if ee, ok := err.(*EngineError); ok && ee.Status == llm.AxllmErrBufferTooSmall && int(n)+1 > len(buf) {
			buf = make([]byte, int(n)+1)
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

func (e *axllmEngine) Tokenize(text string) ([]int32, error) {
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	buf := make([]int32, len(text)/2+16)
	for {
		var n C.size_t
		err := call("axllm_tokenize", func() C.axllm_status {
			return C.axllm_tokenize(e.model, ctext, true, (*C.int32_t)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n)
		})
		if ee, ok := err.(*EngineError); ok && ee.Status == llm.AxllmErrBufferTooSmall && int(n) > len(buf) {
			buf = make([]int32, int(n))
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func (e *axllmEngine) Detokenize(tokens []int32) (string, error) {
	var ptr *C.int32_t
	if len(tokens) > 0 {
		ptr = (*C.int32_t)(unsafe.Pointer(&tokens[0]))
	}
	buf := make([]byte, len(tokens)*8+64)
	for {
		var n C.size_t
		err := call("axllm_detokenize", func() C.axllm_status {
			return C.axllm_detokenize(e.model, ptr, C.size_t(len(tokens)), (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n)
		})
		if ee, ok := err.(*EngineError); ok && ee.Status == llm.AxllmErrBufferTooSmall && int(n)+1 > len(buf) {
			buf = make([]byte, int(n)+1)
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

func (e *axllmEngine) Begin(tokens []int32, p Params) (Generation, error) {
	return e.generation(tokens, p, "axllm_generation_begin_tokens", func(ptr *C.int32_t, n C.size_t, cp *C.axllm_generate_params, g **C.axllm_generation) C.axllm_status {
		return C.axllm_generation_begin_tokens(e.model, ptr, n, cp, g)
	})
}

// Start implements Starter: the prompt is fed by PrefillStep, a chunk at a time.
func (e *axllmEngine) Start(tokens []int32, p Params) (Generation, error) {
	return e.generation(tokens, p, "axllm_generation_start_tokens", func(ptr *C.int32_t, n C.size_t, cp *C.axllm_generate_params, g **C.axllm_generation) C.axllm_status {
		return C.axllm_generation_start_tokens(e.model, ptr, n, cp, g)
	})
}

// generation makes a generation with begin (axllm_generation_begin_tokens
// or axllm_generation_start_tokens, named name) from tokens and p.
func (e *axllmEngine) generation(tokens []int32, p Params, name string,
	begin func(*C.int32_t, C.size_t, *C.axllm_generate_params, **C.axllm_generation) C.axllm_status) (Generation, error) {
	var cp C.axllm_generate_params
	if err := call("axllm_generate_default_params", func() C.axllm_status {
		return C.axllm_generate_default_params(&cp, C.size_t(unsafe.Sizeof(cp)))
	}); err != nil {
		return nil, err
	}
	cp.temperature = C.float(p.Temperature)
	cp.top_k = C.int32_t(p.TopK)
	cp.top_p = C.float(p.TopP)
	cp.min_p = C.float(p.MinP)
	cp.typical_p = C.float(p.TypicalP)
	cp.repeat_last_n = C.int32_t(p.RepeatLastN)
	cp.repeat_penalty = C.float(p.RepeatPenalty)
	cp.presence_penalty = C.float(p.PresencePenalty)
	cp.frequency_penalty = C.float(p.FrequencyPenalty)
	cp.seed = C.int64_t(p.Seed)
	cp.num_predict = C.int32_t(p.NumPredict)
	// Tokenize already applied the post-processor.
	cp.add_special_tokens = false

	// Stop strings are borrowed for the begin (or start) call only.
	stops, freeStops := cStrings(p.Stop)
	defer freeStops()
	cp.stop = stops
	cp.n_stop = C.size_t(len(p.Stop))
	closes, freeCloses := cStrings(p.ThinkingClose)
	defer freeCloses()
	cp.thinking_close = closes
	cp.n_thinking_close = C.size_t(len(p.ThinkingClose))
	cformat := cStringOrNil(p.Format)
	defer C.free(unsafe.Pointer(cformat))
	cp.format = cformat
	cp.logprobs = C.bool(p.Logprobs)
	cp.top_logprobs = C.uint32_t(max(p.TopLogprobs, 0))

	var ptr *C.int32_t
	if len(tokens) > 0 {
		ptr = (*C.int32_t)(unsafe.Pointer(&tokens[0]))
	}
	var g *C.axllm_generation
	if err := call(name, func() C.axllm_status {
		return begin(ptr, C.size_t(len(tokens)), &cp, &g)
	}); err != nil {
		return nil, err
	}
	return &axllmGeneration{handle: g, buf: make([]byte, 1024)}, nil
}

// CancelCurrent implements Canceller: axllm_model_cancel is thread-safe and
// returns at once; a prefill in progress stops within one chunk.
func (e *axllmEngine) CancelCurrent() { C.axllm_model_cancel(e.model) }

func (e *axllmEngine) Close() {
	e.once.Do(func() { C.axllm_model_free(e.model) })
}

type axllmGeneration struct {
	mu     sync.Mutex // guards handle, never held across a C call
	handle *C.axllm_generation
	buf    []byte
}

func (g *axllmGeneration) get() *C.axllm_generation {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.handle
}

func (g *axllmGeneration) Next() (string, DoneReason, error) {
	h := g.get()
	for {
		var n C.size_t
		var done C.axllm_done_reason
		err := call("axllm_generation_next", func() C.axllm_status {
			return C.axllm_generation_next(h, (*C.char)(unsafe.Pointer(&g.buf[0])), C.size_t(len(g.buf)), &n, &done)
		})
		if ee, ok := err.(*EngineError); ok && ee.Status == llm.AxllmErrBufferTooSmall && int(n)+1 > len(g.buf) {
			g.buf = make([]byte, int(n)+1)
			continue
		}
		if err != nil {
			return "", llm.AxllmDoneNone, err
		}
		return string(g.buf[:n]), llm.AxllmDoneReason(done), nil
	}
}

// PrefillStep implements Prefiller (axllm_generation_prefill_step).
func (g *axllmGeneration) PrefillStep() (int, error) {
	h := g.get()
	var left C.size_t
	if err := call("axllm_generation_prefill_step", func() C.axllm_status {
		return C.axllm_generation_prefill_step(h, &left)
	}); err != nil {
		return 0, err
	}
	return int(left), nil
}

// Cancel is safe at any time: axllm ignores freed handles.
func (g *axllmGeneration) Cancel() {
	if h := g.get(); h != nil {
		C.axllm_generation_cancel(h)
	}
}

func (g *axllmGeneration) Stats() Stats {
	var s C.axllm_stats
	h := g.get()
	if h == nil || C.axllm_generation_stats(h, &s) != C.AXLLM_OK {
		return Stats{}
	}
	return Stats{
		PromptTokens:     int(s.prompt_tokens),
		PromptReused:     int(s.prompt_reused),
		PromptDuration:   time.Duration(s.prompt_duration_ns),
		GeneratedTokens:  int(s.generated_tokens),
		GenerateDuration: time.Duration(s.generate_duration_ns),
	}
}

func (g *axllmGeneration) End() {
	g.mu.Lock()
	h := g.handle
	g.handle = nil
	g.mu.Unlock()
	if h != nil {
		C.axllm_generation_end(h)
	}
}

// headerStatuses are the statuses as include/axllm.h numbers them, for the
// test that keeps the Go constants in step with the header.
func headerStatuses() map[llm.AxllmStatus]int {
	return map[llm.AxllmStatus]int{
		llm.AxllmOk:                    int(C.AXLLM_OK),
		llm.AxllmErrInvalidArgument:    int(C.AXLLM_ERR_INVALID_ARGUMENT),
		llm.AxllmErrBufferTooSmall:     int(C.AXLLM_ERR_BUFFER_TOO_SMALL),
		llm.AxllmErrChatTemplate:       int(C.AXLLM_ERR_CHAT_TEMPLATE),
		llm.AxllmErrRuntimeUnavailable: int(C.AXLLM_ERR_RUNTIME_UNAVAILABLE),
		llm.AxllmErrBadPackage:         int(C.AXLLM_ERR_BAD_PACKAGE),
		llm.AxllmErrPromptTooLong:      int(C.AXLLM_ERR_PROMPT_TOO_LONG),
		llm.AxllmErrOutOfMemory:        int(C.AXLLM_ERR_OUT_OF_MEMORY),
		llm.AxllmErrRuntimeFailure:     int(C.AXLLM_ERR_RUNTIME_FAILURE),
		llm.AxllmErrDeviceLost:         int(C.AXLLM_ERR_DEVICE_LOST),
		llm.AxllmErrPanic:              int(C.AXLLM_ERR_PANIC),
	}
}

// axllmTokenProb is a token of axllm_generation_logprobs' JSON.
type axllmTokenProb struct {
	Text    string  `json:"text"`
	Bytes   []int   `json:"bytes"`
	Logprob float64 `json:"logprob"`
}

// token is the token's text as Ollama's runners give it: the token's own
// bytes, so a byte-fallback token that holds part of a character is that
// byte (the server reports the bytes; JSON shows U+FFFD for the text).
func (t axllmTokenProb) token() llm.TokenLogprob {
	if t.Bytes == nil {
		return llm.TokenLogprob{Token: t.Text, Logprob: t.Logprob}
	}
	b := make([]byte, len(t.Bytes))
	for i, v := range t.Bytes {
		b[i] = byte(v)
	}
	return llm.TokenLogprob{Token: string(b), Logprob: t.Logprob}
}

// axllmLogprob is one entry of axllm_generation_logprobs' JSON.
type axllmLogprob struct {
	axllmTokenProb
	Top []axllmTokenProb `json:"top"`
}

// Logprobs implements LogprobReader (axllm_generation_logprobs).
func (g *axllmGeneration) Logprobs() ([]llm.Logprob, error) {
	h := g.get()
	buf := make([]byte, 4096)
	for {
		var n C.size_t
		err := call("axllm_generation_logprobs", func() C.axllm_status {
			return C.axllm_generation_logprobs(h, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n)
		})
		if ee, ok := err.(*EngineError); ok && ee.Status == llm.AxllmErrBufferTooSmall && int(n)+1 > len(buf) {
			buf = make([]byte, int(n)+1)
			continue
		}
		if err != nil {
			return nil, err
		}
		var entries []axllmLogprob
		if err := json.Unmarshal(buf[:n], &entries); err != nil {
			return nil, fmt.Errorf("axllm_generation_logprobs: %w", err)
		}
		out := make([]llm.Logprob, 0, len(entries))
		for _, e := range entries {
			lp := llm.Logprob{TokenLogprob: e.token()}
			for _, t := range e.Top {
				lp.TopLogprobs = append(lp.TopLogprobs, t.token())
			}
			out = append(out, lp)
		}
		return out, nil
	}
}

// Embed implements Embedder (axllm_model_embed, truncating to the context).
func (e *axllmEngine) Embed(text string) ([]float32, int, error) {
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	out := make([]float32, max(e.info.HiddenSize, 1))
	for {
		var n, tokens C.size_t
		err := call("axllm_model_embed", func() C.axllm_status {
			return C.axllm_model_embed(e.model, ctext, nil, (*C.float)(unsafe.Pointer(&out[0])), C.size_t(len(out)), &n, &tokens)
		})
		if ee, ok := err.(*EngineError); ok && ee.Status == llm.AxllmErrBufferTooSmall && int(n) > len(out) {
			out = make([]float32, int(n))
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		return out[:n], int(tokens), nil
	}
}
