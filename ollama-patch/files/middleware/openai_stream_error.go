package middleware

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ollama/ollama/openai"
)

// writeStreamError turns an error that arrives in the middle of a stream
// (the routes write {"error": "..."} as a line once the 200 is sent; a runner
// that dies mid-generation ends that way) into an OpenAI error event,
// `data: {"error": {...}}`, which the official clients raise (openai-python's
// APIError), instead of an empty delta that ends the stream with no
// finish_reason. It reports whether data was such an error.
func writeStreamError(w gin.ResponseWriter, stream bool, data []byte) (bool, error) {
	if !stream {
		return false, nil
	}
	var line struct {
		Error *string `json:"error"`
	}
	if json.Unmarshal(data, &line) != nil || line.Error == nil {
		return false, nil
	}
	d, err := json.Marshal(openai.NewError(http.StatusInternalServerError, *line.Error))
	if err != nil {
		return true, err
	}
	w.Header().Set("Content-Type", "text/event-stream")
	if _, err := fmt.Fprintf(w, "data: %s\n\n", d); err != nil {
		return true, err
	}
	w.Flush()
	return true, nil
}
