//go:build !ax650 || !cgo

package ax650runner

import "github.com/ollama/ollama/llm"

// loadEngine: this binary has no NPU engine (built without the ax650 tag or cgo).
func loadEngine(string, LoadOptions, LoadProgress) (Engine, error) {
	return nil, llm.ErrAX650NotBuilt
}

// libraryVersion is the axllm version linked in ("" when none).
func libraryVersion() string { return "" }

// CheckPackage: this binary has no axllm library to check packages with.
func CheckPackage(string, []string) (PackageInfo, error) {
	return PackageInfo{}, llm.ErrAX650NotBuilt
}
