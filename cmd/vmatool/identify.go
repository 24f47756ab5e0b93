package main

import (
	"io"

	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/vma"
)

// inspectSource tells an archive (compressed or not, by content) from an
// image.
func inspectSource(path string, opts ...vma.DecompressOption) (*recipe.Source, error) {
	src, err := recipe.Identify(path, opts...)
	if err != nil {
		return nil, windowHint(err)
	}
	return src, nil
}

// progressReader counts what it reads.
type progressReader struct {
	r io.Reader
	p vma.Progress
}

func (pr progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	if pr.p != nil {
		pr.p.Update(int64(n))
	}
	return n, err
}
