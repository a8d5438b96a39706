package db

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"verifier/record"
)

// migrate moves the records of a file keyed by the numbers themselves
// (schema 1 and 2) under their number keys, and rebuilds the expiry index
// with the numbers sealed. A record that does not decode is dropped: it
// reads as a new record anyway.
func migrate(b *bolt.DB, keys *numberKeys) (moved int, err error) {
	err = b.Update(func(tx *bolt.Tx) error {
		numbers := tx.Bucket(bucketNumbers)
		var old [][2][]byte
		err := numbers.ForEach(func(k, v []byte) error {
			if len(k) > 0 && k[0] == '+' {
				old = append(old, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketExpiry); err != nil {
			return err
		}
		expiry, err := tx.CreateBucket(bucketExpiry)
		if err != nil {
			return err
		}
		for _, kv := range old {
			if err := moveRecord(numbers, expiry, keys, string(kv[0]), kv[1]); err != nil {
				return err
			}
		}
		moved = len(old)
		return nil
	})
	return moved, err
}

func moveRecord(numbers, expiry *bolt.Bucket, keys *numberKeys, phone string, v []byte) error {
	if err := numbers.Delete([]byte(phone)); err != nil {
		return err
	}
	rec, err := record.Decode(v)
	if err != nil {
		return nil
	}
	key := keys.Key(phone)
	if err := numbers.Put(key, v); err != nil {
		return err
	}
	k, sealed, err := keys.expiryEntry(phone, key, rec)
	if err != nil || k == nil {
		return err
	}
	return expiry.Put(k, sealed)
}

// compactInPlace rewrites the file into a fresh one and puts it in the
// old one's place, so that pages bbolt freed (which still hold whatever
// was deleted) are gone from the disk. b is closed; the new file is open.
func compactInPlace(b *bolt.DB, path string) (*bolt.DB, error) {
	tmp := path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	if err := bolt.Compact(dst, b, 16<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("compact: %w", err)
	}
	if err := dst.Close(); err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	if err := b.Close(); err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil { // the rename itself must survive a crash
		dir.Sync()
		dir.Close()
	}
	return openBolt(path)
}
