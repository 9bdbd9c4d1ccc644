package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/envconfig"
	"github.com/ollama/ollama/format"
	"github.com/ollama/ollama/manifest"
	"github.com/ollama/ollama/ml"
	"github.com/ollama/ollama/types/model"
)

// ErrAX650NotBuilt is returned when an AX650 (axmodel) model is loaded by an
// ollama binary built without the ax650 build tag or without cgo.
var ErrAX650NotBuilt = errors.New("this ollama binary was built without AX650 support; build it with ollama-patch/build.sh (build tag ax650, cgo enabled) to run axmodel models")

// AX650Supported reports whether this binary can run axmodel models.
func AX650Supported() bool { return ax650Built }

// AX650Server runs one axmodel model in a runner subprocess of this ollama
// binary (`ollama runner --ax650-engine`), which links the axllm C library
// and drives the NPU. A fault in the NPU runtime, even a process abort, ends
// only that subprocess: the request fails and the scheduler loads the model
// again for the next request (Ping fails once the runner is gone).
type AX650Server struct {
	name     string // the model's short name; also what ModelPath returns
	estimate uint64 // summed file sizes, used until the runner reports its memory
	parallel int    // requests at once: the runner's KV slots (0: its automatic count)

	exe string   // the executable to start; tests substitute a fake runner
	env []string // extra environment for the subprocess
	// removed reports whether the model was removed (`ollama rm`); tests
	// substitute it.
	removed func(name string) bool
	client  *http.Client

	reloadMu sync.Mutex // one reload after a runner died

	mu      sync.Mutex
	closed  bool
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	workdir string
	port    int
	pid     int
	done    chan struct{} // closed when the current subprocess has exited
	exitErr error         // valid once done is closed
	output  *StatusWriter // the runner's output; remembers its error lines

	contextLength atomic.Int64
	memory        atomic.Uint64
	kvSlots       atomic.Int64
	asked         atomic.Int64 // parallel, readable while Load holds mu
}

var _ LlamaServer = (*AX650Server)(nil)

// NewAX650Server prepares a server for the axmodel model `name`. It is cheap:
// the runner starts in Load. estimate is the model's size on disk, reported by
// MemorySize until the runner has measured the device memory it uses.
func NewAX650Server(name string, estimate uint64) (*AX650Server, error) {
	if !ax650Built {
		return nil, ErrAX650NotBuilt
	}
	return newAX650Server(name, estimate), nil
}

// SetParallel sets how many requests the runner serves at once: the KV
// slots it allocates on the card (each adds its K/V caches to the memory
// the runner reports). 0 leaves the count to the runner, which chooses it
// from the card's free memory as it loads (axllm's AXLLM_KV_SLOTS_AUTO);
// Parallel reports it once loaded. Call it before Load.
func (s *AX650Server) SetParallel(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parallel = max(n, 0)
	s.asked.Store(int64(s.parallel))
}

func newAX650Server(name string, estimate uint64) *AX650Server {
	s := &AX650Server{
		name:     name,
		estimate: estimate,
		client:   &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}},
		removed:  manifestGone,
		pid:      -1,
		done:     make(chan struct{}),
	}
	close(s.done) // no subprocess yet
	return s
}

// Load starts the runner and waits until the model is on the NPU, so that
// ContextLength and MemorySize are the runner's own numbers when it returns.
// A model that does not fit in NPU memory returns ErrLoadRequiredFull when
// requireFull (the scheduler then evicts another model and calls Load again),
// otherwise an "out of memory" error.
func (s *AX650Server) Load(ctx context.Context, _ ml.SystemInfo, _ []ml.DeviceInfo, requireFull bool) ([]ml.DeviceID, error) {
	if err := s.start(); err != nil {
		return nil, err
	}
	err := s.waitLoaded(ctx)
	if err == nil {
		return nil, nil
	}
	s.stop()
	// The runner's own message when the manifest was missing as it started:
	// the model may have been created again since.
	msg := err.Error()
	if s.removed(s.name) || (strings.Contains(msg, "reading the manifest of "+s.name+": ") && strings.Contains(msg, "no such file or directory")) {
		// `ollama rm` while the request waited: a missing manifest or blob
		// is a removed model (404), as it is for the requests that follow.
		return nil, fmt.Errorf("model %s was removed while the request waited (%v): %w", s.name, err, os.ErrNotExist)
	}
	if errors.Is(err, AxllmErrOutOfMemory) {
		if requireFull {
			slog.Info("AX650 model does not fit next to the loaded models", "model", s.name, "error", err)
			return nil, ErrLoadRequiredFull
		}
		// The phrase lets the scheduler's out-of-memory handling see it too.
		return nil, fmt.Errorf("AX650 NPU out of memory loading %s: %w", s.name, err)
	}
	return nil, err
}

