package ax650runner

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/llm"
)

// fakeEngine stands in for the NPU: it tokenizes one token per byte and
// replays scripted pieces.
type fakeEngine struct {
	info     Info
	pieces   []string
	final    DoneReason
	beginErr error
	nextErr  error // returned after the pieces instead of final
	// block makes Next wait (after the pieces) until the generation is cancelled.
	block bool

	mu          sync.Mutex
	params      []Params
	tokens      [][]int32
	active      atomic.Int32
	maxActive   atomic.Int32
	ended       atomic.Int32
	cancelled   atomic.Int32
	tokenizeErr error
}

func (e *fakeEngine) Info() Info { return e.info }

func (e *fakeEngine) Tokenize(text string) ([]int32, error) {
	if e.tokenizeErr != nil {
		return nil, e.tokenizeErr
	}
	ids := make([]int32, len(text))
	for i := range text {
		ids[i] = int32(text[i])
	}
	return ids, nil
}

func (e *fakeEngine) Detokenize(tokens []int32) (string, error) {
	b := make([]byte, len(tokens))
	for i, t := range tokens {
		b[i] = byte(t)
	}
	return string(b), nil
}

func (e *fakeEngine) Begin(tokens []int32, p Params) (Generation, error) {
	if e.beginErr != nil {
		return nil, e.beginErr
	}
	e.mu.Lock()
	e.params = append(e.params, p)
	e.tokens = append(e.tokens, slices.Clone(tokens))
	e.mu.Unlock()
	n := e.active.Add(1)
	for {
		m := e.maxActive.Load()
		if n <= m || e.maxActive.CompareAndSwap(m, n) {
			break
		}
	}
	return &fakeGeneration{e: e, cancel: make(chan struct{}), prompt: len(tokens)}, nil
}

func (e *fakeEngine) Close() {}

type fakeGeneration struct {
	e        *fakeEngine
	i        int
	cancel   chan struct{}
	once     sync.Once
	prompt   int
	produced int
}

func (g *fakeGeneration) Next() (string, DoneReason, error) {
	select {
	case <-g.cancel:
		return "", llm.AxllmDoneCancelled, nil
	default:
	}
	if g.i < len(g.e.pieces) {
		p := g.e.pieces[g.i]
		g.i++
		g.produced++
		time.Sleep(time.Millisecond) // let other goroutines interleave
		return p, llm.AxllmDoneNone, nil
	}
	if g.e.block {
		<-g.cancel
		return "", llm.AxllmDoneCancelled, nil
	}
	if g.e.nextErr != nil {
		return "", llm.AxllmDoneNone, g.e.nextErr
	}
	return "", g.e.final, nil
}

func (g *fakeGeneration) Cancel() {
	g.once.Do(func() {
		g.e.cancelled.Add(1)
		close(g.cancel)
	})
}

func (g *fakeGeneration) Stats() Stats {
	return Stats{PromptTokens: g.prompt, PromptDuration: 2 * time.Millisecond, GeneratedTokens: g.produced, GenerateDuration: 3 * time.Millisecond}
}

func (g *fakeGeneration) End() {
	g.e.active.Add(-1)
	g.e.ended.Add(1)
}

func newFake(pieces ...string) *fakeEngine {
	return &fakeEngine{info: Info{ContextLength: 64, VocabSize: 256}, pieces: pieces, final: llm.AxllmDoneEos}
}

// collect runs a completion and returns the pieces and the final response.
func collect(t *testing.T, ctx context.Context, r *Runner, req llm.AX650CompletionRequest) ([]string, []llm.CompletionResponse, error) {
	t.Helper()
	var pieces []string
	var finals []llm.CompletionResponse
	err := r.Completion(ctx, req, func(resp llm.CompletionResponse) {
		if resp.Done {
			finals = append(finals, resp)
			if resp.Content != "" {
				t.Errorf("final response carries content %q", resp.Content)
			}
			return
		}
		if len(finals) > 0 {
			t.Errorf("piece %q after the final response", resp.Content)
		}
		if resp.Content == "" {
			t.Error("empty piece")
		}
		if !utf8.ValidString(resp.Content) {
			t.Errorf("piece %q is not valid UTF-8", resp.Content)
		}
		pieces = append(pieces, resp.Content)
	})
	return pieces, finals, err
}

