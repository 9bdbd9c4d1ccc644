package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/ml"
)

// The test binary doubles as a fake AX650 runner: AX650Server starts it with
// OLLAMA_AX650_FAKE_RUNNER set to a scenario, and it serves the runner's
// HTTP protocol instead of running tests.
const fakeRunnerEnv = "OLLAMA_AX650_FAKE_RUNNER"

func init() {
	if mode := os.Getenv(fakeRunnerEnv); mode != "" {
		os.Exit(fakeRunner(mode, os.Args[1:]))
	}
}

func fakeRunner(mode string, args []string) int {
	if len(args) < 2 || args[0] != "runner" || args[1] != "--ax650-engine" || !slices.Contains(args, "--model") {
		fmt.Fprintf(os.Stderr, "fake runner: unexpected arguments %q\n", args)
		return 2
	}
	// Without --parallel the real runner chooses its slots from the card's
	// memory; this one chooses 3.
	port, slots := "", 3
	for i, a := range args {
		if a == "--port" && i+1 < len(args) {
			port = args[i+1]
		}
		if a == "--parallel" && i+1 < len(args) {
			slots, _ = strconv.Atoi(args[i+1])
		}
	}
	if mode == "wrapped" && os.Getenv("AX650_WRAPPED") != "1" {
		fmt.Fprintln(os.Stderr, "fake runner: started without AXLLM_RUNNER_WRAPPER's command")
		return 1
	}
	if mode == "exit" {
		// What cobra prints when the runner command returns an error.
		fmt.Fprintln(os.Stderr, "Error: ax650 runner: listen tcp 127.0.0.1:1: bind: permission denied")
		return 1
	}
	go func() { // like the real runner: exit when the parent closes stdin
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()

	status := AX650Status{State: AX650StateReady, ContextLength: 255, MaxPrefill: 144, Memory: 4096, KVSlots: slots}
	switch mode {
	case "oneslot": // a model that keeps one KV slot whatever is asked (Qwen3.5)
		status.KVSlots = 1
	case "oom":
		status = AX650Status{State: AX650StateFailed, Axllm: AxllmErrOutOfMemory, Error: "axllm_model_load: not enough CMM memory"}
	case "badmodel":
		status = AX650Status{State: AX650StateFailed, Axllm: AxllmErrBadPackage, Error: "decoder layer 3 is missing"}
	case "slowload":
		status = AX650Status{State: AX650StateLoading}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(status)
	})
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		var req AX650CompletionRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if mode == "badrequest" {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(AX650Error{Status: 400, Axllm: AxllmErrPromptTooLong, Message: "the prompt is too long"})
			return
		}
		enc := json.NewEncoder(w)
		_ = enc.Encode(AX650CompletionChunk{CompletionResponse: CompletionResponse{Content: "Hello"}})
		w.(http.Flusher).Flush()
		if mode == "crash" {
			// An abort() inside the vendor library, as Go's crash report shows it.
			fmt.Fprintln(os.Stderr, "axcl-sim: injected fault abort=execute:5 fired: aborting the process")
			fmt.Fprintln(os.Stderr, "SIGABRT: abort\nPC=0x7f0 m=3 sigcode=18446744073709551610\nsignal arrived during cgo execution")
			os.Exit(2)
		}
		if mode == "midstreamerror" {
			_ = enc.Encode(AX650CompletionChunk{Error: &AX650Error{Status: 500, Axllm: AxllmErrDeviceLost, Message: "AX650 runtime error: device lost"}})
			return
		}
		_ = enc.Encode(AX650CompletionChunk{CompletionResponse: CompletionResponse{Content: " " + req.Prompt}})
		_ = enc.Encode(AX650CompletionChunk{CompletionResponse: CompletionResponse{Done: true, DoneReason: DoneReasonLength, PromptEvalCount: 3, EvalCount: 2}})
	})
	mux.HandleFunc("POST /v1/tokenize", func(w http.ResponseWriter, r *http.Request) {
		var req AX650TokenizeRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		_ = json.NewEncoder(w).Encode(AX650TokenizeResponse{Tokens: []int{len(req.Content), 7}})
	})
	mux.HandleFunc("POST /v1/detokenize", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(AX650DetokenizeResponse{Content: "decoded"})
	})
	mux.HandleFunc("POST /v1/chat_template", func(w http.ResponseWriter, r *http.Request) {
		var req AX650ChatTemplateRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if mode == "badtemplate" {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(AX650Error{Status: 400, Axllm: AxllmErrChatTemplate, Message: "the model's chat template: roles must alternate"})
			return
		}
		// The prompt names what the runner received, for the test to check.
		var b strings.Builder
		for _, m := range req.Messages {
			fmt.Fprintf(&b, "[%s]%s", m.Role, m.Content)
		}
		fmt.Fprintf(&b, "|tools=%d|think=%v", len(req.Tools), req.Think != nil && req.Think.Bool())
		_ = json.NewEncoder(w).Encode(AX650ChatTemplateResponse{Prompt: b.String()})
	})
	if err := http.ListenAndServe("127.0.0.1:"+port, mux); err != nil {
		fmt.Fprintln(os.Stderr, "fake runner:", err)
		return 1
	}
	return 0
}

