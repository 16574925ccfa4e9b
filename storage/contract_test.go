package storage_test

import (
	"testing"

	"github.com/tendhq/tend/storage/storagetest"
)

// TestWorkQueueContract runs the exported work-queue contract on each
// backend; wrappers of the store run it too (the ingest fault injector).
func TestWorkQueueContract(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) { storagetest.WorkQueueContract(t, b, nil) })
	}
}
