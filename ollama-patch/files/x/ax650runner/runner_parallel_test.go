package ax650runner

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/llm"
)

// slotEngine is a fake engine with KV slots: a generation's pieces are its
// prompt's first byte and a counter ("a0", "a1", ...), as many as the
// prompt's length times 3. It logs every engine call ("begin a", "a2")
// and fails the test if two calls ever overlap.
type slotEngine struct {
	t      *testing.T
	slots  int
	inCall atomic.Int32
	active atomic.Int32
	most   atomic.Int32

	mu  sync.Mutex
	log []string
}

func (e *slotEngine) Info() Info { return Info{ContextLength: 256, VocabSize: 256, KVSlots: e.slots} }

func (e *slotEngine) Tokenize(text string) ([]int32, error) {
	ids := make([]int32, len(text))
	for i := range text {
		ids[i] = int32(text[i])
	}
	return ids, nil
}

func (e *slotEngine) Detokenize([]int32) (string, error) { return "", nil }
func (e *slotEngine) Close()                             {}

// call runs one engine call, checking that no other is running.
func (e *slotEngine) call(entry string) {
	if e.inCall.Add(1) != 1 {
		e.t.Errorf("%s overlaps another engine call", entry)
	}
	time.Sleep(2 * time.Millisecond)
	e.mu.Lock()
	e.log = append(e.log, entry)
	e.mu.Unlock()
	e.inCall.Add(-1)
}

func (e *slotEngine) Begin(tokens []int32, _ Params) (Generation, error) {
	n := e.active.Add(1)
	if n > int32(e.slots) {
		e.t.Errorf("%d generations alive, the engine has %d slots", n, e.slots)
	}
	for m := e.most.Load(); n > m && !e.most.CompareAndSwap(m, n); m = e.most.Load() {
	}
	name := string(rune(tokens[0]))
	e.call("begin " + name)
	return &slotGeneration{e: e, name: name, total: 3 * len(tokens)}, nil
}

type slotGeneration struct {
	e         *slotEngine
	name      string
	i, total  int
	cancelled atomic.Bool
	ended     atomic.Bool
}

func (g *slotGeneration) Next() (string, DoneReason, error) {
	if g.cancelled.Load() {
		return "", llm.AxllmDoneCancelled, nil
	}
	if g.i == g.total {
		return "", llm.AxllmDoneMaxTokens, nil
	}
	piece := fmt.Sprintf("%s%d ", g.name, g.i)
	g.e.call(strings.TrimSpace(piece))
	g.i++
	return piece, llm.AxllmDoneNone, nil
}

func (g *slotGeneration) Cancel() { g.cancelled.Store(true) }
func (g *slotGeneration) Stats() Stats {
	return Stats{GeneratedTokens: g.i}
}
func (g *slotGeneration) End() {
	if !g.ended.Swap(true) {
		g.e.active.Add(-1)
	}
}

// want is what a prompt's generation produces alone.
func want(prompt string) string {
	var b strings.Builder
	for i := range 3 * len(prompt) {
		fmt.Fprintf(&b, "%c%d ", prompt[0], i)
	}
	return b.String()
}

func complete(ctx context.Context, r *Runner, prompt string, onPiece func(string)) (string, error) {
	var b strings.Builder
	err := r.Completion(ctx, llm.AX650CompletionRequest{Prompt: prompt, Options: opts(func(o *api.Options) { o.NumPredict = -1 })},
		func(resp llm.CompletionResponse) {
			b.WriteString(resp.Content)
			if onPiece != nil && !resp.Done {
				onPiece(resp.Content)
			}
		})
	return b.String(), err
}

func TestParallelShortRequestStreamsDuringALongOne(t *testing.T) {
	e := &slotEngine{t: t, slots: 2}
	r := NewRunner(e)
	long := strings.Repeat("L", 20) // 60 pieces
	started := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	var longOut string
	wg.Go(func() {
		var err error
		longOut, err = complete(t.Context(), r, long, func(string) { once.Do(func() { close(started) }) })
		if err != nil {
			t.Error(err)
		}
	})
	<-started
	shortOut, err := complete(t.Context(), r, "sss", nil) // 9 pieces
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if shortOut != want("sss") || longOut != want(long) {
		t.Errorf("outputs differ from each alone:\n%q\n%q", shortOut, longOut)
	}
	// From the short request's begin to its last piece, the calls alternate.
	e.mu.Lock()
	defer e.mu.Unlock()
	first := -1
	for i, c := range e.log {
		if c == "begin s" {
			first = i
		}
	}
	last := -1
	for i, c := range e.log {
		if c == "s8" {
			last = i
		}
	}
	if first < 0 || last < 0 {
		t.Fatalf("log lacks the short request: %v", e.log)
	}
	// Round-robin: the long request takes one step per step of the short
	// one (a little slack for a goroutine late to queue again on a busy machine).
	longSteps := 0
	for _, c := range e.log[first:last] {
		if c[0] == 'L' {
			longSteps++
		}
	}
	if longSteps == 0 || longSteps > 9+3 {
		t.Errorf("the long request took %d steps while the short one took 9: %v", longSteps, e.log[first:last+1])
	}
	if !strings.HasPrefix(e.log[len(e.log)-1], "L") {
		t.Errorf("the long request did not finish last: %v", e.log[len(e.log)-5:])
	}
}

func TestParallelAdmitsOneRequestPerSlot(t *testing.T) {
	e := &slotEngine{t: t, slots: 2}
	r := NewRunner(e)
	var wg sync.WaitGroup
	for i := range 6 {
		prompt := strings.Repeat(string(rune('a'+i)), 4)
		wg.Go(func() {
			got, err := complete(t.Context(), r, prompt, nil)
			if err != nil || got != want(prompt) {
				t.Errorf("%s: %q, %v", prompt, got, err)
			}
		})
	}
	wg.Wait()
	if got := e.most.Load(); got != 2 {
		t.Errorf("at most %d generations alive, want 2 (the slots)", got)
	}
}

func TestParallelCancelOneLeavesTheOthers(t *testing.T) {
	e := &slotEngine{t: t, slots: 3}
	r := NewRunner(e)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	results := make([]string, 3)
	errs := make([]error, 3)
	for i, p := range []string{"aaaaaa", "bbbbbb", "cccccc"} {
		c := t.Context()
		var onPiece func(string)
		if i == 1 {
			c = ctx
			n := 0
			onPiece = func(string) {
				if n++; n == 3 {
					cancel()
				}
			}
		}
		wg.Go(func() { results[i], errs[i] = complete(c, r, p, onPiece) })
	}
	wg.Wait()
	if errs[1] == nil || !strings.HasPrefix(want("bbbbbb"), results[1]) {
		t.Errorf("cancelled request: %q, %v", results[1], errs[1])
	}
	for _, i := range []int{0, 2} {
		if errs[i] != nil || results[i] != want(strings.Repeat(string(rune('a'+i)), 6)) {
			t.Errorf("request %d: %q, %v", i, results[i], errs[i])
		}
	}
	if e.active.Load() != 0 {
		t.Errorf("%d generations not ended", e.active.Load())
	}
}
