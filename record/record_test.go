package record

import (
	"bytes"
	"testing"
	"time"

	"verifier/verify"
)

func TestRecordsRoundTripThroughVersion2(t *testing.T) {
	at := time.Date(2026, 12, 1, 15, 4, 5, 123456789, time.UTC)
	for name, rec := range map[string]verify.Record{
		"empty":    {},
		"verified": {VerifiedAt: at},
		"windows":  {Sends: verify.Window{Until: at, Count: 3}, Wrong: verify.Window{Until: at.Add(time.Hour), Count: 25}},
		"pending": {Pending: &verify.Pending{Secret: "JBSWY3DPEHPK3PXP", Digits: 6, SentAt: at, ExpiresAt: at.Add(10 * time.Minute),
			Attempts: 2, Conn: "c0a1b2c3.17", Uncertain: true, Channel: "call"}},
		"remote": {Pending: &verify.Pending{Secret: "QKZ2", Digits: 6, SentAt: at, ExpiresAt: at, Channel: "sms", Remote: true}},
		"link": {Pending: &verify.Pending{Secret: "QKZ2", Digits: 6, SentAt: at, ExpiresAt: at, Channel: "sms",
			Link: "\x00nonce-bytes\xff", Site: "shop.example"}},
		"app":        {App: &verify.App{Secret: []byte("sealed\x00key")}},
		"app in use": {VerifiedAt: at, App: &verify.App{Secret: []byte("k"), Enrolled: true, LastStep: 58_803_021}},
		"all": {VerifiedAt: at, Sends: verify.Window{Until: at, Count: 1}, Wrong: verify.Window{Until: at, Count: 1},
			Pending: &verify.Pending{TestCode: "123456", Digits: 6, SentAt: at, ExpiresAt: at}},
	} {
		b, err := Encode(rec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !same(got, rec) {
			t.Fatalf("%s: %+v came back as %+v", name, rec, got)
		}
		for cut := 1; cut < len(b); cut++ { // every shorter record is refused, never misread
			if _, err := Decode(b[:cut]); err == nil && cut > 1 {
				t.Fatalf("%s cut to %d of %d bytes decoded", name, cut, len(b))
			}
		}
		if _, err := Decode(append(b, 0)); err == nil {
			t.Fatalf("%s: a trailing byte was accepted", name)
		}
	}
}

func same(a, b verify.Record) bool {
	if !a.VerifiedAt.Equal(b.VerifiedAt) || a.Sends.Count != b.Sends.Count || !a.Sends.Until.Equal(b.Sends.Until) ||
		a.Wrong.Count != b.Wrong.Count || !a.Wrong.Until.Equal(b.Wrong.Until) || (a.Pending == nil) != (b.Pending == nil) {
		return false
	}
	if (a.App == nil) != (b.App == nil) || a.App != nil && (string(a.App.Secret) != string(b.App.Secret) ||
		a.App.Enrolled != b.App.Enrolled || a.App.LastStep != b.App.LastStep) {
		return false
	}
	if a.Pending == nil {
		return true
	}
	p, q := *a.Pending, *b.Pending
	return p.Secret == q.Secret && p.TestCode == q.TestCode && p.Digits == q.Digits && p.SentAt.Equal(q.SentAt) &&
		p.ExpiresAt.Equal(q.ExpiresAt) && p.Attempts == q.Attempts && p.Conn == q.Conn && p.Uncertain == q.Uncertain && p.Channel == q.Channel &&
		p.Remote == q.Remote && p.Link == q.Link && p.Site == q.Site
}

func FuzzDecodeRecord(f *testing.F) {
	b, _ := Encode(verify.Record{VerifiedAt: time.Now(), Pending: &verify.Pending{Secret: "X", Digits: 6}})
	f.Add(b)
	f.Add([]byte{recordV1, '{', '}'})
	f.Fuzz(func(t *testing.T, v []byte) {
		rec, err := Decode(v)
		if err != nil {
			return
		}
		again, err := Encode(rec)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := Decode(again); err != nil || !same(back, rec) {
			t.Fatalf("%+v does not survive a round trip: %+v, %v", rec, back, err)
		}
	})
}

func TestKeysAreStableAndTheirOwn(t *testing.T) {
	a, _ := NewKeys(bytes.Repeat([]byte{1}, 32))
	b, _ := NewKeys(bytes.Repeat([]byte{2}, 32))
	first := a.Key("+14155552671")
	for range 3 { // a reused HMAC gives the same key
		if got := a.Key("+14155552671"); !bytes.Equal(got, first) || len(got) != KeySize {
			t.Fatalf("Key = %x, then %x", first, got)
		}
	}
	if bytes.Equal(a.Key("+14155552672"), first) || bytes.Equal(b.Key("+14155552671"), first) {
		t.Fatal("another number or another secret gave the same key")
	}
}
