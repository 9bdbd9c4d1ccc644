package middleware

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/gin-gonic/gin"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/openai"
)

// bindCompletionRequest reads a /v1/completions body into req, as
// ShouldBindJSON does, and returns the thinking the client asked for:
// `think` as on /api/generate, or `reasoning.effort` / `reasoning_effort`
// as on /v1/chat/completions ("none" turns thinking off). The completions
// format has no field for the thinking itself, so a thinking model answers
// there only after it has finished thinking; these let a client turn that
// off. nil means the model's default.
func bindCompletionRequest(c *gin.Context, req *openai.CompletionRequest) (*api.ThinkValue, error) {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return nil, err
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(req); err != nil {
		return nil, err
	}
	var extra struct {
		Think           *api.ThinkValue   `json:"think"`
		Reasoning       *openai.Reasoning `json:"reasoning"`
		ReasoningEffort *string           `json:"reasoning_effort"`
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&extra); err != nil {
		return nil, fmt.Errorf("invalid thinking value: %w", err)
	}
	if extra.Think != nil {
		return extra.Think, nil
	}
	var effort string
	if extra.Reasoning != nil {
		effort = extra.Reasoning.Effort
	} else if extra.ReasoningEffort != nil {
		effort = *extra.ReasoningEffort
	}
	return openai.ThinkingFromReasoningEffort(effort)
}
