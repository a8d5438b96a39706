// Package db keeps verification state in one bbolt file. It implements
// verify.Store; every write is fsynced before Update returns, and concurrent
// writes share one transaction (group commit) so durability does not cap
// throughput.
package db

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"verifier/verify"
)

var (
	bucketMeta    = []byte("meta")
	bucketNumbers = []byte("numbers") // E.164 -> versioned record
	bucketExpiry  = []byte("expiry")  // big-endian expiry unix nanos + E.164 -> nil
	bucketSpent   = []byte("spent")   // token id -> big-endian expiry unix seconds
	keySchema     = []byte("schema")
)

const (
	schemaVersion = 1
	recordV1      = 1 // first byte of every stored record
	maxBatch      = 1024
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("db: closed")

// Store is the bbolt implementation of verify.Store.
type Store struct {
	bolt    *bolt.DB
	writes  chan *write
	closing chan struct{}
	stopped chan struct{}
}

var _ verify.Store = (*Store)(nil)

type write struct {
	phone string
	fn    func(*verify.Record) error
	done  chan error
}

// Open opens or creates the file and starts the writer.
func Open(path string) (*Store, error) {
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketNumbers, bucketExpiry, bucketSpent} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keySchema); v != nil && !bytes.Equal(v, []byte{schemaVersion}) {
			return fmt.Errorf("schema version %v is newer than this binary knows (%d)", v, schemaVersion)
		}
		return meta.Put(keySchema, []byte{schemaVersion})
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	s := &Store{bolt: b, writes: make(chan *write), closing: make(chan struct{}), stopped: make(chan struct{})}
	go s.writer()
	return s, nil
}

// Close stops the writer after the writes under way and closes the file.
func (s *Store) Close() error {
	select {
	case <-s.closing:
	default:
		close(s.closing)
	}
	<-s.stopped
	return s.bolt.Close()
}

// Ping checks that the database answers a read.
func (s *Store) Ping() error {
	return s.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketNumbers) == nil {
			return errors.New("db: numbers bucket missing")
		}
		return nil
	})
}

