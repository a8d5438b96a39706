package record

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"

	"verifier/seal"
)

// Keys keep phone numbers out of a store. Records are keyed by an HMAC of
// the number under a key derived from the server secret; the number itself
// is kept only sealed (AES-GCM), and only where the store must name it
// again (to push an expiry).
type Keys struct {
	mac []byte
	box *seal.Box
}

// KeySize is how much of the HMAC keys a record: 128 bits.
const KeySize = 16

// NewKeys derives the keys of the server secret.
func NewKeys(secret []byte) (*Keys, error) {
	mac, err := seal.Key(secret, "phone number key")
	if err != nil {
		return nil, err
	}
	box, err := seal.New(secret, "phone number at rest")
	if err != nil {
		return nil, err
	}
	return &Keys{mac: mac, box: box}, nil
}

// Key is the record key of phone.
func (k *Keys) Key(phone string) []byte {
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte(phone))
	return m.Sum(nil)[:KeySize]
}

// Seal hides phone for keeping.
func (k *Keys) Seal(phone string) ([]byte, error) { return k.box.Seal([]byte(phone)) }

// ErrNotSealed means a value is no number these keys sealed.
var ErrNotSealed = errors.New("record: not a number sealed by this secret")

// Open is the number Seal hid.
func (k *Keys) Open(sealed []byte) (string, error) {
	phone, err := k.box.Open(sealed)
	if err != nil {
		return "", ErrNotSealed
	}
	return string(phone), nil
}

// Check is what proves which secret keys a store's numbers: the key of a
// fixed text, kept beside them.
func (k *Keys) Check() []byte { return k.Key("key check") }
