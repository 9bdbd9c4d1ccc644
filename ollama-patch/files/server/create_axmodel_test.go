package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/manifest"
	"github.com/ollama/ollama/types/model"
)

const (
	axHybridTemplate   = `{%- for m in messages %}<|im_start|>{{ m.role }}{% endfor %}{%- if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>{% endif %}`
	axInstructTemplate = `{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>{% endfor %}{% if tools %}<tool_call>{% endif %}`
	axLlama3Template   = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
	axRuntimeConfig    = `{"model_name":"Tiny","tokenizer_type":"Qwen3","template_filename_axmodel":"qwen3_p16_l%d_together.axmodel","axmodel_num":2}`
	axPostConfigTopK   = `{"enable_temperature":false,"temperature":0.9,"enable_repetition_penalty":false,"repetition_penalty":1.2,"penalty_window":20,"enable_top_p_sampling":false,"top_p":0.8,"enable_top_k_sampling":true,"top_k":1}`
	// Qwen3-0.6B's geometry: 0.6B parameters (0.75B counting the untied head).
	axHFConfig      = `{"model_type":"qwen3","architectures":["Qwen3ForCausalLM"],"hidden_size":1024,"intermediate_size":3072,"num_hidden_layers":28,"num_attention_heads":16,"num_key_value_heads":8,"head_dim":128,"vocab_size":151936,"tie_word_embeddings":true}`
	axPostConfigAll = `{"enable_temperature":true,"temperature":0.7,"enable_repetition_penalty":true,"repetition_penalty":1.1,"penalty_window":32,"enable_top_p_sampling":true,"top_p":0.8,"enable_top_k_sampling":false,"top_k":1}`
)

func tokenizerConfig(tmpl string) string {
	b, _ := json.Marshal(map[string]any{"chat_template": tmpl, "eos_token": "<|im_end|>"})
	return string(b)
}

// axPackage uploads the files of a package as blobs and returns the create
// request's files map.
func axPackage(t *testing.T, files map[string]string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(files))
	for name, content := range files {
		out[name] = createTestBlob(t, []byte(content))
	}
	return out
}

func axLayouts() map[string]map[string]string {
	return map[string]map[string]string{
		"axllm": {
			"config.json":                            axRuntimeConfig,
			"post_config.json":                       axPostConfigTopK,
			"qwen3_p16_l0_together.axmodel":          "layer0",
			"qwen3_p16_l1_together.axmodel":          "layer1",
			"qwen3_post.axmodel":                     "post",
			"model.embed_tokens.weight.bfloat16.bin": "embed",
			"qwen3_tokenizer/config.json":            axHFConfig,
			"qwen3_tokenizer/tokenizer.json":         `{"model":{}}`,
			"qwen3_tokenizer/tokenizer_config.json":  tokenizerConfig(axHybridTemplate),
		},
		"hf-package": {
			"config.json":      "",
			"post_config.json": axPostConfigTopK,
			"tiny-qwen3-ax650/qwen3_p16_l0_together.axmodel":          "layer0",
			"tiny-qwen3-ax650/qwen3_post.axmodel":                     "post",
			"tiny-qwen3-ax650/model.embed_tokens.weight.bfloat16.bin": "embed",
			"qwen3_tokenizer/config.json":                             `{"model_type":"qwen3"}`,
			"qwen3_tokenizer/tokenizer.json":                          `{"model":{}}`,
			"qwen3_tokenizer/tokenizer_config.json":                   tokenizerConfig(axHybridTemplate),
		},
		"compiled": {
			"post_config.json":                       axPostConfigTopK,
			"qwen3_p16_l0_together.axmodel":          "layer0",
			"qwen3_post.axmodel":                     "post",
			"model.embed_tokens.weight.bfloat16.bin": "embed",
			"tokenizer.json":                         `{"model":{}}`,
			"tokenizer_config.json":                  tokenizerConfig(axHybridTemplate),
		},
	}
}

func createAX(t *testing.T, s *Server, req api.CreateRequest) (int, string) {
	t.Helper()
	stream := false
	req.Stream = &stream
	w := createRequest(t, s.CreateHandler, req)
	return w.Code, w.Body.String()
}

