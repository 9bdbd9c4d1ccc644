package ax650runner

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ollama/ollama/envconfig"
	"github.com/ollama/ollama/llm"
	"github.com/ollama/ollama/logutil"
	"github.com/ollama/ollama/manifest"
)

// EngineArgs reports whether `ollama runner` was asked for this engine
// (`--ax650-engine` first) and returns the arguments that follow it.
func EngineArgs(args []string) ([]string, bool) {
	if len(args) > 0 && args[0] == "--ax650-engine" {
		return args[1:], true
	}
	return nil, false
}

// Execute runs the runner: `ollama runner --ax650-engine --model NAME --port N
// [--workdir DIR] [--exit-on-stdin-eof] [--runtime LIB] [--schedule S]
// [--device N]`, or `--dir PATH` to load a package directory directly (for
// debugging). The flags are axllm's load parameters: `ollama serve` passes
// what it reads from its environment (AXLLM_AXCL_LIB, AXLLM_SCHEDULE,
// AXLLM_DEVICE); axllm itself reads no environment variable.
func Execute(args []string) error {
	slog.SetDefault(logutil.NewLogger(os.Stderr, envconfig.LogLevel()))

	flags := flag.NewFlagSet("ax650runner", flag.ContinueOnError)
	modelName := flags.String("model", "", "name of the axmodel model to load")
	modelDir := flags.String("dir", "", "load this package directory instead of a model by name")
	port := flags.Int("port", 0, "loopback port to listen on")
	workdir := flags.String("workdir", "", "directory for the model's links (default: system temp dir)")
	exitOnEOF := flags.Bool("exit-on-stdin-eof", false, "exit when standard input closes (the parent has gone)")
	var opts LoadOptions
	flags.StringVar(&opts.Runtime, "runtime", "", "the AXCL runtime library (default: libaxcl_rt.so, then /usr/lib/axcl/)")
	flags.StringVar(&opts.Schedule, "schedule", "", "the call schedule, e.g. safe or default,waited-chunks (default: the library's default; see BENCHMARKS.md)")
	flags.IntVar(&opts.Device, "device", 0, "index of the card in the runtime's device list")
	flags.IntVar(&opts.KVSlots, "parallel", 0, "requests served at once: KV slots on the card (default 0: chosen from the card's free memory, up to 4)")
	_ = flags.Bool("verbose", false, "ignored")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if (*modelName == "") == (*modelDir == "") {
		return errors.New("ax650 runner: give exactly one of --model and --dir")
	}
	if opts.Device < 0 {
		return fmt.Errorf("ax650 runner: --device %d is negative", opts.Device)
	}
	if opts.KVSlots < 0 {
		return fmt.Errorf("ax650 runner: --parallel %d is negative", opts.KVSlots)
	}

	// SIGINT and SIGTERM stay caught until Execute returns: the parent closes
	// our stdin and then sends SIGINT, and that signal must not kill the
	// runner before it has freed the model. So the other reasons to stop
	// cancel ctx, never the signal context.
	sigCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	ctx, stop := context.WithCancel(sigCtx)
	defer stop()
	if *exitOnEOF {
		survivePipeLoss()
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			slog.Info("parent process has gone, exiting")
			stop()
		}()
	}

	s := &server{state: llm.AX650Status{State: llm.AX650StateLoading}}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("ax650 runner: %w", err)
	}
	// Handlers see reqCtx: cancelling it on shutdown stops generations.
	reqCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	httpServer := &http.Server{Handler: s.handler(), BaseContext: func(net.Listener) context.Context { return reqCtx }}
	go func() {
		if err := httpServer.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("ax650 runner http server", "error", err)
			stop()
		}
	}()
	slog.Info("AX650 runner listening", "addr", ln.Addr().String(), "axllm", libraryVersion())

	dir := *modelDir
	if dir == "" {
		files, err := ModelFiles(*modelName)
		if err == nil {
			dir, err = Materialize(files, *workdir)
		}
		if err == nil {
			// The package is links into the blob store: axllm may follow them
			// there, while names in the package's own files stay inside it.
			var blobs string
			if blobs, err = manifest.BlobsPath(""); err == nil {
				opts.LinkRoots = []string{blobs}
			}
		}
		if err != nil {
			s.fail(withStatus(err, llm.AxllmErrBadPackage))
			<-ctx.Done()
			return nil
		}
		defer func() {
			os.RemoveAll(dir)
			if *workdir != "" {
				os.Remove(*workdir) // the parent's directory, if it is now empty
			}
		}()
	}

	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		start := time.Now()
		e, err := loadEngine(dir, opts, s.progress)
		if err != nil {
			if *modelName != "" {
				err = PackageRelative(err, dir, "model "+*modelName+": ")
			}
			s.fail(err)
			return
		}
		s.ready(e)
		info := e.Info()
		slog.Info("AX650 model loaded", "took", time.Since(start).Round(time.Millisecond),
			"context_length", info.ContextLength, "max_prefill", info.MaxPrefill, "layers", info.Layers,
			"device_memory", info.MemoryBytes, "schedule", opts.Schedule, "parallel", info.KVSlots)
	}()

	<-ctx.Done()
	slog.Info("AX650 runner stopping")
	select {
	case <-loaded:
	default:
		// axllm_model_load cannot be interrupted; the process exit frees it.
		return nil
	}
	start := time.Now()
	cancelRequests()
	s.shutdown(httpServer, DrainTimeout)
	if r := s.getRunner(); r != nil {
		r.engine.Close()
		slog.Info("AX650 model freed, device released", "stop_took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// DrainTimeout bounds how long a stopping runner waits for its handlers to
// return once their requests are cancelled. A cancelled generation ends
// after the token or prefill chunk in progress (milliseconds on the card), so
// the bound is only reached if the runtime hangs; the model is freed after it
// either way (axllm_model_free waits for the generation to end). Together
// with freeing the model this is the runner's worst-case stop, which
// `ollama serve` outwaits before it kills a runner (llm.AX650StopTimeout).
const DrainTimeout = 5 * time.Second

// shutdown stops serving at once and waits (at most timeout) for the
// handlers still running; their requests must already be cancelled.
//
// http.Server.Shutdown is not used: it waits for every connection to go
// idle and treats a connection that has not sent its first request yet as
// busy for 5 s. Ollama's HTTP client dials such spare connections when
// requests overlap, so a stop under load took exactly 5 s, and `ollama serve`
// (then as patient as that) killed the runner before it freed the device.
// Close drops listeners and every connection (idle, new or active) now.
func (s *server) shutdown(httpServer *http.Server, timeout time.Duration) {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	_ = httpServer.Close()
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		slog.Error("AX650 runner: a request did not end in time after it was cancelled; freeing the model anyway", "waited", timeout)
	}
}

// server is the runner's HTTP face.
type server struct {
	mu       sync.Mutex
	state    llm.AX650Status
	runner   *Runner
	stopping bool // no new request may start

	handlers sync.WaitGroup // requests being served
}

// track counts a request in handlers; false (and a 503) once the runner is
// stopping, so no request starts on a model about to be freed.
func (s *server) track(w http.ResponseWriter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		writeJSON(w, http.StatusServiceUnavailable, llm.AX650Error{Status: http.StatusServiceUnavailable, Message: "the AX650 runner is stopping"})
		return false
	}
	s.handlers.Add(1)
	return true
}

