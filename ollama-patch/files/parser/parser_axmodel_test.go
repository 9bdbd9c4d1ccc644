package parser

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFilesForModelAXModel(t *testing.T) {
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
