package ax650runner

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/llm"
	"github.com/ollama/ollama/manifest"
	"github.com/ollama/ollama/types/model"
)

func post(t *testing.T, h http.Handler, path string, body any) *httptest.ResponseRecorder {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, bytes.NewReader(b)))
	return w
}

func TestServerStates(t *testing.T) {
	s := &server{state: llm.AX650Status{State: llm.AX650StateLoading}}
	h := s.handler()

	status := func() llm.AX650Status {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/status", nil))
		var st llm.AX650Status
		if err := json.NewDecoder(w.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}

	s.progress(1, 3)
	if st := status(); st.State != llm.AX650StateLoading || st.Loaded != 1 || st.Total != 3 {
		t.Errorf("loading status = %+v", st)
	}
	if w := post(t, h, "/v1/completions", llm.AX650CompletionRequest{Prompt: "p"}); w.Code != http.StatusServiceUnavailable {
		t.Errorf("completion while loading: %d, want 503", w.Code)
	}

	e := newFake("Hi", " there")
	e.info = Info{ContextLength: 255, MaxPrefill: 144, VocabSize: 256, MemoryBytes: 1234}
	s.ready(e)
	if st := status(); st.State != llm.AX650StateReady || st.ContextLength != 255 || st.MaxPrefill != 144 || st.Memory != 1234 {
		t.Errorf("ready status = %+v", st)
	}
	// The status carries no test-bed fields.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/status", nil))
	if strings.Contains(w.Body.String(), "sim") {
		t.Errorf("status has simulator fields: %s", w.Body)
	}

	s.getRunner().markBroken(&EngineError{"axllm_generation_next", llm.AxllmErrDeviceLost, "device lost"})
	if st := status(); st.State != llm.AX650StateBroken || st.Axllm != llm.AxllmErrDeviceLost || !strings.Contains(st.Error, "device lost") {
		t.Errorf("broken status = %+v", st)
	}
}

// diagEngine is a fake engine with the test bed's diagnostics.
type diagEngine struct {
	*fakeEngine
	body string
}

func (e diagEngine) Diagnostics() (json.RawMessage, error) { return json.RawMessage(e.body), nil }

func TestServerDiagnostics(t *testing.T) {
	get := func(s *server) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		s.handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/debug/diagnostics", nil))
		return w
	}
	s := &server{}
	if w := get(s); w.Code != http.StatusServiceUnavailable {
		t.Errorf("before a load: %d, want 503", w.Code)
	}
	s.ready(newFake())
	if w := get(s); w.Code != http.StatusNotFound {
		t.Errorf("an engine without diagnostics: %d, want 404", w.Code)
	}
	body := `{"simulator":true,"counters":{"live_allocations":7}}`
	s2 := &server{}
	s2.ready(diagEngine{newFake(), body})
	if w := get(s2); w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != body {
		t.Errorf("diagnostics: %d %s", w.Code, w.Body)
	}
}

func TestServerFailedLoad(t *testing.T) {
	s := &server{state: llm.AX650Status{State: llm.AX650StateLoading}}
	s.fail(&EngineError{"axllm_model_load", llm.AxllmErrOutOfMemory, "no CMM"})
	st := s.status()
	if st.State != llm.AX650StateFailed || st.Axllm != llm.AxllmErrOutOfMemory || !strings.Contains(st.Error, "no CMM") {
		t.Errorf("status = %+v", st)
	}
}

