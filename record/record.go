// Package record is how a number's state is written down, the same for
// every store: a versioned binary form (and JSON, read from files of the
// first release), and the keys that keep numbers out of a store (Keys).
package record

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"verifier/verify"
)

// Stored records begin with their version. Version 2 is a compact binary
// form (a flow encodes and decodes records several times, and JSON was half
// the store's CPU); version 1, JSON, is still read.
const (
	recordV1 = 1
	recordV2 = 2
)

// Flags of a version-2 record: which parts follow, in this order.
const (
	hasVerified = 1 << iota
	hasSends
	hasWrong
	hasPending
	pendingUncertain
	pendingChannel
	pendingRemote
	hasExtras // tagged parts follow the fixed ones (extraTag)
)

// Tags of a version-2 record's tagged parts, each written as tag, length,
// bytes: parts added later go here, so the flags never run out.
const (
	_ = iota
	extraLink
	extraSite
	extraAppSecret
	extraAppEnrolled // one byte, 1
	extraAppStep     // varint
)

// Encode writes rec as version 2.
func Encode(rec verify.Record) ([]byte, error) {
	var flags byte
	b := make([]byte, 2, 96)
	if rec.Verified() {
		flags |= hasVerified
		b = binary.AppendVarint(b, rec.VerifiedAt.UnixNano())
	}
	if rec.Sends.Count > 0 {
		flags |= hasSends
		b = appendWindow(b, rec.Sends)
	}
	if rec.Wrong.Count > 0 {
		flags |= hasWrong
		b = appendWindow(b, rec.Wrong)
	}
	if p := rec.Pending; p != nil {
		flags |= hasPending
		if p.Uncertain {
			flags |= pendingUncertain
		}
		if p.Remote {
			flags |= pendingRemote
		}
		b = appendString(b, p.Secret)
		b = appendString(b, p.TestCode)
		b = binary.AppendUvarint(b, uint64(p.Digits))
		b = binary.AppendVarint(b, p.SentAt.UnixNano())
		b = binary.AppendVarint(b, p.ExpiresAt.UnixNano())
		b = binary.AppendUvarint(b, uint64(p.Attempts))
		b = appendString(b, p.Conn)
		if p.Channel != "" {
			flags |= pendingChannel
			b = appendString(b, p.Channel)
		}
	}
	if n, extras := appendExtras(nil, rec); n > 0 {
		flags |= hasExtras
		b = append(binary.AppendUvarint(b, uint64(n)), extras...)
	}
	b[0], b[1] = recordV2, flags
	return b, nil
}

// appendExtras writes the tagged parts of rec, and says how many; the
// count goes first, so a record cut between two parts is not misread.
func appendExtras(b []byte, rec verify.Record) (n int, _ []byte) {
	tagged := func(tag byte, v []byte) {
		n++
		b = append(binary.AppendUvarint(append(b, tag), uint64(len(v))), v...)
	}
	if p := rec.Pending; p != nil {
		if p.Link != "" {
			tagged(extraLink, []byte(p.Link))
		}
		if p.Site != "" {
			tagged(extraSite, []byte(p.Site))
		}
	}
	if a := rec.App; a != nil {
		tagged(extraAppSecret, a.Secret)
		if a.Enrolled {
			tagged(extraAppEnrolled, []byte{1})
		}
		if a.LastStep != 0 {
			tagged(extraAppStep, binary.AppendVarint(nil, a.LastStep))
		}
	}
	return n, b
}

func appendWindow(b []byte, w verify.Window) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, w.Until.UnixNano()), uint64(w.Count))
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// Decode reads a record Encode (or the first release) wrote; it copies out
// of v, which may die with its transaction. A nil v is a zero record.
func Decode(v []byte) (verify.Record, error) {
	switch {
	case v == nil:
		return verify.Record{}, nil
	case len(v) > 0 && v[0] == recordV2:
		return decodeV2(v[1:])
	case len(v) > 0 && v[0] == recordV1:
		return decodeV1(v[1:])
	}
	return verify.Record{}, errors.New("unknown record version")
}

var errTruncated = errors.New("record cut short")

// reader takes a version-2 record apart; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) varint() int64 {
	n, size := binary.Varint(r.b)
	if !r.skip(size) {
		return 0
	}
	return n
}

