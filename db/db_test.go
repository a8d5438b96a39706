package db

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"verifier/record"
	"verifier/verify"
)

func mustOpen(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func pendingAt(expires time.Time) *verify.Pending {
	return &verify.Pending{Secret: "JBSWY3DPEHPK3PXP", Digits: 6, SentAt: expires.Add(-time.Minute), ExpiresAt: expires}
}

func TestUpdateIsDurableAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.db")
	s := mustOpen(t, path)
	ctx := context.Background()
	err := s.Update(ctx, "+14155552671", func(r *verify.Record) error {
		r.VerifiedAt = t0
		r.Pending = pendingAt(t0.Add(time.Minute))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = mustOpen(t, path)
	rec, err := s.Get(ctx, "+14155552671")
	if err != nil || !rec.VerifiedAt.Equal(t0) || rec.Pending == nil || rec.Pending.Secret != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("after reopen: %+v, %v", rec, err)
	}
}

func TestMissingNumberIsAZeroRecord(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "v.db"))
	rec, err := s.Get(context.Background(), "+14155552671")
	if err != nil || !rec.Empty() {
		t.Fatalf("%+v, %v", rec, err)
	}
}

func TestEmptyRecordIsDeletedAndExpiryIndexFollows(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "v.db"))
	ctx := context.Background()
	for i, exp := range []time.Duration{time.Minute, 2 * time.Minute, time.Hour} {
		phone := fmt.Sprintf("+1415555267%d", i)
		s.Update(ctx, phone, func(r *verify.Record) error { r.Pending = pendingAt(t0.Add(exp)); return nil })
	}
	got, _ := s.Expired(ctx, t0.Add(2*time.Minute), 10)
	if fmt.Sprint(got) != "[+14155552670 +14155552671]" {
		t.Fatalf("expired = %v", got)
	}
	// Moving a code's expiry moves its index entry.
	s.Update(ctx, "+14155552670", func(r *verify.Record) error { r.Pending = pendingAt(t0.Add(3 * time.Hour)); return nil })
	s.Update(ctx, "+14155552671", func(r *verify.Record) error { r.Pending = nil; return nil })
	got, _ = s.Expired(ctx, t0.Add(2*time.Hour), 10)
	if fmt.Sprint(got) != "[+14155552672]" {
		t.Fatalf("expired after changes = %v", got)
	}
	if rec, _ := s.Get(ctx, "+14155552671"); !rec.Empty() {
		t.Fatalf("empty record kept: %+v", rec)
	}
}

func TestFunctionErrorWritesNothingAndSparesTheBatch(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "v.db"))
	ctx := context.Background()
	refuse := errors.New("refused")
	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(ctx, fmt.Sprintf("+1415555%04d", i), func(r *verify.Record) error {
				if i%2 == 1 {
					r.VerifiedAt = t0 // must not be kept
					return refuse
				}
				r.VerifiedAt = t0
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		rec, _ := s.Get(ctx, fmt.Sprintf("+1415555%04d", i))
		if i%2 == 1 && (!errors.Is(err, refuse) || !rec.Empty()) {
			t.Fatalf("refused write %d: err %v, stored %+v", i, err, rec)
		}
		if i%2 == 0 && (err != nil || !rec.Verified()) {
			t.Fatalf("write %d: err %v, stored %+v", i, err, rec)
		}
	}
}

func TestConcurrentUpdatesOfOneNumberAreSerialised(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "v.db"))
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Update(ctx, "+14155552671", func(r *verify.Record) error {
				if r.Pending == nil {
					r.Pending = pendingAt(t0)
				}
				r.Pending.Attempts++
				return nil
			})
		}()
	}
	wg.Wait()
	rec, _ := s.Get(ctx, "+14155552671")
	if rec.Pending.Attempts != 200 {
		t.Fatalf("attempts = %d, want 200: an update was lost", rec.Pending.Attempts)
	}
}

func TestWritesAfterCloseFail(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	err = s.Update(context.Background(), "+14155552671", func(r *verify.Record) error { return nil })
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

func TestSecondProcessCannotOpenTheSameFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.db")
	mustOpen(t, path)
	start := time.Now()
	if _, err := Open(path); err == nil {
		t.Fatal("opened a locked file")
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("waited too long for the lock")
	}
}

func benchUpdate(b *testing.B, writers int) {
	s := mustOpen(b, filepath.Join(b.TempDir(), "v.db"))
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(writers)
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			phone := fmt.Sprintf("+1415%07d", 2000000+n.Add(1)%8000000)
			err := s.Update(ctx, phone, func(r *verify.Record) error {
				r.Pending = pendingAt(t0.Add(time.Minute))
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Durable writes (fsync per commit), one writer and many: the concurrent
// ones share commits.
func BenchmarkUpdate1(b *testing.B)   { benchUpdate(b, 1) }
func BenchmarkUpdate64(b *testing.B)  { benchUpdate(b, 32) }  // 32 x GOMAXPROCS(2) = 64 goroutines
func BenchmarkUpdate512(b *testing.B) { benchUpdate(b, 256) } // 512 goroutines

// BenchmarkRecordCodec is one read-modify-write of a pending record's
// bytes, as every Update does.
func BenchmarkRecordCodec(b *testing.B) {
	rec := verify.Record{Sends: verify.Window{Until: t0, Count: 1}, Pending: pendingAt(t0.Add(time.Minute))}
	rec.Pending.Secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	v, _ := record.Encode(rec)
	b.ReportAllocs()
	for b.Loop() {
		r, err := record.Decode(v)
		if err != nil {
			b.Fatal(err)
		}
		r.Pending.Attempts++
		if v, err = record.Encode(r); err != nil {
			b.Fatal(err)
		}
	}
}
