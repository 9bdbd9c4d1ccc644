// Package ax650runner is the AX650 runner subprocess
// (`ollama runner --ax650-engine`): it links the model's files into a
// directory, loads them onto the NPU through the axllm C library
// (include/axllm.h, cgo, build tag ax650) and serves completions over
// loopback HTTP to llm.AX650Server in `ollama serve`.
//
// The request logic (serialisation, cancellation, stop strings, UTF-8,
// truncation, done accounting) is plain Go over the small Engine interface,
// so it is tested with a fake engine on any machine.
package ax650runner

import (
	"encoding/json"
	"fmt"
	"time"
)

// Status mirrors axllm_status (include/axllm.h); the numbers are stable, and
// the tagged build checks them against the header (TestStatusesMatchTheHeader).
type Status int

const (
	StatusOK                 Status = 0
	StatusInvalidArgument    Status = 100
	StatusBufferTooSmall     Status = 101
	StatusRuntimeUnavailable Status = 200
	StatusBadPackage         Status = 202
	StatusPromptTooLong      Status = 300
	StatusOutOfMemory        Status = 400
	StatusRuntimeFailure     Status = 401
	StatusDeviceLost         Status = 402
	StatusPanic              Status = 900
)

// Code is the name used on the wire (llm.AX650Error.Code, llm.AX650Status.Code).
func (s Status) Code() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusInvalidArgument:
		return "invalid_argument"
	case StatusBufferTooSmall:
		return "buffer_too_small"
	case StatusRuntimeUnavailable:
		return "runtime_unavailable"
	case StatusBadPackage:
		return "bad_package"
	case StatusPromptTooLong:
		return "prompt_too_long"
	case StatusOutOfMemory:
		return "out_of_memory"
	case StatusRuntimeFailure:
		return "runtime_failure"
	case StatusDeviceLost:
		return "device_lost"
	case StatusPanic:
		return "panic"
	default:
		return fmt.Sprintf("status_%d", int(s))
	}
}

// EngineError is a failed axllm call: Call names the function, Message is
// axllm_last_error().
type EngineError struct {
	Call    string
	Status  Status
	Message string
}

func (e *EngineError) Error() string {
	return fmt.Sprintf("%s: %s (%s)", e.Call, e.Message, e.Status.Code())
}

// DoneReason mirrors axllm_done_reason.
type DoneReason int

const (
	DoneNone        DoneReason = 0
	DoneEOS         DoneReason = 1
	DoneStopString  DoneReason = 2
	DoneMaxTokens   DoneReason = 3
	DoneContextFull DoneReason = 4
	DoneCancelled   DoneReason = 5
)

// LoadOptions are axllm's load parameters (axllm_load_params), which the
// runner takes from its command line.
type LoadOptions struct {
	// Runtime is the AXCL runtime library; "" means axllm's default search.
	Runtime string
	// Schedule is the call schedule ("safe", "fewest-calls", ...); "" means the default.
	Schedule string
	// Device is the index into the runtime's device list.
	Device int
	// LinkRoots are directories outside the package that its symlinks may
	// point into: the blob store the runner links the package's files from.
	LinkRoots []string
}

// Info is what a loaded model is (axllm_model_info).
type Info struct {
	ContextLength int
	MaxPrefill    int
	VocabSize     int
	Layers        int
	HiddenSize    int
	Chunk         int
	MemoryBytes   uint64
	DeviceID      int
}

// Params are the sampling and stop options of one generation
// (axllm_generate_params), with Ollama's names.
type Params struct {
	Temperature      float32
	TopK             int
	TopP             float32
	MinP             float32
	TypicalP         float32
	RepeatLastN      int
	RepeatPenalty    float32
	PresencePenalty  float32
	FrequencyPenalty float32
	Seed             int64
	NumPredict       int
	Stop             []string
}

// Stats are the counts and durations of a generation (axllm_stats).
type Stats struct {
	PromptTokens     int
	PromptReused     int
	PromptDuration   time.Duration
	GeneratedTokens  int
	GenerateDuration time.Duration
}

// Engine is a model loaded on the NPU. Tokenize and Detokenize may run
// concurrently with a generation; Begin is called by one goroutine at a time.
type Engine interface {
	Info() Info
	// Tokenize encodes text; special tokens written in it map to their ids,
	// and the tokenizer's post-processor (BOS) is applied.
	Tokenize(text string) ([]int32, error)
	Detokenize(tokens []int32) (string, error)
	// Begin prefills the prompt and starts a generation.
	Begin(tokens []int32, p Params) (Generation, error)
	// Close frees the model and everything it holds on the NPU.
	Close()
}

// Diagnoser is the test bed's interface, apart from Engine: an engine that
// has it reports its runtime's diagnostics (axllm_model_diagnostics: on the
// simulator its call counters and live device allocations) as JSON, which
// the runner serves on GET /v1/debug/diagnostics.
type Diagnoser interface {
	Diagnostics() (json.RawMessage, error)
}

// Generation is one running generation.
type Generation interface {
	// Next returns the next piece of text, or "" and why the generation ended
	// (every later call repeats it).
	Next() (string, DoneReason, error)
	// Cancel asks the generation to stop; safe from any goroutine, returns at
	// once. The next Next reports DoneCancelled.
	Cancel()
	Stats() Stats
	// End releases the generation and the NPU.
	End()
}

// LoadProgress is called after each model file is loaded.
type LoadProgress func(loaded, total uint32)
