package ax650runner

// survivePipeLoss: Windows has no SIGPIPE.
func survivePipeLoss() {}
