package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/fs/gguf"
	"github.com/ollama/ollama/llm"
	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/types/model"
)

func axTestModel() *Model {
	return &Model{
		Name:      "registry.ollama.ai/library/tiny:latest",
		ShortName: "tiny:latest",
		Digest:    "sha256:0000000000000000000000000000000000000000000000000000000000000001",
		Config: model.ConfigV2{
			ModelFormat:  "axmodel",
			ModelFamily:  "qwen3",
			Renderer:     "qwen3",
			Parser:       "qwen3-thinking",
			Capabilities: []string{"completion", "tools", "thinking"},
		},
	}
}

func TestSchedLoadAXModel(t *testing.T) {
	cases := []struct {
		name        string
		newErr      error
		loadErr     error
		requireFull bool
		wantEvict   bool
		wantErr     string
	}{
		{name: "loads"},
		{name: "constructor error", newErr: llm.ErrAX650NotBuilt, wantErr: "built without AX650 support"},
		{name: "does not fit next to other models", loadErr: llm.ErrLoadRequiredFull, requireFull: true, wantEvict: true},
		{name: "does not fit at all", loadErr: llm.ErrLoadRequiredFull, wantErr: llm.ErrLoadRequiredFull.Error()},
		{name: "out of memory", loadErr: errors.New("AX650 NPU out of memory loading tiny:latest"), wantErr: "out of memory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OLLAMA_NUM_PARALLEL", "4")
			s := InitScheduler(t.Context())
			s.newServerFn = func(ml.SystemInfo, []ml.DeviceInfo, string, *gguf.Model, []string, []string, api.Options, int, llm.LlamaServerConfig) (llm.LlamaServer, error) {
				t.Error("the GGUF server constructor was called for an axmodel model")
				return nil, errors.New("unexpected")
			}
			srv := &mockLlm{modelPath: "tiny:latest", contextLength: 255, totalSize: 311744, vramSize: 311744, loadErr: tc.loadErr}
			var gotModel *Model
			gotParallel := 0
			s.newAXServerFn = func(m *Model, _ api.Options, numParallel int) (llm.LlamaServer, error) {
				gotModel = m
				gotParallel = numParallel
				if tc.newErr != nil {
					return nil, tc.newErr
				}
				return srv, nil
			}

			opts := api.DefaultOptions()
			opts.NumCtx = 32768 // an OOM load must not reach GGUF memory prediction
			req := &LlmRequest{
				ctx:             t.Context(),
				model:           axTestModel(),
				opts:            opts,
				numCtxAuto:      true,
				successCh:       make(chan *runnerRef, 1),
				errCh:           make(chan error, 1),
				sessionDuration: &api.Duration{Duration: time.Minute},
			}
			evict := s.load(req, ml.SystemInfo{}, nil, tc.requireFull)
			if evict != tc.wantEvict {
				t.Fatalf("load asked to evict = %v, want %v", evict, tc.wantEvict)
			}
			if gotModel != req.model {
				t.Error("newAXServerFn did not receive the request's model")
			}
			if gotParallel != 4 {
				t.Errorf("newAXServerFn received numParallel %d, want OLLAMA_NUM_PARALLEL's 4", gotParallel)
			}
			if tc.wantEvict {
				// The scheduler evicts and calls load again with the same server:
				// ModelPath must match the short name or load panics.
				srv.loadErr = nil
				if s.load(req, ml.SystemInfo{}, nil, true) {
					t.Fatal("second load asked to evict again")
				}
			} else if tc.wantErr != "" {
				select {
				case err := <-req.errCh:
					if !strings.Contains(err.Error(), tc.wantErr) {
						t.Errorf("error = %v, want %q", err, tc.wantErr)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("no error reported")
				}
				return
			}
			select {
			case r := <-req.successCh:
				if r.numParallel != 4 {
					t.Errorf("numParallel = %d, want OLLAMA_NUM_PARALLEL's 4 (the runner's KV slots)", r.numParallel)
				}
				if r.llama != srv || r.totalSize != 311744 || r.vramSize != 311744 {
					t.Errorf("runner = %+v", r)
				}
				if r.modelKey != "digest:"+req.model.Digest {
					t.Errorf("modelKey = %q", r.modelKey)
				}
			case err := <-req.errCh:
				t.Fatalf("load failed: %v", err)
			case <-time.After(5 * time.Second):
				t.Fatal("load did not finish")
			}
		})
	}
}

