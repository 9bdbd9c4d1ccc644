// Package ax650runner is the AX650 runner subprocess
// (`ollama runner --ax650-engine`): it links the model's files into a
// directory, loads them onto the NPU through the axllm C library
// (include/axllm.h, cgo, build tag ax650) and serves completions over
// loopback HTTP to llm.AX650Server in `ollama serve`.
//
// The request logic (serialisation, cancellation, truncation, done
// accounting) is plain Go over the small Engine interface, so it is tested
// with a fake engine on any machine. Text is passed through as the library
// returns it: axllm applies the stop strings and never splits a UTF-8
// character.
package ax650runner

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ollama/ollama/llm"
)

// EngineError is a failed axllm call: Call names the function, Status is
// its axllm_status and Message axllm_last_error(). errors.Is(err,
// llm.AxllmErrOutOfMemory) matches on the status.
type EngineError struct {
	Call    string
	Status  llm.AxllmStatus
	Message string
}

func (e *EngineError) Error() string {
	return fmt.Sprintf("%s: %s (%s)", e.Call, e.Message, e.Status)
}

func (e *EngineError) Unwrap() error { return e.Status }

// DoneReason is axllm_done_reason (llm.AxllmDone*).
type DoneReason = llm.AxllmDoneReason

// LoadOptions are axllm's load parameters (axllm_load_params), which the
// runner takes from its command line.
type LoadOptions struct {
	// Runtime is the AXCL runtime library; "" means axllm's default search.
	Runtime string
	// Schedule is the call schedule ("default", "safe", "fewest-calls", ...); "" means the default.
	Schedule string
	// Device is the index into the runtime's device list.
	Device int
	// LinkRoots are directories outside the package that its symlinks may
	// point into: the blob store the runner links the package's files from.
	LinkRoots []string
	// KVSlots is how many sequences' K/V caches the card holds, hence how
	// many requests run at once; 0 lets axllm choose from the card's free
	// memory as it loads (AXLLM_KV_SLOTS_AUTO; Info().KVSlots says how many).
	KVSlots int
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
	// KVSlots is how many generations may run at once (axllm_model_info's
	// kv_slots; 0 from an engine that does not say: 1).
	KVSlots int
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
	// Format is "" (free text), "json" (quoted) or a JSON schema.
	Format string
	// ThinkingClose ends a thinking block the output begins with; Format
	// applies only after it.
	ThinkingClose []string
	// Logprobs asks for each token's log probability (LogprobReader), with
	// the TopLogprobs most likely tokens at each position.
	Logprobs    bool
	TopLogprobs int
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
// concurrently with a generation. Up to Info().KVSlots generations may be
// alive at once; Begin, Start, PrefillStep and Next calls (of any
// generation) are made by one goroutine at a time, taking turns.
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

// Starter is an engine that can start a generation without feeding its
// prompt (axllm_generation_start_tokens): the generation it returns is a
// Prefiller, and the runner feeds the prompt one chunk per turn, so other
// requests' tokens are not kept waiting by a long prompt's whole prefill.
type Starter interface {
	Start(tokens []int32, p Params) (Generation, error)
}

// Prefiller is a generation whose prompt is fed a chunk at a time.
type Prefiller interface {
	// PrefillStep feeds the next chunk of the prompt and returns how many
	// prompt tokens are still to feed: 0 once the prompt is fed (later
	// calls do nothing) or the generation was cancelled (Next reports it).
	PrefillStep() (int, error)
}

// Canceller is implemented by an engine that can cancel the generation
// holding the NPU even while Begin is still prefilling its prompt
// (axllm_model_cancel); Generation.Cancel only reaches it once Begin has
// returned.
type Canceller interface {
	CancelCurrent()
}

// Diagnoser is the test bed's interface, apart from Engine: an engine that
// has it reports its runtime's diagnostics (axllm_model_diagnostics: on the
// simulator its call counters and live device allocations) as JSON, which
// the runner serves on GET /v1/debug/diagnostics.
type Diagnoser interface {
	Diagnostics() (json.RawMessage, error)
}

// ChatRenderer is an engine that renders a conversation with the model's
// own chat template (axllm_model_render_chat): request is the JSON object
// the library takes (messages, tools, add_generation_prompt and the
// template's own variables such as enable_thinking).
type ChatRenderer interface {
	RenderChat(request []byte) (string, error)
}

// Generation is one running generation.
type Generation interface {
	// Next returns the next piece of text (whole UTF-8 characters, stop
	// strings already applied), or "" and why the generation ended (every
	// later call repeats it).
	Next() (string, DoneReason, error)
	// Cancel asks the generation to stop; safe from any goroutine, returns at
	// once. The next Next reports DoneCancelled.
	Cancel()
	Stats() Stats
	// End releases the generation and the NPU.
	End()
}

// LogprobReader is a Generation that reports log probabilities: those of the
// tokens emitted since the last call, in Ollama's shape.
type LogprobReader interface {
	Logprobs() ([]llm.Logprob, error)
}

// Embedder is an engine that embeds text: the last token's final hidden
// state, L2-normalised, and the number of tokens embedded (the text is
// truncated to the context).
type Embedder interface {
	Embed(text string) ([]float32, int, error)
}

// LoadProgress is called after each model file is loaded.
type LoadProgress func(loaded, total uint32)