// manifestGone reports whether the model's manifest is gone.
func manifestGone(name string) bool {
	_, err := manifest.ParseNamedManifest(model.ParseName(name))
	return errors.Is(err, os.ErrNotExist)
}

func (s *AX650Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("AX650 runner for %s is closed", s.name)
	}
	if s.cmd != nil {
		return fmt.Errorf("AX650 runner for %s is already running", s.name)
	}

	exe := s.exe
	if exe == "" {
		var err error
		if exe, err = ax650Executable(os.Getenv); err != nil {
			return err
		}
	}

	port, err := freeLoopbackPort()
	if err != nil {
		return fmt.Errorf("no free port for the AX650 runner: %w", err)
	}
	// The runner links the model's files here. It lives outside the model
	// store: Ollama prunes anything in blobs/ that is not a blob.
	workdir, err := os.MkdirTemp("", "ollama-ax650-")
	if err != nil {
		return fmt.Errorf("creating the AX650 runner directory: %w", err)
	}

	args := []string{"runner", "--ax650-engine",
		"--model", s.name,
		"--port", strconv.Itoa(port),
		"--workdir", workdir,
		"--exit-on-stdin-eof"}
	if s.parallel > 0 {
		args = append(args, "--parallel", strconv.Itoa(s.parallel))
	}
	cmd := ax650RunnerCommand(exe, append(args, ax650LoadFlags(os.Getenv)...), os.Getenv)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.SysProcAttr = LlamaServerSysProcAttr
	s.output = NewStatusWriter(os.Stderr)
	cmd.Stdout = s.output
	cmd.Stderr = s.output
	// The runner exits when this pipe closes, so it cannot outlive us even if
	// `ollama serve` is killed.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		os.RemoveAll(workdir)
		return err
	}

	slog.Info("starting AX650 runner", "model", s.name, "port", port)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(workdir)
		return fmt.Errorf("starting the AX650 runner: %w", err)
	}

	done := make(chan struct{})
	s.cmd, s.stdin, s.workdir, s.port, s.pid, s.done = cmd, stdin, workdir, port, cmd.Process.Pid, done
	s.contextLength.Store(0)
	s.memory.Store(0)
	s.kvSlots.Store(0)
	go func() {
		err := cmd.Wait()
		// Logged before done closes: `ollama serve` may exit as soon as it has.
		if err != nil {
			slog.Warn("AX650 runner exited", "model", s.name, "pid", cmd.Process.Pid, "error", err)
		} else {
			slog.Info("AX650 runner exited", "model", s.name, "pid", cmd.Process.Pid, "status", 0)
		}
		s.mu.Lock()
		s.exitErr = err
		s.mu.Unlock()
		close(done)
	}()
	return nil
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitLoaded polls the runner until the model is ready, the load fails, the
// runner exits, ctx ends, or loading makes no progress for OLLAMA_LOAD_TIMEOUT.
func (s *AX650Server) waitLoaded(ctx context.Context) error {
	done := s.currentDone()
	stallTimeout := envconfig.LoadTimeout()
	stall := time.NewTimer(stallTimeout)
	defer stall.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()

	var loaded uint32
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return s.exitError("while loading the model")
		case <-stall.C:
			return fmt.Errorf("timed out after %s waiting for the AX650 runner to load %s", stallTimeout, s.name)
		case <-tick.C:
			st, err := s.status(ctx)
			if err != nil {
				continue // not listening yet
			}
			switch st.State {
			case AX650StateReady:
				slog.Info("AX650 model loaded", "model", s.name, "context_length", st.ContextLength,
					"max_prefill", st.MaxPrefill, "memory", format.HumanBytes2(st.Memory))
				return nil
			case AX650StateFailed, AX650StateBroken:
				return fmt.Errorf("AX650 runner failed to load %s: %w", s.name, st.Err())
			default:
				if st.Loaded != loaded {
					loaded = st.Loaded
					stall.Reset(stallTimeout)
				}
			}
		}
	}
}

