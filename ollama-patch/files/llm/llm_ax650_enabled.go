//go:build ax650 && cgo

package llm

// ax650Built: the runner subprocess (x/ax650runner) links the axllm library.
const ax650Built = true
