package vma_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// memDisk is an in-memory Disk.
type memDisk struct{ b []byte }

func (d memDisk) ReadAt(p []byte, off int64) (int, error) { return bytes.NewReader(d.b).ReadAt(p, off) }
func (d memDisk) Size() int64                             { return int64(len(d.b)) }

// memTarget is a growable in-memory io.WriterAt.
type memTarget struct {
	mu sync.Mutex
	b  []byte
}

func (t *memTarget) WriteAt(p []byte, off int64) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if end := int(off) + len(p); end > len(t.b) {
		t.b = append(t.b, make([]byte, end-len(t.b))...)
	}
	return copy(t.b[off:], p), nil
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type manifestEntry struct {
	Name            string  `json:"name"`
	File            string  `json:"file"`
	Expect          string  `json:"expect"`
	UUID            *string `json:"uuid"`
	Ctime           *int64  `json:"ctime"`
	Configs         []entry `json:"configs"`
	Devices         []entry `json:"devices"`
	FileSHA256      string  `json:"file_sha256"`
	RepackIdentical bool    `json:"repack_identical"`
}

type entry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

const vectorDir = "../testdata/vectors"

func loadManifest(t *testing.T) []manifestEntry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Vectors []manifestEntry `json:"vectors"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Vectors) < 10 {
		t.Fatalf("manifest has only %d vectors", len(m.Vectors))
	}
	return m.Vectors
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }
