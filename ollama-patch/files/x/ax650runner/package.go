package ax650runner

// PackageInfo is what axllm reads from a package's files without the NPU
// (axllm_package_check): the loader's own static checks passed.
type PackageInfo struct {
	Layers int
	// ContextLength and MaxPrefill are 0 when only the runtime on a card can
	// tell them (real .axmodel files); HiddenSize and VocabSize likewise.
	ContextLength int
	MaxPrefill    int
	HiddenSize    int
	VocabSize     int
	// ChatTemplate is the tokenizer's chat template, "" when it has none.
	ChatTemplate string
	// SamplingDefaults are the package's sampling defaults (post_config.json)
	// exactly as a loaded model uses them, by Ollama option name; nil when
	// the package has none (the model then uses Ollama's defaults).
	SamplingDefaults map[string]any
}

// samplingDefaults names the sampling values a loaded model starts from, as
// Ollama options (seed and typical_p stay Ollama's: post_config.json sets
// neither).
func samplingDefaults(p Params) map[string]any {
	return map[string]any{
		"temperature":       p.Temperature,
		"top_k":             p.TopK,
		"top_p":             p.TopP,
		"min_p":             p.MinP,
		"repeat_last_n":     p.RepeatLastN,
		"repeat_penalty":    p.RepeatPenalty,
		"presence_penalty":  p.PresencePenalty,
		"frequency_penalty": p.FrequencyPenalty,
	}
}
