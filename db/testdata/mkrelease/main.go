//go:build ignore

// mkrelease writes the bbolt file behind db/testdata/release1.db.b64: the
// state a release-1 server would leave behind, written through the real
// db.Store API of that release. It was run once, at commit 58e3f17, with
//
//	go run db/testdata/mkrelease/main.go /tmp/release1.db
//	base64 -w 76 /tmp/release1.db > db/testdata/release1.db.b64
//
// Do not rerun it against later code to "refresh" the file: the point of
// the file is that it was written by the old release. The values here are
// repeated in db/release_test.go, which checks that the current code reads
// them back unchanged.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"verifier/db"
	"verifier/verify"
)

var (
	verifiedAt  = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)
	verifiedAt2 = time.Date(2026, 2, 1, 8, 30, 0, 0, time.UTC)
	sentAt      = time.Date(2099, 1, 1, 12, 0, 0, 123456789, time.UTC)
	sentAtTest  = time.Date(2099, 1, 2, 12, 0, 0, 0, time.UTC)
	sentAtBoth  = time.Date(2099, 1, 3, 12, 0, 0, 0, time.UTC)
	spentUntil  = time.Date(2099, 6, 1, 0, 0, 0, 0, time.UTC)
	tokenKey    = []byte{
		0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
		0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
	}
	apiKey = []byte("0123456789abcdef0123456789abcdef0123456789abcdef")
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run db/testdata/mkrelease/main.go OUT.db")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "mkrelease:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists; write a fresh file", path)
	}
	s, err := db.Open(path)
	if err != nil {
		return err
	}
	ctx := context.Background()
	set := func(phone string, fn func(*verify.Record)) error {
		return s.Update(ctx, phone, func(r *verify.Record) error { fn(r); return nil })
	}
	noGenerate := func() ([]byte, error) { return nil, errors.New("secret should have been stored") }

	steps := []func() error{
		// Verified, nothing pending.
		func() error {
			return set("+14155552671", func(r *verify.Record) { r.VerifiedAt = verifiedAt })
		},
		// A pending HOTP code, two wrong attempts so far.
		func() error {
			return set("+14155552672", func(r *verify.Record) {
				r.Pending = &verify.Pending{Secret: "JBSWY3DPEHPK3PXP", Digits: 6,
					SentAt: sentAt, ExpiresAt: sentAt.Add(10 * time.Minute), Attempts: 2}
			})
		},
		// A configured test number's fixed code.
		func() error {
			return set("+15555550100", func(r *verify.Record) {
				r.Pending = &verify.Pending{TestCode: "123456", Digits: 6,
					SentAt: sentAtTest, ExpiresAt: sentAtTest.Add(10 * time.Minute)}
			})
		},
		// Verified before, re-verifying now.
		func() error {
			return set("+14155552673", func(r *verify.Record) {
				r.VerifiedAt = verifiedAt2
				r.Pending = &verify.Pending{Secret: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", Digits: 8,
					SentAt: sentAtBoth, ExpiresAt: sentAtBoth.Add(5 * time.Minute), Attempts: 1}
			})
		},
		func() error {
			fresh, err := s.Spend(ctx, "00112233445566778899aabbccddeeff", spentUntil)
			if err == nil && !fresh {
				err = errors.New("spend: token was already spent in a fresh file")
			}
			return err
		},
		func() error {
			_, err := s.Secret("token-key", func() ([]byte, error) { return tokenKey, nil })
			return err
		},
		func() error {
			_, err := s.Secret("api-key", func() ([]byte, error) { return apiKey, nil })
			return err
		},
		// Both secrets now read back without generating.
		func() error {
			if _, err := s.Secret("token-key", noGenerate); err != nil {
				return err
			}
			_, err := s.Secret("api-key", noGenerate)
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			s.Close()
			return fmt.Errorf("step %d: %w", i, err)
		}
	}
	return s.Close()
}