func (s *AX650Server) currentDone() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// exitError describes a runner that has exited, with the error lines it printed.
func (s *AX650Server) exitError(when string) error {
	s.mu.Lock()
	exitErr, output := s.exitErr, s.output
	s.mu.Unlock()
	msg := fmt.Sprintf("AX650 runner for %s exited unexpectedly %s", s.name, when)
	if exitErr != nil {
		msg += " (" + exitErr.Error() + ")"
	}
	if last := lastNonEmptyLine(output.LastError()); last != "" {
		msg += ": " + last
	}
	return &runnerExitError{msg}
}

// errAX650RunnerExited matches (errors.Is) the error of a request whose
// runner exited under it.
var errAX650RunnerExited = errors.New("AX650 runner exited")

type runnerExitError struct{ msg string }

func (e *runnerExitError) Error() string        { return e.msg }
func (e *runnerExitError) Is(target error) bool { return target == errAX650RunnerExited }

// reload starts a runner again after the one with process id pid died, unless
// another request has done so already, and waits until it has loaded the model.
func (s *AX650Server) reload(ctx context.Context, pid int) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.Pid() == pid {
		s.stop() // reaps the dead runner and removes its directory
		if err := s.start(); err != nil {
			return err
		}
	}
	return s.waitLoaded(ctx)
}

func (s *AX650Server) url(path string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "http://127.0.0.1:" + strconv.Itoa(s.port) + path
}

// status asks the runner for its state and caches its numbers.
func (s *AX650Server) status(ctx context.Context) (AX650Status, error) {
	var st AX650Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/v1/status"), nil)
	if err != nil {
		return st, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// A runner killed between its load and this poll refuses the
		// connection before its exit is reaped: report the exit, not the dial.
		return st, s.transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("AX650 runner status: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("AX650 runner status: %w", err)
	}
	if st.ContextLength > 0 {
		s.contextLength.Store(int64(st.ContextLength))
	}
	if st.Memory > 0 {
		s.memory.Store(st.Memory)
	}
	if st.KVSlots > 0 {
		s.kvSlots.Store(int64(st.KVSlots))
	}
	return st, nil
}

// Ping reports whether the runner is alive and serving; any error makes the
// scheduler load the model again.
func (s *AX650Server) Ping(ctx context.Context) error {
	if s.HasExited() {
		return s.exitError("")
	}
	st, err := s.status(ctx)
	if err != nil {
		return err
	}
	switch st.State {
	case AX650StateReady:
		return nil
	case AX650StateBroken:
		return fmt.Errorf("AX650 runtime failed, the model must be loaded again: %w", st.Err())
	default:
		return fmt.Errorf("AX650 runner is %s: %s", st.State, st.Error)
	}
}

// WaitUntilRunning returns once the runner serves: Load already waited.
func (s *AX650Server) WaitUntilRunning(ctx context.Context) error {
	return s.Ping(ctx)
}

func (s *AX650Server) post(ctx context.Context, path string, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	var unsupported *json.UnsupportedValueError
	if errors.As(err, &unsupported) {
		// An option beyond float32's range became ±Inf: the client's error.
		return nil, api.StatusError{StatusCode: http.StatusBadRequest,
			ErrorMessage: fmt.Sprintf("invalid request: an option is out of range (%s)", unsupported.Str)}
	}
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url(path), bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, s.transportError(ctx, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e AX650Error
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(raw, &e) != nil || e.Message == "" {
			e = AX650Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(raw))}
		}
		if e.Status == 0 {
			e.Status = resp.StatusCode
		}
		return nil, ax650Error(&e)
	}
	return resp, nil
}

