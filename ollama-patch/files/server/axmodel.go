package server

// AXERA AX650 (axmodel) models: predicates and the small pieces the
// scheduler and routes call at their hooks.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/llm"
	"github.com/ollama/ollama/manifest"
	"github.com/ollama/ollama/types/model"
)

// IsAXModel reports whether the model is an AX650 package run on the NPU.
func (m *Model) IsAXModel() bool {
	return m.Config.ModelFormat == axmodelFormat
}

// newAX650Server is the scheduler's default newAXServerFn. It is cheap (the
// scheduler holds its lock): the runner subprocess starts in Load.
func newAX650Server(m *Model, _ api.Options) (llm.LlamaServer, error) {
	var size uint64
	if mf, err := manifest.ParseNamedManifest(model.ParseName(m.Name)); err == nil {
		for _, l := range mf.Layers {
			if l.MediaType == manifest.MediaTypeImageAXModel {
				size += uint64(l.Size)
			}
		}
	}
	s, err := llm.NewAX650Server(m.ShortName, size)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// axmodelFormatSet reports whether a request asks for structured output.
func axmodelFormatSet(format json.RawMessage) bool {
	f := bytes.TrimSpace(format)
	return len(f) > 0 && !bytes.Equal(f, []byte("null")) && !bytes.Equal(f, []byte(`""`))
}

const (
	axmodelFormatUnsupported = "format is not supported for AX650 models yet"
	axmodelImagesUnsupported = "AX650 models do not support image input"
)

// axmodelRejectGenerate answers 400 to a generate request an AX650 model
// cannot serve and reports whether it did. Checked before the model loads.
func axmodelRejectGenerate(c *gin.Context, m *Model, req *api.GenerateRequest) bool {
	if !m.IsAXModel() {
		return false
	}
	switch {
	case axmodelFormatSet(req.Format):
		c.JSON(http.StatusBadRequest, gin.H{"error": axmodelFormatUnsupported})
	case len(req.Images) > 0:
		c.JSON(http.StatusBadRequest, gin.H{"error": axmodelImagesUnsupported})
	default:
		return false
	}
	return true
}

// axmodelRejectChat is axmodelRejectGenerate for chat requests.
func axmodelRejectChat(c *gin.Context, m *Model, req *api.ChatRequest) bool {
	if !m.IsAXModel() {
		return false
	}
	images := false
	for _, msg := range req.Messages {
		images = images || len(msg.Images) > 0
	}
	switch {
	case axmodelFormatSet(req.Format):
		c.JSON(http.StatusBadRequest, gin.H{"error": axmodelFormatUnsupported})
	case images:
		c.JSON(http.StatusBadRequest, gin.H{"error": axmodelImagesUnsupported})
	default:
		return false
	}
	return true
}

// axmodelShowInfo completes /api/show for an AX650 model from its Hugging
// Face config.json (there is no GGUF to read).
func axmodelShowInfo(name model.Name, m *Model, resp *api.ShowResponse) *api.ShowResponse {
	arch := m.Config.ModelFamily
	if arch == "" {
		arch = axmodelFormat
	}
	if resp.ModelInfo == nil {
		resp.ModelInfo = make(map[string]any)
	}
	resp.ModelInfo["general.architecture"] = arch

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
	files, count := make(map[string]string), 0
	for _, l := range mf.Layers {
		if l.Name == "" {
			continue
		}
		files[l.Name] = l.Digest
		if strings.HasSuffix(l.Name, ".axmodel") {
			count++
		}
	}
	for name, digest := range files {
		if path.Base(name) != "config.json" {
			continue
		}
		var c hfDims
		if readAXModelJSON(digest, &c) == nil && c.ModelType != "" {
			hf = c
			break
		}
	}
	set := func(key string, v int) {
		if v > 0 {
			resp.ModelInfo[fmt.Sprintf("%s.%s", arch, key)] = v
		}
	}
	set("block_count", hf.NumHiddenLayers)
	set("embedding_length", hf.HiddenSize)
	set("attention.head_count", hf.NumAttentionHeads)
	set("attention.head_count_kv", hf.NumKeyValueHeads)
	set("vocab_size", hf.VocabSize)
	resp.ModelInfo["axmodel.file_count"] = count
	return resp
}
