package llm

import (
	"encoding/json"

	"github.com/ollama/ollama/api"
)

// Messages between AX650Server (inside `ollama serve`) and the AX650 runner
// subprocess (`ollama runner --ax650-engine`, package x/ax650runner), sent as
// JSON over loopback HTTP.

// AX650CompletionRequest is the body of the runner's POST /v1/completions.
type AX650CompletionRequest struct {
	Prompt string `json:"prompt"`
	// Format is Ollama's format ("json" or a JSON schema), enforced by axllm
	// token by token; a schema it cannot compile is a 400.
	Format json.RawMessage `json:"format,omitempty"`
	// ThinkingClose holds the strings any of which ends a thinking block the
	// response begins with: Format applies only after it.
	ThinkingClose []string `json:"thinking_close,omitempty"`
	// MediaCount is the number of images or audio clips in the request (the
	// data itself is not sent: AX650 models are text only).
	MediaCount int          `json:"media_count,omitempty"`
	Options    *api.Options `json:"options,omitempty"`
	Truncate   bool         `json:"truncate,omitempty"`
	Shift      bool         `json:"shift,omitempty"`
	LeadingBOS string       `json:"leading_bos,omitempty"`
	Logprobs   bool         `json:"logprobs,omitempty"`
	// TopLogprobs is how many of the most likely tokens to report per position (0-20).
	TopLogprobs int `json:"top_logprobs,omitempty"`
}

// AX650EmbeddingRequest is the body of the runner's POST /v1/embedding.
type AX650EmbeddingRequest struct {
	Content string `json:"content"`
}

// AX650EmbeddingResponse answers POST /v1/embedding: the last token's final
// hidden state, L2-normalised, and the number of tokens embedded.
type AX650EmbeddingResponse struct {
	Embedding    []float32 `json:"embedding"`
	PromptTokens int       `json:"prompt_tokens"`
}

// AX650CompletionChunk is one JSON line of the runner's /v1/completions stream.
// A line with Error set is the last one.
type AX650CompletionChunk struct {
	CompletionResponse
	Error *AX650Error `json:"error,omitempty"`
}

// AX650Error is an error the runner reports: Status is the HTTP status to
// hand back to the client (400 for bad requests) and Axllm the axllm status
// behind it, if any. errors.Is(err, AxllmErrOutOfMemory) sees through it.
type AX650Error struct {
	Status  int         `json:"status"`
	Axllm   AxllmStatus `json:"axllm_status,omitempty"`
	Message string      `json:"message"`
}

func (e *AX650Error) Error() string { return e.Message }

// Unwrap returns the axllm status, so that it can be matched as a sentinel.
func (e *AX650Error) Unwrap() error {
	if e.Axllm == AxllmOk {
		return nil
	}
	return e.Axllm
}

// Error makes a status usable as a sentinel error value:
// errors.Is(err, AxllmErrOutOfMemory).
func (v AxllmStatus) Error() string { return v.String() }

// Runner states reported by GET /v1/status.
const (
	AX650StateLoading = "loading" // loading the model onto the NPU
	AX650StateReady   = "ready"   // serving
	AX650StateFailed  = "failed"  // the load failed; Error says why
	AX650StateBroken  = "broken"  // the NPU runtime failed after loading; reload the model
)

// AX650Status is the body of the runner's GET /v1/status.
type AX650Status struct {
	State string `json:"state"`
	// Error and Axllm describe a failed load or a broken runtime.
	Error string      `json:"error,omitempty"`
	Axllm AxllmStatus `json:"axllm_status,omitempty"`
	// Loaded and Total count the model files loaded so far.
	Loaded uint32 `json:"loaded,omitempty"`
	Total  uint32 `json:"total,omitempty"`
	// ContextLength is the number of positions a conversation may occupy.
	ContextLength int `json:"context_length,omitempty"`
	// MaxPrefill is the longest prompt prefilled in chunks.
	MaxPrefill int `json:"max_prefill,omitempty"`
	// Memory is the device memory the model uses, in bytes.
	Memory uint64 `json:"memory,omitempty"`
	// KVSlots is how many requests the loaded model serves at once (its KV
	// slots on the card; fewer than asked for a model that keeps one).
	KVSlots int `json:"kv_slots,omitempty"`
}

// Err is the failure the status describes, with its axllm status as a
// sentinel (nil when the runner is loading or ready).
func (st AX650Status) Err() error {
	if st.State != AX650StateFailed && st.State != AX650StateBroken {
		return nil
	}
	return &AX650Error{Axllm: st.Axllm, Message: st.Error}
}

// The runner also serves GET /v1/debug/diagnostics: the engine's runtime
// diagnostics as JSON (on the simulator, its call counters and the device
// allocations alive now), for tests and debugging; nothing in `ollama serve`
// reads it.

// AX650TokenizeRequest is the body of POST /v1/tokenize.
type AX650TokenizeRequest struct {
	Content string `json:"content"`
}

// AX650TokenizeResponse answers POST /v1/tokenize.
type AX650TokenizeResponse struct {
	Tokens []int `json:"tokens"`
}

// AX650DetokenizeRequest is the body of POST /v1/detokenize.
type AX650DetokenizeRequest struct {
	Tokens []int `json:"tokens"`
}

// AX650DetokenizeResponse answers POST /v1/detokenize.
type AX650DetokenizeResponse struct {
	Content string `json:"content"`
}

// AX650ChatTemplateRequest is the body of POST /v1/chat_template: a
// conversation for the runner to render with the package's own chat template
// (axllm_model_render_chat), for models created with renderer "axllm".
type AX650ChatTemplateRequest struct {
	Messages []api.Message `json:"messages"`
	Tools    api.Tools     `json:"tools,omitempty"`
	// Think is Ollama's think flag; it reaches the template as
	// enable_thinking when set.
	Think *api.ThinkValue `json:"think,omitempty"`
}

// AX650ChatTemplateResponse answers POST /v1/chat_template.
type AX650ChatTemplateResponse struct {
	Prompt string `json:"prompt"`
}
