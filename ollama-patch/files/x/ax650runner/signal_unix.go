//go:build !windows

package ax650runner

import (
	"os"
	"os/signal"
	"syscall"
)

// survivePipeLoss keeps the runner alive when `ollama serve` dies: a write to
// its closed stdout or stderr would otherwise kill the runner with SIGPIPE
// before it frees the NPU and removes its directory.
func survivePipeLoss() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}
