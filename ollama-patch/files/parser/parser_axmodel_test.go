package parser

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ollama/ollama/llm"
	"github.com/ollama/ollama/x/ax650runner"
)

// noAXCheck stands in for axllm's package check, which the fake packages
// here would not pass; checked records the directories it was given.
func noAXCheck(t *testing.T, err error) *[]string {
	t.Helper()
	old := checkAXModelPackage
	t.Cleanup(func() { checkAXModelPackage = old })
	var checked []string
	checkAXModelPackage = func(dir string) error {
		checked = append(checked, dir)
		return err
	}
	return &checked
}

func TestFilesForModelAXModel(t *testing.T) {
	noAXCheck(t, nil)
	cases := []struct {
		name  string
		files map[string]string // relative path -> content
		want  []string
	}{
		{
			name: "axllm layout",
			files: map[string]string{
				"config.json":                            `{"template_filename_axmodel":"qwen3_p128_l%d_together.axmodel"}`,
				"post_config.json":                       `{}`,
				"qwen3_p128_l0_together.axmodel":         "\x00axmodel",
				"qwen3_p128_l1_together.axmodel":         "\x00axmodel",
				"qwen3_post.axmodel":                     "\x00axmodel",
				"model.embed_tokens.weight.bfloat16.bin": "plain text, not octet-stream",
				"qwen3_tokenizer/config.json":            `{"model_type":"qwen3"}`,
				"qwen3_tokenizer/tokenizer.json":         `{}`,
				"qwen3_tokenizer/tokenizer_config.json":  `{}`,
				"qwen3_tokenizer/merges.txt":             "a b",
				"qwen3_tokenizer/generation_config.json": `{}`,
				"qwen3_tokenizer/chat_template.jinja":    "{{ messages }}",
				"run_qwen3_ax650.sh":                     "#!/bin/sh",
				"main_ax650":                             "\x7fELF",
				"qwen3_tokenizer/deeper/ignored.json":    `{}`,
				"qwen3_tokenizer/deeper/ignored.axmodel": "x",
				"README.md":                              "# readme",
			},
			want: []string{
				"config.json", "post_config.json",
				"qwen3_p128_l0_together.axmodel", "qwen3_p128_l1_together.axmodel", "qwen3_post.axmodel",
				"model.embed_tokens.weight.bfloat16.bin",
				"qwen3_tokenizer/config.json", "qwen3_tokenizer/tokenizer.json", "qwen3_tokenizer/tokenizer_config.json",
				"qwen3_tokenizer/generation_config.json", "qwen3_tokenizer/chat_template.jinja",
			},
		},
		{
			name: "hugging face package with a compiled subdirectory",
			files: map[string]string{
				"config.json":      "",
				"post_config.json": `{}`,
				"qwen3-4b-ax650/qwen3_p128_l0_together.axmodel":         "x",
				"qwen3-4b-ax650/qwen3_post.axmodel":                     "x",
				"qwen3-4b-ax650/model.embed_tokens.weight.bfloat16.bin": "x",
				"qwen3_tokenizer/tokenizer.json":                        `{}`,
			},
			want: []string{
				"config.json", "post_config.json",
				"qwen3-4b-ax650/qwen3_p128_l0_together.axmodel", "qwen3-4b-ax650/qwen3_post.axmodel",
				"qwen3-4b-ax650/model.embed_tokens.weight.bfloat16.bin",
				"qwen3_tokenizer/tokenizer.json",
			},
		},
		{
			name: "compiled directory only",
			files: map[string]string{
				"qwen3_p16_l0_together.axmodel":          "x",
				"qwen3_post.axmodel":                     "x",
				"model.embed_tokens.weight.bfloat16.bin": "x",
				"tokenizer.json":                         `{}`,
				"tokenizer_config.json":                  `{}`,
			},
			want: []string{
				"qwen3_p16_l0_together.axmodel", "qwen3_post.axmodel", "model.embed_tokens.weight.bfloat16.bin",
				"tokenizer.json", "tokenizer_config.json",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			files, err := filesForModel(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range files {
				rel, err := filepath.Rel(dir, f)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, filepath.ToSlash(rel))
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}

			digests, err := fileDigestMap(dir)
			if err != nil || len(digests) != len(tc.want) {
				t.Errorf("fileDigestMap: %d files, %v", len(digests), err)
			}
		})
	}
}

func TestFilesForModelNoAXModel(t *testing.T) {
	// Without .axmodel files a .bin that is not GGUF is still refused.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "weights.bin"), []byte("plain text"), 0o644); err != nil {
		t.Fatal(err)
	}
	if files, err := filesForModel(dir); err == nil {
		t.Errorf("filesForModel = %v, want an error", files)
	}
}

// A package axllm refuses is refused on the client, before any upload, in
// the user's own path.
func TestFilesForModelAXModelCheckFails(t *testing.T) {
	dir := t.TempDir()
	layer := filepath.Join(dir, "qwen3_p16_l0_together.axmodel")
	if err := os.WriteFile(layer, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	checked := noAXCheck(t, &ax650runner.EngineError{Call: "axllm_package_check", Status: llm.AxllmErrBadPackage,
		Message: "bad model package " + dir + ": " + filepath.Base(layer) + ": truncated"})
	_, err := filesForModel(dir)
	if err == nil || !strings.Contains(err.Error(), dir+" is not a usable AX650 model package: bad model package "+dir+": "+filepath.Base(layer)+": truncated") {
		t.Fatalf("filesForModel = %v", err)
	}
	if len(*checked) != 1 || (*checked)[0] != dir {
		t.Errorf("checked %v, want [%s]", *checked, dir)
	}

	// Without axllm in the binary the server checks the package.
	noAXCheck(t, llm.ErrAX650NotBuilt)
	if files, err := filesForModel(dir); err != nil || len(files) != 1 {
		t.Errorf("filesForModel without axllm = %v, %v", files, err)
	}
}
