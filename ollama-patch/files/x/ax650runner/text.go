package ax650runner

import (
	"strings"
	"unicode/utf8"
)

// utf8Buffer holds back an incomplete UTF-8 sequence at the end of the text
// so that every piece sent to the client is valid UTF-8. (axllm already
// returns whole characters; this keeps the guarantee independent of it.)
type utf8Buffer struct {
	pending []byte
}

// Add appends s and returns the longest complete prefix; invalid bytes that
// can never complete are replaced with U+FFFD.
func (b *utf8Buffer) Add(s string) string {
	b.pending = append(b.pending, s...)
	n := completeUTF8Prefix(b.pending)
	out := strings.ToValidUTF8(string(b.pending[:n]), "\uFFFD")
	b.pending = append(b.pending[:0], b.pending[n:]...)
	return out
}

// Flush returns whatever is left, with incomplete sequences replaced.
func (b *utf8Buffer) Flush() string {
	out := strings.ToValidUTF8(string(b.pending), "\uFFFD")
	b.pending = b.pending[:0]
	return out
}

// completeUTF8Prefix is the length of data without a trailing incomplete
// (but still completable) UTF-8 sequence.
func completeUTF8Prefix(data []byte) int {
	// A sequence is at most 4 bytes: look back at most 3 for its start.
	for back := 1; back <= 3 && back <= len(data); back++ {
		c := data[len(data)-back]
		if c < utf8.RuneSelf {
			return len(data) // ASCII: nothing pending
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(data[len(data)-back:]) {
				return len(data) - back
			}
			return len(data)
		}
	}
	return len(data)
}

// stopFilter cuts the text at the first stop string and holds back a tail
// that could still become one, so a stop string never reaches the client.
// (axllm applies the same stop strings; this filter keeps the guarantee
// even if a stop string spans pieces the library already released.)
type stopFilter struct {
	stops   []string
	pending string
}

func newStopFilter(stops []string) *stopFilter {
	f := &stopFilter{}
	for _, s := range stops {
		if s != "" {
			f.stops = append(f.stops, s)
		}
	}
	return f
}

// Add appends s and returns the text that is safe to send; stopped is true
// when a stop string was found (the text before it is returned, the rest is
// dropped).
func (f *stopFilter) Add(s string) (out string, stopped bool) {
	if len(f.stops) == 0 {
		return s, false
	}
	text := f.pending + s
	first := -1
	for _, stop := range f.stops {
		if i := strings.Index(text, stop); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first >= 0 {
		f.pending = ""
		return text[:first], true
	}
	hold := 0
	for _, stop := range f.stops {
		for n := min(len(stop)-1, len(text)); n > hold; n-- {
			if strings.HasSuffix(text, stop[:n]) {
				hold = n
				break
			}
		}
	}
	f.pending = text[len(text)-hold:]
	return text[:len(text)-hold], false
}

// Flush returns the held-back tail at the end of a generation.
func (f *stopFilter) Flush() string {
	out := f.pending
	f.pending = ""
	return out
}
