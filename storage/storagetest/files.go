package storagetest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FilesContaining returns the names of the files under dir whose bytes
// contain needle: the check that an erasure left nothing on disk.
func FilesContaining(t testing.TB, dir string, needle []byte) []string {
	t.Helper()
	var found []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			found = append(found, filepath.Base(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// DirBytes is the bytes of every file under dir: what a data directory
// takes on disk, for the disk-use bounds.
func DirBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
