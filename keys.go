package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
)

// keys are the server's two secrets: the key that signs proof tokens and
// the API key host back ends present to /api/siteverify.
type keys struct {
	tokens []byte
	api    string
}

// secretKeeper keeps the server's secrets: the bbolt file, or Redis.
type secretKeeper interface {
	Secret(name string, generate func() ([]byte, error)) ([]byte, error)
	SetSecret(name string, v []byte) error
}

// minSecretBytes is the least VERIFIER_SECRET may hold: a shorter secret
// could be guessed offline from one token.
const minSecretBytes = 32

// loadKeys takes VERIFIER_SECRET and VERIFIER_API_KEY, or generates each
// once and keeps it in the database, so restarts keep tokens valid and
// hosts' configuration working. A generated API key is printed once, when
// it is made; later starts say where it is kept.
func loadKeys(store secretKeeper, getenv func(string) string, stdout io.Writer, log *slog.Logger) (keys, error) {
	var k keys
	var err error
	if k.tokens, err = tokenKey(store, getenv("VERIFIER_SECRET")); err != nil {
		return k, err
	}
	if k.api = getenv("VERIFIER_API_KEY"); k.api != "" {
		return k, nil
	}
	api, created, err := storedAPIKey(store)
	if err != nil {
		return k, err
	}
	k.api = api
	if created {
		fmt.Fprintf(stdout, "API key for /api/siteverify (made now and kept in the database; it is not printed again, `verifier api-key` shows it; set VERIFIER_API_KEY to choose your own): %s\n", k.api)
	} else {
		log.Info("the API key for /api/siteverify is kept in the database; `verifier api-key` prints it",
			"event", "start", "reason", "api_key_kept")
	}
	return k, nil
}

// storedAPIKey returns the API key kept in the database, making it first
// if there is none.
func storedAPIKey(store secretKeeper) (key string, created bool, err error) {
	api, err := store.Secret("api-key", func() ([]byte, error) {
		created = true
		b, err := randomBytes(24)
		return []byte(hex.EncodeToString(b)), err
	})
	if err != nil {
		return "", false, fmt.Errorf("API key: %w", err)
	}
	return string(api), created, nil
}

// rotateAPIKey replaces the API key kept in the database with a new one.
func rotateAPIKey(store secretKeeper) (string, error) {
	b, err := randomBytes(24)
	if err != nil {
		return "", err
	}
	key := hex.EncodeToString(b)
	if err := store.SetSecret("api-key", []byte(key)); err != nil {
		return "", fmt.Errorf("API key: %w", err)
	}
	return key, nil
}

func tokenKey(store secretKeeper, secret string) ([]byte, error) {
	if secret == "" {
		key, err := store.Secret("token-key", func() ([]byte, error) { return randomBytes(32) })
		if err != nil {
			return nil, fmt.Errorf("token key: %w", err)
		}
		return key, nil
	}
	if len(secret) < minSecretBytes {
		return nil, fmt.Errorf("VERIFIER_SECRET has %d bytes: use at least %d random ones (openssl rand -hex 32 makes 64), or unset it to have one generated and kept in the database",
			len(secret), minSecretBytes)
	}
	sum := sha256.Sum256([]byte(secret))
	return sum[:], nil
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := rand.Read(b)
	return b, err
}
