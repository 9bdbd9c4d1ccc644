//go:build !ax650 || !cgo

package llm

// ax650Built: without the ax650 build tag (or cgo) the runner cannot drive
// the NPU, so NewAX650Server refuses with ErrAX650NotBuilt.
const ax650Built = false
