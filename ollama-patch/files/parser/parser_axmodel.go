package parser

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/ollama/ollama/llm"
	"github.com/ollama/ollama/x/ax650runner"
)

// checkAXModelPackage runs axllm's static checks of a package directory on
// the client (no NPU runtime is loaded); tests substitute it. The client
// uploads the contents of the user's files, so their symlinks may lead
// anywhere ("/" is the link root); names in the package's configuration
// must stay inside it all the same, as on the server.
var checkAXModelPackage = func(dir string) error {
	_, err := ax650runner.CheckPackage(dir, []string{string(filepath.Separator)})
	return err
}

// axmodelFilesForModel returns the model files of an AXERA AX650 package
// directory: the compiled .axmodel files and the raw .bin embedding table, at
// the top level or one directory down (the Hugging Face packages keep them in
// a `<name>-ax650/` subdirectory). It returns nil when there is no .axmodel
// file. The .bin files are not GGUF, so their content is not sniffed. The
// caller adds the JSON, chat template and tokenizer files as for any model.
//
// The package is checked first, with axllm's own checks, so a broken one is
// refused before anything is uploaded, with the error naming the user's
// own file. A binary without axllm (no ax650 tag) leaves that to the server.
func axmodelFilesForModel(dir string) ([]string, error) {
	var ax []string
	for _, pattern := range []string{"*.axmodel", "*/*.axmodel"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return nil, err
		}
		ax = append(ax, m...)
	}
	if len(ax) == 0 {
		return nil, nil
	}
	if err := checkAXModelPackage(dir); err != nil && !errors.Is(err, llm.ErrAX650NotBuilt) {
		var ee *ax650runner.EngineError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("%s is not a usable AX650 model package: %s", dir, ee.Message)
		}
		return nil, fmt.Errorf("%s is not a usable AX650 model package: %w", dir, err)
	}
	files := ax
	for _, pattern := range []string{"*.bin", "*/*.bin", "*/chat_template.jinja"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	return files, nil
}