func TestServerCompletionStream(t *testing.T) {
	s := &server{}
	s.ready(newFake("Hi", " there"))
	h := s.handler()

	w := post(t, h, "/v1/completions", llm.AX650CompletionRequest{Prompt: "hello"})
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var content strings.Builder
	var done int
	sc := bufio.NewScanner(w.Body)
	for sc.Scan() {
		var c llm.AX650CompletionChunk
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		if c.Error != nil {
			t.Fatalf("error chunk %+v", c.Error)
		}
		content.WriteString(c.Content)
		if c.Done {
			done++
			if c.PromptEvalCount != 5 || c.EvalCount != 2 {
				t.Errorf("final counts %+v", c.CompletionResponse)
			}
		}
	}
	if content.String() != "Hi there" || done != 1 {
		t.Errorf("content %q, %d final chunks", content.String(), done)
	}

	// An error before any output is an HTTP error with the runner's status.
	w = post(t, h, "/v1/completions", llm.AX650CompletionRequest{Prompt: "p", MediaCount: 1})
	var e llm.AX650Error
	if err := json.NewDecoder(w.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusBadRequest || !strings.Contains(e.Message, "image") {
		t.Errorf("images: %d %+v", w.Code, e)
	}

	// An error after output is the stream's last line.
	f := newFake("partial")
	f.nextErr = &EngineError{"axllm_generation_next", llm.AxllmErrDeviceLost, "device lost"}
	s2 := &server{}
	s2.ready(f)
	w = post(t, s2.handler(), "/v1/completions", llm.AX650CompletionRequest{Prompt: "p"})
	lines := strings.Split(strings.TrimSpace(w.Body.String()), "\n")
	var last llm.AX650CompletionChunk
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusOK || last.Error == nil || last.Error.Axllm != llm.AxllmErrDeviceLost {
		t.Errorf("mid-stream error: %d %s", w.Code, w.Body)
	}
}

func TestServerTokenize(t *testing.T) {
	s := &server{}
	s.ready(newFake())
	h := s.handler()

	w := post(t, h, "/v1/tokenize", llm.AX650TokenizeRequest{Content: "hi"})
	var tok llm.AX650TokenizeResponse
	if err := json.NewDecoder(w.Body).Decode(&tok); err != nil || len(tok.Tokens) != 2 || tok.Tokens[0] != 'h' {
		t.Errorf("tokenize: %v %+v", err, tok)
	}
	w = post(t, h, "/v1/detokenize", llm.AX650DetokenizeRequest{Tokens: []int{'o', 'k'}})
	var detok llm.AX650DetokenizeResponse
	if err := json.NewDecoder(w.Body).Decode(&detok); err != nil || detok.Content != "ok" {
		t.Errorf("detokenize: %v %+v", err, detok)
	}
}

// writeModel stores an axmodel model with the given files in the model store.
func writeModel(t *testing.T, name string, files map[string]string, mediaTypes map[string]string) {
	t.Helper()
	var layers []manifest.Layer
	for fname, content := range files {
		l, err := manifest.NewLayer(strings.NewReader(content), "")
		if err != nil {
			t.Fatal(err)
		}
		l.MediaType = manifest.MediaTypeImageAXModel
		if mt, ok := mediaTypes[fname]; ok {
			l.MediaType = mt
		}
		l.Name = fname
		layers = append(layers, l)
	}
	cfg, err := manifest.NewLayer(strings.NewReader(`{"model_format":"axmodel"}`), "application/vnd.docker.container.image.v1+json")
	if err != nil {
		t.Fatal(err)
	}
	if err := manifest.WriteManifest(model.ParseName(name), cfg, layers); err != nil {
		t.Fatal(err)
	}
}

func TestMaterialize(t *testing.T) {
	t.Setenv("OLLAMA_MODELS", t.TempDir())
	writeModel(t, "tiny", map[string]string{
		"qwen3_p16_l0_together.axmodel":      "layer0",
		"qwen3_post.axmodel":                 "post",
		"sub-ax650/model.bin":                "embed",
		"qwen3_tokenizer/tokenizer.json":     `{"v":1}`,
		"config.json":                        "",
		"ignored-template-layer-has-no-name": "x",
	}, map[string]string{
		"qwen3_tokenizer/tokenizer.json":     MediaTypeJSON,
		"config.json":                        MediaTypeJSON,
		"ignored-template-layer-has-no-name": "application/vnd.ollama.image.template",
	})

	files, err := ModelFiles("tiny")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 5 {
		t.Errorf("files = %v, want 5 (the template layer is not a package file)", files)
	}
	dir, err := Materialize(files, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"qwen3_p16_l0_together.axmodel":  "layer0",
		"sub-ax650/model.bin":            "embed",
		"qwen3_tokenizer/tokenizer.json": `{"v":1}`,
		"config.json":                    "",
	} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
		if fi, err := os.Lstat(filepath.Join(dir, name)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is not a symlink", name)
		}
	}
}

func TestMaterializeRejects(t *testing.T) {
	models := t.TempDir()
	t.Setenv("OLLAMA_MODELS", models)
	blob := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(blob, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	blobs, err := manifest.BlobsPath("")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		files  map[string]string
		parent string
	}{
		{"parent path", map[string]string{"../escape.axmodel": blob}, t.TempDir()},
		{"absolute path", map[string]string{"/etc/x.axmodel": blob}, t.TempDir()},
		{"inside blobs", map[string]string{"a.axmodel": blob}, blobs},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if dir, err := Materialize(tc.files, tc.parent); err == nil {
				t.Errorf("Materialize made %s, want an error", dir)
			}
		})
	}

	writeModel(t, "bad", map[string]string{"../evil.axmodel": "x"}, nil)
	if _, err := ModelFiles("bad"); err == nil || !strings.Contains(err.Error(), "invalid name") {
		t.Errorf("ModelFiles accepted a manifest with ../evil.axmodel: %v", err)
	}

	// A blob replaced by a symlink to a file outside the store, and a missing blob.
	writeModel(t, "linked", map[string]string{"a.axmodel": "linked blob"}, nil)
	linked, err := manifest.BlobsPath(fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("linked blob"))))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(linked); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(blob, linked); err != nil {
		t.Fatal(err)
	}
	if _, err := ModelFiles("linked"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("ModelFiles accepted a symlinked blob: %v", err)
	}
	if err := os.Remove(linked); err != nil {
		t.Fatal(err)
	}
	if _, err := ModelFiles("linked"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ModelFiles with a missing blob: %v, want not exist", err)
	}
}

// The runner's stop under load: a streaming request and a spare connection
// that never sent a request (Ollama's client dials those when requests
// overlap; http.Server.Shutdown waited 5 s for each). shutdown cancels the
// generation, closes every connection and returns once the handler has
// ended the generation, so the model can be freed; later requests are refused.
func TestServerShutdownUnderLoad(t *testing.T) {
	f := newFake("a", "b")
	f.block = true // generates until cancelled
	s := &server{}
	s.ready(f)
	reqCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.handler(), BaseContext: func(net.Listener) context.Context { return reqCtx }}
	go hs.Serve(ln)
	url := "http://" + ln.Addr().String()

	spare, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()

	resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"p"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, `"a"`) {
		t.Fatalf("first chunk %q %v", line, err)
	}

	cancelRequests()
	s.shutdown(hs, time.Minute)
	if f.cancelled.Load() != 1 || f.ended.Load() != 1 || f.active.Load() != 0 {
		t.Errorf("after shutdown: %d cancelled, %d ended, %d active generations", f.cancelled.Load(), f.ended.Load(), f.active.Load())
	}
	// The spare connection is closed, not left open for its first request.
	_ = spare.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := spare.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("spare connection: read %d bytes, %v", n, err)
	}
	// A request that reaches the handler now is refused before it starts.
	w := post(t, s.handler(), "/v1/completions", llm.AX650CompletionRequest{Prompt: "p"})
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "stopping") {
		t.Errorf("request after shutdown: %d %s", w.Code, w.Body)
	}
}
