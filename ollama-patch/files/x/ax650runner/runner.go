package ax650runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/llm"
)

// Runner serves requests for one loaded Engine: as many at once as the
// model has KV slots, their steps taking turns.
type Runner struct {
	engine Engine
	info   Info
	// sem admits one request per KV slot; waiting honours ctx (axllm's own
	// wait for a slot inside begin could not be cancelled).
	sem *semaphore.Weighted
	// turns orders the admitted requests' engine calls: round-robin, one
	// prefill chunk or one token at a time.
	turns turns

	mu     sync.Mutex
	broken error // set after a device error: the model must be loaded again
}

// NewRunner serves e.
func NewRunner(e Engine) *Runner {
	info := e.Info()
	info.KVSlots = max(info.KVSlots, 1)
	return &Runner{engine: e, info: info, sem: semaphore.NewWeighted(int64(info.KVSlots))}
}

// Info is the loaded model's geometry.
func (r *Runner) Info() Info { return r.info }

// Broken returns the error that made the runner unusable, or nil.
func (r *Runner) Broken() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.broken
}

func (r *Runner) markBroken(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken == nil {
		r.broken = err
		slog.Error("AX650 runtime failed; the model must be loaded again", "error", err)
	}
}

// requestError is an error with the HTTP status to report and the axllm
// status behind it (if any), which Unwrap exposes as a sentinel.
type requestError struct {
	status int
	axllm  llm.AxllmStatus
	err    error
}

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() []error {
	if e.axllm == llm.AxllmOk {
		return []error{e.err}
	}
	return []error{e.err, e.axllm}
}

// withStatus attaches an axllm status to err, keeping its message.
func withStatus(err error, st llm.AxllmStatus) error {
	return &requestError{status: http.StatusInternalServerError, axllm: st, err: err}
}

func badRequest(format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, err: fmt.Errorf(format, args...)}
}

// axllmStatus is the axllm status behind err (AxllmOk when there is none).
func axllmStatus(err error) llm.AxllmStatus {
	var st llm.AxllmStatus
	if errors.As(err, &st) {
		return st
	}
	return llm.AxllmOk
}

// wireError converts any error of this package to the wire form.
func wireError(err error) *llm.AX650Error {
	var re *requestError
	if errors.As(err, &re) {
		return &llm.AX650Error{Status: re.status, Axllm: axllmStatus(err), Message: err.Error()}
	}
	var se api.StatusError
	if errors.As(err, &se) {
		return &llm.AX650Error{Status: se.StatusCode, Message: se.ErrorMessage}
	}
	return &llm.AX650Error{Status: http.StatusInternalServerError, Axllm: axllmStatus(err), Message: err.Error()}
}

// engineError classifies an axllm failure: bad input is the client's (400),
// out of memory keeps that phrase (Ollama's scheduler recognises it), and a
// runtime or device failure breaks the runner so the model is reloaded.
func (r *Runner) engineError(err error) error {
	var ee *EngineError
	if !errors.As(err, &ee) {
		return err
	}
	re := &requestError{status: http.StatusInternalServerError, axllm: ee.Status, err: err}
	switch ee.Status {
	case llm.AxllmErrPromptTooLong:
		re.status = http.StatusBadRequest
		re.err = fmt.Errorf("the prompt is longer than the context length of this model (%d tokens): %s", r.info.ContextLength, ee.Message)
	case llm.AxllmErrInvalidArgument:
		re.status = http.StatusBadRequest
		re.err = fmt.Errorf("invalid request: %s", ee.Message)
	case llm.AxllmErrChatTemplate:
		re.status = http.StatusBadRequest
		re.err = fmt.Errorf("the model's chat template: %s", ee.Message)
	case llm.AxllmErrOutOfMemory:
		re.err = fmt.Errorf("AX650 NPU out of memory: %s", ee.Message)
	case llm.AxllmErrRuntimeFailure, llm.AxllmErrDeviceLost, llm.AxllmErrRuntimeUnavailable, llm.AxllmErrPanic:
		r.markBroken(err)
		re.err = fmt.Errorf("AX650 runtime error (the model will be loaded again): %s", ee.Message)
	}
	return re
}

// formatOf is the format to hand to axllm: "" for none, else the raw JSON
// value ("json" quoted, or a schema object), which axllm reads as Ollama does.
func formatOf(format []byte) string {
	if !formatSet(format) {
		return ""
	}
	return string(bytes.TrimSpace(format))
}

