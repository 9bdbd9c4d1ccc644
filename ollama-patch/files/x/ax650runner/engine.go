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
	"fmt"
	"time"
)

// Status mirrors axllm_status (include/axllm.h); the numbers are stable.
type Status int

const (
	StatusOK              Status = 0
	StatusInvalidArgument Status = 100
	StatusBufferTooSmall  Status = 101
	StatusRuntime         Status = 200
	StatusModelNotFound   Status = 201
	StatusBadModel        Status = 202
	StatusPromptTooLong   Status = 300
	StatusOutOfMemory     Status = 400
	StatusDevice          Status = 401
	StatusPanic           Status = 900
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
	case StatusRuntime:
		return "runtime"
	case StatusModelNotFound:
		return "model_not_found"
	case StatusBadModel:
		return "bad_model"
	case StatusPromptTooLong:
		return "prompt_too_long"
	case StatusOutOfMemory:
		return "out_of_memory"
	case StatusDevice:
		return "device"
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
	Simulator     bool
}

// SimUsage is what the simulator holds on its device now, for every model
// of the process (axllm_model_info's sim_live_* fields); zero on a card.
type SimUsage struct {
	LiveAllocations uint64
	LiveBytes       uint64
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
	// SimUsage reads the simulator's live device allocations.
	SimUsage() (SimUsage, error)
	// Close frees the model and everything it holds on the NPU.
	Close()
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
