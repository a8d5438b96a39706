package db

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	bolt "go.etcd.io/bbolt"

	"verifier/verify"
)

// logSink collects the JSON log lines of a store; the writer goroutine
// and readers may log at once.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range bytes.Lines(l.buf.Bytes()) {
		m := map[string]any{}
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func newLog() (*slog.Logger, *logSink) {
	sink := &logSink{}
	return slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug})), sink
}

// checkBadRecordLog checks that the log holds exactly one line, the report
// of phone's unreadable record.
func checkBadRecordLog(t *testing.T, sink *logSink, phone string) {
	t.Helper()
	lines := sink.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want exactly 1: %v", len(lines), lines)
	}
	want := map[string]string{"level": "WARN", "msg": "db: unreadable record", "event": "store",
		"reason": "bad_record", "phone": verify.MaskPhone(phone)}
	for k, v := range want {
		if lines[0][k] != v {
			t.Errorf("log %s = %v, want %q (line %v)", k, lines[0][k], v, lines[0])
		}
	}
	if s, _ := lines[0]["phone"].(string); s == phone {
		t.Errorf("log holds the unmasked number: %v", lines[0])
	}
}

// garbage is what a damaged or foreign record may look like.
var garbage = map[string][]byte{
	"unknown version": {99, '{', '}'},
	"bad JSON":        {1, '{', '"', 'p'}, // record version 1 is JSON
	"wrong JSON type": append([]byte{1}, `{"pending":{"digits":"six"}}`...),
	"empty":           {},
}