func TestNeedsReloadAXModel(t *testing.T) {
	cases := []struct {
		name    string
		format  string
		numCtx  int
		pingErr error
		want    bool
	}{
		{"axmodel ignores runner options", "axmodel", 8192, nil, false},
		{"axmodel reloads after a runner failure", "axmodel", 4096, errors.New("AX650 runner exited"), true},
		{"gguf reloads on runner options", "", 8192, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := axTestModel()
			m.Config.ModelFormat = tc.format
			existing := api.DefaultOptions()
			existing.NumCtx = 4096
			runner := &runnerRef{model: m, Options: &existing, llama: &mockLlm{pingResp: tc.pingErr}}
			opts := api.DefaultOptions()
			opts.NumCtx = tc.numCtx
			req := &LlmRequest{ctx: t.Context(), model: m, opts: opts}
			if got := runner.needsReload(t.Context(), req); got != tc.want {
				t.Errorf("needsReload = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewAX650ServerStub(t *testing.T) {
	t.Setenv("OLLAMA_MODELS", t.TempDir())
	s, err := newAX650Server(axTestModel(), api.DefaultOptions(), 1)
	if llm.AX650Supported() {
		if err != nil || s.ModelPath() != "tiny:latest" {
			t.Fatalf("newAX650Server = %v, %v", s, err)
		}
		return
	}
	if s != nil || !errors.Is(err, llm.ErrAX650NotBuilt) {
		t.Fatalf("newAX650Server = %v, %v; want ErrAX650NotBuilt", s, err)
	}
}

// parallelLlm is a mockLlm that reports its KV slots, as llm.AX650Server does.
type parallelLlm struct {
	*mockLlm
	parallel int
}

func (p parallelLlm) Parallel() int { return p.parallel }

// /api/ps carries an AX650 model's KV slots (num_parallel) and `ollama ps`
// shows them next to its context (tests/python/test_parallel.py); a stock
// model's row is as before.
func TestPsShowsAX650Parallel(t *testing.T) {
	gin.SetMode(gin.TestMode)
	s := &Server{sched: InitScheduler(t.Context())}
	ax := axTestModel()
	stock := &Model{Name: "registry.ollama.ai/library/stock:latest", ShortName: "stock:latest",
		Digest: "sha256:0000000000000000000000000000000000000000000000000000000000000002"}
	until := time.Now().Add(time.Hour)
	s.sched.loaded["ax"] = &runnerRef{model: ax, expiresAt: until,
		llama: parallelLlm{&mockLlm{contextLength: 255, totalSize: 100, vramSize: 100}, 2}}
	s.sched.loaded["stock"] = &runnerRef{model: stock, expiresAt: until.Add(-time.Minute),
		llama: &mockLlm{contextLength: 4096, totalSize: 200, vramSize: 200}}

	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	c.Request = httptest.NewRequest(http.MethodGet, "/api/ps", nil)
	s.PsHandler(c)
	var raw struct {
		Models []map[string]any `json:"models"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Models) != 2 {
		t.Fatalf("models: %v", raw.Models)
	}
	if got := raw.Models[0]["num_parallel"]; got != float64(2) {
		t.Errorf("AX650 model: num_parallel %v, want 2", got)
	}
	if _, ok := raw.Models[1]["num_parallel"]; ok {
		t.Errorf("stock model: num_parallel present: %v", raw.Models[1])
	}

}

// The memory estimate before the runner has measured the model: its files
// plus the K/V caches of every KV slot (bf16 rows of the compiled context in
// every layer of the Hugging Face config).
func TestAX650EstimateCountsTheKVSlots(t *testing.T) {
	gin.SetMode(gin.TestMode)
	t.Setenv("OLLAMA_MODELS", t.TempDir())
	useAXCheck(t, axChecked(), nil)
	var s Server
	files := axLayouts()["axllm"]
	if code, body := createAX(t, &s, api.CreateRequest{Model: "tiny", Files: axPackage(t, files)}); code != http.StatusOK {
		t.Fatalf("create: %d %s", code, body)
	}
	m, err := GetModel("tiny")
	if err != nil {
		t.Fatal(err)
	}
	var fileBytes uint64
	for name, content := range files {
		if !strings.HasSuffix(name, ".json") {
			fileBytes += uint64(len(content))
		}
	}
	// axHFConfig: 28 layers, 8 KV heads of 128; the check's context: 255.
	const perSlot = 28 * 2 * 255 * 8 * 128 * 2
	for _, n := range []int{1, 3} {
		if got, want := axmodelEstimate(m, n), fileBytes+uint64(n)*perSlot; got != want {
			t.Errorf("%d slots: estimate %d, want %d", n, got, want)
		}
	}
	// The runner's automatic count (0) is estimated at its most.
	if got, want := axmodelEstimate(m, 0), fileBytes+llm.AxllmKvSlotsAutoMax*perSlot; got != want {
		t.Errorf("automatic slots: estimate %d, want %d", got, want)
	}
	// The scheduler's constructor: OLLAMA_NUM_PARALLEL unset asks the runner
	// to choose (estimated at the most), set asks for its value.
	if llm.AX650Supported() {
		for _, tc := range []struct {
			env         string
			numParallel int
			slots       uint64
		}{{"", 1, llm.AxllmKvSlotsAutoMax}, {"1", 1, 1}, {"3", 3, 3}} {
			t.Setenv("OLLAMA_NUM_PARALLEL", tc.env)
			srv, err := newAX650Server(m, api.Options{}, tc.numParallel)
			if err != nil {
				t.Fatal(err)
			}
			if total, _ := srv.MemorySize(); total != fileBytes+tc.slots*perSlot {
				t.Errorf("OLLAMA_NUM_PARALLEL=%q: estimate %d, want %d slots' (%d)", tc.env, total, tc.slots, fileBytes+tc.slots*perSlot)
			}
			srv.Close()
		}
	}
	// Only the full-attention layers of a hybrid hold K/V; without a
	// context length (a real package before a card) nothing is counted.
	hybrid := hfConfig{NumHiddenLayers: 4, NumAttentionHeads: 8, NumKeyValueHeads: 2, HeadDim: 64,
		LayerTypes: []string{"linear_attention", "linear_attention", "linear_attention", "full_attention"}}
	if got := axmodelKVSlotBytes(hybrid, 100); got != 1*2*100*2*64*2 {
		t.Errorf("hybrid: %d", got)
	}
	if got := axmodelKVSlotBytes(hybrid, 0); got != 0 {
		t.Errorf("no context: %d", got)
	}
}

// The KV slots an AX650 runner is asked for: OLLAMA_NUM_PARALLEL's value
// (as the scheduler passes it) when it is set, else 0, the runner's
// automatic count.
func TestAX650SlotsFollowOllamaNumParallel(t *testing.T) {
	for _, tc := range []struct {
		setting     string
		numParallel int
		want        int
	}{
		{"", 1, 0},
		{"1", 1, 1},
		{"2", 2, 2},
		{"0", 1, 0}, // automatic, as older Ollamas read it
	} {
		if got := axmodelSlots(tc.numParallel, tc.setting); got != tc.want {
			t.Errorf("OLLAMA_NUM_PARALLEL=%q, numParallel %d: %d slots, want %d", tc.setting, tc.numParallel, got, tc.want)
		}
	}
}

// With OLLAMA_NUM_PARALLEL unset the runner chooses its KV slots as it loads;
// the scheduler records the count the loaded runner reports (what `ollama
// ps` shows and the requests it runs at once), not its own default of 1.
func TestAX650SchedulerRecordsTheRunnersSlots(t *testing.T) {
	t.Setenv("OLLAMA_NUM_PARALLEL", "")
	s := InitScheduler(t.Context())
	srv := parallelLlm{&mockLlm{modelPath: "tiny:latest", contextLength: 255, totalSize: 100, vramSize: 100}, 3}
	s.newAXServerFn = func(_ *Model, _ api.Options, numParallel int) (llm.LlamaServer, error) {
		if got := axmodelSlots(numParallel, ""); got != 0 {
			t.Errorf("unset OLLAMA_NUM_PARALLEL asks for %d slots, want 0 (the runner's choice)", got)
		}
		return srv, nil
	}
	req := &LlmRequest{
		ctx:             t.Context(),
		model:           axTestModel(),
		opts:            api.DefaultOptions(),
		successCh:       make(chan *runnerRef, 1),
		errCh:           make(chan error, 1),
		sessionDuration: &api.Duration{Duration: time.Minute},
	}
	if s.load(req, ml.SystemInfo{}, nil, false) {
		t.Fatal("load asked to evict")
	}
	select {
	case r := <-req.successCh:
		if r.numParallel != 3 {
			t.Errorf("numParallel = %d, want the runner's 3 slots", r.numParallel)
		}
	case err := <-req.errCh:
		t.Fatalf("load failed: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("load did not finish")
	}
}
