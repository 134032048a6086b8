package boltstore_test

import (
	"path/filepath"
	"testing"

	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/boltstore"
	"github.com/sealgate/sealgate/store/storetest"
)

func TestFilesContract(t *testing.T) {
	storetest.RunFiles(t, storetest.Keyed(
		func(t *testing.T) string { return filepath.Join(t.TempDir(), "store.db") },
		func(t *testing.T, path string) store.Store {
			s, err := boltstore.Open(path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		},
	))
}