// ax650Error turns a runner error into what the routes expect: client
// errors as api.StatusError (forwarded with their status), others as the
// AX650Error itself, which carries its axllm status as a sentinel.
func ax650Error(e *AX650Error) error {
	if e.Status >= 400 && e.Status < 500 {
		return api.StatusError{StatusCode: e.Status, ErrorMessage: e.Message}
	}
	return e
}

// transportError explains a failed exchange with the runner: most often the
// runner has died (killed, or aborted inside the vendor runtime).
func (s *AX650Server) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	select {
	case <-s.currentDone():
		return s.exitError("during the request; the model will be loaded again on the next request")
	case <-time.After(500 * time.Millisecond):
	}
	return fmt.Errorf("AX650 runner for %s: %w", s.name, err)
}

// Completion streams a completion from the runner. Exactly one response has
// Done set; callbacks come from this goroutine.
//
// A request the runner had not begun to answer when it died (one queued
// behind the generation it was serving) is retried once on a runner started
// again; the request it was serving fails with the runner's exit.
func (s *AX650Server) Completion(ctx context.Context, req CompletionRequest, fn func(CompletionResponse)) error {
	body := AX650CompletionRequest{
		Prompt:     req.Prompt,
		Format:     req.Format,
		MediaCount: len(req.Media),
		Options:    req.Options,
		Truncate:   req.Truncate,
		Shift:      req.Shift,
		LeadingBOS: req.LeadingBOS,
		Logprobs:   req.Logprobs,

		ThinkingClose: req.ThinkingClose,
		TopLogprobs:   req.TopLogprobs,
	}
	pid := s.Pid()
	resp, err := s.post(ctx, "/v1/completions", body)
	if errors.Is(err, errAX650RunnerExited) && ctx.Err() == nil {
		slog.Warn("AX650 runner died before it answered a request; loading the model again to retry it once", "model", s.name, "pid", pid, "error", err)
		if rerr := s.reload(ctx, pid); rerr != nil {
			return fmt.Errorf("%w; loading the model again failed: %v", err, rerr)
		}
		resp, err = s.post(ctx, "/v1/completions", body)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for scanner.Scan() {
		var chunk AX650CompletionChunk
		if err := json.Unmarshal(scanner.Bytes(), &chunk); err != nil {
			return fmt.Errorf("AX650 runner sent a bad response line: %w", err)
		}
		if chunk.Error != nil {
			return ax650Error(chunk.Error)
		}
		fn(chunk.CompletionResponse)
		if chunk.Done {
			return nil
		}
	}
	err = scanner.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return s.transportError(ctx, err)
}

// Tokenize encodes text the way Completion does (special tokens written in
// the text map to their ids).
func (s *AX650Server) Tokenize(ctx context.Context, content string) ([]int, error) {
	resp, err := s.post(ctx, "/v1/tokenize", AX650TokenizeRequest{Content: content})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out AX650TokenizeResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("AX650 runner tokenize: %w", err)
	}
	return out.Tokens, nil
}

// Detokenize decodes token ids to text.
func (s *AX650Server) Detokenize(ctx context.Context, tokens []int) (string, error) {
	resp, err := s.post(ctx, "/v1/detokenize", AX650DetokenizeRequest{Tokens: tokens})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out AX650DetokenizeResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("AX650 runner detokenize: %w", err)
	}
	return out.Content, nil
}

// Close stops the runner (which frees the NPU) and removes its directory. It
// may be called more than once, and while Load is still waiting.
func (s *AX650Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	return nil
}

// AX650StopTimeout is how long serve waits for a runner to stop before it
// kills it. A stopping runner cancels its requests, closes its connections at
// once, waits for its handlers (the token or prefill chunk in progress; at
// most ax650runner.DrainTimeout, 5 s, if the runtime hangs), then frees the
// model: the device reset and axclFinalize, well under a second. 15 s is
// three times the runner's bound, so only a runner that is hung (or stopped
// by SIGSTOP) is killed.
const AX650StopTimeout = 15 * time.Second

