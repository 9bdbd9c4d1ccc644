package server

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/llm"
)

// newAXModelServer creates the "tiny" axmodel model and a server whose
// scheduler hands out mock.
func newAXModelServer(t *testing.T, mock *mockRunner) *Server {
	t.Helper()
	gin.SetMode(gin.TestMode)
	t.Setenv("OLLAMA_MODELS", t.TempDir())
	useAXCheck(t, axChecked(), nil)
	var creator Server
	if code, body := createAX(t, &creator, api.CreateRequest{Model: "tiny", Files: axPackage(t, axLayouts()["axllm"])}); code != http.StatusOK {
		t.Fatalf("create: %d %s", code, body)
	}
	return newServerWithMockRunner(t, mock)
}

// streamed runs completions that emit pieces, then a final response.
func streamed(pieces ...string) func(context.Context, llm.CompletionRequest, func(llm.CompletionResponse)) error {
	return func(_ context.Context, _ llm.CompletionRequest, fn func(llm.CompletionResponse)) error {
		for _, p := range pieces {
			fn(llm.CompletionResponse{Content: p})
		}
		fn(llm.CompletionResponse{Done: true, DoneReason: llm.DoneReasonStop, PromptEvalCount: 12, EvalCount: len(pieces)})
		return nil
	}
}

func TestAXModelChat(t *testing.T) {
	weather := api.Tool{Type: "function", Function: api.ToolFunction{Name: "get_weather", Description: "Weather in a city"}}
	cases := []struct {
		name         string
		think        *api.ThinkValue
		tools        []api.Tool
		pieces       []string
		promptSuffix string
		promptHas    []string
		thinking     string
		content      string
		toolCall     string
	}{
		{
			name:         "thinking by default",
			pieces:       []string{"Let me ", "see.</think>", "\n\nHello!"},
			promptSuffix: "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n<think>\n",
			thinking:     "Let me see.",
			content:      "Hello!",
		},
		{
			name:         "thinking off",
			think:        &api.ThinkValue{Value: false},
			pieces:       []string{"Hello", " there"},
			promptSuffix: "<|im_start|>assistant\n<think>\n\n</think>\n\n",
			content:      "Hello there",
		},
		{
			name:      "tool call",
			think:     &api.ThinkValue{Value: false},
			tools:     []api.Tool{weather},
			pieces:    []string{"<tool_call>\n{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"},
			promptHas: []string{"# Tools", `"name": "get_weather"`, "<tool_call>"},
			toolCall:  "get_weather",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mock := &mockRunner{CompletionFn: streamed(tc.pieces...), contextLength: 255}
			s := newAXModelServer(t, mock)
			stream := false
			w := createRequest(t, s.ChatHandler, api.ChatRequest{
				Model:    "tiny",
				Messages: []api.Message{{Role: "user", Content: "hello"}},
				Think:    tc.think,
				Tools:    tc.tools,
				Stream:   &stream,
				Options:  map[string]any{"num_predict": 7, "temperature": 0.25, "seed": 42, "stop": []string{"END"}},
			})
			if w.Code != http.StatusOK {
				t.Fatalf("chat: %d %s", w.Code, w.Body)
			}
			var resp api.ChatResponse
			if err := json.NewDecoder(w.Body).Decode(&resp); err != nil {
				t.Fatal(err)
			}
			prompt := mock.CompletionRequest.Prompt
			if tc.promptSuffix != "" && !strings.HasSuffix(prompt, tc.promptSuffix) {
				t.Errorf("prompt %q does not end with %q", prompt, tc.promptSuffix)
			}
			for _, s := range tc.promptHas {
				if !strings.Contains(prompt, s) {
					t.Errorf("prompt %q does not contain %q", prompt, s)
				}
			}
			if resp.Message.Thinking != tc.thinking || strings.TrimSpace(resp.Message.Content) != tc.content {
				t.Errorf("thinking %q content %q; want %q %q", resp.Message.Thinking, resp.Message.Content, tc.thinking, tc.content)
			}
			if tc.toolCall != "" {
				if len(resp.Message.ToolCalls) != 1 || resp.Message.ToolCalls[0].Function.Name != tc.toolCall {
					t.Fatalf("tool calls %+v", resp.Message.ToolCalls)
				}
				if city, _ := resp.Message.ToolCalls[0].Function.Arguments.Get("city"); city != "Paris" {
					t.Errorf("arguments %v", resp.Message.ToolCalls[0].Function.Arguments)
				}
			}
			if resp.DoneReason != "stop" || resp.PromptEvalCount != 12 || resp.EvalCount != len(tc.pieces) {
				t.Errorf("done %q prompt_eval_count %d eval_count %d", resp.DoneReason, resp.PromptEvalCount, resp.EvalCount)
			}
			o := mock.CompletionRequest.Options
			if o.NumPredict != 7 || o.Temperature != 0.25 || o.Seed != 42 || !slices.Equal(o.Stop, []string{"END"}) || o.TopK != 40 || o.NumCtx != 255 {
				t.Errorf("options not passed on: %+v", o)
			}
			if !mock.CompletionRequest.Truncate {
				t.Error("truncation is off for an axmodel chat")
			}
		})
	}
}

