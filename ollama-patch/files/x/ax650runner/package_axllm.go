//go:build ax650 && cgo

package ax650runner

/*
#include <stdlib.h>
#include "axllm.h"
*/
import "C"

import (
	"errors"
	"unsafe"

	"github.com/ollama/ollama/llm"
)

// CheckPackage runs axllm's static checks of the package at dir
// (axllm_package_check). It does not load the NPU runtime, so it is safe
// inside `ollama serve`. linkRoots are the directories outside the package
// its symlinks may point into (the blob store for a materialized package).
func CheckPackage(dir string, linkRoots []string) (PackageInfo, error) {
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	var params C.axllm_load_params
	if err := call("axllm_load_default_params", func() C.axllm_status {
		return C.axllm_load_default_params(&params, C.size_t(unsafe.Sizeof(params)))
	}); err != nil {
		return PackageInfo{}, err
	}
	roots, freeRoots := cStrings(linkRoots)
	defer freeRoots()
	params.link_roots = roots
	params.n_link_roots = C.size_t(len(linkRoots))

	var ci C.axllm_package_info
	var d C.axllm_generate_params
	buf := make([]byte, 64<<10)
	for {
		var n C.size_t
		err := call("axllm_package_check", func() C.axllm_status {
			return C.axllm_package_check(cdir, &params, &ci, C.size_t(unsafe.Sizeof(ci)), &d, C.size_t(unsafe.Sizeof(d)),
				(*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n)
		})
		var ee *EngineError
		if errors.As(err, &ee) && ee.Status == llm.AxllmErrBufferTooSmall && int(n)+1 > len(buf) {
			buf = make([]byte, int(n)+1)
			continue
		}
		if err != nil {
			return PackageInfo{}, err
		}
		info := PackageInfo{
			Layers:        int(ci.layers),
			ContextLength: int(ci.context_length),
			MaxPrefill:    int(ci.max_prefill),
			HiddenSize:    int(ci.hidden_size),
			VocabSize:     int(ci.vocab_size),
			ChatTemplate:  string(buf[:n]),
		}
		if ci.has_sampling_defaults {
			info.SamplingDefaults = samplingDefaults(Params{
				Temperature:      float32(d.temperature),
				TopK:             int(d.top_k),
				TopP:             float32(d.top_p),
				MinP:             float32(d.min_p),
				RepeatLastN:      int(d.repeat_last_n),
				RepeatPenalty:    float32(d.repeat_penalty),
				PresencePenalty:  float32(d.presence_penalty),
				FrequencyPenalty: float32(d.frequency_penalty),
			})
		}
		return info, nil
	}
}
