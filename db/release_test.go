package db_test

// These tests open a database file written by release 1 (commit 58e3f17,
// record version byte 1 followed by JSON of that release's verify.Record,
// which still carried Pending.Counter) and check that the code of the day
// reads every kind of state it holds. The file is testdata/release1.db.b64,
// a base64 text of the bbolt file, since binary .db files are not committed.
//
// It was made at that commit by a small program (since removed: later code
// writes record version 2 and could not make it again) that wrote, through
// that release's db.Store, the records checked below, then
//
//	base64 -w 76 /tmp/release1.db > db/testdata/release1.db.b64
//
// Never regenerate the file with later code: it must stay what the old
// release wrote. The checks go
// through the public API only and name only fields expected to last, so
// fields may be added to or dropped from the record around them.

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"verifier/db"
	"verifier/verify"
)

const (
	relVerified = "+14155552671" // verified, nothing pending
	relPending  = "+14155552672" // pending HOTP code, 2 attempts used
	relTest     = "+15555550100" // a test number's fixed code
	relBoth     = "+14155552673" // verified before, pending again
	relSpentID  = "00112233445566778899aabbccddeeff"
)

var (
	relVerifiedAt  = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)
	relVerifiedAt2 = time.Date(2026, 2, 1, 8, 30, 0, 0, time.UTC)
	relSentAt      = time.Date(2099, 1, 1, 12, 0, 0, 123456789, time.UTC)
	relSentAtTest  = time.Date(2099, 1, 2, 12, 0, 0, 0, time.UTC)
	relSentAtBoth  = time.Date(2099, 1, 3, 12, 0, 0, 0, time.UTC)
	relSpentUntil  = time.Date(2099, 6, 1, 0, 0, 0, 0, time.UTC)
	relTokenKey    = []byte{
		0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
		0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
	}
	relAPIKey = []byte("0123456789abcdef0123456789abcdef0123456789abcdef")
)

// relPendingWant is what a pending code must read back as.
type relPendingWant struct {
	Secret, TestCode  string
	Digits, Attempts  int
	SentAt, ExpiresAt time.Time
}

type relWant struct {
	VerifiedAt time.Time // zero: never verified
	Pending    *relPendingWant
}

// release1Records is the content of the release-1 file, number by number.
func release1Records() map[string]relWant {
	return map[string]relWant{
		relVerified: {VerifiedAt: relVerifiedAt},
		relPending: {Pending: &relPendingWant{Secret: "JBSWY3DPEHPK3PXP", Digits: 6,
			SentAt: relSentAt, ExpiresAt: relSentAt.Add(10 * time.Minute), Attempts: 2}},
		relTest: {Pending: &relPendingWant{TestCode: "123456", Digits: 6,
			SentAt: relSentAtTest, ExpiresAt: relSentAtTest.Add(10 * time.Minute)}},
		relBoth: {VerifiedAt: relVerifiedAt2, Pending: &relPendingWant{Secret: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
			Digits: 8, SentAt: relSentAtBoth, ExpiresAt: relSentAtBoth.Add(5 * time.Minute), Attempts: 1}},
	}
}

