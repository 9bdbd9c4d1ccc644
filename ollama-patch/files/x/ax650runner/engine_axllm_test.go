//go:build ax650 && cgo

package ax650runner

// The cgo engine against the real axllm library and the simulator of the
// vendor runtime. Run by `build.sh test` when the simulator is built:
//   AXLLM_AXCL_LIB=.../libaxcl_sim.so AX650_TEST_MODEL_DIR=<axsim-pack output>
// (the harness's variables: the tests pass them to axllm as load options).

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/llm"
)

// simOptions are load options naming the simulator the harness built.
func simOptions(t *testing.T) LoadOptions {
	t.Helper()
	lib := os.Getenv("AXLLM_AXCL_LIB")
	if lib == "" {
		t.Skip("set AXLLM_AXCL_LIB (libaxcl_sim.so)")
	}
	return LoadOptions{Runtime: lib}
}

func loadTestEngine(t *testing.T) Engine {
	t.Helper()
	opts := simOptions(t)
	dir := os.Getenv("AX650_TEST_MODEL_DIR")
	if dir == "" {
		t.Skip("set AX650_TEST_MODEL_DIR (an axsim-pack model)")
	}
	var calls atomic.Int32
	e, err := loadEngine(dir, opts, func(loaded, total uint32) {
		if loaded > total {
			t.Errorf("progress %d/%d", loaded, total)
		}
		calls.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if calls.Load() == 0 {
		t.Error("no load progress reported")
	}
	return e
}

func drain(t *testing.T, g Generation) (string, DoneReason) {
	t.Helper()
	var sb strings.Builder
	for range 10000 {
		piece, done, err := g.Next()
		if err != nil {
			t.Fatal(err)
		}
		if done != llm.AxllmDoneNone {
			return sb.String(), done
		}
		if piece == "" {
			t.Fatal("empty piece before the end")
		}
		sb.WriteString(piece)
	}
	t.Fatal("generation did not end")
	return "", llm.AxllmDoneNone
}

func TestAXLLMEngine(t *testing.T) {
	e := loadTestEngine(t)
	info := e.Info()
	if info.ContextLength <= 0 || info.VocabSize <= 0 || info.Layers <= 0 || info.MemoryBytes == 0 {
		t.Fatalf("info %+v", info)
	}
	raw, err := e.(Diagnoser).Diagnostics()
	var diag struct {
		Simulator bool `json:"simulator"`
		Counters  struct {
			LiveAllocations uint64 `json:"live_allocations"`
			LiveBytes       uint64 `json:"live_bytes"`
		} `json:"counters"`
	}
	if err != nil || json.Unmarshal(raw, &diag) != nil || !diag.Simulator || diag.Counters.LiveAllocations == 0 || diag.Counters.LiveBytes == 0 {
		t.Errorf("diagnostics %s, %v: want the simulator's live allocations", raw, err)
	}
	if libraryVersion() == "" {
		t.Error("no library version")
	}

	text := "<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n"
	ids, err := e.Tokenize(text)
	if err != nil {
		t.Fatal(err)
	}
	special, err := e.Tokenize("<|im_start|>")
	if err != nil || len(special) != 1 || special[0] != ids[0] {
		t.Errorf("special token: %v %v (prompt starts %v)", special, err, ids[:1])
	}
	back, err := e.Detokenize(ids)
	if err != nil || back != text {
		t.Errorf("Detokenize(Tokenize(x)) = %q, %v", back, err)
	}

	t.Run("num_predict", func(t *testing.T) {
		g, err := e.Begin(ids, Params{Temperature: 0, NumPredict: 5, RepeatPenalty: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer g.End()
		_, done := drain(t, g)
		st := g.Stats()
		if done != llm.AxllmDoneMaxTokens && done != llm.AxllmDoneEos {
			t.Errorf("done = %d", done)
		}
		if st.PromptTokens != len(ids) || st.GeneratedTokens == 0 || st.GeneratedTokens > 5 {
			t.Errorf("stats %+v for %d prompt tokens", st, len(ids))
		}
	})

	t.Run("small buffer", func(t *testing.T) {
		g, err := e.Begin(ids, Params{Temperature: 0, NumPredict: 8, RepeatPenalty: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer g.End()
		g.(*axllmGeneration).buf = make([]byte, 1) // every piece needs the retry
		if _, done := drain(t, g); done == llm.AxllmDoneNone {
			t.Error("not done")
		}
	})

	t.Run("cancel", func(t *testing.T) {
		g, err := e.Begin(ids, Params{Temperature: 1, TopK: 40, TopP: 1, NumPredict: -1, RepeatPenalty: 1, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		defer g.End()
		if _, _, err := g.Next(); err != nil {
			t.Fatal(err)
		}
		g.Cancel()
		if _, done := drain(t, g); done != llm.AxllmDoneCancelled {
			t.Errorf("done = %d, want cancelled", done)
		}
		g.Cancel() // after the end: ignored
	})

	t.Run("prompt too long", func(t *testing.T) {
		long := make([]int32, info.ContextLength+10)
		for i := range long {
			long[i] = ids[i%len(ids)]
		}
		_, err := e.Begin(long, Params{NumPredict: 1, RepeatPenalty: 1})
		var ee *EngineError
		if !errors.As(err, &ee) || ee.Status != llm.AxllmErrPromptTooLong {
			t.Errorf("Begin = %v, want prompt_too_long", err)
		}
	})

	t.Run("runner over the engine", func(t *testing.T) {
		r := NewRunner(e)
		var content strings.Builder
		var final llm.CompletionResponse
		err := r.Completion(t.Context(), llm.AX650CompletionRequest{Prompt: text}, func(resp llm.CompletionResponse) {
			content.WriteString(resp.Content)
			if resp.Done {
				final = resp
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if !final.Done || final.PromptEvalCount != len(ids) || final.EvalCount == 0 {
			t.Errorf("final %+v", final)
		}
	})
}

func TestAXLLMEngineLoadErrors(t *testing.T) {
	opts := simOptions(t)
	_, err := loadEngine(t.TempDir(), opts, nil)
	var ee *EngineError
	if !errors.As(err, &ee) || ee.Status != llm.AxllmErrBadPackage || ee.Message == "" {
		t.Errorf("loading an empty directory: %v", err)
	}
	bad := opts
	bad.Schedule = "fastest"
	_, err = loadEngine(t.TempDir(), bad, nil)
	if !errors.As(err, &ee) || ee.Status != llm.AxllmErrInvalidArgument || !strings.Contains(ee.Message, "fastest") {
		t.Errorf("an unknown schedule: %v", err)
	}
}

// CheckPackage (axllm_package_check) reports what the loaded model reports,
// admits links into a link root only, and refuses a broken package with a
// sentinel status; it needs no runtime.
func TestCheckPackage(t *testing.T) {
	src := os.Getenv("AX650_TEST_MODEL_DIR")
	if src == "" {
		t.Skip("set AX650_TEST_MODEL_DIR (an axsim-pack model)")
	}
	info, err := CheckPackage(src, nil)
	if err != nil || info.ContextLength != 255 || info.Layers == 0 || !strings.Contains(info.ChatTemplate, "<|im_start|>") || info.SamplingDefaults == nil {
		t.Fatalf("CheckPackage = %+v, %v", info, err)
	}
	// A package of links into a store, as the server's create check builds.
	store, pkg := t.TempDir(), t.TempDir()
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		blob := filepath.Join(store, strings.ReplaceAll(rel, string(filepath.Separator), "_"))
		if err := os.WriteFile(blob, data, 0o644); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(pkg, rel)), 0o755); err != nil {
			return err
		}
		return os.Symlink(blob, filepath.Join(pkg, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckPackage(pkg, nil); !errors.Is(err, llm.AxllmErrBadPackage) || !strings.Contains(err.Error(), "outside the package") {
		t.Errorf("links out of the package without a link root: %v", err)
	}
	if got, err := CheckPackage(pkg, []string{store}); err != nil || got.ContextLength != info.ContextLength {
		t.Errorf("links into the link root: %+v, %v", got, err)
	}
	if _, err := CheckPackage(t.TempDir(), nil); !errors.Is(err, llm.AxllmErrBadPackage) {
		t.Errorf("an empty directory: %v", err)
	}
}

func TestStatusesMatchTheHeader(t *testing.T) {
	for s, c := range headerStatuses() {
		if int(s) != c {
			t.Errorf("%s is %d in Go but %d in axllm.h", s, int(s), c)
		}
	}
}

// The package's own template through the C ABI: the simulator's Qwen3
// package renders ChatML; a request axllm cannot render is its
// AXLLM_ERR_CHAT_TEMPLATE, which the runner reports as a 400.
func TestAXLLMEngineRenderChat(t *testing.T) {
	e := loadTestEngine(t)
	r := NewRunner(e)
	prompt, err := r.RenderChat(llm.AX650ChatTemplateRequest{Messages: []api.Message{{Role: "user", Content: "hello"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(prompt, "<|im_start|>user\nhello<|im_end|>") || !strings.HasSuffix(prompt, "<|im_start|>assistant\n") {
		t.Errorf("prompt %q", prompt)
	}
	_, err = e.(ChatRenderer).RenderChat([]byte(`{"messages": "not a list"}`))
	var ee *EngineError
	if !errors.As(err, &ee) || ee.Status != llm.AxllmErrChatTemplate {
		t.Fatalf("err = %v, want AXLLM_ERR_CHAT_TEMPLATE", err)
	}
	if we := wireError(r.engineError(err)); we.Status != 400 || !strings.Contains(we.Message, "messages") {
		t.Errorf("wire error %+v", we)
	}
}

// TestAXLLMEngineSlotsThroughTheRunner: with two KV slots, two requests sent
// to the Runner at once (a long one and a short one) both produce what each
// produces alone, greedy and seeded, and both slots are reported.
func TestAXLLMEngineSlotsThroughTheRunner(t *testing.T) {
	opts := simOptions(t)
	dir := os.Getenv("AX650_TEST_MODEL_DIR")
	if dir == "" {
		t.Skip("set AX650_TEST_MODEL_DIR (an axsim-pack model)")
	}
	opts.KVSlots = 2
	e, err := loadEngine(dir, opts, func(uint32, uint32) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if got := e.Info().KVSlots; got != 2 {
		t.Fatalf("KVSlots = %d, want 2", got)
	}
	r := NewRunner(e)
	for _, sampling := range []func(*api.Options){
		func(o *api.Options) { o.Temperature = 0 },
		func(o *api.Options) { o.Temperature = 0.9; o.Seed = 5 },
	} {
		req := func(prompt string, n int) llm.AX650CompletionRequest {
			return llm.AX650CompletionRequest{Prompt: prompt, Options: optsWith(func(o *api.Options) { sampling(o); o.NumPredict = n })}
		}
		run := func(rq llm.AX650CompletionRequest) string {
			var sb strings.Builder
			if err := r.Completion(t.Context(), rq, func(resp llm.CompletionResponse) { sb.WriteString(resp.Content) }); err != nil {
				t.Error(err)
			}
			return sb.String()
		}
		long, short := req("tell me a long story", 60), req("hi there", 10)
		wantLong, wantShort := run(long), run(short)
		if wantLong == "" || wantShort == "" {
			t.Fatalf("empty output: %q %q", wantLong, wantShort)
		}
		var gotLong, gotShort string
		done := make(chan struct{})
		go func() { defer close(done); gotLong = run(long) }()
		gotShort = run(short)
		<-done
		if gotLong != wantLong || gotShort != wantShort {
			t.Errorf("at once:\n%q\n%q\nalone:\n%q\n%q", gotLong, gotShort, wantLong, wantShort)
		}
		// A prompt of several prefill chunks, fed a chunk per turn between
		// the short request's steps.
		longPrompt := req(strings.Repeat("tell me a long story about the sea. ", 8), 20)
		wantPrompt := run(longPrompt)
		done = make(chan struct{})
		go func() { defer close(done); gotLong = run(longPrompt) }()
		gotShort = run(short)
		<-done
		if gotLong != wantPrompt || gotShort != wantShort {
			t.Errorf("long prompt at once:\n%q\n%q\nalone:\n%q\n%q", gotLong, gotShort, wantPrompt, wantShort)
		}
	}
}

func optsWith(mod func(*api.Options)) *api.Options {
	o := api.DefaultOptions()
	mod(&o)
	return &o
}

// TestAXLLMEngineAutomaticSlots: without a count (no --parallel) axllm
// chooses the KV slots from the card's free memory: the most for a tiny
// model on the standard simulated card; an explicit 1 stays 1.
func TestAXLLMEngineAutomaticSlots(t *testing.T) {
	opts := simOptions(t)
	dir := os.Getenv("AX650_TEST_MODEL_DIR")
	if dir == "" {
		t.Skip("set AX650_TEST_MODEL_DIR (an axsim-pack model)")
	}
	for _, tc := range []struct{ asked, want int }{{0, llm.AxllmKvSlotsAutoMax}, {1, 1}} {
		opts.KVSlots = tc.asked
		e, err := loadEngine(dir, opts, func(uint32, uint32) {})
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Info().KVSlots; got != tc.want {
			t.Errorf("--parallel %d: KVSlots = %d, want %d", tc.asked, got, tc.want)
		}
		e.Close()
	}
}
