// Package seal encrypts the few small values the server keeps or hands out
// that no one else may read or forge (tap-to-verify links, authenticator
// secrets), with AES-256-GCM under keys derived from the server secret, one
// key per purpose.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Key derives the key for one purpose from the server secret, so that a
// value sealed for one purpose never opens for another.
func Key(secret []byte, purpose string) ([]byte, error) {
	if len(secret) < 16 {
		return nil, errors.New("seal: the server secret is too short")
	}
	return hkdf.Key(sha256.New, secret, nil, "verifier "+purpose, 32)
}

// Box seals and opens values for one purpose.
type Box struct {
	aead cipher.AEAD
}

// New returns the box of one purpose.
func New(secret []byte, purpose string) (*Box, error) {
	key, err := Key(secret, purpose)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Overhead is how many bytes sealing adds: the nonce and the tag.
func (b *Box) Overhead() int { return b.aead.NonceSize() + b.aead.Overhead() }

// Seal encrypts plain under a fresh random nonce; the result carries it.
func (b *Box) Seal(plain []byte) ([]byte, error) {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plain)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return b.aead.Seal(nonce, nonce, plain, nil), nil
}

// ErrForged means the value was not sealed by this box: changed, cut,
// made up, or sealed under another secret or for another purpose.
var ErrForged = errors.New("seal: not a value this server sealed")

// Open decrypts a value Seal made.
func (b *Box) Open(sealed []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n+b.aead.Overhead() {
		return nil, ErrForged
	}
	plain, err := b.aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return nil, ErrForged
	}
	return plain, nil
}