func newFakeAX650Server(t *testing.T, mode string) *AX650Server {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := newAX650Server("tiny:latest", 1000)
	s.exe = exe
	s.env = []string{fakeRunnerEnv + "=" + mode}
	s.removed = func(string) bool { return false }
	t.Cleanup(func() { s.Close() })
	return s
}

// A load that fails because the model was removed meanwhile is a missing
// model (the routes answer 404), whatever the runner said.
func TestAX650ServerLoadOfARemovedModel(t *testing.T) {
	s := newFakeAX650Server(t, "badmodel")
	s.removed = func(name string) bool { return name == "tiny:latest" }
	_, err := s.Load(t.Context(), ml.SystemInfo{}, nil, false)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "model tiny:latest was removed") {
		t.Errorf("Load = %v, want a missing model", err)
	}
}

func TestAX650ServerLifecycle(t *testing.T) {
	t.Setenv("OLLAMA_LOAD_TIMEOUT", "20s")
	s := newFakeAX650Server(t, "ok")

	if s.ModelPath() != "tiny:latest" || s.Pid() != -1 || !s.HasExited() {
		t.Fatalf("before Load: path %q pid %d exited %v", s.ModelPath(), s.Pid(), s.HasExited())
	}
	if total, vram := s.MemorySize(); total != 1000 || vram != 1000 {
		t.Errorf("estimated MemorySize = %d, %d", total, vram)
	}
	gpus, err := s.Load(t.Context(), ml.SystemInfo{}, nil, false)
	if err != nil || gpus != nil {
		t.Fatalf("Load = %v, %v", gpus, err)
	}
	pid := s.Pid()
	if pid <= 0 || s.HasExited() {
		t.Fatalf("after Load: pid %d exited %v", pid, s.HasExited())
	}
	if s.ContextLength() != 255 {
		t.Errorf("ContextLength = %d, want 255", s.ContextLength())
	}
	if total, vram := s.MemorySize(); total != 4096 || vram != 4096 {
		t.Errorf("MemorySize = %d, %d; want the runner's 4096", total, vram)
	}
	if err := s.WaitUntilRunning(t.Context()); err != nil {
		t.Fatal(err)
	}

	var content strings.Builder
	var finals []CompletionResponse
	err = s.Completion(t.Context(), CompletionRequest{Prompt: "world", Options: &api.Options{}}, func(r CompletionResponse) {
		content.WriteString(r.Content)
		if r.Done {
			finals = append(finals, r)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if content.String() != "Hello world" || len(finals) != 1 || finals[0].DoneReason != DoneReasonLength || finals[0].EvalCount != 2 {
		t.Errorf("content %q finals %+v", content.String(), finals)
	}
	if toks, err := s.Tokenize(t.Context(), "abc"); err != nil || !slices.Equal(toks, []int{3, 7}) {
		t.Errorf("Tokenize = %v, %v", toks, err)
	}
	if text, err := s.Detokenize(t.Context(), []int{1}); err != nil || text != "decoded" {
		t.Errorf("Detokenize = %q, %v", text, err)
	}

	s.Close()
	s.Close() // idempotent
	if !s.HasExited() || s.Ping(t.Context()) == nil {
		t.Error("runner still alive after Close")
	}
	if s.Pid() != pid {
		t.Errorf("Pid changed after Close: %d -> %d", pid, s.Pid())
	}
	if _, err := s.Load(t.Context(), ml.SystemInfo{}, nil, false); err == nil {
		t.Error("Load after Close succeeded")
	}
}

func TestAX650ServerLoadFailures(t *testing.T) {
	t.Setenv("OLLAMA_LOAD_TIMEOUT", "20s")
	cases := []struct {
		mode        string
		requireFull bool
		check       func(error) bool
		what        string
	}{
		{"oom", true, func(err error) bool { return errors.Is(err, ErrLoadRequiredFull) }, "ErrLoadRequiredFull"},
		{"oom", false, func(err error) bool { return IsOutOfMemory(err) && !errors.Is(err, ErrLoadRequiredFull) }, "an out of memory error"},
		{"badmodel", false, func(err error) bool {
			return strings.Contains(err.Error(), "decoder layer 3 is missing") && errors.Is(err, AxllmErrBadPackage)
		}, "the runner's message, with its axllm status"},
		{"exit", false, func(err error) bool {
			return strings.Contains(err.Error(), "exited unexpectedly") && strings.Contains(err.Error(), "Error: ax650 runner: listen tcp")
		}, "an exit error with the runner's error line"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/requireFull=%v", tc.mode, tc.requireFull), func(t *testing.T) {
			s := newFakeAX650Server(t, tc.mode)
			_, err := s.Load(t.Context(), ml.SystemInfo{}, nil, tc.requireFull)
			if err == nil || !tc.check(err) {
				t.Fatalf("Load error = %v, want %s", err, tc.what)
			}
			if !s.HasExited() {
				t.Error("the failed runner is still running")
			}
		})
	}
}

func TestAX650ServerReloadAfterRequireFull(t *testing.T) {
	// After ErrLoadRequiredFull the scheduler evicts a model and calls Load
	// again on the same server.
	s := newFakeAX650Server(t, "oom")
	if _, err := s.Load(t.Context(), ml.SystemInfo{}, nil, true); !errors.Is(err, ErrLoadRequiredFull) {
		t.Fatalf("first Load = %v", err)
	}
	s.env = []string{fakeRunnerEnv + "=ok"}
	if _, err := s.Load(t.Context(), ml.SystemInfo{}, nil, true); err != nil {
		t.Fatalf("second Load = %v", err)
	}
}

func TestAX650ServerLoadCancelled(t *testing.T) {
	s := newFakeAX650Server(t, "slowload")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := s.Load(ctx, ml.SystemInfo{}, nil, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Load = %v, want context.DeadlineExceeded", err)
	}
	if !s.HasExited() {
		t.Error("runner still running after a cancelled load")
	}
}

func TestAX650ServerRequestFailures(t *testing.T) {
	t.Setenv("OLLAMA_LOAD_TIMEOUT", "20s")
	cases := []struct {
		mode  string
		check func(t *testing.T, s *AX650Server, err error)
	}{
		{"crash", func(t *testing.T, s *AX650Server, err error) {
			if err == nil || !strings.Contains(err.Error(), "exited unexpectedly") || !strings.Contains(err.Error(), "signal arrived during cgo execution") {
				t.Errorf("err = %v, want the runner's exit and its crash line", err)
			}
			if s.Ping(t.Context()) == nil {
				t.Error("Ping succeeds after the runner crashed, so the scheduler would not reload")
			}
		}},
		{"badrequest", func(t *testing.T, s *AX650Server, err error) {
			var se api.StatusError
			if !errors.As(err, &se) || se.StatusCode != 400 || se.ErrorMessage != "the prompt is too long" {
				t.Errorf("err = %#v, want a 400 api.StatusError", err)
			}
		}},
		{"midstreamerror", func(t *testing.T, s *AX650Server, err error) {
			var se api.StatusError
			if err == nil || errors.As(err, &se) || !strings.Contains(err.Error(), "device lost") || !errors.Is(err, AxllmErrDeviceLost) {
				t.Errorf("err = %#v, want a server error with the device status", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			s := newFakeAX650Server(t, tc.mode)
			if _, err := s.Load(t.Context(), ml.SystemInfo{}, nil, false); err != nil {
				t.Fatal(err)
			}
			var finals int
			err := s.Completion(t.Context(), CompletionRequest{Prompt: "p"}, func(r CompletionResponse) {
				if r.Done {
					finals++
				}
			})
			if finals != 0 {
				t.Errorf("%d final responses on a failed request", finals)
			}
			tc.check(t, s, err)
		})
	}
}

func TestAX650ServerRefusesOptionsOutOfRange(t *testing.T) {
	s := newFakeAX650Server(t, "ready")
	if _, err := s.Load(t.Context(), ml.SystemInfo{}, nil, false); err != nil {
		t.Fatal(err)
	}
	o := api.DefaultOptions()
	o.Temperature = float32(math.Inf(1)) // what a temperature of 1e39 becomes
	err := s.Completion(t.Context(), CompletionRequest{Prompt: "p", Options: &o}, func(CompletionResponse) {})
	var se api.StatusError
	if !errors.As(err, &se) || se.StatusCode != 400 || !strings.Contains(se.ErrorMessage, "out of range (+Inf)") {
		t.Errorf("err = %#v, want a 400 naming the value", err)
	}
}

func TestAX650NotBuilt(t *testing.T) {
	_, err := NewAX650Server("tiny", 0)
	if AX650Supported() {
		if err != nil {
			t.Fatalf("NewAX650Server = %v in an ax650 build", err)
		}
		return
	}
	if !errors.Is(err, ErrAX650NotBuilt) || !strings.Contains(err.Error(), "built without AX650 support") {
		t.Fatalf("NewAX650Server = %v, want ErrAX650NotBuilt", err)
	}
}

func TestAX650LoadFlagsFromServeEnvironment(t *testing.T) {
	env := map[string]string{"AXLLM_AXCL_LIB": "/opt/sim/libaxcl_sim.so", "AXLLM_SCHEDULE": " fewest-calls ", "AXLLM_DEVICE": ""}
	got := ax650LoadFlags(func(k string) string { return env[k] })
	want := []string{"--runtime", "/opt/sim/libaxcl_sim.so", "--schedule", "fewest-calls"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("flags %q, want %q", got, want)
	}
	if got := ax650LoadFlags(func(string) string { return "" }); len(got) != 0 {
		t.Errorf("no environment: %q", got)
	}
}

// AXLLM_RUNNER_WRAPPER: the runner starts under the named command (here
// env(1), which sets a variable the fake runner insists on), words split at
// spaces, the executable and its arguments after them.
func TestAX650RunnerWrapper(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "AXLLM_RUNNER_WRAPPER" {
				return v
			}
			return ""
		}
	}
	plain := ax650RunnerCommand("/bin/ollama", []string{"runner", "--port", "1"}, env("  "))
	if want := []string{"/bin/ollama", "runner", "--port", "1"}; !slices.Equal(plain.Args, want) {
		t.Errorf("without a wrapper: %q, want %q", plain.Args, want)
	}
	wrapped := ax650RunnerCommand("/bin/ollama", []string{"runner"}, env(" qemu-aarch64  -L /usr/aarch64-linux-gnu "))
	if want := []string{"qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", "/bin/ollama", "runner"}; !slices.Equal(wrapped.Args, want) {
		t.Errorf("wrapped: %q, want %q", wrapped.Args, want)
	}

	t.Setenv("OLLAMA_LOAD_TIMEOUT", "20s")
	t.Setenv("AXLLM_RUNNER_WRAPPER", "env AX650_WRAPPED=1")
	s := newFakeAX650Server(t, "wrapped")
	if _, err := s.Load(t.Context(), ml.SystemInfo{}, nil, false); err != nil {
		t.Fatalf("Load through the wrapper: %v", err)
	}
	t.Setenv("AXLLM_RUNNER_WRAPPER", "")
	unwrapped := newFakeAX650Server(t, "wrapped")
	if _, err := unwrapped.Load(t.Context(), ml.SystemInfo{}, nil, false); err == nil {
		t.Fatal("Load without the wrapper succeeded: the fake runner's check is not effective")
	}
}

// AXLLM_RUNNER_EXE names the executable the runner starts from; without it,
// the runner is this process's own executable.
func TestAX650RunnerExecutable(t *testing.T) {
	named, err := ax650Executable(func(k string) string {
		if k == "AXLLM_RUNNER_EXE" {
			return " /opt/arm64/ollama "
		}
		return ""
	})
	if err != nil || named != "/opt/arm64/ollama" {
		t.Errorf("AXLLM_RUNNER_EXE=/opt/arm64/ollama: %q, %v", named, err)
	}
	own, err := ax650Executable(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := filepath.EvalSymlinks(exe); own != want {
		t.Errorf("without AXLLM_RUNNER_EXE: %q, want %q", own, want)
	}
}

// A model rendered with its package's own template: Chat sends the messages
// to the runner, which renders them, and completes what it rendered; a
// template's refusal is a 400 with its message, and nothing is generated.
func TestAX650ServerChatRendersInTheRunner(t *testing.T) {
	t.Setenv("OLLAMA_LOAD_TIMEOUT", "20s")
	s := newFakeAX650Server(t, "ok")
	if _, err := s.Load(t.Context(), ml.SystemInfo{}, nil, false); err != nil {
		t.Fatal(err)
	}
	req := ChatRequest{
		Messages: []api.Message{{Role: "system", Content: "S"}, {Role: "user", Content: "Q"}},
		Tools:    api.Tools{{Type: "function", Function: api.ToolFunction{Name: "f"}}},
		Think:    &api.ThinkValue{Value: false},
	}
	prompt, err := s.ApplyChatTemplate(t.Context(), req)
	if want := "[system]S[user]Q|tools=1|think=false"; err != nil || prompt != want {
		t.Fatalf("ApplyChatTemplate = %q, %v; want %q", prompt, err, want)
	}
	var content strings.Builder
	var final ChatResponse
	err = s.Chat(t.Context(), req, func(r ChatResponse) {
		if r.Message.Role != "assistant" {
			t.Errorf("role %q", r.Message.Role)
		}
		content.WriteString(r.Message.Content)
		if r.Done {
			final = r
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// The fake runner echoes the prompt it completes after "Hello".
	if want := "Hello " + prompt; content.String() != want {
		t.Errorf("content %q, want %q", content.String(), want)
	}
	if !final.Done || final.DoneReason != DoneReasonLength || final.PromptEvalCount != 3 || final.EvalCount != 2 {
		t.Errorf("final response %+v", final)
	}

	bad := newFakeAX650Server(t, "badtemplate")
	if _, err := bad.Load(t.Context(), ml.SystemInfo{}, nil, false); err != nil {
		t.Fatal(err)
	}
	called := false
	err = bad.Chat(t.Context(), req, func(ChatResponse) { called = true })
	var se api.StatusError
	if !errors.As(err, &se) || se.StatusCode != 400 || !strings.Contains(se.ErrorMessage, "roles must alternate") {
		t.Errorf("err = %#v, want a 400 with the template's message", err)
	}
	if called {
		t.Error("a refused chat generated")
	}
}

func TestAX650ServerPingAfterKillReportsTheExit(t *testing.T) {
	// A runner killed right after its load (as the soak's chaos does) must
	// read as an exited runner, never as a bare "connection refused" that the
	// routes would answer with a 500 the scheduler cannot act on.
	t.Setenv("OLLAMA_LOAD_TIMEOUT", "20s")
	for i := range 3 {
		s := newFakeAX650Server(t, "ok")
		if _, err := s.Load(t.Context(), ml.SystemInfo{}, nil, false); err != nil {
			t.Fatal(err)
		}
		p, err := os.FindProcess(s.Pid())
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(t.Context()); !errors.Is(err, errAX650RunnerExited) {
			t.Fatalf("run %d: Ping after SIGKILL = %v, want the runner's exit", i, err)
		}
		s.Close()
	}
}

// Parallel is the KV slots asked for until the runner reports the ones it
// has, which `ollama ps` shows.
func TestAX650ServerParallel(t *testing.T) {
	t.Setenv("OLLAMA_LOAD_TIMEOUT", "20s")
	for _, tc := range []struct {
		mode      string
		asked     int
		want      int
		beforeAny int
	}{
		{mode: "ok", asked: 0, want: 3, beforeAny: 1}, // the runner chooses
		{mode: "ok", asked: 1, want: 1, beforeAny: 1}, // an explicit 1 reaches it
		{mode: "ok", asked: 3, want: 3, beforeAny: 3},
		{mode: "oneslot", asked: 4, want: 1, beforeAny: 4},
	} {
		s := newFakeAX650Server(t, tc.mode)
		s.SetParallel(tc.asked)
		if got := s.Parallel(); got != tc.beforeAny {
			t.Errorf("%s %d: before Load Parallel = %d, want %d", tc.mode, tc.asked, got, tc.beforeAny)
		}
		if _, err := s.Load(t.Context(), ml.SystemInfo{}, nil, false); err != nil {
			t.Fatal(err)
		}
		if got := s.Parallel(); got != tc.want {
			t.Errorf("%s %d: Parallel = %d, want %d", tc.mode, tc.asked, got, tc.want)
		}
		s.Close()
	}
}
