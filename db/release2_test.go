package db_test

// release2.db.b64 is a file written by the release before numbers were
// keyed by their HMAC (schema 2, commit e6d1f4d), by a small program at
// that commit (not kept: it could not run against later code):
//
//	put +14155552671 verified 2026-11-30 10:00 UTC
//	put +14155552672 pending (sms, link, site), 2 sends, in 2099
//	put +14155552673 verified, with an enrolled app
//	put +16285550000 ... +16285550299 verified (so that freed pages would linger)
//	spend 00112233445566778899aabbccddeeff until 2099
//	secret token-key = "0123456789abcdef0123456789abcdef"
//	base64 -w 76 release2.db > db/testdata/release2.db.b64
//
// Never regenerate it with later code.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"verifier/db"
)

var rel2Numbers = []string{"+14155552671", "+14155552672", "+14155552673", "+16285550000", "+16285550150", "+16285550299"}

// numberForms are the ways a number could sit in a file: E.164, its digits,
// its national digits, and as the 8-byte integer links carry.
func numberForms(phone string) [][]byte {
	digits := strings.TrimPrefix(phone, "+")
	n, _ := strconv.ParseUint(digits, 10, 64)
	return [][]byte{[]byte(phone), []byte(digits), []byte(digits[1:]), binary.BigEndian.AppendUint64(nil, n)}
}

// noNumberIn fails if the file holds any form of any of phones.
func noNumberIn(t *testing.T, path string, phones ...string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, phone := range phones {
		for _, form := range numberForms(phone) {
			if bytes.Contains(raw, form) {
				t.Errorf("the file holds %s as %q", phone, form)
			}
		}
	}
}

func release2Copy(t *testing.T) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", "release2.db.b64"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(string(text))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "release2.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(rel2Numbers[0])) {
		t.Fatal("the release-2 file does not hold its numbers in the clear: the test would prove nothing")
	}
	return path
}

// serverSecret is how the server keys numbers: by its token key.
func serverSecret(s *db.Store) ([]byte, error) {
	return s.Secret("token-key", func() ([]byte, error) { panic("the release-2 file has a token key") })
}

func TestARelease2FileIsMovedUnderNumberKeysAndKeepsEverything(t *testing.T) {
	path := release2Copy(t)
	s, err := db.Open(path, db.WithNumberSecret(serverSecret))
	if err != nil {
		t.Fatal(err)
	}
	noNumberIn(t, path, rel2Numbers...)
	ctx := context.Background()
	verified, _ := s.Get(ctx, rel2Numbers[0])
	pending, _ := s.Get(ctx, rel2Numbers[1])
	app, _ := s.Get(ctx, rel2Numbers[2])
	if !verified.VerifiedAt.Equal(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("verified: %+v", verified)
	}
	if p := pending.Pending; p == nil || p.Secret != "JBSWY3DPEHPK3PXP" || p.Link != "nonce-123456" || p.Site != "shop.example" || pending.Sends.Count != 2 {
		t.Errorf("pending: %+v %+v", pending, p)
	}
	if a := app.App; a == nil || !a.Enrolled || string(a.Secret) != "sealed-app-key" {
		t.Errorf("app: %+v", app)
	}
	due, err := s.Expired(ctx, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), 10)
	if err != nil || len(due) != 1 || due[0] != rel2Numbers[1] {
		t.Errorf("Expired = %v, %v; want the pending number, named", due, err)
	}
	if fresh, err := s.Spend(ctx, "00112233445566778899aabbccddeeff", time.Now().Add(time.Hour)); err != nil || fresh {
		t.Errorf("the spent token is fresh again (%v)", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := db.Open(path, db.WithNumberSecret(serverSecret)) // a second open moves nothing
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if rec, _ := again.Get(ctx, rel2Numbers[0]); !rec.Verified() {
		t.Error("the verified number was lost on the second open")
	}
}
