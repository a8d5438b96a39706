package verify

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strings"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// hotpCounter is always 0: every code has a key of its own, so the counter
// never has to move.
const hotpCounter = 0

// secretBytes is the HMAC-SHA1 key size RFC 4226 recommends.
const secretBytes = 20

// newSecret returns a fresh random HOTP key. Every verification gets its
// own: a code says nothing about any other code.
func newSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random secret: %w", err)
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b), nil
}

func otpOptions(digits int) hotp.ValidateOpts {
	// Digits must always be set: left at zero, validation fails every code.
	return hotp.ValidateOpts{Digits: otp.Digits(digits), Algorithm: otp.AlgorithmSHA1}
}

func (p *Pending) code() (string, error) {
	if p.TestCode != "" {
		return p.TestCode, nil
	}
	return hotp.GenerateCodeCustom(p.Secret, hotpCounter, otpOptions(p.Digits))
}

// matches compares in constant time (hotp.ValidateCustom uses
// subtle.ConstantTimeCompare).
func (p *Pending) matches(input string) bool {
	input = strings.TrimSpace(input)
	if p.Remote || !p.wellFormed(input) {
		return false
	}
	if p.TestCode != "" {
		return subtle.ConstantTimeCompare([]byte(input), []byte(p.TestCode)) == 1
	}
	ok, err := hotp.ValidateCustom(input, hotpCounter, p.Secret, otpOptions(p.Digits))
	return err == nil && ok
}

// wellFormed reports whether input could be the code: Digits digits.
func (p *Pending) wellFormed(input string) bool {
	return len(input) == p.Digits && strings.Trim(input, "0123456789") == ""
}