func opts(mod func(*api.Options)) *api.Options {
	o := api.DefaultOptions()
	if mod != nil {
		mod(&o)
	}
	return &o
}

func TestCompletionDoneAccounting(t *testing.T) {
	cases := []struct {
		name   string
		final  DoneReason
		reason llm.DoneReason
	}{
		{"eos", llm.AxllmDoneEos, llm.DoneReasonStop},
		{"stop string", llm.AxllmDoneStopString, llm.DoneReasonStop},
		{"max tokens", llm.AxllmDoneMaxTokens, llm.DoneReasonLength},
		{"context full", llm.AxllmDoneContextFull, llm.DoneReasonLength},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newFake("Hel", "lo", " world")
			e.final = tc.final
			r := NewRunner(e)
			pieces, finals, err := collect(t, t.Context(), r, llm.AX650CompletionRequest{Prompt: "hi there", Options: opts(nil)})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(pieces, ""); got != "Hello world" {
				t.Errorf("content = %q", got)
			}
			if len(finals) != 1 {
				t.Fatalf("%d final responses, want 1", len(finals))
			}
			want := llm.CompletionResponse{
				Done: true, DoneReason: tc.reason,
				PromptEvalCount: 8, PromptEvalDuration: 2 * time.Millisecond,
				EvalCount: 3, EvalDuration: 3 * time.Millisecond,
			}
			if diff := cmp.Diff(want, finals[0]); diff != "" {
				t.Errorf("final (-want +got):\n%s", diff)
			}
			if e.ended.Load() != 1 {
				t.Errorf("generation ended %d times, want 1", e.ended.Load())
			}
		})
	}
}

func TestCompletionCancelledGeneration(t *testing.T) {
	e := newFake("a")
	e.final = llm.AxllmDoneCancelled
	_, finals, err := collect(t, t.Context(), NewRunner(e), llm.AX650CompletionRequest{Prompt: "x", Options: opts(nil)})
	if err == nil || len(finals) != 0 {
		t.Fatalf("err = %v, finals = %d; want an error and no final response", err, len(finals))
	}
}

// The runner passes text through as axllm returns it: the library applies
// the stop strings and never splits a UTF-8 character, so the runner neither
// holds back nor cuts anything (a stop string the engine let through, as
// this fake does, reaches the client) and forwards the stop strings.
func TestCompletionPassesTextThrough(t *testing.T) {
	pieces := []string{"Hello", " wor", "ld <|end|>", "中", "!"}
	e := newFake(pieces...)
	e.final = llm.AxllmDoneStopString
	stop := []string{"<|end|>", "world"}
	got, finals, err := collect(t, t.Context(), NewRunner(e), llm.AX650CompletionRequest{
		Prompt:  "p",
		Options: opts(func(o *api.Options) { o.Stop = stop }),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, pieces) {
		t.Errorf("pieces = %q, want %q unchanged", got, pieces)
	}
	if len(finals) != 1 || finals[0].DoneReason != llm.DoneReasonStop {
		t.Errorf("finals = %+v, want one with reason stop", finals)
	}
	if e.cancelled.Load() != 0 {
		t.Error("the runner cancelled a generation the engine ended itself")
	}
	if !slices.Equal(e.params[0].Stop, stop) {
		t.Errorf("engine got stop %q, want %q", e.params[0].Stop, stop)
	}
}

func TestCompletionContextCancel(t *testing.T) {
	e := newFake("first")
	e.block = true
	r := NewRunner(e)
	ctx, cancel := context.WithCancel(t.Context())
	var finals atomic.Int32
	errCh := make(chan error, 1)
	go func() {
		errCh <- r.Completion(ctx, llm.AX650CompletionRequest{Prompt: "p", Options: opts(nil)}, func(resp llm.CompletionResponse) {
			if resp.Done {
				finals.Add(1)
				return
			}
			cancel() // the client goes away after the first piece
		})
	}()
	select {
	case err := <-errCh:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Completion did not return after cancellation")
	}
	if finals.Load() != 0 {
		t.Error("a final response was sent after cancellation")
	}
	if e.cancelled.Load() != 1 || e.ended.Load() != 1 {
		t.Errorf("cancelled %d, ended %d; want 1 and 1", e.cancelled.Load(), e.ended.Load())
	}
}

func TestCompletionSerialised(t *testing.T) {
	e := newFake("a", "b", "c", "d", "e")
	r := NewRunner(e)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, finals, err := collect(t, t.Context(), r, llm.AX650CompletionRequest{Prompt: "p", Options: opts(nil)}); err != nil || len(finals) != 1 {
				t.Errorf("err = %v, finals = %d", err, len(finals))
			}
		})
	}
	wg.Wait()
	if got := e.maxActive.Load(); got != 1 {
		t.Errorf("%d generations ran at once, want 1", got)
	}
	if got := len(e.params); got != 4 {
		t.Errorf("%d generations, want 4", got)
	}
}