// formatSet reports whether a request asks for structured output.
func formatSet(format []byte) bool {
	f := bytes.TrimSpace(format)
	return len(f) > 0 && !bytes.Equal(f, []byte("null")) && !bytes.Equal(f, []byte(`""`))
}

// validate refuses what AX650 models cannot do.
func validate(req *llm.AX650CompletionRequest) error {
	if req.MediaCount > 0 {
		return badRequest("AX650 models do not support image or audio input")
	}
	if o := req.Options; o != nil && o.Seed < -1 {
		// axllm takes any negative seed as "random": only -1 means that in Ollama.
		return badRequest("invalid seed %d: use -1 for a random seed, or 0 to 9223372036854775807", o.Seed)
	}
	return nil
}

// clampInt32 keeps an option within axllm's int32 fields: a larger value
// would wrap around (num_predict 1<<32 would become 0).
func clampInt32(v int) int {
	return max(min(v, math.MaxInt32), math.MinInt32)
}

// paramsFor maps Ollama's options onto axllm's.
func paramsFor(o *api.Options, req *llm.AX650CompletionRequest) Params {
	numPredict := clampInt32(o.NumPredict)
	if numPredict <= 0 {
		// -1 (no limit), -2 (fill the context) and 0 (no limit, as
		// Ollama's runners treat it) all run to the context limit.
		numPredict = -1
	}
	return Params{
		Temperature:      o.Temperature,
		TopK:             clampInt32(o.TopK),
		TopP:             o.TopP,
		MinP:             o.MinP,
		TypicalP:         o.TypicalP,
		RepeatLastN:      clampInt32(o.RepeatLastN),
		RepeatPenalty:    o.RepeatPenalty,
		PresencePenalty:  o.PresencePenalty,
		FrequencyPenalty: o.FrequencyPenalty,
		Seed:             int64(o.Seed),
		NumPredict:       numPredict,
		Stop:             o.Stop,
		Format:           formatOf(req.Format),
		ThinkingClose:    req.ThinkingClose,
		Logprobs:         req.Logprobs,
		TopLogprobs:      req.TopLogprobs,
	}
}

// promptTokens tokenizes the prompt and makes it fit: a prompt that leaves no
// room to generate is truncated (keeping num_keep tokens of the start and
// the end, three quarters of the context in all) when the request allows it,
// and refused with a 400 otherwise.
func (r *Runner) promptTokens(req *llm.AX650CompletionRequest, o *api.Options) ([]int32, error) {
	prompt := req.Prompt
	if req.LeadingBOS != "" {
		// The tokenizer adds its own BOS; don't send the renderer's as well.
		prompt = strings.TrimPrefix(prompt, req.LeadingBOS)
	}
	tokens, err := r.engine.Tokenize(prompt)
	if err != nil {
		return nil, r.engineError(err)
	}
	ctxLen := r.info.ContextLength
	if ctxLen <= 0 || len(tokens) < ctxLen {
		return tokens, nil
	}
	if !req.Truncate {
		return nil, &requestError{status: http.StatusBadRequest, axllm: llm.AxllmErrPromptTooLong, err: fmt.Errorf(
			"the prompt (%d tokens) is longer than the context length of this model (%d tokens); shorten the prompt or allow truncation",
			len(tokens), ctxLen)}
	}
	limit := max(ctxLen*3/4, 1)
	keep := min(max(o.NumKeep, 0), limit/2)
	out := make([]int32, 0, limit)
	out = append(out, tokens[:keep]...)
	out = append(out, tokens[len(tokens)-(limit-keep):]...)
	slog.Warn("truncating the prompt to fit the context", "prompt_tokens", len(tokens), "context_length", ctxLen, "kept", len(out), "num_keep", keep)
	return out, nil
}