func TestCreateAXModelLayouts(t *testing.T) {
	gin.SetMode(gin.TestMode)
	for layout, files := range axLayouts() {
		t.Run(layout, func(t *testing.T) {
			t.Setenv("OLLAMA_MODELS", t.TempDir())
			var s Server
			digests := axPackage(t, files)
			if code, body := createAX(t, &s, api.CreateRequest{Model: "tiny", Files: digests}); code != http.StatusOK {
				t.Fatalf("create: %d %s", code, body)
			}

			mf, err := manifest.ParseNamedManifest(model.ParseName("tiny"))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, l := range mf.Layers {
				if l.Name != "" {
					got[l.Name] = l.MediaType
					if l.Digest != digests[l.Name] {
						t.Errorf("%s: digest %s, want %s", l.Name, l.Digest, digests[l.Name])
					}
				}
			}
			want := map[string]string{}
			for name := range files {
				want[name] = manifest.MediaTypeImageAXModel
				if strings.HasSuffix(name, ".json") {
					want[name] = "application/vnd.ollama.image.json"
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("layers (-want +got):\n%s", diff)
			}

			m, err := GetModel("tiny")
			if err != nil {
				t.Fatal(err)
			}
			if !m.IsAXModel() || m.ModelPath != "" {
				t.Errorf("format %q, ModelPath %q", m.Config.ModelFormat, m.ModelPath)
			}
			if m.Config.ModelFamily != "qwen3" || m.Config.Renderer != "qwen3" || m.Config.Parser != "qwen3-thinking" {
				t.Errorf("family %q renderer %q parser %q", m.Config.ModelFamily, m.Config.Renderer, m.Config.Parser)
			}
			if diff := cmp.Diff([]string{"completion", "tools", "thinking"}, m.Config.Capabilities); diff != "" {
				t.Errorf("capabilities (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]any{"top_k": float64(1)}, m.Options); diff != "" {
				t.Errorf("parameters (-want +got):\n%s", diff)
			}
			if want := map[string]string{"axllm": "596.04M"}[layout]; m.Config.ModelType != want {
				t.Errorf("parameter size %q, want %q", m.Config.ModelType, want)
			}
			if chatModeForModel(m) != chatExecutionModeRendered {
				t.Error("axmodel chat is not rendered by Ollama")
			}
		})
	}
}

func TestCreateAXModelInference(t *testing.T) {
	gin.SetMode(gin.TestMode)
	base := axLayouts()["axllm"]
	with := func(changes map[string]string) map[string]string {
		out := make(map[string]string)
		for k, v := range base {
			out[k] = v
		}
		for k, v := range changes {
			if v == "" && k != "config.json" {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
		return out
	}
	cases := []struct {
		name      string
		files     map[string]string
		req       api.CreateRequest
		renderer  string
		parser    string
		family    string
		caps      []string
		params    map[string]any
		template  string // substring of the model's Go template
		wantCode  int
		wantError string
	}{
		{
			name:     "instruct-only qwen3",
			files:    with(map[string]string{"qwen3_tokenizer/tokenizer_config.json": tokenizerConfig(axInstructTemplate)}),
			renderer: "qwen3-vl-instruct", parser: "qwen3", family: "qwen3",
			caps:   []string{"completion", "tools"},
			params: map[string]any{"top_k": float64(1)},
		},
		{
			name: "chat template in a list and a jinja file",
			files: with(map[string]string{
				"qwen3_tokenizer/tokenizer_config.json": `{"chat_template":[{"name":"tool_use","template":"x"},{"name":"default","template":"enable_thinking <think></think>"}]}`,
			}),
			renderer: "qwen3", parser: "qwen3-thinking", family: "qwen3",
			caps:   []string{"completion", "tools", "thinking"},
			params: map[string]any{"top_k": float64(1)},
		},
		{
			name:     "family from the runtime config when there is no HF config",
			files:    with(map[string]string{"qwen3_tokenizer/config.json": "", "config.json": axRuntimeConfig}),
			renderer: "qwen3", parser: "qwen3-thinking", family: "qwen3",
			caps:   []string{"completion", "tools", "thinking"},
			params: map[string]any{"top_k": float64(1)},
		},
		{
			name:     "modelfile TEMPLATE wins over inference",
			files:    base,
			req:      api.CreateRequest{Template: "{{ .Prompt }} custom", System: "be brief"},
			family:   "qwen3",
			caps:     []string{"completion"},
			params:   map[string]any{"top_k": float64(1)},
			template: "custom",
		},
		{
			name:     "modelfile RENDERER and PARSER kept",
			files:    base,
			req:      api.CreateRequest{Renderer: "qwen3.5", Parser: "qwen3.5"},
			renderer: "qwen3.5", parser: "qwen3.5", family: "qwen3",
			caps:   []string{"completion", "tools", "thinking"},
			params: map[string]any{"top_k": float64(1)},
		},
		{
			name:     "enabled post_config values and modelfile parameters",
			files:    with(map[string]string{"post_config.json": axPostConfigAll}),
			req:      api.CreateRequest{Parameters: map[string]any{"temperature": 0.2, "num_predict": 64}},
			renderer: "qwen3", parser: "qwen3-thinking", family: "qwen3",
			caps: []string{"completion", "tools", "thinking"},
			params: map[string]any{
				"temperature": 0.2, "num_predict": float64(64), "top_p": 0.8,
				"repeat_penalty": 1.1, "repeat_last_n": float64(32),
			},
		},
		{
			name: "llama with a known template",
			files: with(map[string]string{
				"qwen3_tokenizer/config.json":           `{"model_type":"llama"}`,
				"qwen3_tokenizer/tokenizer_config.json": tokenizerConfig(axLlama3Template),
				"post_config.json":                      "",
			}),
			family:   "llama",
			caps:     []string{"completion"},
			params:   map[string]any{"stop": []any{"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}},
			template: "<|start_header_id|>",
		},
		{name: "quantize refused", files: base, req: api.CreateRequest{Quantize: "int8"}, wantCode: 400, wantError: "cannot be quantized"},
		{name: "adapters refused", files: base, req: api.CreateRequest{Adapters: map[string]string{"a.gguf": "sha256:" + strings.Repeat("0", 64)}}, wantCode: 400, wantError: "LoRA adapters are no longer supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OLLAMA_MODELS", t.TempDir())
			var s Server
			req := tc.req
			req.Model = "tiny"
			req.Files = axPackage(t, tc.files)
			code, body := createAX(t, &s, req)
			if tc.wantCode != 0 {
				if code != tc.wantCode || !strings.Contains(body, tc.wantError) {
					t.Fatalf("create: %d %s, want %d %q", code, body, tc.wantCode, tc.wantError)
				}
				return
			}
			if code != http.StatusOK {
				t.Fatalf("create: %d %s", code, body)
			}
			m, err := GetModel("tiny")
			if err != nil {
				t.Fatal(err)
			}
			if m.Config.Renderer != tc.renderer || m.Config.Parser != tc.parser || m.Config.ModelFamily != tc.family {
				t.Errorf("renderer %q parser %q family %q; want %q %q %q", m.Config.Renderer, m.Config.Parser, m.Config.ModelFamily, tc.renderer, tc.parser, tc.family)
			}
			if diff := cmp.Diff(tc.caps, m.Config.Capabilities); diff != "" {
				t.Errorf("capabilities (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.params, m.Options); diff != "" {
				t.Errorf("parameters (-want +got):\n%s", diff)
			}
			if tc.template != "" && !strings.Contains(m.Template.String(), tc.template) {
				t.Errorf("template %q does not contain %q", m.Template.String(), tc.template)
			}
			if tc.req.System != "" && m.System != tc.req.System {
				t.Errorf("system %q", m.System)
			}
		})
	}
}

func TestCreateAXModelMissingBlob(t *testing.T) {
	gin.SetMode(gin.TestMode)
	t.Setenv("OLLAMA_MODELS", t.TempDir())
	var s Server
	files := axPackage(t, axLayouts()["compiled"])
	files["qwen3_p16_l1_together.axmodel"] = "sha256:" + strings.Repeat("a", 64)
	code, body := createAX(t, &s, api.CreateRequest{Model: "tiny", Files: files})
	if code != http.StatusBadRequest || !strings.Contains(body, "was not uploaded") {
		t.Fatalf("create: %d %s", code, body)
	}
}

func TestCreateFromAXModel(t *testing.T) {
	gin.SetMode(gin.TestMode)
	t.Setenv("OLLAMA_MODELS", t.TempDir())
	var s Server
	if code, body := createAX(t, &s, api.CreateRequest{Model: "tiny", Files: axPackage(t, axLayouts()["axllm"])}); code != http.StatusOK {
		t.Fatalf("create: %d %s", code, body)
	}
	code, body := createAX(t, &s, api.CreateRequest{
		Model: "tiny-pirate", From: "tiny", System: "Talk like a pirate.",
		Parameters: map[string]any{"num_ctx": 128},
	})
	if code != http.StatusOK {
		t.Fatalf("create FROM: %d %s", code, body)
	}
	m, err := GetModel("tiny-pirate")
	if err != nil {
		t.Fatal(err)
	}
	if !m.IsAXModel() || m.Config.Renderer != "qwen3" || m.Config.Parser != "qwen3-thinking" || m.Config.ModelFamily != "qwen3" {
		t.Errorf("config %+v", m.Config)
	}
	if m.System != "Talk like a pirate." || m.Options["num_ctx"] != float64(128) || m.Options["top_k"] != float64(1) {
		t.Errorf("system %q options %v", m.System, m.Options)
	}
	base, _ := manifest.ParseNamedManifest(model.ParseName("tiny"))
	child, _ := manifest.ParseNamedManifest(model.ParseName("tiny-pirate"))
	names := func(mf *manifest.Manifest) (out []string) {
		for _, l := range mf.Layers {
			if l.Name != "" {
				out = append(out, l.Name+"@"+l.Digest)
			}
		}
		slices.Sort(out)
		return out
	}
	if diff := cmp.Diff(names(base), names(child)); diff != "" {
		t.Errorf("package files differ (-base +child):\n%s", diff)
	}
}