func (r *reader) uvarint() uint64 {
	n, size := binary.Uvarint(r.b)
	if !r.skip(size) {
		return 0
	}
	return n
}

// skip moves past a value of size bytes, or, where size says the value was
// cut short or overflowed, records that and reports false.
func (r *reader) skip(size int) bool {
	if size <= 0 {
		r.err, r.b = errTruncated, nil
		return false
	}
	r.b = r.b[size:]
	return true
}

func (r *reader) time() time.Time { return time.Unix(0, r.varint()).UTC() }

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err, r.b = errTruncated, nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// window reads a window; one that counts nothing is no window at all, as
// encode writes it.
func (r *reader) window() verify.Window {
	w := verify.Window{Until: r.time(), Count: int(r.uvarint())}
	if w.Count <= 0 {
		return verify.Window{}
	}
	return w
}

// extras reads the tagged parts; a part of a tag this release does not
// know is skipped, so a newer release's record still reads.
func (r *reader) extras(rec *verify.Record) {
	for n := r.uvarint(); n > 0 && r.err == nil; n-- {
		if len(r.b) == 0 {
			r.err = errTruncated
			return
		}
		tag := r.b[0]
		r.b = r.b[1:]
		v := r.string()
		switch {
		case tag == extraLink || tag == extraSite:
			if rec.Pending == nil {
				r.err = errors.New("a pending part without a pending code")
			} else if tag == extraLink {
				rec.Pending.Link = v
			} else {
				rec.Pending.Site = v
			}
		case tag == extraAppSecret:
			rec.App = &verify.App{Secret: []byte(v)}
		case (tag == extraAppEnrolled || tag == extraAppStep) && rec.App == nil:
			r.err = errors.New("an app part without an app")
		case tag == extraAppEnrolled:
			rec.App.Enrolled = v == "\x01"
		case tag == extraAppStep:
			step, size := binary.Varint([]byte(v))
			if size != len(v) {
				r.err = errTruncated
			}
			rec.App.LastStep = step
		}
	}
}

func decodeV2(v []byte) (verify.Record, error) {
	if len(v) == 0 {
		return verify.Record{}, errTruncated
	}
	flags, r := v[0], &reader{b: v[1:]}
	var rec verify.Record
	if flags&hasVerified != 0 {
		rec.VerifiedAt = r.time()
	}
	if flags&hasSends != 0 {
		rec.Sends = r.window()
	}
	if flags&hasWrong != 0 {
		rec.Wrong = r.window()
	}
	if flags&hasPending != 0 {
		rec.Pending = &verify.Pending{Secret: r.string(), TestCode: r.string(), Digits: int(r.uvarint()),
			SentAt: r.time(), ExpiresAt: r.time(), Attempts: int(r.uvarint()), Conn: r.string(),
			Uncertain: flags&pendingUncertain != 0, Remote: flags&pendingRemote != 0}
		if flags&pendingChannel != 0 {
			rec.Pending.Channel = r.string()
		}
	}
	if flags&hasExtras != 0 {
		r.extras(&rec)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes after the record", len(r.b))
	}
	if r.err != nil {
		return verify.Record{}, r.err
	}
	return rec, nil
}

// storedRecord is the JSON of record version 1, which older releases
// wrote; it is read, never written.
type storedRecord struct {
	VerifiedAt time.Time      `json:"verified_at,omitzero"`
	Pending    *storedPending `json:"pending,omitempty"`
}

type storedPending struct {
	Secret    string    `json:"secret,omitempty"`
	TestCode  string    `json:"test_code,omitempty"`
	Digits    int       `json:"digits"`
	SentAt    time.Time `json:"sent_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Attempts  int       `json:"attempts"`
}

func decodeV1(v []byte) (verify.Record, error) {
	var in storedRecord
	if err := json.Unmarshal(v, &in); err != nil {
		return verify.Record{}, err
	}
	rec := verify.Record{VerifiedAt: in.VerifiedAt}
	if p := in.Pending; p != nil {
		rec.Pending = &verify.Pending{Secret: p.Secret, TestCode: p.TestCode, Digits: p.Digits,
			SentAt: p.SentAt, ExpiresAt: p.ExpiresAt, Attempts: p.Attempts}
	}
	return rec, nil
}
