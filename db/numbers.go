package db

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"verifier/record"
	"verifier/verify"
)

// numberKeys keep phone numbers out of the file (record.Keys): the
// expiry index's value is the number, sealed, since the sweeper must name
// it to push the expiry.
type numberKeys struct{ *record.Keys }

func newNumberKeys(secret []byte) (*numberKeys, error) {
	k, err := record.NewKeys(secret)
	if err != nil {
		return nil, err
	}
	return &numberKeys{k}, nil
}

// expiryEntry indexes a record by when it next changes on its own (its
// code's expiry, a window's end), so the sweeper finds it then: the key is
// that time and the record's key, the value the number, sealed.
func (k *numberKeys) expiryEntry(phone string, recordKey []byte, rec verify.Record) (key, value []byte, err error) {
	key = expiryKey(recordKey, rec)
	if key == nil {
		return nil, nil, nil
	}
	value, err = k.Seal(phone)
	return key, value, err
}

// expiryKey is the index key of the record stored under recordKey, or nil
// when nothing in it expires.
func expiryKey(recordKey []byte, rec verify.Record) []byte {
	next := rec.NextChange()
	if next.IsZero() {
		return nil
	}
	k := make([]byte, 8, 8+len(recordKey))
	binary.BigEndian.PutUint64(k, uint64(next.UnixNano()))
	return append(k, recordKey...)
}

// keyCheck names the meta entry that tells which secret keys the file's
// numbers: its number key's HMAC of a fixed text.
var keyCheck = []byte("numbers-key-check")

// checkAgainst refuses a file whose numbers another secret keyed: every
// number would read as new, and be stored twice. A file without the check
// gets it.
func (k *numberKeys) checkAgainst(b *bolt.DB) error {
	mine := k.Check()
	return b.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		switch stored := meta.Get(keyCheck); {
		case stored == nil:
			return meta.Put(keyCheck, mine)
		case !hmac.Equal(stored, mine):
			return errors.New("the file's phone numbers are keyed by another secret: was VERIFIER_SECRET changed, or is this file another server's?")
		}
		return nil
	})
}

// numbersSecret is the store's own secret for number keys, used when the
// opener gives none (WithNumberSecret): kept in the file, it keeps numbers
// out of casual view only.
func numbersSecret(b *bolt.DB) ([]byte, error) {
	var secret []byte
	err := b.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyOwnSecret); v != nil {
			secret = bytes.Clone(v)
			return nil
		}
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return err
		}
		return meta.Put(keyOwnSecret, secret)
	})
	if err != nil {
		return nil, fmt.Errorf("numbers secret: %w", err)
	}
	return secret, nil
}
