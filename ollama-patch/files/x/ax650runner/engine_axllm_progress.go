//go:build ax650 && cgo

package ax650runner

// This file only exports the progress callback: a cgo file with //export
// may declare but not define C functions in its preamble.

/*
#include <stdint.h>
*/
import "C"

import (
	"sync/atomic"
	"unsafe"
)

// loadProgress receives axllm's load progress; one load runs per process.
var loadProgress atomic.Pointer[LoadProgress]

//export goAX650Progress
func goAX650Progress(_ unsafe.Pointer, loaded, total C.uint32_t) {
	if p := loadProgress.Load(); p != nil && *p != nil {
		(*p)(uint32(loaded), uint32(total))
	}
}
