package db

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"verifier/verify"
)

func TestCloseTwice(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checkClosed(t, s)
}

// Concurrent Closes, with writes under way, must neither panic nor
// return anything but the first Close's result.
func TestCloseConcurrently(t *testing.T) {
	dir := t.TempDir()
	for round := range 300 {
		s, err := Open(filepath.Join(dir, fmt.Sprintf("v%d.db", round)))
		if err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		closeErrs := make([]error, 8)
		for i := range closeErrs {
			wg.Go(func() {
				<-start
				closeErrs[i] = s.Close()
			})
		}
		updateErrs := make([]error, 4)
		for i := range updateErrs {
			wg.Go(func() {
				<-start
				updateErrs[i] = s.Update(context.Background(), fmt.Sprintf("+1415555000%d", i),
					func(r *verify.Record) error { r.VerifiedAt = t0; return nil })
			})
		}
		close(start)
		wg.Wait()
		for i, err := range closeErrs {
			if err != nil {
				t.Fatalf("round %d: Close %d: %v", round, i, err)
			}
		}
		for i, err := range updateErrs {
			if err != nil && !errors.Is(err, ErrClosed) {
				t.Fatalf("round %d: Update %d during Close: %v", round, i, err)
			}
		}
		checkClosed(t, s)
	}
}

// checkClosed checks that every method of a closed store returns
// ErrClosed.
func checkClosed(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	if err := s.Update(ctx, "+14155552671", func(*verify.Record) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Get(ctx, "+14155552671"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
	if err := s.Ping(); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Expired(ctx, t0, 10); !errors.Is(err, ErrClosed) {
		t.Errorf("Expired after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Spend(ctx, "id", t0.Add(time.Hour)); !errors.Is(err, ErrClosed) {
		t.Errorf("Spend after Close = %v, want ErrClosed", err)
	}
	if _, err := s.ForgetSpent(t0); !errors.Is(err, ErrClosed) {
		t.Errorf("ForgetSpent after Close = %v, want ErrClosed", err)
	}
	_, err := s.Secret("k", func() ([]byte, error) { return []byte("x"), nil })
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Secret after Close = %v, want ErrClosed", err)
	}
}
