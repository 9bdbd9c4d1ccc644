package server

import (
	"errors"
	"strings"
	"testing"
	"time"

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
