package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"verifier/db"
)

// keys are the server's two secrets: the key that signs proof tokens and
// the API key host back ends present to /api/siteverify.
type keys struct {
	tokens []byte
	api    string
}

// loadKeys takes VERIFIER_SECRET and VERIFIER_API_KEY, or generates each
// once and keeps it in the database, so restarts keep tokens valid and
// hosts' configuration working.
func loadKeys(store *db.Store, getenv func(string) string, stdout io.Writer) (keys, error) {
	var k keys
	if secret := getenv("VERIFIER_SECRET"); secret != "" {
		sum := sha256.Sum256([]byte(secret))
		k.tokens = sum[:]
	} else {
		var err error
		if k.tokens, err = store.Secret("token-key", randomBytes(32)); err != nil {
			return k, fmt.Errorf("token key: %w", err)
		}
	}
	if k.api = getenv("VERIFIER_API_KEY"); k.api == "" {
		generate := randomBytes(24)
		hexKey := func() ([]byte, error) {
			b, err := generate()
			return []byte(hex.EncodeToString(b)), err
		}
		api, err := store.Secret("api-key", hexKey)
		if err != nil {
			return k, fmt.Errorf("API key: %w", err)
		}
		k.api = string(api)
		fmt.Fprintf(stdout, "API key for /api/siteverify (kept in the database; set VERIFIER_API_KEY to choose your own): %s\n", k.api)
	}
	return k, nil
}

func randomBytes(n int) func() ([]byte, error) {
	return func() ([]byte, error) {
		b := make([]byte, n)
		_, err := rand.Read(b)
		return b, err
	}
}