// stop ends the current subprocess, politely first.
func (s *AX650Server) stop() {
	s.mu.Lock()
	cmd, stdin, workdir, done := s.cmd, s.stdin, s.workdir, s.done
	s.cmd, s.stdin, s.workdir = nil, nil, ""
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	slog.Info("stopping AX650 runner", "model", s.name, "pid", cmd.Process.Pid)
	stdin.Close()
	if runtime.GOOS == "windows" {
		cmd.Process.Kill()
	} else {
		cmd.Process.Signal(os.Interrupt)
	}
	start := time.Now()
	select {
	case <-done:
		slog.Info("AX650 runner stopped", "model", s.name, "pid", cmd.Process.Pid, "took", time.Since(start).Round(time.Millisecond))
	case <-time.After(AX650StopTimeout):
		// The device may be left allocated and the runtime unfinalised.
		slog.Error("AX650 runner did not stop in time, killing it: the NPU may not have been released",
			"model", s.name, "pid", cmd.Process.Pid, "waited", AX650StopTimeout)
		cmd.Process.Kill()
		<-done
	}
	if err := os.RemoveAll(workdir); err != nil {
		slog.Warn("removing the AX650 runner directory", "dir", workdir, "error", err)
	}
}

// HasExited reports whether the runner process has ended (or never started).
func (s *AX650Server) HasExited() bool {
	select {
	case <-s.currentDone():
		return true
	default:
		return false
	}
}

// ModelPath returns the model's short name: axmodel models have no single
// model file, and the scheduler compares this with Model.ShortName.
func (s *AX650Server) ModelPath() string { return s.name }

// Pid is the runner's process id (-1 before the first Load).
func (s *AX650Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// GetPort is the runner's loopback port.
func (s *AX650Server) GetPort() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// ContextLength is the number of positions the loaded model holds (0 before
// the runner has reported it).
func (s *AX650Server) ContextLength() int { return int(s.contextLength.Load()) }

// Parallel is how many requests the model serves at once: the KV slots the
// runner reports once loaded, until then the number asked for (1 when the
// runner chooses).
func (s *AX650Server) Parallel() int {
	if n := s.kvSlots.Load(); n > 0 {
		return int(n)
	}
	return int(max(s.asked.Load(), 1))
}

// MemorySize reports the NPU memory of the model as fully "on the GPU".
func (s *AX650Server) MemorySize() (total, vram uint64) {
	m := s.memory.Load()
	if m == 0 {
		m = s.estimate
	}
	return m, m
}

// VRAMByGPU is 0: the NPU is not one of the GPUs Ollama discovers.
func (s *AX650Server) VRAMByGPU(ml.DeviceID) uint64 { return 0 }

// GetDeviceInfos returns nil: the NPU is not a discovered GPU.
func (s *AX650Server) GetDeviceInfos(context.Context) []ml.DeviceInfo { return nil }

// Embedding returns the last token's final hidden state, L2-normalised (the
// runner's POST /v1/embedding), and the number of tokens embedded.
func (s *AX650Server) Embedding(ctx context.Context, input string) ([]float32, int, error) {
	resp, err := s.post(ctx, "/v1/embedding", AX650EmbeddingRequest{Content: input})
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var out AX650EmbeddingResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, 0, fmt.Errorf("AX650 runner embedding: %w", err)
	}
	return out.Embedding, out.PromptTokens, nil
}

