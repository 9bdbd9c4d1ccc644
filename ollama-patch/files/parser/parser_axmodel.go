package parser

import "path/filepath"

// axmodelFilesForModel returns the model files of an AXERA AX650 package
// directory: the compiled .axmodel files and the raw .bin embedding table, at
// the top level or one directory down (the Hugging Face packages keep them in
// a `<name>-ax650/` subdirectory). It returns nil when there is no .axmodel
// file. The .bin files are not GGUF, so their content is not sniffed. The
// caller adds the JSON, chat template and tokenizer files as for any model.
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
