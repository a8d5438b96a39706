package db

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"verifier/record"
)

// Backup writes a consistent copy of the whole file to w, from one read
// transaction, while writes go on.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Forget erases everything kept about phone: its record and its expiry
// entry. Pages bbolt frees still hold the bytes until reused: run Compact
// on the closed file to erase them from the disk.
func (s *Store) Forget(phone string) (found bool, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		numbers, expiry := tx.Bucket(bucketNumbers), tx.Bucket(bucketExpiry)
		key := s.keys.Key(phone)
		v := numbers.Get(key)
		if v == nil {
			return nil
		}
		found = true
		if rec, err := record.Decode(v); err == nil {
			if k := expiryKey(key, rec); k != nil {
				if err := expiry.Delete(k); err != nil {
					return err
				}
			}
		}
		return numbers.Delete(key)
	})
	return found, err
}

// Compact rewrites a closed file without its freed pages.
func Compact(path string) error {
	b, err := openBolt(path)
	if err != nil {
		return err
	}
	b, err = compactInPlace(b, path)
	if err != nil {
		return err
	}
	return b.Close()
}

// ForgetVerifiedBefore erases the numbers verified before cutoff that have
// nothing pending (data retention). It works in batches, so writes go on
// meanwhile.
func (s *Store) ForgetVerifiedBefore(cutoff time.Time) (int, error) {
	total := 0
	for {
		n, more, err := s.forgetBatch(cutoff, 512)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

func (s *Store) forgetBatch(cutoff time.Time, max int) (n int, more bool, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		numbers := tx.Bucket(bucketNumbers)
		var old [][]byte
		c := numbers.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			rec, err := record.Decode(v)
			if err != nil || !rec.Verified() || !rec.VerifiedAt.Before(cutoff) || !rec.NextChange().IsZero() {
				continue
			}
			if len(old) == max {
				more = true
				break
			}
			old = append(old, bytes.Clone(k))
		}
		for _, k := range old {
			if err := numbers.Delete(k); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	return n, more, err
}

// Report is what Inspect found in a file.
type Report struct {
	Schema                    int
	Numbers, Verified         int
	Pending, Apps, Unreadable int
	Indexed, Stale            int // expiry index entries, and those matching no record
	SpentTokens               int
}

// Inspect opens a file read-only (a running server's too) and counts what
// it holds, and what does not decode.
func Inspect(path string) (Report, error) {
	if _, err := os.Stat(path); err != nil {
		return Report{}, err
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		return Report{}, fmt.Errorf("open %s read-only: %w (a running server holds it: use the admin listener's backup, then check the copy)", path, err)
	}
	defer b.Close()
	var r Report
	err = b.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil && len(meta.Get(keySchema)) == 1 {
			r.Schema = int(meta.Get(keySchema)[0])
		}
		count(tx.Bucket(bucketNumbers), func(_, v []byte) { r.add(v) })
		numbers := tx.Bucket(bucketNumbers)
		count(tx.Bucket(bucketExpiry), func(k, _ []byte) {
			r.Indexed++
			if numbers == nil || len(k) < 8 || !indexed(numbers, k) {
				r.Stale++
			}
		})
		count(tx.Bucket(bucketSpent), func(_, _ []byte) { r.SpentTokens++ })
		return nil
	})
	return r, err
}

func count(b *bolt.Bucket, each func(k, v []byte)) {
	if b != nil {
		b.ForEach(func(k, v []byte) error { each(k, v); return nil })
	}
}

func (r *Report) add(v []byte) {
	r.Numbers++
	rec, err := record.Decode(v)
	if err != nil {
		r.Unreadable++
		return
	}
	r.Verified += b2i(rec.Verified())
	r.Pending += b2i(rec.Pending != nil)
	r.Apps += b2i(rec.App != nil)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