func TestCompletionWaitHonoursContext(t *testing.T) {
	e := newFake("x")
	e.block = true
	r := NewRunner(e)
	first, cancelFirst := context.WithCancel(t.Context())
	defer cancelFirst()
	started := make(chan struct{})
	go r.Completion(first, llm.AX650CompletionRequest{Prompt: "p", Options: opts(nil)}, func(llm.CompletionResponse) { close(started) })
	<-started

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := r.Completion(ctx, llm.AX650CompletionRequest{Prompt: "p", Options: opts(nil)}, func(llm.CompletionResponse) {
		t.Error("second request produced output while the first held the NPU")
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if got := len(e.params); got != 1 {
		t.Errorf("%d generations began, want 1", got)
	}
}

func TestCompletionValidation(t *testing.T) {
	cases := []struct {
		name   string
		req    llm.AX650CompletionRequest
		status int
		msg    string
	}{
		{"images", llm.AX650CompletionRequest{Prompt: "p", MediaCount: 1}, 400, "image"},
		{"json format", llm.AX650CompletionRequest{Prompt: "p", Format: []byte(`"json"`)}, 0, ""},
		{"schema format", llm.AX650CompletionRequest{Prompt: "p", Format: []byte(`{"type":"object"}`)}, 0, ""},
		{"null format", llm.AX650CompletionRequest{Prompt: "p", Format: []byte(`null`)}, 0, ""},
		{"nil options", llm.AX650CompletionRequest{Prompt: "p"}, 0, ""},
		{"seed -2", llm.AX650CompletionRequest{Prompt: "p", Options: &api.Options{Seed: -2}}, 400, "invalid seed -2: use -1 for a random seed"},
		{"seed -1", llm.AX650CompletionRequest{Prompt: "p", Options: &api.Options{Seed: -1}}, 0, ""},
		{"seed 2^63-1", llm.AX650CompletionRequest{Prompt: "p", Options: &api.Options{Seed: math.MaxInt64}}, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := collect(t, t.Context(), NewRunner(newFake("ok")), tc.req)
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			we := wireError(err)
			if we.Status != tc.status || !strings.Contains(we.Message, tc.msg) {
				t.Errorf("error = %+v, want status %d containing %q", we, tc.status, tc.msg)
			}
		})
	}
}

func TestCompletionPromptLength(t *testing.T) {
	long := strings.Repeat("x", 20) // 20 tokens
	cases := []struct {
		name       string
		prompt     string
		leadingBOS string
		truncate   bool
		numKeep    int
		wantTokens string
		wantStatus int
	}{
		{"fits", "hello", "", false, 0, "hello", 0},
		{"leading BOS stripped", "<s>hello", "<s>", false, 0, "hello", 0},
		{"too long refused", long, "", false, 0, "", 400},
		{"exactly the context refused", strings.Repeat("y", 16), "", false, 0, "", 400},
		{"too long truncated", "abcd" + long + "tail", "", true, 4, "abcd" + "xxxx" + "tail", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newFake("ok")
			e.info.ContextLength = 16
			_, _, err := collect(t, t.Context(), NewRunner(e), llm.AX650CompletionRequest{
				Prompt: tc.prompt, LeadingBOS: tc.leadingBOS, Truncate: tc.truncate,
				Options: opts(func(o *api.Options) { o.NumKeep = tc.numKeep }),
			})
			if tc.wantStatus != 0 {
				if we := wireError(err); we.Status != tc.wantStatus || we.Axllm != llm.AxllmErrPromptTooLong {
					t.Fatalf("error = %+v, want status %d prompt_too_long", we, tc.wantStatus)
				}
				if len(e.tokens) != 0 {
					t.Error("the engine began a generation for a refused prompt")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := e.Detokenize(e.tokens[0])
			if got != tc.wantTokens {
				t.Errorf("prompt sent = %q, want %q", got, tc.wantTokens)
			}
		})
	}
}

func TestCompletionParams(t *testing.T) {
	e := newFake("ok")
	o := opts(func(o *api.Options) {
		o.Temperature, o.TopK, o.TopP, o.MinP, o.TypicalP = 0.3, 7, 0.5, 0.05, 0.9
		o.RepeatLastN, o.RepeatPenalty, o.PresencePenalty, o.FrequencyPenalty = 32, 1.1, 0.2, 0.3
		o.Seed, o.NumPredict, o.Stop = 42, -2, []string{"END"}
	})
	if _, _, err := collect(t, t.Context(), NewRunner(e), llm.AX650CompletionRequest{Prompt: "p", Options: o}); err != nil {
		t.Fatal(err)
	}
	want := Params{
		Temperature: 0.3, TopK: 7, TopP: 0.5, MinP: 0.05, TypicalP: 0.9,
		RepeatLastN: 32, RepeatPenalty: 1.1, PresencePenalty: 0.2, FrequencyPenalty: 0.3,
		Seed: 42, NumPredict: -1, Stop: []string{"END"},
	}
	if diff := cmp.Diff(want, e.params[0]); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
}

func TestParamsClampToInt32(t *testing.T) {
	o := api.DefaultOptions()
	o.NumPredict, o.TopK, o.RepeatLastN = 1<<32, 1<<40, -(1 << 33)
	p := paramsFor(&o, &llm.AX650CompletionRequest{})
	if p.NumPredict != math.MaxInt32 || p.TopK != math.MaxInt32 || p.RepeatLastN != math.MinInt32 {
		t.Errorf("params %+v: want num_predict and top_k MaxInt32, repeat_last_n MinInt32", p)
	}
	for _, n := range []int{-(1 << 40), -2, 0} {
		o.NumPredict = n
		if p := paramsFor(&o, &llm.AX650CompletionRequest{}); p.NumPredict != -1 {
			t.Errorf("num_predict %d became %d, want -1 (no limit)", n, p.NumPredict)
		}
	}
	o.Seed = math.MaxInt64
	if p := paramsFor(&o, &llm.AX650CompletionRequest{}); p.Seed != math.MaxInt64 {
		t.Errorf("seed %d, want 2^63-1", p.Seed)
	}
}

func TestCompletionEngineErrors(t *testing.T) {
	cases := []struct {
		name     string
		beginErr error
		nextErr  error
		status   int
		oom      bool
		broken   bool
	}{
		{"prompt too long", &EngineError{"begin", llm.AxllmErrPromptTooLong, "4096 > 2047"}, nil, 400, false, false},
		{"invalid argument", &EngineError{"begin", llm.AxllmErrInvalidArgument, "bad temperature"}, nil, 400, false, false},
		{"out of memory", &EngineError{"begin", llm.AxllmErrOutOfMemory, "CMM exhausted"}, nil, 500, true, false},
		{"device lost mid-generation", nil, &EngineError{"next", llm.AxllmErrDeviceLost, "device 0 is lost"}, 500, false, true},
		{"runtime failure mid-generation", nil, &EngineError{"next", llm.AxllmErrRuntimeFailure, "execute failed"}, 500, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newFake("a")
			e.beginErr, e.nextErr = tc.beginErr, tc.nextErr
			r := NewRunner(e)
			_, finals, err := collect(t, t.Context(), r, llm.AX650CompletionRequest{Prompt: "p", Options: opts(nil)})
			if err == nil || len(finals) != 0 {
				t.Fatalf("err = %v, finals = %d", err, len(finals))
			}
			we := wireError(err)
			if we.Status != tc.status {
				t.Errorf("status = %d, want %d (%s)", we.Status, tc.status, we.Message)
			}
			if got := llm.IsOutOfMemory(err); got != tc.oom {
				t.Errorf("IsOutOfMemory = %v, want %v (%s)", got, tc.oom, err)
			}
			want := tc.beginErr
			if want == nil {
				want = tc.nextErr
			}
			if st := want.(*EngineError).Status; we.Axllm != st || !errors.Is(err, st) {
				t.Errorf("axllm status on the wire %s, errors.Is %v; want %s", we.Axllm, errors.Is(err, st), st)
			}
			if got := r.Broken() != nil; got != tc.broken {
				t.Errorf("broken = %v, want %v", got, tc.broken)
			}
			if tc.broken {
				_, _, err := collect(t, t.Context(), r, llm.AX650CompletionRequest{Prompt: "p", Options: opts(nil)})
				if we := wireError(err); we.Status != http.StatusServiceUnavailable {
					t.Errorf("after a device error: %+v, want 503", we)
				}
			}
		})
	}
}

func TestDetokenizeRange(t *testing.T) {
	r := NewRunner(newFake())
	if s, err := r.Detokenize([]int{104, 105}); err != nil || s != "hi" {
		t.Errorf("Detokenize = %q, %v", s, err)
	}
	for _, bad := range [][]int{{-1}, {256}} {
		if _, err := r.Detokenize(bad); wireError(err).Status != 400 {
			t.Errorf("Detokenize(%v) = %v, want a 400", bad, err)
		}
	}
}

// renderingEngine is a fakeEngine that renders chats: it records the request
// axllm would get and answers as the template would, or refuses as a
// template's raise_exception does.
type renderingEngine struct {
	*fakeEngine
	got []byte
	err error
}

func (e *renderingEngine) RenderChat(request []byte) (string, error) {
	e.got = request
	if e.err != nil {
		return "", e.err
	}
	return "rendered", nil
}

func TestRunnerRenderChat(t *testing.T) {
	e := &renderingEngine{fakeEngine: newFake()}
	r := NewRunner(e)
	args := api.NewToolCallFunctionArguments()
	args.Set("city", "Paris")
	req := llm.AX650ChatTemplateRequest{
		Messages: []api.Message{
			{Role: "user", Content: "weather?"},
			{Role: "assistant", Thinking: "look it up", ToolCalls: []api.ToolCall{{ID: "c1", Function: api.ToolCallFunction{Name: "get_weather", Arguments: args}}}},
			{Role: "tool", Content: "sunny", ToolName: "get_weather", ToolCallID: "c1"},
		},
		Tools: api.Tools{{Type: "function", Function: api.ToolFunction{Name: "get_weather", Description: "weather"}}},
		Think: &api.ThinkValue{Value: true},
	}
	prompt, err := r.RenderChat(req)
	if err != nil || prompt != "rendered" {
		t.Fatalf("RenderChat = %q, %v", prompt, err)
	}
	var got map[string]any
	if err := json.Unmarshal(e.got, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"messages": []any{
			map[string]any{"role": "user", "content": "weather?"},
			map[string]any{"role": "assistant", "content": "", "reasoning_content": "look it up", "tool_calls": []any{
				map[string]any{"id": "c1", "type": "function", "function": map[string]any{"name": "get_weather", "arguments": map[string]any{"city": "Paris"}}},
			}},
			map[string]any{"role": "tool", "content": "sunny", "name": "get_weather", "tool_call_id": "c1"},
		},
		"tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "get_weather", "description": "weather",
			"parameters": map[string]any{"type": "", "properties": nil}}}},
		"add_generation_prompt": true,
		"enable_thinking":       true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request to axllm (-want +got):\n%s", diff)
	}

	// Without think, the template's own default applies: no enable_thinking.
	if _, err := r.RenderChat(llm.AX650ChatTemplateRequest{Messages: req.Messages[:1]}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.got), "enable_thinking") || strings.Contains(string(e.got), "tools") {
		t.Errorf("request %s sets enable_thinking or tools", e.got)
	}

	// A template's refusal is the client's error, with the template's message.
	e.err = &EngineError{Call: "axllm_model_render_chat", Status: llm.AxllmErrChatTemplate, Message: "Conversation roles must alternate"}
	_, err = r.RenderChat(req)
	we := wireError(err)
	if we.Status != http.StatusBadRequest || we.Axllm != llm.AxllmErrChatTemplate || !strings.Contains(we.Message, "Conversation roles must alternate") {
		t.Errorf("error %+v, want a 400 with the template's message", we)
	}
	if r.Broken() != nil {
		t.Error("a template error broke the runner")
	}

	if _, err := r.RenderChat(llm.AX650ChatTemplateRequest{}); wireError(err).Status != http.StatusBadRequest {
		t.Errorf("no messages: %v", err)
	}
	if _, err := NewRunner(newFake()).RenderChat(req); wireError(err).Status != http.StatusBadRequest {
		t.Errorf("an engine without a renderer: %v", err)
	}
}