// putRaw writes raw values under numbers' keys with bbolt itself, while
// no Store has the file open.
func putRaw(t *testing.T, path string, raw map[string][]byte) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := numbersSecret(b)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := newNumberKeys(secret)
	err = b.Update(func(tx *bolt.Tx) error {
		for k, v := range raw {
			if err := tx.Bucket(bucketNumbers).Put(keys.Key(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// openWithGarbage returns a store whose record for phone is v, logging
// to the returned sink. The caller closes the store.
func openWithGarbage(t *testing.T, phone string, v []byte) (*Store, *logSink) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "v.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	putRaw(t, path, map[string][]byte{phone: v})
	log, sink := newLog()
	s, err = Open(path, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	return s, sink
}

// lastTxID is the id of the last committed write transaction.
func lastTxID(t *testing.T, s *Store) int {
	t.Helper()
	id := 0
	if err := s.bolt.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// A record that does not decode must fail neither its own write (it is
// treated as new and overwritten) nor, above all, the other writes that
// share its transaction.
func TestUnreadableRecordSparesTheBatch(t *testing.T) {
	for name, v := range garbage {
		t.Run(name, func(t *testing.T) {
			// The bubble makes "every write is queued" observable: Wait
			// returns once all goroutines are blocked, the writer inside
			// the first write and the others handing theirs over.
			synctest.Test(t, func(t *testing.T) { testUnreadableInBatch(t, v) })
		})
	}
}

func testUnreadableInBatch(t *testing.T, v []byte) {
	const bad, blocker = "+14155550000", "+14155550999"
	s, sink := openWithGarbage(t, bad, v)
	defer s.Close()
	ctx := context.Background()
	before := lastTxID(t, s)

	// Hold the writer inside a transaction while the others queue up.
	started, release := make(chan struct{}), make(chan struct{})
	blockerErr := make(chan error, 1)
	go func() {
		blockerErr <- s.Update(ctx, blocker, func(r *verify.Record) error {
			close(started)
			<-release
			r.VerifiedAt = t0
			return nil
		})
	}()
	<-started

	good := make([]string, 5)
	for i := range good {
		good[i] = fmt.Sprintf("+1415555010%d", i)
	}
	var wg sync.WaitGroup
	goodErrs := make([]error, len(good))
	for i, phone := range good {
		wg.Go(func() {
			goodErrs[i] = s.Update(ctx, phone, func(r *verify.Record) error {
				r.VerifiedAt = t0.Add(time.Duration(i) * time.Second)
				return nil
			})
		})
	}
	var badErr error
	var badSaw verify.Record
	wg.Go(func() {
		badErr = s.Update(ctx, bad, func(r *verify.Record) error {
			badSaw = *r
			r.Pending = pendingAt(t0.Add(time.Minute))
			return nil
		})
	})
	synctest.Wait()
	close(release)
	wg.Wait()
	if err := <-blockerErr; err != nil {
		t.Fatalf("blocking write: %v", err)
	}

	for i, phone := range good {
		rec, err := s.Get(ctx, phone)
		if goodErrs[i] != nil || err != nil || !rec.VerifiedAt.Equal(t0.Add(time.Duration(i)*time.Second)) {
			t.Errorf("good write %s: Update %v, then Get %+v, %v", phone, goodErrs[i], rec, err)
		}
	}
	if badErr != nil {
		t.Errorf("write over the unreadable record: %v", badErr)
	}
	if !badSaw.Empty() {
		t.Errorf("unreadable record reached the function as %+v, want a zero record", badSaw)
	}
	rec, err := s.Get(ctx, bad)
	if err != nil || rec.Pending == nil || !rec.Pending.ExpiresAt.Equal(t0.Add(time.Minute)) || rec.Verified() {
		t.Errorf("after the write the number reads %+v, %v; want the new record", rec, err)
	}
	expired, err := s.Expired(ctx, t0.Add(time.Hour), 10)
	if err != nil || fmt.Sprint(expired) != "["+bad+"]" {
		t.Errorf("Expired = %v, %v; want the rewritten record's code", expired, err)
	}
	// Two commits: the blocking write's, then one shared by all the others
	// (or the test proved nothing).
	if got := lastTxID(t, s) - before; got != 2 {
		t.Errorf("%d commits, want 2: the blocking write's, then one for the queued writes", got)
	}
	checkBadRecordLog(t, sink, bad)
}

func TestUnreadableRecordReadsAsNewAndIsLoggedOnce(t *testing.T) {
	for name, v := range garbage {
		t.Run(name, func(t *testing.T) {
			const bad = "+14155550000"
			s, sink := openWithGarbage(t, bad, v)
			defer s.Close()
			ctx := context.Background()
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					rec, err := s.Get(ctx, bad)
					if err != nil || !rec.Empty() {
						t.Errorf("Get = %+v, %v; want a zero record", rec, err)
					}
				})
			}
			wg.Wait()
			// A refused write leaves the record as it is, and reports
			// nothing new.
			err := s.Update(ctx, bad, func(r *verify.Record) error {
				if !r.Empty() {
					t.Errorf("Update got %+v, want a zero record", *r)
				}
				return verify.ErrNoChange
			})
			if !errors.Is(err, verify.ErrNoChange) {
				t.Fatalf("Update = %v, want ErrNoChange", err)
			}
			if rec, err := s.Get(ctx, bad); err != nil || !rec.Empty() {
				t.Fatalf("Get = %+v, %v; want a zero record", rec, err)
			}
			checkBadRecordLog(t, sink, bad)

			// A write that leaves the record empty deletes it.
			if err := s.Update(ctx, bad, func(*verify.Record) error { return nil }); err != nil {
				t.Fatal(err)
			}
			s.bolt.View(func(tx *bolt.Tx) error {
				if v := tx.Bucket(bucketNumbers).Get(s.keys.Key(bad)); v != nil {
					t.Errorf("unreadable record %q kept after an empty write", v)
				}
				return nil
			})
		})
	}
}

func TestUnreadableRecordWithoutLogger(t *testing.T) {
	for _, opts := range [][]Option{nil, {WithLogger(nil)}} {
		path := filepath.Join(t.TempDir(), "v.db")
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		putRaw(t, path, map[string][]byte{"+14155550000": {99}})
		s, err = Open(path, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if rec, err := s.Get(context.Background(), "+14155550000"); err != nil || !rec.Empty() {
			t.Errorf("Get = %+v, %v; want a zero record", rec, err)
		}
		s.Close()
	}
}