func (s *server) progress(loaded, total uint32) {
	s.mu.Lock()
	s.state.Loaded, s.state.Total = loaded, total
	s.mu.Unlock()
}

func (s *server) fail(err error) {
	st := axllmStatus(err)
	slog.Error("AX650 model load failed", "axllm_status", st, "error", err)
	s.mu.Lock()
	s.state.State, s.state.Axllm, s.state.Error = llm.AX650StateFailed, st, err.Error()
	s.mu.Unlock()
}

// PackageRelative names a package's files in an axllm error the way the
// package names them (qwen3-ax650/qwen3_p128_l3_together.axmodel), not by
// their links in dir, the temporary directory they were linked into; prefix
// (say "model NAME: ") leads the message.
func PackageRelative(err error, dir, prefix string) error {
	var ee *EngineError
	if !errors.As(err, &ee) {
		return err
	}
	// axllm says "bad model package DIR: FILE: reason", FILE relative to DIR.
	msg := strings.ReplaceAll(ee.Message, "bad model package "+dir+": ", "bad model package: ")
	msg = strings.ReplaceAll(msg, dir+string(filepath.Separator), "")
	msg = strings.ReplaceAll(msg, dir, "the package")
	return &EngineError{Call: ee.Call, Status: ee.Status, Message: prefix + msg}
}

func (s *server) ready(e Engine) {
	r := NewRunner(e)
	info := r.Info()
	s.mu.Lock()
	s.runner = r
	s.state.State = llm.AX650StateReady
	s.state.ContextLength = info.ContextLength
	s.state.MaxPrefill = info.MaxPrefill
	s.state.Memory = info.MemoryBytes
	s.state.KVSlots = max(info.KVSlots, 1)
	s.mu.Unlock()
}

func (s *server) getRunner() *Runner {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runner
}

func (s *server) status() llm.AX650Status {
	s.mu.Lock()
	st, r := s.state, s.runner
	s.mu.Unlock()
	if r != nil {
		if err := r.Broken(); err != nil {
			st.State, st.Axllm, st.Error = llm.AX650StateBroken, axllmStatus(err), err.Error()
		}
	}
	return st
}

