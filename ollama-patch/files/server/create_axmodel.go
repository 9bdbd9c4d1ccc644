package server

// Creating models from AXERA AX650 packages (`FROM ./dir` with .axmodel
// files): every file becomes its own layer named by its path in the package,
// and the config says how to chat with the model, inferred from the package's
// Hugging Face files.

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/format"
	"github.com/ollama/ollama/llm"
	"github.com/ollama/ollama/manifest"
	"github.com/ollama/ollama/model/parsers"
	"github.com/ollama/ollama/thinking"
	"github.com/ollama/ollama/types/model"
	"github.com/ollama/ollama/x/ax650runner"
)

const (
	axmodelFormat        = "axmodel"
	mediaTypeAXModelJSON = "application/vnd.ollama.image.json"
	// axllmRenderer is the renderer of AX650 models whose chats are rendered
	// with the package's own (Jinja) chat template by axllm in the runner,
	// rather than by one of Ollama's renderers or Go templates.
	axllmRenderer = "axllm"
	// axmodelMaxJSONBytes bounds the JSON files read while creating a model.
	axmodelMaxJSONBytes = 64 << 20
)

// errAXModelBadRequest marks create errors that are the request's fault (400).
var errAXModelBadRequest = errors.New("invalid AX650 model")

// isAXModelFiles reports whether a create request's files are an AX650
// package: any .axmodel file (checked over all names, so it does not depend
// on map order).
func isAXModelFiles(files map[string]string) bool {
	for name := range files {
		if strings.HasSuffix(strings.ToLower(name), ".axmodel") {
			return true
		}
	}
	return false
}

// axmodelFileType is detectModelTypeFromFiles for an AX650 package: every
// other file must be one the package format knows, so a GGUF or safetensors
// file mixed into a package is refused rather than stored and ignored. The
// blobs are sniffed as Ollama does for GGUF files without the extension.
func axmodelFileType(files map[string]string) (string, error) {
	names := slices.Sorted(maps.Keys(files))
	for _, name := range names {
		if strings.HasSuffix(strings.ToLower(name), ".axmodel") {
			continue
		}
		t, err := detectModelTypeFromFile(name, files[name])
		if err != nil {
			return "", err
		}
		if t != "" {
			return "", fmt.Errorf("%w: found both %s and %s inputs (%s)", errMixedModelTypes, axmodelFormat, t, name)
		}
	}
	return axmodelFormat, nil
}

// axmodelCreateError is the create stream's error message for err.
func axmodelCreateError(err error) gin.H {
	if errors.Is(err, errAXModelBadRequest) {
		return gin.H{"error": err.Error(), "status": http.StatusBadRequest}
	}
	return gin.H{"error": err.Error()}
}

// axmodelCheckPackage runs axllm's static checks of a package directory
// (no NPU runtime is loaded); tests substitute it.
var axmodelCheckPackage = ax650runner.CheckPackage

