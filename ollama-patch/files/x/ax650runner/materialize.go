package ax650runner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/ollama/ollama/manifest"
	"github.com/ollama/ollama/types/model"
)

// MediaTypeJSON is the media type of the package's JSON files (as for
// safetensors imports); every other file has manifest.MediaTypeImageAXModel.
const MediaTypeJSON = "application/vnd.ollama.image.json"

// ModelFiles maps each file of an axmodel model (its path relative to the
// package directory, the layer's Name) to its blob. Names that are not
// plain relative paths, and blobs that are not regular files, are rejected.
func ModelFiles(name string) (map[string]string, error) {
	n := model.ParseName(name)
	if !n.IsValid() {
		return nil, fmt.Errorf("invalid model name %q", name)
	}
	mf, err := manifest.ParseNamedManifest(n)
	if err != nil {
		return nil, fmt.Errorf("reading the manifest of %s: %w", name, err)
	}
	files := make(map[string]string)
	for _, l := range mf.Layers {
		if l.Name == "" || (l.MediaType != manifest.MediaTypeImageAXModel && l.MediaType != MediaTypeJSON) {
			continue
		}
		if !fs.ValidPath(l.Name) || l.Name == "." {
			return nil, fmt.Errorf("model %s has a file with an invalid name %q", name, l.Name)
		}
		if _, dup := files[l.Name]; dup {
			return nil, fmt.Errorf("model %s has two files named %q", name, l.Name)
		}
		blob, err := manifest.BlobsPath(l.Digest)
		if err != nil {
			return nil, err
		}
		// Ollama writes every blob as a regular file; a symlink in the store
		// could make the model load a file from anywhere.
		fi, err := os.Lstat(blob)
		if err != nil {
			return nil, fmt.Errorf("model %s: the blob of %q: %w", name, l.Name, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("model %s: the blob of %q is not a regular file (%s)", name, l.Name, fi.Mode().Type())
		}
		files[l.Name] = blob
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("model %s has no axmodel files", name)
	}
	return files, nil
}

// Materialize makes a directory under parent (the system temp dir when
// empty) with one symlink per file, at its relative path, pointing at its
// blob: the package directory the axllm library loads. Links are created
// through an os.Root, so no name can place anything outside the directory.
// The caller removes the directory.
func Materialize(files map[string]string, parent string) (string, error) {
	blobs, err := manifest.BlobsPath("")
	if err != nil {
		return "", err
	}
	if parent == "" {
		parent = os.TempDir()
	}
	if within(parent, blobs) {
		// Ollama prunes anything in blobs/ that is not a blob.
		return "", fmt.Errorf("the model directory must not be inside %s", blobs)
	}
	dir, err := os.MkdirTemp(parent, "model-")
	if err != nil {
		return "", err
	}
	if err := link(dir, files); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

func link(dir string, files map[string]string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for name, blob := range files {
		if !fs.ValidPath(name) || name == "." {
			return fmt.Errorf("invalid file name %q", name)
		}
		if d := path.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("creating %s: %w", d, err)
			}
		}
		if err := root.Symlink(blob, name); err != nil {
			return fmt.Errorf("linking %s: %w", name, err)
		}
	}
	return nil
}

// within reports whether p is dir or inside it.
func within(p, dir string) bool {
	ap, err1 := filepath.Abs(p)
	ad, err2 := filepath.Abs(dir)
	if err := errors.Join(err1, err2); err != nil {
		return false
	}
	rel, err := filepath.Rel(ad, ap)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}
