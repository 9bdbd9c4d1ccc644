package server

// AXERA AX650 (axmodel) models: predicates and the small pieces the
// scheduler and routes call at their hooks.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/envconfig"
	"github.com/ollama/ollama/llm"
	"github.com/ollama/ollama/manifest"
	"github.com/ollama/ollama/types/model"
)

// IsAXModel reports whether the model is an AX650 package run on the NPU.
func (m *Model) IsAXModel() bool {
	return m.Config.ModelFormat == axmodelFormat
}

// axmodelOwnTemplate reports whether the model's chats are rendered with its
// package's own chat template by axllm in the runner (renderer "axllm"):
// Ollama then serves them as it serves a GGUF model's Jinja template, through
// the runner's Chat and ApplyChatTemplate (the native chat mode).
func axmodelOwnTemplate(m *Model) bool {
	return m != nil && m.IsAXModel() && m.Config.Renderer == axllmRenderer
}

// newAX650Server is the scheduler's default newAXServerFn. It is cheap (the
// scheduler holds its lock): the runner subprocess starts in Load, with the
// KV slots axmodelSlots asks for, so that many requests run at once.
func newAX650Server(m *Model, _ api.Options, numParallel int) (llm.LlamaServer, error) {
	slots := axmodelSlots(numParallel, envconfig.Var("OLLAMA_NUM_PARALLEL"))
	s, err := llm.NewAX650Server(m.ShortName, axmodelEstimate(m, slots))
	if err != nil {
		return nil, err
	}
	s.SetParallel(slots)
	return s, nil
}

// axmodelSlots is the KV slot count an AX650 runner is asked for: the
// scheduler's numParallel when OLLAMA_NUM_PARALLEL is set (setting, its
// value), else (or when it is 0, as older Ollamas read "automatic") 0: the
// runner chooses from the card's free memory as it loads
// (at most llm.AxllmKvSlotsAutoMax), as a stock Ollama's default of 1 would
// leave a front-end's background requests queued behind a chat.
func axmodelSlots(numParallel int, setting string) int {
	if setting == "" || setting == "0" {
		return 0
	}
	return max(numParallel, 1)
}

// axmodelEstimate is the NPU memory m will take with slots KV slots (0: the
// runner's automatic count, estimated at its most, so the estimate does not
// fall short of what loads), before the runner has measured it: the model
// files' sizes plus each slot's K/V caches (axmodelKVSlotBytes).
func axmodelEstimate(m *Model, slots int) uint64 {
	if slots == 0 {
		slots = llm.AxllmKvSlotsAutoMax
	}
	mf, err := manifest.ParseNamedManifest(model.ParseName(m.Name))
	if err != nil {
		return 0
	}
	var size uint64
	files := make(map[string]string)
	for _, l := range mf.Layers {
		switch l.MediaType {
		case manifest.MediaTypeImageAXModel:
			size += uint64(l.Size)
		case mediaTypeAXModelJSON:
			files[l.Name] = l.Digest
		}
	}
	perSlot := axmodelKVSlotBytes(readAXModelPackage(files).hf, m.Config.ContextLen)
	if perSlot == 0 {
		slog.Debug("AX650 memory estimate without the KV slots: the context length or the attention geometry is not known", "model", m.ShortName)
	}
	return size + uint64(max(slots, 1))*perSlot
}

// axmodelKVSlotBytes is the device memory of one KV slot: a bf16 K and V
// row of the compiled context's every position in each full-attention
// layer, as axllm allocates them. 0 when the context length (a real package
// before a card has loaded it) or the Hugging Face config is not known.
func axmodelKVSlotBytes(c hfConfig, contextLen int) uint64 {
	heads := cmp.Or(c.NumKeyValueHeads, c.NumAttentionHeads)
	if contextLen <= 0 || heads == 0 || c.NumHiddenLayers == 0 {
		return 0
	}
	headDim := c.HeadDim
	if headDim == 0 {
		headDim = c.HiddenSize / c.NumAttentionHeads
	}
	layers := c.NumHiddenLayers
	if len(c.LayerTypes) > 0 {
		layers = 0
		for _, t := range c.LayerTypes {
			if t == "full_attention" {
				layers++
			}
		}
	}
	const kAndV, bf16 = 2, 2
	return layers * kAndV * uint64(contextLen) * heads * headDim * bf16
}