// axmodelLayersFromFiles makes the layers of an AX650 model from uploaded
// files and fills in config. axllm checks the package first, with the
// loader's own checks, so a broken package is refused here (400) rather
// than at its first run. The format, family, capabilities, compiled context
// length and the package's sampling defaults (post_config.json, read by
// axllm as the loaded model uses them) go into the config, and, unless the
// Modelfile names a TEMPLATE, RENDERER or PARSER, the renderer and parser.
// Nothing is reported to fn before the checks pass, so a refusal keeps its
// status code.
func axmodelLayersFromFiles(r *api.CreateRequest, config *model.ConfigV2, fn func(api.ProgressResponse)) ([]*modelLayer, error) {
	switch {
	case cmp.Or(r.Quantize, r.Quantization) != "":
		return nil, fmt.Errorf("%w: AX650 models are compiled for the NPU and cannot be quantized", errAXModelBadRequest)
	case len(r.Adapters) > 0:
		return nil, fmt.Errorf("%w: adapters are not supported for AX650 models", errAXModelBadRequest)
	case len(r.DraftFiles) > 0:
		return nil, fmt.Errorf("%w: draft models are not supported for AX650 models", errAXModelBadRequest)
	}

	names := slices.Sorted(maps.Keys(r.Files))
	var layers []*modelLayer
	blobs := make(map[string]string, len(names))
	for _, name := range names {
		if i := strings.IndexFunc(name, unicode.IsControl); i >= 0 {
			return nil, fmt.Errorf("%w: file name %q contains a control character", errAXModelBadRequest, name)
		}
		mediaType := manifest.MediaTypeImageAXModel
		if strings.HasSuffix(strings.ToLower(name), ".json") {
			mediaType = mediaTypeAXModelJSON
		}
		l, err := manifest.NewLayerFromLayer(r.Files[name], mediaType, "")
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: file %s was not uploaded (blob %s is missing)", errAXModelBadRequest, name, r.Files[name])
		} else if err != nil {
			return nil, fmt.Errorf("file %s: %w", name, err)
		}
		l.Name = name
		l.Status = ""
		layers = append(layers, &modelLayer{Layer: l})
		if blobs[name], err = manifest.BlobsPath(r.Files[name]); err != nil {
			return nil, fmt.Errorf("%w: file %s: %w", errAXModelBadRequest, name, err)
		}
	}

	info, checked, err := axmodelCheck(blobs)
	if err != nil {
		return nil, err
	}
	pkg := readAXModelPackage(r.Files)
	if len(pkg.axmodels) == 0 {
		return nil, fmt.Errorf("%w: no .axmodel files", errAXModelBadRequest)
	}
	if !checked {
		fn(api.ProgressResponse{Status: "warning: this ollama has no AX650 support, so the package was not checked"})
	}

	config.ModelFormat = axmodelFormat
	if config.ModelFamily == "" && pkg.family != "" {
		config.ModelFamily = pkg.family
		config.ModelFamilies = []string{pkg.family}
	}
	if config.ModelType == "" && pkg.parameters > 0 {
		config.ModelType = format.HumanNumber(pkg.parameters)
	}
	config.ContextLen = info.ContextLength
	config.EmbedLen = info.HiddenSize
	config.GenerationDefaults = info.SamplingDefaults

	if r.Template == "" && r.Renderer == "" && r.Parser == "" {
		switch renderer, parser := axmodelChatFormat(pkg.family, info.ChatTemplate); {
		case renderer != "":
			config.Renderer, config.Parser = renderer, parser
			fn(api.ProgressResponse{Status: fmt.Sprintf("using renderer %s and parser %s", renderer, parser)})
		case info.ChatTemplate != "":
			// No built-in renderer for this family: chats are rendered with
			// the package's own chat template, by axllm in the runner.
			config.Renderer = axllmRenderer
			fn(api.ProgressResponse{Status: fmt.Sprintf("using the package's own chat template (renderer %s)", axllmRenderer)})
		default:
			fn(api.ProgressResponse{Status: "warning: the package has no chat template; add TEMPLATE, or RENDERER and PARSER, to the Modelfile"})
		}
	}

	config.Capabilities = axmodelCapabilities(config.Capabilities, config.Parser)

	slog.Info("creating AX650 model", "files", len(layers), "family", pkg.family, "context_length", info.ContextLength,
		"renderer", config.Renderer, "parser", config.Parser, "hf_config", pkg.hfConfigName)
	return layers, nil
}

// axmodelCheck links the uploaded blobs into a temporary package directory
// and has axllm check it. checked is false when this binary has no axllm
// (built without the ax650 tag). Errors name the files by their path in the
// package.
func axmodelCheck(blobs map[string]string) (info ax650runner.PackageInfo, checked bool, err error) {
	dir, err := ax650runner.Materialize(blobs, "")
	if err != nil {
		return info, false, fmt.Errorf("%w: %w", errAXModelBadRequest, err)
	}
	defer os.RemoveAll(dir)
	info, err = axmodelCheckPackage(dir, blobDirs(blobs))
	switch {
	case errors.Is(err, llm.ErrAX650NotBuilt):
		return ax650runner.PackageInfo{}, false, nil
	case err != nil:
		err = ax650runner.PackageRelative(err, dir, "")
		var ee *ax650runner.EngineError
		if errors.As(err, &ee) {
			return info, true, fmt.Errorf("%w: %s", errAXModelBadRequest, ee.Message)
		}
		return info, true, fmt.Errorf("%w: %w", errAXModelBadRequest, err)
	}
	return info, true, nil
}