// Chat serves a model whose package's own chat template renders its chats
// (renderer "axllm"): the runner renders the messages with axllm, then
// completes that prompt. Template errors come back as 400s.
func (s *AX650Server) Chat(ctx context.Context, req ChatRequest, fn func(ChatResponse)) error {
	prompt, err := s.ApplyChatTemplate(ctx, req)
	if err != nil {
		return err
	}
	return s.Completion(ctx, CompletionRequest{
		Prompt:   prompt,
		Format:   req.Format,
		Options:  req.Options,
		Shift:    req.Shift,
		Truncate: true,
		Logprobs: req.Logprobs,

		TopLogprobs:   req.TopLogprobs,
		ThinkingClose: ax650ThinkingClose(req.Think),
	}, func(r CompletionResponse) {
		fn(ChatResponse{
			Message:               api.Message{Role: "assistant", Content: r.Content},
			DoneReason:            r.DoneReason,
			Done:                  r.Done,
			PromptEvalCount:       r.PromptEvalCount,
			PromptEvalCachedCount: r.PromptEvalCachedCount,
			PromptEvalDuration:    r.PromptEvalDuration,
			EvalCount:             r.EvalCount,
			EvalDuration:          r.EvalDuration,
			Logprobs:              r.Logprobs,
		})
	})
}

// ApplyChatTemplate renders the conversation with the package's own chat
// template, in the runner (axllm_model_render_chat).
func (s *AX650Server) ApplyChatTemplate(ctx context.Context, req ChatRequest) (string, error) {
	resp, err := s.post(ctx, "/v1/chat_template", AX650ChatTemplateRequest{
		Messages: req.Messages,
		Tools:    req.Tools,
		Think:    req.Think,
	})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out AX650ChatTemplateResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("AX650 runner chat template: %w", err)
	}
	return out.Prompt, nil
}

// ax650Executable is the ollama executable the runner starts from: this
// process's own, or the one AXLLM_RUNNER_EXE names. The variable is for a
// process whose executable is another program: `ollama serve` of arm64
// started through the dynamic loader under qemu-user (the arm64 lane's
// scripts/qemu-aarch64-run, a workaround for a hang of qemu-user 7.2) has
// the loader as its os.Executable.
func ax650Executable(getenv func(string) string) (string, error) {
	if exe := strings.TrimSpace(getenv("AXLLM_RUNNER_EXE")); exe != "" {
		return exe, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("unable to find the ollama executable: %w", err)
	}
	if eval, err := filepath.EvalSymlinks(exe); err == nil {
		exe = eval
	}
	return exe, nil
}

// ax650RunnerCommand is the command that starts the runner: exe with args,
// or, when AXLLM_RUNNER_WRAPPER names a command (words split at spaces, no
// quoting), that command with exe and args after its own words. An emulator
// is what it is for: `ollama serve` of another architecture starts under
// qemu-user, whose execve runs the runner natively and fails without the
// kernel's binfmt_misc registration, so the runner needs the emulator named
// (AXLLM_RUNNER_WRAPPER=scripts/qemu-aarch64-run, with AXLLM_RUNNER_EXE:
// see ax650Executable). A tool
// such as valgrind fits too.
func ax650RunnerCommand(exe string, args []string, getenv func(string) string) *exec.Cmd {
	wrapper := strings.Fields(getenv("AXLLM_RUNNER_WRAPPER"))
	if len(wrapper) == 0 {
		return exec.Command(exe, args...)
	}
	return exec.Command(wrapper[0], append(append(wrapper[1:len(wrapper):len(wrapper)], exe), args...)...)
}

// ax650LoadFlags are the runner's load-parameter flags from serve's
// environment, the edge where AXLLM_AXCL_LIB (the runtime library, for
// example the simulator), AXLLM_SCHEDULE (the call schedule) and AXLLM_DEVICE
// (the card's index) are read; axllm itself reads no environment variable.
func ax650LoadFlags(getenv func(string) string) []string {
	var flags []string
	for _, f := range []struct{ env, flag string }{
		{"AXLLM_AXCL_LIB", "--runtime"},
		{"AXLLM_SCHEDULE", "--schedule"},
		{"AXLLM_DEVICE", "--device"},
	} {
		if v := strings.TrimSpace(getenv(f.env)); v != "" {
			flags = append(flags, f.flag, v)
		}
	}
	return flags
}

// ax650ThinkingClose is what ends the thinking block of a chat rendered by
// the package's own template (Qwen3's "</think>") when thinking is on, so
// that a format constrains only the answer after it.
func ax650ThinkingClose(think *api.ThinkValue) []string {
	if think == nil || !think.Bool() {
		return nil
	}
	return []string{"</think>"}
}