// Update implements verify.Store.
func (s *Store) Update(ctx context.Context, phone string, fn func(*verify.Record) error) error {
	w := &write{phone: phone, fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- w:
	case <-s.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once handed over the write will happen; wait for its outcome rather
	// than report a failure for a write that may yet commit.
	return <-w.done
}

// writer commits every write waiting at the moment in one transaction: at
// low load a write waits for nothing, under load one fsync serves many.
func (s *Store) writer() {
	defer close(s.stopped)
	batch := make([]*write, 0, maxBatch)
	for {
		select {
		case w := <-s.writes:
			batch = append(batch[:0], w)
		case <-s.closing:
			return
		}
	gather:
		for len(batch) < maxBatch {
			select {
			case w := <-s.writes:
				batch = append(batch, w)
			default:
				break gather
			}
		}
		s.commit(batch)
	}
}

// fnError marks an error returned by a caller's function: it refuses that
// write alone, while a storage error fails the whole transaction.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// errNothingWritten rolls back a transaction in which every function
// refused: committing it would spend an fsync on nothing.
var errNothingWritten = errors.New("nothing written")

func (s *Store) commit(batch []*write) {
	results := make([]error, len(batch))
	err := s.bolt.Update(func(tx *bolt.Tx) error {
		wrote := false
		for i, w := range batch {
			err := apply(tx, w.phone, w.fn)
			if fe, ok := err.(fnError); ok {
				results[i] = fe.err
				continue
			}
			if err != nil {
				return err
			}
			wrote = true
		}
		if !wrote {
			return errNothingWritten
		}
		return nil
	})
	if errors.Is(err, errNothingWritten) {
		err = nil
	}
	for i, w := range batch {
		if err != nil && results[i] == nil {
			results[i] = err
		}
		w.done <- results[i]
	}
}

func apply(tx *bolt.Tx, phone string, fn func(*verify.Record) error) error {
	numbers, expiry := tx.Bucket(bucketNumbers), tx.Bucket(bucketExpiry)
	key := []byte(phone)
	rec, err := decode(numbers.Get(key))
	if err != nil {
		return fmt.Errorf("record %s: %w", verify.MaskPhone(phone), err)
	}
	oldExpiry := expiryKey(phone, rec.Pending)
	if err := fn(&rec); err != nil {
		return fnError{err}
	}
	if oldExpiry != nil {
		if err := expiry.Delete(oldExpiry); err != nil {
			return err
		}
	}
	if rec.Empty() {
		return numbers.Delete(key)
	}
	if k := expiryKey(phone, rec.Pending); k != nil {
		if err := expiry.Put(k, nil); err != nil {
			return err
		}
	}
	v, err := encode(rec)
	if err != nil {
		return err
	}
	return numbers.Put(key, v)
}

func expiryKey(phone string, p *verify.Pending) []byte {
	if p == nil {
		return nil
	}
	k := make([]byte, 8, 8+len(phone))
	binary.BigEndian.PutUint64(k, uint64(p.ExpiresAt.UnixNano()))
	return append(k, phone...)
}

// storedRecord is the JSON of record version 1, kept apart from the
// domain's types so that renaming a field there cannot change the file.
type storedRecord struct {
	VerifiedAt time.Time      `json:"verified_at,omitzero"`
	Pending    *storedPending `json:"pending,omitempty"`
}

type storedPending struct {
	Secret    string    `json:"secret,omitempty"`
	TestCode  string    `json:"test_code,omitempty"`
	Digits    int       `json:"digits"`
	SentAt    time.Time `json:"sent_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Attempts  int       `json:"attempts"`
}

func encode(rec verify.Record) ([]byte, error) {
	out := storedRecord{VerifiedAt: rec.VerifiedAt}
	if p := rec.Pending; p != nil {
		out.Pending = &storedPending{Secret: p.Secret, TestCode: p.TestCode, Digits: p.Digits,
			SentAt: p.SentAt, ExpiresAt: p.ExpiresAt, Attempts: p.Attempts}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return append([]byte{recordV1}, b...), nil
}

// decode copies out of v, which dies with its transaction.
func decode(v []byte) (verify.Record, error) {
	if v == nil {
		return verify.Record{}, nil
	}
	if len(v) == 0 || v[0] != recordV1 {
		return verify.Record{}, fmt.Errorf("unknown record version")
	}
	var in storedRecord
	if err := json.Unmarshal(v[1:], &in); err != nil {
		return verify.Record{}, err
	}
	rec := verify.Record{VerifiedAt: in.VerifiedAt}
	if p := in.Pending; p != nil {
		rec.Pending = &verify.Pending{Secret: p.Secret, TestCode: p.TestCode, Digits: p.Digits,
			SentAt: p.SentAt, ExpiresAt: p.ExpiresAt, Attempts: p.Attempts}
	}
	return rec, nil
}

// Get implements verify.Store.
func (s *Store) Get(_ context.Context, phone string) (verify.Record, error) {
	var rec verify.Record
	err := s.bolt.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = decode(tx.Bucket(bucketNumbers).Get([]byte(phone)))
		return err
	})
	return rec, err
}

// Expired implements verify.Store.
func (s *Store) Expired(_ context.Context, now time.Time, max int) ([]string, error) {
	var phones []string
	limit := uint64(now.UnixNano())
	err := s.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketExpiry).Cursor()
		for k, _ := c.First(); k != nil && len(phones) < max; k, _ = c.Next() {
			if len(k) < 8 || binary.BigEndian.Uint64(k) > limit {
				break
			}
			phones = append(phones, string(k[8:]))
		}
		return nil
	})
	return phones, err
}

// Spend implements verify.SpentTokens. It is rare next to code writes, so
// it takes its own transaction.
func (s *Store) Spend(_ context.Context, id string, expires time.Time) (bool, error) {
	fresh := false
	err := s.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSpent)
		if b.Get([]byte(id)) != nil {
			return nil
		}
		fresh = true
		v := binary.BigEndian.AppendUint64(nil, uint64(expires.Unix()))
		return b.Put([]byte(id), v)
	})
	return fresh, err
}

// ForgetSpent drops spent-token records that expired before now: an
// expired token is refused on its expiry alone.
func (s *Store) ForgetSpent(now time.Time) (int, error) {
	n := 0
	err := s.bolt.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSpent).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(v) == 8 && int64(binary.BigEndian.Uint64(v)) < now.Unix() {
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

// Secret returns the named secret, generating and storing it with
// generate on first use, so it stays the same across restarts.
func (s *Store) Secret(name string, generate func() ([]byte, error)) ([]byte, error) {
	key := []byte("secret:" + name)
	var secret []byte
	err := s.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(key); v != nil {
			secret = bytes.Clone(v)
			return nil
		}
		v, err := generate()
		if err != nil {
			return err
		}
		secret = v
		return meta.Put(key, v)
	})
	return secret, err
}