func TestAXModelGenerate(t *testing.T) {
	mock := &mockRunner{CompletionFn: streamed("</think>", "Hi!"), contextLength: 255}
	s := newAXModelServer(t, mock)
	stream := false
	w := createRequest(t, s.GenerateHandler, api.GenerateRequest{Model: "tiny", Prompt: "hello", Stream: &stream})
	if w.Code != http.StatusOK {
		t.Fatalf("generate: %d %s", w.Code, w.Body)
	}
	var resp api.GenerateResponse
	if err := json.NewDecoder(w.Body).Decode(&resp); err != nil {
		t.Fatal(err)
	}
	if resp.Response != "Hi!" || !resp.Done || resp.DoneReason != "stop" {
		t.Errorf("response %+v", resp)
	}
	if !strings.Contains(mock.CompletionRequest.Prompt, "<|im_start|>user\nhello<|im_end|>") {
		t.Errorf("prompt %q not rendered by the qwen3 renderer", mock.CompletionRequest.Prompt)
	}
}

func TestAXModelRejectsUnsupported(t *testing.T) {
	cases := []struct {
		name string
		call func(s *Server) (int, string)
		want string
	}{
		{"chat images", func(s *Server) (int, string) {
			w := createRequest(t, s.ChatHandler, api.ChatRequest{Model: "tiny", Messages: []api.Message{{Role: "user", Content: "hi", Images: []api.ImageData{[]byte("png")}}}})
			return w.Code, w.Body.String()
		}, "do not support image input"},
		{"generate images", func(s *Server) (int, string) {
			w := createRequest(t, s.GenerateHandler, api.GenerateRequest{Model: "tiny", Prompt: "hi", Images: []api.ImageData{[]byte("png")}})
			return w.Code, w.Body.String()
		}, "do not support image input"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			mock := &mockRunner{CompletionFn: func(context.Context, llm.CompletionRequest, func(llm.CompletionResponse)) error {
				called = true
				return nil
			}}
			s := newAXModelServer(t, mock)
			code, body := tc.call(s)
			if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Errorf("%d %s; want 400 %q", code, body, tc.want)
			}
			if called {
				t.Error("the runner was called")
			}
		})
	}
}

func TestAXModelRunnerStatusError(t *testing.T) {
	// A runner's client error (prompt too long) reaches the client as is.
	mock := &mockRunner{CompletionFn: func(context.Context, llm.CompletionRequest, func(llm.CompletionResponse)) error {
		return api.StatusError{StatusCode: http.StatusBadRequest, ErrorMessage: "the prompt (300 tokens) is longer than the context length of this model (255 tokens)"}
	}}
	s := newAXModelServer(t, mock)
	w := createRequest(t, s.ChatHandler, api.ChatRequest{Model: "tiny", Messages: []api.Message{{Role: "user", Content: "hi"}}})
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "longer than the context length") {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}