// Completion runs one request: fn receives text pieces and exactly one final
// response with Done set, all from this goroutine. When ctx ends it stops the
// generation and returns ctx.Err() without a final response.
func (r *Runner) Completion(ctx context.Context, req llm.AX650CompletionRequest, fn func(llm.CompletionResponse)) error {
	if err := r.Broken(); err != nil {
		return &requestError{status: http.StatusServiceUnavailable, axllm: axllmStatus(err),
			err: fmt.Errorf("AX650 runtime failed earlier, the model must be loaded again: %w", err)}
	}
	if err := validate(&req); err != nil {
		return err
	}
	opts := req.Options
	if opts == nil {
		d := api.DefaultOptions()
		opts = &d
	}
	tokens, err := r.promptTokens(&req, opts)
	if err != nil {
		return err
	}

	if err := r.sem.Acquire(ctx, 1); err != nil {
		return err
	}
	defer r.sem.Release(1)

	me := newTurn()
	gen, err := r.begin(ctx, me, tokens, paramsFor(opts, &req))
	if err != nil {
		return err
	}
	defer gen.End()
	// Next blocks for a token at a time; cancel it from outside when the
	// client goes away.
	stopCancel := context.AfterFunc(ctx, gen.Cancel)
	defer stopCancel()

	// A started generation's prompt is fed one chunk per turn; a cancel
	// stops it at the next chunk.
	if pf, ok := gen.(Prefiller); ok {
		for {
			r.turns.acquire(me)
			left, err := pf.PrefillStep()
			r.turns.release()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				return r.engineError(err)
			}
			if left == 0 {
				break
			}
		}
	}

	// The pieces are whole UTF-8 characters with the stop strings already
	// applied by axllm: they go to the client as they are.
	var reason llm.DoneReason
	for {
		r.turns.acquire(me)
		piece, done, err := gen.Next()
		r.turns.release()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return r.engineError(err)
		}
		var logprobs []llm.Logprob
		if lr, ok := gen.(LogprobReader); ok && req.Logprobs {
			if logprobs, err = lr.Logprobs(); err != nil {
				return r.engineError(err)
			}
		}
		if done == llm.AxllmDoneNone {
			fn(llm.CompletionResponse{Content: piece, Logprobs: logprobs})
			continue
		}
		if len(logprobs) > 0 {
			fn(llm.CompletionResponse{Logprobs: logprobs})
		}
		if reason, err = doneReason(done); err != nil {
			return err
		}
		break
	}

	st := gen.Stats()
	fn(llm.CompletionResponse{
		Done:               true,
		DoneReason:         reason,
		PromptEvalCount:    st.PromptTokens,
		PromptEvalDuration: st.PromptDuration,
		EvalCount:          st.GeneratedTokens,
		EvalDuration:       st.GenerateDuration,
	})
	return nil
}

// begin starts the request's generation in its turn: an engine that can
// start one without feeding the prompt does so (Completion then feeds it a
// chunk per turn); otherwise Begin prefills the whole prompt, which can take
// a while, so a cancel (the client gone, the runner stopping) must reach it
// too. axllm's model-wide cancel reaches every generation of the model, so
// it is used only when this request is the only one (one slot); with
// several, such a prefill runs to its end and the request stops right after.
func (r *Runner) begin(ctx context.Context, me turn, tokens []int32, p Params) (Generation, error) {
	var gen Generation
	var err error
	if s, ok := r.engine.(Starter); ok {
		r.turns.acquire(me)
		gen, err = s.Start(tokens, p)
		r.turns.release()
	} else {
		stopBegin := func() bool { return false }
		if c, ok := r.engine.(Canceller); ok && r.info.KVSlots == 1 {
			stopBegin = context.AfterFunc(ctx, c.CancelCurrent)
		}
		r.turns.acquire(me)
		gen, err = r.engine.Begin(tokens, p)
		r.turns.release()
		stopBegin()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, r.engineError(err)
	}
	return gen, nil
}

// doneReason maps why axllm ended a generation onto Ollama's done reason.
func doneReason(done llm.AxllmDoneReason) (llm.DoneReason, error) {
	switch done {
	case llm.AxllmDoneEos, llm.AxllmDoneStopString:
		return llm.DoneReasonStop, nil
	case llm.AxllmDoneMaxTokens, llm.AxllmDoneContextFull:
		return llm.DoneReasonLength, nil
	case llm.AxllmDoneCancelled:
		return 0, errors.New("AX650 generation was cancelled")
	default:
		return 0, fmt.Errorf("AX650 generation ended for an unknown reason %s", done)
	}
}

// Tokenize encodes text as Completion does.
func (r *Runner) Tokenize(text string) ([]int, error) {
	ids, err := r.engine.Tokenize(text)
	if err != nil {
		return nil, r.engineError(err)
	}
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out, nil
}

