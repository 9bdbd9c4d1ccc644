package middleware

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/ollama/ollama/api"
)

func TestCompletionsMiddlewareThinking(t *testing.T) {
	gin.SetMode(gin.TestMode)
	cases := []struct {
		name   string
		body   string
		want   any // the think value the handler sees; nil when unset
		status int
	}{
		{"unset keeps the model's default", `{"model":"m","prompt":"p"}`, nil, 200},
		{"think false", `{"model":"m","prompt":"p","think":false}`, false, 200},
		{"think true", `{"model":"m","prompt":"p","think":true}`, true, 200},
		{"reasoning_effort none", `{"model":"m","prompt":"p","reasoning_effort":"none"}`, false, 200},
		{"reasoning.effort high", `{"model":"m","prompt":"p","reasoning":{"effort":"high"}}`, "high", 200},
		{"think wins over reasoning_effort", `{"model":"m","prompt":"p","think":false,"reasoning_effort":"high"}`, false, 200},
		{"unknown effort", `{"model":"m","prompt":"p","reasoning_effort":"lots"}`, nil, 400},
		{"think of the wrong type", `{"model":"m","prompt":"p","think":[1]}`, nil, 400},
		{"not JSON", `{"model":`, nil, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got api.GenerateRequest
			called := false
			router := gin.New()
			router.POST("/v1/completions", CompletionsMiddleware(), func(c *gin.Context) {
				called = true
				if err := c.ShouldBindJSON(&got); err != nil {
					t.Fatal(err)
				}
				c.Status(http.StatusOK)
			})
			w := httptest.NewRecorder()
			router.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/completions", strings.NewReader(tc.body)))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status != http.StatusOK {
				if called {
					t.Error("the handler ran for a refused request")
				}
				return
			}
			if got.Prompt != "p" || got.Model != "m" {
				t.Errorf("request %+v lost its fields", got)
			}
			switch {
			case tc.want == nil && got.Think != nil:
				t.Errorf("think = %v, want unset", got.Think.Value)
			case tc.want != nil && (got.Think == nil || got.Think.Value != tc.want):
				b, _ := json.Marshal(got.Think)
				t.Errorf("think = %s, want %v", b, tc.want)
			}
		})
	}
}