// blobDirs are the directories the blobs are in: the links of a
// materialized package may lead there (axllm's link roots).
func blobDirs(blobs map[string]string) []string {
	var dirs []string
	for _, b := range blobs {
		if d := filepath.Dir(b); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	slices.Sort(dirs)
	return dirs
}

// axmodelChatFormat picks Ollama's renderer and parser for a package from
// its model family and Hugging Face chat template, or "" when none fits.
func axmodelChatFormat(family, chatTemplate string) (renderer, parser string) {
	switch family {
	case "qwen3", "qwen3_moe":
		switch {
		case chatTemplate == "" || strings.Contains(chatTemplate, "enable_thinking"):
			// Hybrid thinking (Qwen3-0.6B ... 32B): think on by default, off on request.
			return "qwen3", "qwen3-thinking"
		case thinking.TemplateSupportsThinking(chatTemplate):
			// Thinking-only (Qwen3-*-Thinking-2507).
			return "qwen3-vl-thinking", "qwen3-thinking"
		default:
			// Instruct-only (Qwen3-*-Instruct-2507).
			return "qwen3-vl-instruct", "qwen3"
		}
	case "qwen3_5", "qwen3_5_moe", "qwen3_next":
		return "qwen3.5", "qwen3.5"
	case "qwen2", "qwen2_moe":
		// Qwen2.5 instruct: ChatML with Hermes-style <tool_call> JSON.
		if strings.Contains(chatTemplate, "<|im_start|>") && !strings.Contains(chatTemplate, "<think>") {
			return "qwen3-vl-instruct", "qwen3"
		}
	}
	return "", ""
}

// axmodelCapabilities: every AX650 model completes text; the parser adds
// tools and thinking.
func axmodelCapabilities(caps []string, parserName string) []string {
	add := func(c model.Capability) {
		if !slices.Contains(caps, string(c)) {
			caps = append(caps, string(c))
		}
	}
	add(model.CapabilityCompletion)
	if p := parsers.ParserForName(parserName); p != nil {
		if p.HasToolSupport() {
			add(model.CapabilityTools)
		}
		if p.HasThinkingSupport() {
			add(model.CapabilityThinking)
		}
	}
	return caps
}

// axmodelPackage is what the package's Hugging Face files say about the
// model: its family and size (axllm reads everything the model runs on).
type axmodelPackage struct {
	axmodels     []string
	family       string
	hfConfigName string
	parameters   uint64
	// hf is the Hugging Face config (zero when there is none).
	hf hfConfig
}

// hfConfig holds the Hugging Face config.json fields used here.
type hfConfig struct {
	ModelType         string   `json:"model_type"`
	Architectures     []string `json:"architectures"`
	HiddenSize        uint64   `json:"hidden_size"`
	IntermediateSize  uint64   `json:"intermediate_size"`
	NumHiddenLayers   uint64   `json:"num_hidden_layers"`
	NumAttentionHeads uint64   `json:"num_attention_heads"`
	NumKeyValueHeads  uint64   `json:"num_key_value_heads"`
	HeadDim           uint64   `json:"head_dim"`
	VocabSize         uint64   `json:"vocab_size"`
	TieWordEmbeddings bool     `json:"tie_word_embeddings"`
	// LayerTypes names each layer's attention in hybrid models
	// ("full_attention", "linear_attention").
	LayerTypes []string `json:"layer_types"`
}

// parameterCount estimates the parameters of a dense decoder (embeddings,
// attention, gated MLP, norms); 0 when the config lacks the numbers.
func (c hfConfig) parameterCount() uint64 {
	h, l, v, ffn := c.HiddenSize, c.NumHiddenLayers, c.VocabSize, c.IntermediateSize
	if h == 0 || l == 0 || v == 0 || ffn == 0 || c.NumAttentionHeads == 0 {
		return 0
	}
	kv := cmp.Or(c.NumKeyValueHeads, c.NumAttentionHeads)
	hd := cmp.Or(c.HeadDim, h/c.NumAttentionHeads)
	embed := v * h
	if !c.TieWordEmbeddings {
		embed *= 2
	}
	attn := 2*h*c.NumAttentionHeads*hd + 2*h*kv*hd
	return embed + l*(attn+3*h*ffn+2*h) + h
}

// runtimeConfig holds the AX650 runtime config.json fields used here.
type runtimeConfig struct {
	TemplateFilenameAXModel string `json:"template_filename_axmodel"`
	TokenizerType           string `json:"tokenizer_type"`
}

// readAXModelPackage reads the Hugging Face config from the blob store.
// Missing or malformed optional files are skipped: they only refine the
// family and the parameter count.
func readAXModelPackage(files map[string]string) *axmodelPackage {
	p := &axmodelPackage{}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	// Files one directory down, most likely first: the tokenizer folders
	// (`qwen3_tokenizer/`) hold the Hugging Face files.
	sort.SliceStable(names, func(i, j int) bool { return depthRank(names[i]) < depthRank(names[j]) })

	for _, name := range names {
		lower := strings.ToLower(name)
		switch {
		case strings.HasSuffix(lower, ".axmodel"):
			p.axmodels = append(p.axmodels, name)
		}
	}

	read := func(name string, v any) bool {
		err := readAXModelJSON(files[name], v)
		if err != nil && !errors.Is(err, errEmptyJSON) {
			slog.Debug("skipping package file", "file", name, "error", err)
		}
		return err == nil
	}

	// The Hugging Face config: the top-level config.json may instead be the
	// vendor runtime config, a 0-byte placeholder, or absent.
	var hf hfConfig
	var rt runtimeConfig
	for _, name := range names {
		if path.Base(name) != "config.json" || strings.Count(name, "/") > 1 {
			continue
		}
		var c hfConfig
		if read(name, &c) && (c.ModelType != "" || len(c.Architectures) > 0) {
			hf, p.hfConfigName = c, name
			break
		}
	}
	if files["config.json"] != "" {
		read("config.json", &rt)
	}

	p.hf = hf
	p.family = axmodelFamily(hf, rt, p.axmodels)
	p.parameters = hf.parameterCount()

	return p
}

// depthRank orders names: top level, then tokenizer folders, then others.
func depthRank(name string) int {
	switch dir := path.Dir(name); {
	case dir == ".":
		return 0
	case strings.HasSuffix(dir, "_tokenizer") || dir == "tokenizer":
		return 1
	default:
		return 2
	}
}

// axmodelFamily names the model family: the HF model_type, else its
// architecture, else the runtime config's tokenizer type, else the prefix of
// the layer files (qwen3 in qwen3_p128_l0_together.axmodel).
func axmodelFamily(hf hfConfig, rt runtimeConfig, axmodels []string) string {
	if hf.ModelType != "" {
		return strings.ToLower(hf.ModelType)
	}
	for _, a := range hf.Architectures {
		if f, ok := strings.CutSuffix(a, "ForCausalLM"); ok && f != "" {
			return strings.ToLower(f)
		}
	}
	switch t := strings.ToLower(rt.TokenizerType); {
	case t == "":
	case strings.HasPrefix(t, "qwen2"):
		return "qwen2"
	case strings.HasPrefix(t, "qwen3_5"):
		// AXERA's Qwen3.5 packages say Qwen3_5VL (hardware-facts: F27).
		return "qwen3_5"
	default:
		return t
	}
	for _, name := range axmodels {
		base := path.Base(name)
		if stem, ok := strings.CutSuffix(base, "_together.axmodel"); ok {
			if head, _, ok := cutLast(stem, "_l"); ok {
				if prefix, _, ok := cutLast(head, "_p"); ok && prefix != "" {
					// qwen3_5_text_p128_l0_together.axmodel: Qwen3.5's text layers.
					return strings.TrimSuffix(strings.ToLower(prefix), "_text")
				}
			}
		}
	}
	return ""
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

var errEmptyJSON = errors.New("empty file")

func readAXModelBlob(digest string) ([]byte, error) {
	if digest == "" {
		return nil, os.ErrNotExist
	}
	p, err := manifest.BlobsPath(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, axmodelMaxJSONBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > axmodelMaxJSONBytes {
		return nil, fmt.Errorf("larger than %d bytes", axmodelMaxJSONBytes)
	}
	return b, nil
}

func readAXModelJSON(digest string, v any) error {
	b, err := readAXModelBlob(digest)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return errEmptyJSON
	}
	return json.Unmarshal(b, v)
}

// axmodelInheritConfig completes the config of a model created FROM an
// existing AX650 model: createModel takes the family from GGUF layers only.
func axmodelInheritConfig(config, base *model.ConfigV2) {
	if base.ModelFormat != axmodelFormat || config.ModelFormat != axmodelFormat {
		return
	}
	if config.ModelFamily == "" {
		config.ModelFamily = base.ModelFamily
		config.ModelFamilies = slices.Clone(base.ModelFamilies)
	}
	config.ModelType = cmp.Or(config.ModelType, base.ModelType)
	config.FileType = cmp.Or(config.FileType, base.FileType)
}
