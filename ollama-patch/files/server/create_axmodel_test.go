package server

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/llm"
	"github.com/ollama/ollama/manifest"
	"github.com/ollama/ollama/types/model"
	"github.com/ollama/ollama/x/ax650runner"
)

const (
	axHybridTemplate   = `{%- for m in messages %}<|im_start|>{{ m.role }}{% endfor %}{%- if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>{% endif %}`
	axInstructTemplate = `{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>{% endfor %}{% if tools %}<tool_call>{% endif %}`
	axLlama3Template   = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
	axRuntimeConfig    = `{"model_name":"Tiny","tokenizer_type":"Qwen3","template_filename_axmodel":"qwen3_p16_l%d_together.axmodel","axmodel_num":2}`
	// Qwen3-0.6B's geometry: 0.6B parameters (0.75B counting the untied head).
	axHFConfig = `{"model_type":"qwen3","architectures":["Qwen3ForCausalLM"],"hidden_size":1024,"intermediate_size":3072,"num_hidden_layers":28,"num_attention_heads":16,"num_key_value_heads":8,"head_dim":128,"vocab_size":151936,"tie_word_embeddings":true}`
)

// axGreedy is what axllm reports for the shipped Qwen3 packages'
// post_config.json (top-k 1: greedy).
var axGreedy = map[string]any{
	"temperature": float32(0), "top_k": 40, "top_p": float32(0.9), "min_p": float32(0),
	"repeat_last_n": 64, "repeat_penalty": float32(1), "presence_penalty": float32(0), "frequency_penalty": float32(0),
}

// axChecked is what the package check reports for the test packages.
func axChecked() ax650runner.PackageInfo {
	return ax650runner.PackageInfo{Layers: 2, ContextLength: 255, MaxPrefill: 144, HiddenSize: 64, VocabSize: 512,
		ChatTemplate: axHybridTemplate, SamplingDefaults: axGreedy}
}

