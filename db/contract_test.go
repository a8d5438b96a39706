package db_test

import (
	"path/filepath"
	"testing"

	"verifier/db"
	"verifier/storetest"
)

// TestContract runs the behaviour every store shares against the bbolt
// file.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		s, err := db.Open(filepath.Join(t.TempDir(), "verifier.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	})
}