func TestAXModelShow(t *testing.T) {
	s := newAXModelServer(t, &mockRunner{})
	w := createRequest(t, s.ShowHandler, api.ShowRequest{Model: "tiny"})
	if w.Code != http.StatusOK {
		t.Fatalf("show: %d %s", w.Code, w.Body)
	}
	var resp api.ShowResponse
	if err := json.NewDecoder(w.Body).Decode(&resp); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.Modelfile, "# Modelfile generated by \"ollama show\"\nFROM tiny:latest\n") {
		t.Errorf("modelfile:\n%s", resp.Modelfile)
	}
	for _, want := range []string{"RENDERER qwen3\n", "PARSER qwen3-thinking\n"} {
		if !strings.Contains(resp.Modelfile, want) {
			t.Errorf("modelfile lacks %q:\n%s", want, resp.Modelfile)
		}
	}
	if resp.Details.Format != "axmodel" || resp.Details.Family != "qwen3" || resp.Details.ParameterSize != "596.04M" {
		t.Errorf("details %+v", resp.Details)
	}
	if resp.ModelInfo["general.architecture"] != "qwen3" || resp.ModelInfo["qwen3.block_count"] != float64(28) ||
		resp.ModelInfo["axmodel.file_count"] != float64(3) || resp.ModelInfo["qwen3.context_length"] != float64(255) {
		t.Errorf("model info %v", resp.ModelInfo)
	}
	caps := make([]string, len(resp.Capabilities))
	for i, c := range resp.Capabilities {
		caps[i] = string(c)
	}
	if !slices.Contains(caps, "completion") || !slices.Contains(caps, "thinking") || !slices.Contains(caps, "tools") {
		t.Errorf("capabilities %v", caps)
	}
}

// num_ctx is the compiled context: a request's or a Modelfile's other value
// is replaced by it (with a warning), and the default too.
func TestAXModelNumCtxIsTheCompiledContext(t *testing.T) {
	cases := []struct {
		name      string
		modelfile map[string]any
		request   map[string]any
		wantCode  int
	}{
		{"default", nil, nil, 200},
		{"request asks for more", nil, map[string]any{"num_ctx": 8192}, 200},
		{"request asks for less", nil, map[string]any{"num_ctx": 64}, 200},
		{"request asks for it", nil, map[string]any{"num_ctx": 255}, 200},
		{"Modelfile asks for more", map[string]any{"num_ctx": 4096}, nil, 200},
		{"wrong type is Ollama's error", nil, map[string]any{"num_ctx": "lots"}, 500},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mock := &mockRunner{CompletionFn: streamed("hi"), contextLength: 255}
			s := newAXModelServer(t, mock)
			name := "tiny"
			if tc.modelfile != nil {
				var creator Server
				if code, body := createAX(t, &creator, api.CreateRequest{Model: "tiny-ctx", From: "tiny", Parameters: tc.modelfile}); code != http.StatusOK {
					t.Fatalf("create: %d %s", code, body)
				}
				name = "tiny-ctx"
			}
			stream := false
			w := createRequest(t, s.GenerateHandler, api.GenerateRequest{Model: name, Prompt: "hello", Stream: &stream, Options: tc.request})
			if w.Code != tc.wantCode {
				t.Fatalf("generate: %d %s, want %d", w.Code, w.Body, tc.wantCode)
			}
			if tc.wantCode == http.StatusOK && mock.CompletionRequest.Options.NumCtx != 255 {
				t.Errorf("num_ctx %d reached the runner, want the compiled 255", mock.CompletionRequest.Options.NumCtx)
			}
		})
	}
}

// newOwnTemplateServer creates "tiny" from a Llama package with a chat
// template: renderer axllm, chats rendered by the runner.
func newOwnTemplateServer(t *testing.T, mock *mockRunner) *Server {
	t.Helper()
	gin.SetMode(gin.TestMode)
	t.Setenv("OLLAMA_MODELS", t.TempDir())
	info := axChecked()
	info.ChatTemplate = axLlama3Template
	useAXCheck(t, info, nil)
	files := maps.Clone(axLayouts()["axllm"])
	files["qwen3_tokenizer/config.json"] = `{"model_type":"llama"}`
	cfg, _ := json.Marshal(map[string]any{"chat_template": axLlama3Template})
	files["qwen3_tokenizer/tokenizer_config.json"] = string(cfg)
	var creator Server
	if code, body := createAX(t, &creator, api.CreateRequest{Model: "tiny", System: "be brief", Files: axPackage(t, files)}); code != http.StatusOK {
		t.Fatalf("create: %d %s", code, body)
	}
	return newServerWithMockRunner(t, mock)
}