// useAXCheck makes the package check return info (or fail with err) and
// records the package directories it was given.
func useAXCheck(t *testing.T, info ax650runner.PackageInfo, err error) *[]map[string]bool {
	t.Helper()
	old := axmodelCheckPackage
	t.Cleanup(func() { axmodelCheckPackage = old })
	var seen []map[string]bool
	axmodelCheckPackage = func(dir string, _ []string) (ax650runner.PackageInfo, error) {
		files := map[string]bool{}
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, _ error) error {
			if d != nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				files[filepath.ToSlash(rel)] = true
			}
			return nil
		})
		seen = append(seen, files)
		return info, err
	}
	return &seen
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
			"post_config.json":                       "{}",
			"qwen3_p16_l0_together.axmodel":          "layer0",
			"qwen3_p16_l1_together.axmodel":          "layer1",
			"qwen3_post.axmodel":                     "post",
			"model.embed_tokens.weight.bfloat16.bin": "embed",
			"qwen3_tokenizer/config.json":            axHFConfig,
			"qwen3_tokenizer/tokenizer.json":         `{"model":{}}`,
			"qwen3_tokenizer/tokenizer_config.json":  "{}",
		},
		"hf-package": {
			"config.json":      "",
			"post_config.json": "{}",
			"tiny-qwen3-ax650/qwen3_p16_l0_together.axmodel":          "layer0",
			"tiny-qwen3-ax650/qwen3_post.axmodel":                     "post",
			"tiny-qwen3-ax650/model.embed_tokens.weight.bfloat16.bin": "embed",
			"qwen3_tokenizer/config.json":                             `{"model_type":"qwen3"}`,
			"qwen3_tokenizer/tokenizer.json":                          `{"model":{}}`,
		},
		"compiled": {
			"qwen3_p16_l0_together.axmodel":          "layer0",
			"qwen3_post.axmodel":                     "post",
			"model.embed_tokens.weight.bfloat16.bin": "embed",
			"tokenizer.json":                         `{"model":{}}`,
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
			seen := useAXCheck(t, axChecked(), nil)
			var s Server
			digests := axPackage(t, files)
			if code, body := createAX(t, &s, api.CreateRequest{Model: "tiny", Files: digests}); code != http.StatusOK {
				t.Fatalf("create: %d %s", code, body)
			}
			// axllm checked the package as the runner will load it: every
			// file at its path in the package.
			if len(*seen) != 1 {
				t.Fatalf("the package was checked %d times", len(*seen))
			}
			wantFiles := map[string]bool{}
			for name := range files {
				wantFiles[name] = true
			}
			if diff := cmp.Diff(wantFiles, (*seen)[0]); diff != "" {
				t.Errorf("checked package (-want +got):\n%s", diff)
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
			if m.Config.ContextLen != 255 || m.Config.EmbedLen != 64 {
				t.Errorf("context length %d, embedding length %d; want the check's 255 and 64", m.Config.ContextLen, m.Config.EmbedLen)
			}
			if diff := cmp.Diff([]string{"completion", "tools", "thinking"}, m.Config.Capabilities); diff != "" {
				t.Errorf("capabilities (-want +got):\n%s", diff)
			}
			if len(m.Options) != 0 {
				t.Errorf("Modelfile parameters %v: the package's defaults are generation defaults", m.Options)
			}
			if diff := cmp.Diff(axGreedyJSON(), map[string]any(m.GenerationDefaults)); diff != "" {
				t.Errorf("generation defaults (-want +got):\n%s", diff)
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

// axGreedyJSON is axGreedy after a round trip through the config blob.
func axGreedyJSON() map[string]any {
	out := map[string]any{}
	for k, v := range axGreedy {
		switch n := v.(type) {
		case int:
			out[k] = float64(n)
		case float32: // JSON keeps float32's shortest form
			out[k], _ = strconv.ParseFloat(strconv.FormatFloat(float64(n), 'g', -1, 32), 64)
		}
	}
	return out
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
			out[k] = v
		}
		return out
	}
	checked := func(change func(*ax650runner.PackageInfo)) ax650runner.PackageInfo {
		info := axChecked()
		change(&info)
		return info
	}
	cases := []struct {
		name      string
		files     map[string]string
		check     ax650runner.PackageInfo
		req       api.CreateRequest
		renderer  string
		parser    string
		family    string
		caps      []string
		params    map[string]any
		defaults  bool
		template  string // substring of the model's Go template
		wantCode  int
		wantError string
	}{
		{
			name:     "hybrid qwen3",
			files:    base,
			check:    axChecked(),
			renderer: "qwen3", parser: "qwen3-thinking", family: "qwen3",
			caps: []string{"completion", "tools", "thinking"}, defaults: true,
		},
		{
			name:     "instruct-only qwen3",
			files:    base,
			check:    checked(func(i *ax650runner.PackageInfo) { i.ChatTemplate = axInstructTemplate }),
			renderer: "qwen3-vl-instruct", parser: "qwen3", family: "qwen3",
			caps: []string{"completion", "tools"}, defaults: true,
		},
		{
			name:     "family from the runtime config when there is no HF config",
			files:    with(map[string]string{"qwen3_tokenizer/config.json": ""}),
			check:    axChecked(),
			renderer: "qwen3", parser: "qwen3-thinking", family: "qwen3",
			caps: []string{"completion", "tools", "thinking"}, defaults: true,
		},
		{
			name:     "no post_config: Ollama's defaults",
			files:    base,
			check:    checked(func(i *ax650runner.PackageInfo) { i.SamplingDefaults = nil }),
			renderer: "qwen3", parser: "qwen3-thinking", family: "qwen3",
			caps: []string{"completion", "tools", "thinking"},
		},
		{
			name:     "Qwen3.5 from its Hugging Face config",
			files:    with(map[string]string{"qwen3_tokenizer/config.json": `{"model_type":"qwen3_5","text_config":{}}`}),
			check:    axChecked(),
			renderer: "qwen3.5", parser: "qwen3.5", family: "qwen3_5",
			caps: []string{"completion", "tools", "thinking"}, defaults: true,
		},
		{
			name: "Qwen3.5 from AXERA's runtime config alone",
			files: with(map[string]string{
				"qwen3_tokenizer/config.json": "",
				"config.json":                 strings.Replace(axRuntimeConfig, `"Qwen3"`, `"Qwen3_5VL"`, 1),
			}),
			check:    axChecked(),
			renderer: "qwen3.5", parser: "qwen3.5", family: "qwen3_5",
			caps: []string{"completion", "tools", "thinking"}, defaults: true,
		},
		{
			name:     "modelfile TEMPLATE wins over inference",
			files:    base,
			check:    axChecked(),
			req:      api.CreateRequest{Template: "{{ .Prompt }} custom", System: "be brief"},
			family:   "qwen3",
			caps:     []string{"completion"},
			defaults: true,
			template: "custom",
		},
		{
			name:     "modelfile RENDERER and PARSER kept",
			files:    base,
			check:    axChecked(),
			req:      api.CreateRequest{Renderer: "qwen3.5", Parser: "qwen3.5"},
			renderer: "qwen3.5", parser: "qwen3.5", family: "qwen3",
			caps: []string{"completion", "tools", "thinking"}, defaults: true,
		},
		{
			name:     "modelfile parameters are kept beside the package's defaults",
			files:    base,
			check:    axChecked(),
			req:      api.CreateRequest{Parameters: map[string]any{"temperature": 0.2, "num_predict": 64}},
			renderer: "qwen3", parser: "qwen3-thinking", family: "qwen3",
			caps:     []string{"completion", "tools", "thinking"},
			params:   map[string]any{"temperature": 0.2, "num_predict": float64(64)},
			defaults: true,
		},
		{
			// No built-in renderer for Llama: the package's own template,
			// rendered by axllm in the runner, not Ollama's closest Go template.
			name:     "llama renders with the package's own template",
			files:    with(map[string]string{"qwen3_tokenizer/config.json": `{"model_type":"llama"}`}),
			check:    checked(func(i *ax650runner.PackageInfo) { i.ChatTemplate, i.SamplingDefaults = axLlama3Template, nil }),
			renderer: axllmRenderer, family: "llama",
			caps: []string{"completion"},
		},
		{
			name:     "modelfile TEMPLATE wins over the package's own template",
			files:    with(map[string]string{"qwen3_tokenizer/config.json": `{"model_type":"llama"}`}),
			check:    checked(func(i *ax650runner.PackageInfo) { i.ChatTemplate, i.SamplingDefaults = axLlama3Template, nil }),
			req:      api.CreateRequest{Template: "{{ .Prompt }} custom"},
			family:   "llama",
			caps:     []string{"completion"},
			template: "custom",
		},
		{
			name:     "modelfile RENDERER axllm for a family with a built-in renderer",
			files:    base,
			check:    axChecked(),
			req:      api.CreateRequest{Renderer: axllmRenderer},
			renderer: axllmRenderer, family: "qwen3",
			caps: []string{"completion"}, defaults: true,
		},
		{
			name:   "no chat template: nothing is guessed",
			files:  with(map[string]string{"qwen3_tokenizer/config.json": `{"model_type":"llama"}`}),
			check:  checked(func(i *ax650runner.PackageInfo) { i.ChatTemplate, i.SamplingDefaults = "", nil }),
			family: "llama",
			caps:   []string{"completion"},
		},
		{name: "quantize refused", files: base, check: axChecked(), req: api.CreateRequest{Quantize: "int8"}, wantCode: 400, wantError: "cannot be quantized"},
		{name: "adapters refused", files: base, check: axChecked(), req: api.CreateRequest{Adapters: map[string]string{"a.gguf": "sha256:" + strings.Repeat("0", 64)}}, wantCode: 400, wantError: "LoRA adapters are no longer supported"},
		{name: "a NUL in a file name", files: with(map[string]string{"qwen3_tokenizer/vocab\x00.json": "{}"}), check: axChecked(), wantCode: 400, wantError: "control character"},
		{name: "a newline in a file name", files: with(map[string]string{"notes\n.json": "{}"}), check: axChecked(), wantCode: 400, wantError: "control character"},
		{name: "a backslash in a file name", files: with(map[string]string{`qwen3_tokenizer\merges.json`: "{}"}), check: axChecked(), wantCode: 400, wantError: "file path must be relative"},
		{name: "a GGUF among the files", files: with(map[string]string{"extra.bin": "GGUF\x03\x00\x00\x00"}), check: axChecked(), wantCode: 400, wantError: "found both axmodel and gguf inputs (extra.bin)"},
		{name: "a .gguf among the files", files: with(map[string]string{"model.gguf": "x"}), check: axChecked(), wantCode: 400, wantError: "found both axmodel and gguf inputs"},
		{name: "a .safetensors among the files", files: with(map[string]string{"model.safetensors": "x"}), check: axChecked(), wantCode: 400, wantError: "found both axmodel and safetensors inputs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OLLAMA_MODELS", t.TempDir())
			useAXCheck(t, tc.check, nil)
			var s Server
			req := tc.req
			req.Model = "tiny"
			req.Files = axPackage(t, tc.files)
			code, body := createAX(t, &s, req)
			if tc.wantCode != 0 {
				if code != tc.wantCode || !strings.Contains(body, tc.wantError) {
					t.Fatalf("create: %d %s, want %d %q", code, body, tc.wantCode, tc.wantError)
				}
				if _, err := GetModel("tiny"); err == nil {
					t.Error("a refused create stored the model")
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
			if len(tc.params) > 0 || len(m.Options) > 0 {
				if diff := cmp.Diff(tc.params, m.Options); diff != "" {
					t.Errorf("parameters (-want +got):\n%s", diff)
				}
			}
			if got := len(m.GenerationDefaults) > 0; got != tc.defaults {
				t.Errorf("generation defaults %v, want set = %v", m.GenerationDefaults, tc.defaults)
			}
			if tc.template != "" && !strings.Contains(m.Template.String(), tc.template) {
				t.Errorf("template %q does not contain %q", m.Template.String(), tc.template)
			}
			if tc.req.System != "" && m.System != tc.req.System {
				t.Errorf("system %q", m.System)
			}
			wantMode := chatExecutionModeRendered
			if tc.renderer == axllmRenderer {
				wantMode = chatExecutionModeNative
			}
			if got := chatModeForModel(m); got != wantMode {
				t.Errorf("chat mode %v, want %v", got, wantMode)
			}
		})
	}
}

// A package axllm refuses is refused with a 400 that names the file by its
// path in the package, and nothing is stored.
func TestCreateAXModelCheckFails(t *testing.T) {
	gin.SetMode(gin.TestMode)
	t.Setenv("OLLAMA_MODELS", t.TempDir())
	var dirs, roots []string
	old := axmodelCheckPackage
	t.Cleanup(func() { axmodelCheckPackage = old })
	axmodelCheckPackage = func(dir string, linkRoots []string) (ax650runner.PackageInfo, error) {
		dirs, roots = append(dirs, dir), linkRoots
		return ax650runner.PackageInfo{}, &ax650runner.EngineError{Call: "axllm_package_check", Status: llm.AxllmErrBadPackage,
			Message: "bad model package " + dir + ": qwen3_p16_l1_together.axmodel: truncated simulated axmodel"}
	}
	var s Server
	code, body := createAX(t, &s, api.CreateRequest{Model: "tiny", Files: axPackage(t, axLayouts()["axllm"])})
	if code != http.StatusBadRequest || !strings.Contains(body, "bad model package: qwen3_p16_l1_together.axmodel: truncated simulated axmodel") {
		t.Fatalf("create: %d %s", code, body)
	}
	// The package is links into the blob store, its one link root.
	if blobs, err := manifest.BlobsPath(""); err != nil || len(roots) != 1 || filepath.Clean(roots[0]) != filepath.Clean(blobs) {
		t.Errorf("link roots %v, want the blob store %s (%v)", roots, blobs, err)
	}
	if len(dirs) != 1 || strings.Contains(body, dirs[0]) {
		t.Errorf("the error names the temporary directory %v: %s", dirs, body)
	}
	if _, err := os.Stat(dirs[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary package directory %s was left behind (%v)", dirs[0], err)
	}
	if _, err := GetModel("tiny"); err == nil {
		t.Error("a refused package was stored")
	}
}

// Without axllm in the binary the package cannot be checked: it is stored
// with a warning (the model then fails to load with ErrAX650NotBuilt).
func TestCreateAXModelUnchecked(t *testing.T) {
	gin.SetMode(gin.TestMode)
	t.Setenv("OLLAMA_MODELS", t.TempDir())
	useAXCheck(t, ax650runner.PackageInfo{}, llm.ErrAX650NotBuilt)
	var s Server
	stream := true
	w := createRequest(t, s.CreateHandler, api.CreateRequest{Model: "tiny", Files: axPackage(t, axLayouts()["axllm"]), Stream: &stream})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "was not checked") || !strings.Contains(w.Body.String(), `"success"`) {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
}

func TestCreateAXModelMissingBlob(t *testing.T) {
	gin.SetMode(gin.TestMode)
	t.Setenv("OLLAMA_MODELS", t.TempDir())
	useAXCheck(t, axChecked(), nil)
	var s Server
	files := axPackage(t, axLayouts()["compiled"])
	files["qwen3_p16_l1_together.axmodel"] = "sha256:" + strings.Repeat("a", 64)
	code, body := createAX(t, &s, api.CreateRequest{Model: "tiny", Files: files})
	if code != http.StatusBadRequest || !strings.Contains(body, "qwen3_p16_l1_together.axmodel") {
		t.Fatalf("create: %d %s", code, body)
	}
	files["qwen3_p16_l1_together.axmodel"] = "sha256:xyz"
	code, body = createAX(t, &s, api.CreateRequest{Model: "tiny", Files: files})
	if code != http.StatusBadRequest || !strings.Contains(body, "digest") {
		t.Fatalf("create with a malformed digest: %d %s", code, body)
	}
}

func TestCreateFromAXModel(t *testing.T) {
	gin.SetMode(gin.TestMode)
	t.Setenv("OLLAMA_MODELS", t.TempDir())
	seen := useAXCheck(t, axChecked(), nil)
	var s Server
	if code, body := createAX(t, &s, api.CreateRequest{Model: "tiny", Files: axPackage(t, axLayouts()["axllm"])}); code != http.StatusOK {
		t.Fatalf("create: %d %s", code, body)
	}
	code, body := createAX(t, &s, api.CreateRequest{
		Model: "tiny-pirate", From: "tiny", System: "Talk like a pirate.",
		Parameters: map[string]any{"num_predict": 128},
	})
	if code != http.StatusOK {
		t.Fatalf("create FROM: %d %s", code, body)
	}
	if len(*seen) != 1 {
		t.Errorf("the package was checked %d times; FROM reuses the checked files", len(*seen))
	}
	m, err := GetModel("tiny-pirate")
	if err != nil {
		t.Fatal(err)
	}
	if !m.IsAXModel() || m.Config.Renderer != "qwen3" || m.Config.Parser != "qwen3-thinking" || m.Config.ModelFamily != "qwen3" || m.Config.ContextLen != 255 {
		t.Errorf("config %+v", m.Config)
	}
	if m.System != "Talk like a pirate." || m.Options["num_predict"] != float64(128) || len(m.GenerationDefaults) == 0 {
		t.Errorf("system %q options %v defaults %v", m.System, m.Options, m.GenerationDefaults)
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

func TestAXModelFamilyFromLayerNames(t *testing.T) {
	for name, want := range map[string]string{
		"pkg/qwen3_5_text_p128_l0_together.axmodel": "qwen3_5",
		"pkg/qwen3_p128_l0_together.axmodel":        "qwen3",
		"qwen3_vl_text_p256_l3_together.axmodel":    "qwen3_vl",
	} {
		if got := axmodelFamily(hfConfig{}, runtimeConfig{}, []string{name}); got != want {
			t.Errorf("%s: family %q, want %q", name, got, want)
		}
	}
}