// release1Copy decodes the release-1 file into a fresh temporary file, so
// the tests may write to it.
func release1Copy(t *testing.T) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", "release1.db.b64"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(string(text)) // ignores the line breaks
	if err != nil {
		t.Fatalf("decode release1.db.b64: %v", err)
	}
	path := filepath.Join(t.TempDir(), "release1.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// openRelease opens path and returns the store with a close function that
// may be called early; the test's cleanup calls it otherwise.
func openRelease(t *testing.T, path string) (*db.Store, func()) {
	t.Helper()
	s, err := db.Open(path)
	if err != nil {
		t.Fatalf("open release-1 file: %v", err)
	}
	var once sync.Once
	closeFn := func() {
		once.Do(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Cleanup(closeFn)
	return s, closeFn
}

func checkRecords(t *testing.T, s *db.Store, want map[string]relWant) {
	t.Helper()
	ctx := context.Background()
	for phone, w := range want {
		rec, err := s.Get(ctx, phone)
		if err != nil {
			t.Errorf("Get(%s): %v", phone, err)
			continue
		}
		if !rec.VerifiedAt.Equal(w.VerifiedAt) {
			t.Errorf("%s: VerifiedAt = %v, want %v", phone, rec.VerifiedAt, w.VerifiedAt)
		}
		if w.Pending == nil {
			if rec.Pending != nil {
				t.Errorf("%s: Pending = %+v, want none", phone, *rec.Pending)
			}
			continue
		}
		p := rec.Pending
		if p == nil {
			t.Errorf("%s: no pending code, want %+v", phone, *w.Pending)
			continue
		}
		if p.Secret != w.Pending.Secret {
			t.Errorf("%s: Secret = %q, want %q", phone, p.Secret, w.Pending.Secret)
		}
		if p.TestCode != w.Pending.TestCode {
			t.Errorf("%s: TestCode = %q, want %q", phone, p.TestCode, w.Pending.TestCode)
		}
		if p.Digits != w.Pending.Digits {
			t.Errorf("%s: Digits = %d, want %d", phone, p.Digits, w.Pending.Digits)
		}
		if p.Attempts != w.Pending.Attempts {
			t.Errorf("%s: Attempts = %d, want %d", phone, p.Attempts, w.Pending.Attempts)
		}
		if !p.SentAt.Equal(w.Pending.SentAt) {
			t.Errorf("%s: SentAt = %v, want %v", phone, p.SentAt, w.Pending.SentAt)
		}
		if !p.ExpiresAt.Equal(w.Pending.ExpiresAt) {
			t.Errorf("%s: ExpiresAt = %v, want %v", phone, p.ExpiresAt, w.Pending.ExpiresAt)
		}
	}
}

// checkExpired checks the expiry index against want's pending codes: at
// each code's expiry exactly the codes expiring by then are listed.
func checkExpired(t *testing.T, s *db.Store, want map[string]relWant) {
	t.Helper()
	ctx := context.Background()
	var times []time.Time
	for _, w := range want {
		if w.Pending != nil {
			times = append(times, w.Pending.ExpiresAt)
		}
	}
	times = append(times, relSentAt.Add(-time.Hour), relSpentUntil)
	for _, now := range times {
		var due []string
		for phone, w := range want {
			if w.Pending != nil && !w.Pending.ExpiresAt.After(now) {
				due = append(due, phone)
			}
		}
		got, err := s.Expired(ctx, now, 100)
		if err != nil {
			t.Errorf("Expired(%v): %v", now, err)
			continue
		}
		slices.Sort(got)
		slices.Sort(due)
		if !slices.Equal(got, due) {
			t.Errorf("Expired(%v) = %q, want %q", now, got, due)
		}
	}
}

// checkSpentAndSecrets checks the spent token and both secrets; none of it
// may be regenerated or forgotten.
func checkSpentAndSecrets(t *testing.T, s *db.Store) {
	t.Helper()
	ctx := context.Background()
	// Forgetting tokens that expired before their expiry must keep this one:
	// it tests that its stored expiry still reads as the same time.
	if _, err := s.ForgetSpent(relSpentUntil.Add(-time.Hour)); err != nil {
		t.Errorf("ForgetSpent: %v", err)
	}
	fresh, err := s.Spend(ctx, relSpentID, relSpentUntil)
	if err != nil || fresh {
		t.Errorf("Spend(already spent id) = %v, %v; want false, nil", fresh, err)
	}
	noGenerate := func() ([]byte, error) {
		t.Error("Secret called generate: the stored secret was not found")
		return nil, errors.New("must not generate")
	}
	for name, want := range map[string][]byte{"token-key": relTokenKey, "api-key": relAPIKey} {
		got, err := s.Secret(name, noGenerate)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Secret(%q) = %x, %v; want %x", name, got, err, want)
		}
	}
}

func TestRelease1FileReads(t *testing.T) {
	s, _ := openRelease(t, release1Copy(t))
	want := release1Records()
	checkRecords(t, s, want)
	checkExpired(t, s, want)
	checkSpentAndSecrets(t, s)

	rec, err := s.Get(context.Background(), "+14155552674")
	if err != nil || !rec.VerifiedAt.IsZero() || rec.Pending != nil {
		t.Errorf("number not in the file: %+v, %v; want a zero record", rec, err)
	}
	fresh, err := s.Spend(context.Background(), "ffeeddccbbaa99887766554433221100", relSpentUntil)
	if err != nil || !fresh {
		t.Errorf("Spend(new id) = %v, %v; want true, nil", fresh, err)
	}
}

// TestRelease1FileUpdatesAndReopens rewrites release-1 records with the
// current code (a wrong attempt on one, a successful verification on
// another, which drops a release-1 expiry entry) and checks the result
// before and after a reopen.
func TestRelease1FileUpdatesAndReopens(t *testing.T) {
	path := release1Copy(t)
	s, closeFn := openRelease(t, path)
	ctx := context.Background()
	want := release1Records()

	err := s.Update(ctx, relPending, func(r *verify.Record) error {
		if r.Pending == nil {
			return errors.New("pending code missing")
		}
		r.Pending.Attempts++
		return nil
	})
	if err != nil {
		t.Fatalf("Update(%s): %v", relPending, err)
	}
	want[relPending].Pending.Attempts = 3

	verifiedNow := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	err = s.Update(ctx, relBoth, func(r *verify.Record) error {
		if r.Pending == nil {
			return errors.New("pending code missing")
		}
		r.VerifiedAt, r.Pending = verifiedNow, nil
		return nil
	})
	if err != nil {
		t.Fatalf("Update(%s): %v", relBoth, err)
	}
	want[relBoth] = relWant{VerifiedAt: verifiedNow}

	checkRecords(t, s, want)
	checkExpired(t, s, want)
	closeFn()

	s, _ = openRelease(t, path)
	checkRecords(t, s, want)
	checkExpired(t, s, want)
	checkSpentAndSecrets(t, s)
}