// A model rendered with its package's own template: chat sends the messages
// (the Modelfile's system prompt first) to the runner's Chat, generate
// renders through ApplyChatTemplate and completes the result, raw generate
// passes its prompt, a template's refusal is a 400, and show gives the
// package's template.
func TestAXModelOwnTemplate(t *testing.T) {
	mock := &mockRunner{
		contextLength: 255,
		CompletionFn:  streamed("Paris."),
		ChatFn: func(_ context.Context, _ llm.ChatRequest, fn func(llm.ChatResponse)) error {
			fn(llm.ChatResponse{Message: api.Message{Role: "assistant", Content: "Paris."}})
			fn(llm.ChatResponse{Done: true, DoneReason: llm.DoneReasonStop, PromptEvalCount: 37, EvalCount: 2})
			return nil
		},
		TemplateFn: func(_ context.Context, r llm.ChatRequest) (string, error) {
			return "rendered:" + r.Messages[len(r.Messages)-1].Content, nil
		},
	}
	s := newOwnTemplateServer(t, mock)
	stream := false

	w := createRequest(t, s.ChatHandler, api.ChatRequest{Model: "tiny", Stream: &stream,
		Messages: []api.Message{{Role: "user", Content: "capital of France?"}}, Think: &api.ThinkValue{Value: false}})
	if w.Code != http.StatusOK {
		t.Fatalf("chat: %d %s", w.Code, w.Body)
	}
	var chat api.ChatResponse
	if err := json.NewDecoder(w.Body).Decode(&chat); err != nil {
		t.Fatal(err)
	}
	if chat.Message.Content != "Paris." || chat.PromptEvalCount != 37 || chat.DoneReason != "stop" {
		t.Errorf("chat response %+v", chat)
	}
	want := []api.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "capital of France?"}}
	if !slices.EqualFunc(mock.ChatRequest.Messages, want, func(a, b api.Message) bool { return a.Role == b.Role && a.Content == b.Content }) {
		t.Errorf("messages to the runner %+v", mock.ChatRequest.Messages)
	}
	if mock.ChatRequest.Think == nil || mock.ChatRequest.Think.Bool() || mock.ChatRequest.Options.NumCtx != 255 {
		t.Errorf("think %v options %+v", mock.ChatRequest.Think, mock.ChatRequest.Options)
	}

	// Thinking and tools need a parser, which such a model has not.
	w = createRequest(t, s.ChatHandler, api.ChatRequest{Model: "tiny", Stream: &stream,
		Messages: []api.Message{{Role: "user", Content: "hi"}}, Think: &api.ThinkValue{Value: true}})
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "does not support thinking") {
		t.Errorf("think true: %d %s", w.Code, w.Body)
	}

	w = createRequest(t, s.GenerateHandler, api.GenerateRequest{Model: "tiny", Prompt: "capital?", Stream: &stream})
	if w.Code != http.StatusOK {
		t.Fatalf("generate: %d %s", w.Code, w.Body)
	}
	if mock.CompletionRequest.Prompt != "rendered:capital?" || mock.ChatRequest.Messages[0].Content != "be brief" {
		t.Errorf("generate prompt %q from %+v", mock.CompletionRequest.Prompt, mock.ChatRequest.Messages)
	}
	w = createRequest(t, s.GenerateHandler, api.GenerateRequest{Model: "tiny", Prompt: "as it is", Raw: true, Stream: &stream})
	if w.Code != http.StatusOK || mock.CompletionRequest.Prompt != "as it is" {
		t.Errorf("raw generate: %d %s, prompt %q", w.Code, w.Body, mock.CompletionRequest.Prompt)
	}

	mock.ChatFn = func(context.Context, llm.ChatRequest, func(llm.ChatResponse)) error {
		return api.StatusError{StatusCode: http.StatusBadRequest, ErrorMessage: "the model's chat template: roles must alternate"}
	}
	w = createRequest(t, s.ChatHandler, api.ChatRequest{Model: "tiny", Stream: &stream,
		Messages: []api.Message{{Role: "assistant", Content: "hi"}}})
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "roles must alternate") {
		t.Errorf("template error: %d %s", w.Code, w.Body)
	}

	w = createRequest(t, s.ShowHandler, api.ShowRequest{Model: "tiny"})
	var show api.ShowResponse
	if err := json.NewDecoder(w.Body).Decode(&show); err != nil {
		t.Fatal(err)
	}
	if show.Template != axLlama3Template || show.Renderer != axllmRenderer || show.Parser != "" || !strings.Contains(show.Modelfile, "RENDERER axllm\n") {
		t.Errorf("show: template %q renderer %q parser %q\n%s", show.Template, show.Renderer, show.Parser, show.Modelfile)
	}
}