// Detokenize decodes ids; ids outside the vocabulary are a 400.
func (r *Runner) Detokenize(tokens []int) (string, error) {
	ids := make([]int32, len(tokens))
	for i, t := range tokens {
		if t < 0 || (r.info.VocabSize > 0 && t >= r.info.VocabSize) {
			return "", badRequest("token %d is outside the vocabulary", t)
		}
		ids[i] = int32(t)
	}
	text, err := r.engine.Detokenize(ids)
	if err != nil {
		return "", r.engineError(err)
	}
	return text, nil
}

// chatTemplateMessage is a message as Hugging Face chat templates read it.
type chatTemplateMessage struct {
	Role       string                 `json:"role"`
	Content    string                 `json:"content"`
	Reasoning  string                 `json:"reasoning_content,omitempty"`
	ToolCalls  []chatTemplateToolCall `json:"tool_calls,omitempty"`
	Name       string                 `json:"name,omitempty"`
	ToolCallID string                 `json:"tool_call_id,omitempty"`
}

type chatTemplateToolCall struct {
	ID       string               `json:"id,omitempty"`
	Type     string               `json:"type"`
	Function chatTemplateFunction `json:"function"`
}

type chatTemplateFunction struct {
	Name      string `json:"name"`
	Arguments any    `json:"arguments"`
}

// chatTemplateRequest is axllm_model_render_chat's request for an Ollama
// conversation: the messages in the Hugging Face form (tool calls with
// their arguments as an object, a tool result's name), the tools as
// Ollama's OpenAI-style function list, add_generation_prompt, and
// enable_thinking when the request sets think.
func chatTemplateRequest(req llm.AX650ChatTemplateRequest) ([]byte, error) {
	msgs := make([]chatTemplateMessage, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = chatTemplateMessage{Role: m.Role, Content: m.Content, Reasoning: m.Thinking, Name: m.ToolName, ToolCallID: m.ToolCallID}
		for _, tc := range m.ToolCalls {
			msgs[i].ToolCalls = append(msgs[i].ToolCalls, chatTemplateToolCall{
				ID: tc.ID, Type: "function",
				Function: chatTemplateFunction{Name: tc.Function.Name, Arguments: tc.Function.Arguments},
			})
		}
	}
	body := map[string]any{"messages": msgs, "add_generation_prompt": true}
	if len(req.Tools) > 0 {
		body["tools"] = req.Tools
	}
	if req.Think != nil {
		body["enable_thinking"] = req.Think.Bool()
	}
	return json.Marshal(body)
}

// RenderChat renders a conversation with the package's own chat template.
// A template that refuses the conversation (raise_exception) or a package
// without a template is the request's error (400).
func (r *Runner) RenderChat(req llm.AX650ChatTemplateRequest) (string, error) {
	cr, ok := r.engine.(ChatRenderer)
	if !ok {
		return "", badRequest("this AX650 engine cannot render chat templates")
	}
	if len(req.Messages) == 0 {
		return "", badRequest("a chat needs at least one message")
	}
	body, err := chatTemplateRequest(req)
	if err != nil {
		return "", badRequest("bad chat: %v", err)
	}
	prompt, err := cr.RenderChat(body)
	if err != nil {
		return "", r.engineError(err)
	}
	return prompt, nil
}

// Embedding returns the embedding of text (see Embedder).
func (r *Runner) Embedding(ctx context.Context, text string) ([]float32, int, error) {
	if err := r.Broken(); err != nil {
		return nil, 0, &requestError{status: http.StatusServiceUnavailable, axllm: axllmStatus(err),
			err: fmt.Errorf("AX650 runtime failed earlier, the model must be loaded again: %w", err)}
	}
	e, ok := r.engine.(Embedder)
	if !ok {
		return nil, 0, badRequest("this AX650 engine does not compute embeddings")
	}
	if err := r.sem.Acquire(ctx, 1); err != nil {
		return nil, 0, err
	}
	defer r.sem.Release(1)
	// One engine call, taken in turn with the running generations' steps.
	r.turns.acquire(newTurn())
	v, n, err := e.Embed(text)
	r.turns.release()
	if err != nil {
		return nil, 0, r.engineError(err)
	}
	return v, n, nil
}