// diagnostics serves the engine's runtime diagnostics (the simulator's
// counters) for tests and debugging; 404 when the engine has none.
func (s *server) diagnostics(w http.ResponseWriter, _ *http.Request) {
	r, ok := s.readyRunner(w)
	if !ok {
		return
	}
	d, ok := r.engine.(Diagnoser)
	if !ok {
		writeJSON(w, http.StatusNotFound, llm.AX650Error{Status: http.StatusNotFound, Message: "this engine has no diagnostics"})
		return
	}
	body, err := d.Diagnostics()
	if err != nil {
		writeError(w, r.engineError(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.status())
	})
	mux.HandleFunc("POST /v1/completions", s.completions)
	mux.HandleFunc("POST /v1/embedding", func(w http.ResponseWriter, req *http.Request) {
		r, ok := s.readyRunner(w)
		if !ok {
			return
		}
		var in llm.AX650EmbeddingRequest
		if err := json.NewDecoder(req.Body).Decode(&in); err != nil {
			writeError(w, badRequest("bad embedding request: %v", err))
			return
		}
		v, n, err := r.Embedding(req.Context(), in.Content)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, llm.AX650EmbeddingResponse{Embedding: v, PromptTokens: n})
	})
	mux.HandleFunc("GET /v1/debug/diagnostics", s.diagnostics)
	mux.HandleFunc("POST /v1/tokenize", func(w http.ResponseWriter, req *http.Request) {
		r, ok := s.readyRunner(w)
		if !ok {
			return
		}
		var in llm.AX650TokenizeRequest
		if err := json.NewDecoder(req.Body).Decode(&in); err != nil {
			writeError(w, badRequest("bad tokenize request: %v", err))
			return
		}
		tokens, err := r.Tokenize(in.Content)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, llm.AX650TokenizeResponse{Tokens: tokens})
	})
	mux.HandleFunc("POST /v1/chat_template", func(w http.ResponseWriter, req *http.Request) {
		r, ok := s.readyRunner(w)
		if !ok {
			return
		}
		var in llm.AX650ChatTemplateRequest
		if err := json.NewDecoder(req.Body).Decode(&in); err != nil {
			writeError(w, badRequest("bad chat template request: %v", err))
			return
		}
		prompt, err := r.RenderChat(in)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, llm.AX650ChatTemplateResponse{Prompt: prompt})
	})
	mux.HandleFunc("POST /v1/detokenize", func(w http.ResponseWriter, req *http.Request) {
		r, ok := s.readyRunner(w)
		if !ok {
			return
		}
		var in llm.AX650DetokenizeRequest
		if err := json.NewDecoder(req.Body).Decode(&in); err != nil {
			writeError(w, badRequest("bad detokenize request: %v", err))
			return
		}
		text, err := r.Detokenize(in.Tokens)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, llm.AX650DetokenizeResponse{Content: text})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !s.track(w) {
			return
		}
		defer s.handlers.Done()
		mux.ServeHTTP(w, req)
	})
}

func (s *server) readyRunner(w http.ResponseWriter) (*Runner, bool) {
	r := s.getRunner()
	if r == nil {
		st := s.status()
		writeJSON(w, http.StatusServiceUnavailable, llm.AX650Error{Status: http.StatusServiceUnavailable, Axllm: st.Axllm,
			Message: fmt.Sprintf("the AX650 model is not loaded (%s) %s", st.State, st.Error)})
		return nil, false
	}
	return r, true
}

func (s *server) completions(w http.ResponseWriter, req *http.Request) {
	r, ok := s.readyRunner(w)
	if !ok {
		return
	}
	var in llm.AX650CompletionRequest
	if err := json.NewDecoder(req.Body).Decode(&in); err != nil {
		writeError(w, badRequest("bad completion request: %v", err))
		return
	}

	enc := json.NewEncoder(w)
	started := false
	err := r.Completion(req.Context(), in, func(resp llm.CompletionResponse) {
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if err := enc.Encode(llm.AX650CompletionChunk{CompletionResponse: resp}); err != nil {
			slog.Debug("writing a completion chunk", "error", err)
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	})
	switch {
	case err == nil:
	case req.Context().Err() != nil:
		slog.Debug("completion cancelled by the client")
	case !started:
		writeError(w, err)
	default:
		_ = enc.Encode(llm.AX650CompletionChunk{Error: wireError(err)})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("writing a response", "error", err)
	}
}

func writeError(w http.ResponseWriter, err error) {
	e := wireError(err)
	writeJSON(w, e.Status, e)
}
