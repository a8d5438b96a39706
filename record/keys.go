package record

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash"
	"sync"

	"verifier/seal"
)

// Keys keep phone numbers out of a store. Records are keyed by an HMAC of
// the number under a key derived from the server secret; the number itself
// is kept only sealed (AES-GCM), and only where the store must name it
// again (to push an expiry).
type Keys struct {
	macs sync.Pool // of hash.Hash: an HMAC under the number key, reset and reused
	box  *seal.Box
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
	k := &Keys{box: box}
	k.macs.New = func() any { return hmac.New(sha256.New, mac) }
	return k, nil
}

// Key is the record key of phone. Every store read and write asks for one,
// so the HMAC is reused rather than made each time (it was 8% of the bytes
// a flow allocated).
func (k *Keys) Key(phone string) []byte {
	m := k.macs.Get().(hash.Hash)
	m.Write([]byte(phone))
	var sum [sha256.Size]byte
	key := m.Sum(sum[:0])[:KeySize:KeySize]
	m.Reset()
	k.macs.Put(m)
	return key
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
