package middleware

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/ollama/ollama/openai"
)

// An error line in the middle of a stream becomes an OpenAI error event on
// both streaming endpoints; the same line outside a stream is left alone.
func TestCompletionsStreamErrorEvent(t *testing.T) {
	gin.SetMode(gin.TestMode)
	for _, name := range []string{"chat", "completions"} {
		rec := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(rec)
		var w interface{ Write([]byte) (int, error) }
		if name == "chat" {
			w = &ChatWriter{stream: true, id: "x", BaseWriter: BaseWriter{ResponseWriter: c.Writer}}
		} else {
			w = &CompleteWriter{stream: true, id: "x", BaseWriter: BaseWriter{ResponseWriter: c.Writer}}
		}
		line := []byte(`{"error":"AX650 runner for tiny exited unexpectedly"}`)
		if n, err := w.Write(line); n != len(line) || err != nil {
			t.Fatalf("%s: wrote %d, %v", name, n, err)
		}
		body := rec.Body.String()
		if !strings.HasPrefix(body, "data: ") || !strings.HasSuffix(body, "\n\n") {
			t.Fatalf("%s: not one event: %q", name, body)
		}
		var ev openai.ErrorResponse
		if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(body, "data: "))), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Error.Message != "AX650 runner for tiny exited unexpectedly" || ev.Error.Type != "api_error" {
			t.Errorf("%s: event %+v", name, ev)
		}
	}
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	if handled, _ := writeStreamError(c.Writer, false, []byte(`{"error":"x"}`)); handled || rec.Body.Len() != 0 {
		t.Errorf("a non-streamed error was taken for a stream's")
	}
}
