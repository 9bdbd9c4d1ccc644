package ax650runner

import "sync"

// turns lets one request at a time step the engine, first come first
// served. A request that has taken a step (a prefill or one token) queues
// again behind every request already waiting, so the active requests
// alternate step by step, round-robin: a short chat streams while a long
// generation runs, each on its own KV slot.
type turns struct {
	mu    sync.Mutex
	busy  bool
	queue []chan struct{}
}

// turn is one request's place in the queue; its channel is reused for every
// step it takes.
type turn struct{ ready chan struct{} }

func newTurn() turn { return turn{ready: make(chan struct{}, 1)} }

// acquire waits until it is t's turn.
func (q *turns) acquire(t turn) {
	q.mu.Lock()
	if !q.busy {
		q.busy = true
		q.mu.Unlock()
		return
	}
	q.queue = append(q.queue, t.ready)
	q.mu.Unlock()
	<-t.ready
}

// release hands the engine to the request waiting longest.
func (q *turns) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queue) == 0 {
		q.busy = false
		return
	}
	next := q.queue[0]
	q.queue = q.queue[1:]
	next <- struct{}{}
}