// axmodelParallel is how many requests a loaded AX650 model serves at once
// (its KV slots); 0 for any other runner, whose `ollama ps` row stays as it is.
func axmodelParallel(llama llm.LlamaServer) int {
	if p, ok := llama.(interface{ Parallel() int }); ok {
		return p.Parallel()
	}
	return 0
}

// axmodelRunnerParallel is the scheduler's record of how many requests a
// loaded runner serves at once: an AX650 runner's KV slots (what it chose
// when the count was left to it), numParallel for any other runner.
func axmodelRunnerParallel(llama llm.LlamaServer, numParallel int) int {
	if p := axmodelParallel(llama); p > 0 {
		return p
	}
	return numParallel
}

// axmodelFormatSet reports whether a request asks for structured output.
func axmodelFormatSet(format json.RawMessage) bool {
	f := bytes.TrimSpace(format)
	return len(f) > 0 && !bytes.Equal(f, []byte("null")) && !bytes.Equal(f, []byte(`""`))
}

const (
	axmodelImagesUnsupported     = "AX650 models do not support image input"
)

// axmodelCheckGenerate answers 400 to a generate request an AX650 model
// cannot serve and reports whether it did; otherwise it fixes num_ctx to the
// compiled context. Called before the model loads.
func axmodelCheckGenerate(c *gin.Context, m *Model, req *api.GenerateRequest) bool {
	if !m.IsAXModel() {
		return false
	}
	switch {
	case len(req.Images) > 0:
		c.JSON(http.StatusBadRequest, gin.H{"error": axmodelImagesUnsupported})
	default:
		req.Options = axmodelNumCtx(m, req.Options)
		return false
	}
	return true
}

// axmodelCheckChat is axmodelCheckGenerate for chat requests.
func axmodelCheckChat(c *gin.Context, m *Model, req *api.ChatRequest) bool {
	if !m.IsAXModel() {
		return false
	}
	images := false
	for _, msg := range req.Messages {
		images = images || len(msg.Images) > 0
	}
	switch {
	case images:
		c.JSON(http.StatusBadRequest, gin.H{"error": axmodelImagesUnsupported})
	default:
		req.Options = axmodelNumCtx(m, req.Options)
		return false
	}
	return true
}

// axmodelPrepareEmbed readies an AX650 model for the embedding routes
// (/api/embed, /api/embeddings, /v1/embeddings), which truncate by the GGUF
// metadata's context length: it has none, so the compiled context stands in
// (the tokenizer adds no BOS or EOS there: the runner's Tokenize already
// applied its post-processor). It never answers the request itself.
func axmodelPrepareEmbed(c *gin.Context, m *Model) bool {
	if !m.IsAXModel() || m.Config.ContextLen <= 0 {
		return false
	}
	m.metadata.KV = map[string]any{
		"general.architecture":   "axmodel",
		"axmodel.context_length": json.Number(strconv.Itoa(m.Config.ContextLen)),
		"axmodel.add_bos_token":  false,
		"axmodel.add_eos_token":  false,
	}
	return false
}

// axmodelNumCtx sets num_ctx to the model's compiled context, which a
// request cannot change: the NPU programs are compiled for it. A different
// value set by the request or the Modelfile is replaced, with a warning.
// Values of the wrong type are left for Ollama's option parsing to refuse.
func axmodelNumCtx(m *Model, opts map[string]any) map[string]any {
	ctxLen := m.Config.ContextLen
	if ctxLen <= 0 {
		return opts // not known before the model loads; the runner holds it to its context
	}
	asked, source := opts["num_ctx"], "request"
	if asked == nil {
		asked, source = m.Options["num_ctx"], "Modelfile"
	}
	if asked != nil {
		n, ok := optionInt(asked)
		if !ok {
			return opts
		}
		if n != ctxLen {
			slog.Warn("num_ctx differs from the context this AX650 model was compiled for; using the compiled context",
				"model", m.ShortName, "num_ctx", n, "from", source, "context_length", ctxLen)
		}
	}
	if opts == nil {
		opts = make(map[string]any)
	}
	opts["num_ctx"] = float64(ctxLen) // as a JSON number, which api.Options.FromMap expects
	return opts
}

