package storetest

import (
	"fmt"
	"testing"
	"time"

	"verifier/verify"
)

// recorder is a testing.TB that keeps what failed.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestNoNumberInFindsEveryForm(t *testing.T) {
	const phone = "+14155552671"
	for _, dump := range []string{
		"x+14155552671x", "x14155552671x", "x4155552671x",
		"x\x00\x00\x00\x03\x4b\xbc\x97\x9fx", // 14155552671 as 8 bytes, big-endian
	} {
		r := &recorder{TB: t}
		NoNumberIn(r, []byte(dump), "+10000000000", phone)
		if len(r.errors) == 0 {
			t.Errorf("NoNumberIn missed %s in %q", phone, dump)
		}
	}
	r := &recorder{TB: t}
	NoNumberIn(r, []byte("+1415555267 415555267 nothing here"), phone)
	if len(r.errors) != 0 {
		t.Errorf("NoNumberIn found a number that is not there: %v", r.errors)
	}
}

func TestDiffSeesEveryField(t *testing.T) {
	now := time.Now()
	full := fullRecord(now)
	if d := Diff(full, fullRecord(now.In(time.UTC).Round(0))); d != "" {
		t.Errorf("the same record in another location differs: %s", d)
	}
	changes := map[string]func(*verify.Record){
		"VerifiedAt":  func(r *verify.Record) { r.VerifiedAt = r.VerifiedAt.Add(1) },
		"Pending":     func(r *verify.Record) { r.Pending = nil },
		"Link":        func(r *verify.Record) { r.Pending.Link = "" },
		"ExpiresAt":   func(r *verify.Record) { r.Pending.ExpiresAt = r.Pending.ExpiresAt.Add(1) },
		"Remote":      func(r *verify.Record) { r.Pending.Remote = false },
		"Sends.Count": func(r *verify.Record) { r.Sends.Count++ },
		"Wrong.Until": func(r *verify.Record) { r.Wrong.Until = r.Wrong.Until.Add(1) },
		"App.Secret":  func(r *verify.Record) { r.App.Secret = r.App.Secret[1:] },
		"App.Step":    func(r *verify.Record) { r.App.LastStep++ },
		"App":         func(r *verify.Record) { r.App = nil },
	}
	for name, change := range changes {
		got := fullRecord(now)
		change(&got)
		if Diff(full, got) == "" {
			t.Errorf("Diff missed a change of %s", name)
		}
	}
	if unset := Unset(verify.Record{VerifiedAt: now}); len(unset) != 6 {
		t.Errorf("Unset = %v, want Pending, Sends.*, Wrong.*, App", unset)
	}
}