// optionInt reads an integer option as api.Options.FromMap would accept it.
func optionInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case float64:
		if n != math.Trunc(n) || math.IsInf(n, 0) {
			return 0, false
		}
		return int(n), true
	case json.Number:
		i, err := n.Int64()
		return int(i), err == nil
	case string:
		i, err := strconv.Atoi(n)
		return i, err == nil
	}
	return 0, false
}

// axmodelShowInfo completes /api/show for an AX650 model (there is no GGUF
// to read): the context length the package check found when the model was
// created, and the geometry of its Hugging Face config.json.
func axmodelShowInfo(name model.Name, m *Model, resp *api.ShowResponse) *api.ShowResponse {
	arch := m.Config.ModelFamily
	if arch == "" {
		arch = axmodelFormat
	}
	if resp.ModelInfo == nil {
		resp.ModelInfo = make(map[string]any)
	}
	resp.ModelInfo["general.architecture"] = arch
	set := func(key string, v int) {
		if v > 0 {
			resp.ModelInfo[fmt.Sprintf("%s.%s", arch, key)] = v
		}
	}
	set("context_length", m.Config.ContextLen)
	// What renders the chats: Ollama's renderer and parser, or "axllm" (the
	// package's own template, which is then the template shown).
	resp.Renderer, resp.Parser = m.Config.Renderer, m.Config.Parser

	mf, err := manifest.ParseNamedManifest(name)
	if err != nil {
		return resp
	}
	type hfDims struct {
		ModelType         string `json:"model_type"`
		HiddenSize        int    `json:"hidden_size"`
		NumHiddenLayers   int    `json:"num_hidden_layers"`
		NumAttentionHeads int    `json:"num_attention_heads"`
		NumKeyValueHeads  int    `json:"num_key_value_heads"`
		VocabSize         int    `json:"vocab_size"`
	}
	var hf hfDims
	count := 0
	for _, l := range mf.Layers {
		switch {
		case strings.HasSuffix(l.Name, ".axmodel"):
			count++
		case path.Base(l.Name) == "config.json" && hf.ModelType == "":
			var c hfDims
			if readAXModelJSON(l.Digest, &c) == nil && c.ModelType != "" {
				hf = c
			}
		}
	}
	if axmodelOwnTemplate(m) {
		resp.Template = axmodelPackageTemplate(mf.Layers)
	}
	set("block_count", hf.NumHiddenLayers)
	set("embedding_length", hf.HiddenSize)
	set("attention.head_count", hf.NumAttentionHeads)
	set("attention.head_count_kv", hf.NumKeyValueHeads)
	set("vocab_size", hf.VocabSize)
	resp.ModelInfo["axmodel.file_count"] = count
	return resp
}

// axmodelPackageTemplate is the package's own chat template, for show: the
// chat_template of its tokenizer_config.json (a string, or the list entry
// named "default", else the first), else its chat_template.jinja, looked for
// at the top level first and then one directory down, as axllm reads it.
func axmodelPackageTemplate(layers []manifest.Layer) string {
	byDepth := slices.Clone(layers)
	slices.SortStableFunc(byDepth, func(a, b manifest.Layer) int {
		return strings.Count(a.Name, "/") - strings.Count(b.Name, "/")
	})
	for _, l := range byDepth {
		if path.Base(l.Name) != "tokenizer_config.json" || strings.Count(l.Name, "/") > 1 {
			continue
		}
		var c struct {
			ChatTemplate json.RawMessage `json:"chat_template"`
		}
		if readAXModelJSON(l.Digest, &c) != nil || len(c.ChatTemplate) == 0 {
			continue
		}
		var text string
		if json.Unmarshal(c.ChatTemplate, &text) == nil && text != "" {
			return text
		}
		var named []struct {
			Name     string `json:"name"`
			Template string `json:"template"`
		}
		if json.Unmarshal(c.ChatTemplate, &named) == nil && len(named) > 0 {
			for _, t := range named {
				if t.Name == "default" {
					return t.Template
				}
			}
			return named[0].Template
		}
	}
	for _, l := range byDepth {
		if path.Base(l.Name) == "chat_template.jinja" && strings.Count(l.Name, "/") <= 1 {
			if b, err := readAXModelBlob(l.Digest); err == nil {
				return string(b)
			}
		}
	}
	return ""
}
