// Package redisstore keeps verification state in Redis, so that several
// servers can share it. It implements verify.Store and token.SpentTokens
// with the semantics of package db, and keeps numbers out of Redis the same
// way (record.Keys): records are keyed by an HMAC of the number, and the
// number itself is kept only sealed, only while the sweeper must name it.
//
// Under a prefix (Options.Prefix, "verifier:" by default) it keeps:
//
//	<prefix>n:<hex key>   string: the record (record.Encode)
//	<prefix>exp           sorted set: hex key, scored by the record's NextChange (unix ms)
//	<prefix>sealed        hash: hex key -> the number, sealed; only while the key is in exp
//	<prefix>spent:<id>    string: a spent token, expiring with the token (PXAT)
//	<prefix>meta          hash: secret:<name> -> a secret; numbers-key-check -> keys.Check()
//
// Every write of a record is an optimistic transaction (WATCH, MULTI/EXEC)
// retried when another server changed the record meanwhile, so no
// read-modify-write is lost between servers.
package redisstore

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"verifier/record"
	"verifier/token"
	"verifier/verify"
)

// DefaultPrefix begins every key the store keeps, unless Options say
// otherwise.
const DefaultPrefix = "verifier:"

const (
	// maxTries bounds the optimistic transactions of one Update: each
	// failure means another server changed the record meanwhile.
	maxTries = 100
	// scanBatch is how many record keys ForgetVerifiedBefore reads at a
	// time.
	scanBatch = 512
	// ownSecret names the store's own secret for number keys, kept in meta
	// when the opener gives none (as db keeps "secret:numbers").
	ownSecret = "numbers"
	// keyCheckField names the meta entry that tells which secret keys the
	// numbers.
	keyCheckField = "numbers-key-check"
	pingTimeout   = time.Second
)

// Connection defaults, used where the URL sets nothing: a request must
// never hang on a Redis that is down, so every wait is short. The client
// reconnects by itself when Redis is back.
const (
	dialTimeout  = time.Second
	ioTimeout    = time.Second
	poolTimeout  = 2 * time.Second
	maxRetries   = 1
	dialAttempts = 1
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("redisstore: closed")

// Options configure Open; the zero value is usable.
type Options struct {
	// Prefix begins every key; "" means DefaultPrefix.
	Prefix string
	// Secret returns the server secret, which keys the numbers; it is
	// called once Redis answers, and may keep the secret there (Store.Secret).
	// Nil: a secret of the store's own, kept in Redis, which keeps numbers
	// out of casual view only.
	Secret func(*Store) ([]byte, error)
	// Log receives reports such as a record that does not decode; nil
	// logs nothing.
	Log *slog.Logger
}

// Store is the Redis implementation of verify.Store.
type Store struct {
	rdb    *redis.Client
	log    *slog.Logger
	keys   *record.Keys
	closed atomic.Bool

	prefix, expKey, sealedKey, metaKey string

	unreadable *record.Unreadable
}

var (
	_ verify.Store      = (*Store)(nil)
	_ token.SpentTokens = (*Store)(nil)
)

// Open connects to the Redis at rawURL (redis://[:password@]host:port/db,
// or rediss:// for TLS), derives the number keys and refuses a prefix
// whose numbers another secret keyed.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	rdb, err := NewClient(rawURL)
	if err != nil {
		return nil, err
	}
	ro := rdb.Options()
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	s := &Store{
		rdb:       rdb,
		log:       opts.Log,
		prefix:    prefix,
		expKey:    prefix + "exp",
		sealedKey: prefix + "sealed",
		metaKey:   prefix + "meta",
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.unreadable = record.NewUnreadable("redisstore", s.log)
	if err := s.prepare(ctx, opts.Secret); err != nil {
		s.rdb.Close()
		return nil, fmt.Errorf("redisstore: open %s: %w", ro.Addr, err)
	}
	return s, nil
}

// NewClient is a client of the Redis at rawURL whose every wait is short
// where the URL does not choose: a request fails fast while Redis is away,
// and the client reconnects by itself when it is back.
func NewClient(rawURL string) (*redis.Client, error) {
	ro, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	setDefaults(ro)
	return redis.NewClient(ro), nil
}

// setDefaults makes every wait short where the URL did not choose.
func setDefaults(o *redis.Options) {
	if o.DialTimeout == 0 {
		o.DialTimeout = dialTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = ioTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = ioTimeout
	}
	if o.PoolTimeout == 0 {
		o.PoolTimeout = poolTimeout
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = maxRetries
	}
	if o.DialerRetries == 0 {
		o.DialerRetries = dialAttempts
	}
	o.ContextTimeoutEnabled = true
	o.DisableIdentity = true // CLIENT SETINFO: one round trip less, and older servers refuse it
}

func (s *Store) prepare(ctx context.Context, secretOf func(*Store) ([]byte, error)) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return err
	}
	var secret []byte
	var err error
	if secretOf != nil {
		secret, err = secretOf(s)
	} else {
		secret, err = s.Secret(ownSecret, func() ([]byte, error) {
			b := make([]byte, 32)
			_, err := rand.Read(b)
			return b, err
		})
	}
	if err != nil {
		return fmt.Errorf("numbers secret: %w", err)
	}
	if s.keys, err = record.NewKeys(secret); err != nil {
		return err
	}
	return s.checkKeys(ctx)
}

// checkKeys refuses a prefix whose numbers another secret keyed: every
// number would read as new, and be stored twice. A prefix without the
// check gets it.
func (s *Store) checkKeys(ctx context.Context) error {
	mine := s.keys.Check()
	if err := s.rdb.HSetNX(ctx, s.metaKey, keyCheckField, mine).Err(); err != nil {
		return err
	}
	stored, err := s.rdb.HGet(ctx, s.metaKey, keyCheckField).Bytes()
	if err != nil {
		return err
	}
	if !hmac.Equal(stored, mine) {
		return fmt.Errorf("the phone numbers under %q are keyed by another secret: was VERIFIER_SECRET changed, or is this prefix another deployment's?", s.prefix)
	}
	return nil
}

// Close closes the connections. It may be called more than once.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.rdb.Close()
}

// check returns ErrClosed after Close.
func (s *Store) check() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Ping checks that Redis answers, within a second.
func (s *Store) Ping() error {
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: ping: %w", err)
	}
	return nil
}

// hexKey is the record key of phone as it appears in Redis keys.
func (s *Store) hexKey(phone string) string { return hex.EncodeToString(s.keys.Key(phone)) }

func (s *Store) recordKey(hexKey string) string { return s.prefix + "n:" + hexKey }

// score is the expiry index's score of next: unix milliseconds, rounded
// down, so that no record is found later than it changes (Expired looks
// closer at the last millisecond).
func score(next time.Time) float64 { return float64(next.UnixMilli()) }

// wrap says which store and call failed; nil stays nil.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

// fnError marks an error returned by the caller's function.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// Update implements verify.Store. It runs fn on the record read under
// WATCH and writes the result in MULTI/EXEC; when another server changed
// the record meanwhile it runs fn again on the new record, so fn may run
// more than once. ctx bounds the whole.
func (s *Store) Update(ctx context.Context, phone string, fn func(*verify.Record) error) error {
	if err := s.check(); err != nil {
		return err
	}
	hk := s.hexKey(phone)
	key := s.recordKey(hk)
	for try := 1; ; try++ {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error { return s.apply(ctx, tx, phone, hk, key, fn) }, key)
		if !errors.Is(err, redis.TxFailedErr) {
			if fe, ok := errors.AsType[fnError](err); ok {
				return fe.err
			}
			return wrap("update", err)
		}
		if try == maxTries {
			return fmt.Errorf("redisstore: the record of %s changed under %d tries in a row: %w", verify.MaskPhone(phone), try, err)
		}
		// Another server won: let the crowd thin out a little, then read
		// the record again.
		wait := time.Duration(mrand.Int64N(int64(min(try, 20)) * int64(200*time.Microsecond)))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Store) apply(ctx context.Context, tx *redis.Tx, phone, hk, key string, fn func(*verify.Record) error) error {
	v, err := tx.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		v, err = nil, nil
	}
	if err != nil {
		return err
	}
	rec, err := record.Decode(v)
	if err != nil {
		s.reportUnreadable(phone)
		rec = verify.Record{}
	}
	if err := fn(&rec); err != nil {
		return fnError{err}
	}
	var value, sealed []byte
	next := rec.NextChange()
	if !rec.Empty() {
		if value, err = record.Encode(rec); err != nil {
			return err
		}
		if !next.IsZero() {
			if sealed, err = s.keys.Seal(phone); err != nil {
				return err
			}
		}
	}
	_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if value == nil {
			p.Del(ctx, key)
		} else {
			p.Set(ctx, key, value, 0)
		}
		if sealed == nil {
			p.ZRem(ctx, s.expKey, hk)
			p.HDel(ctx, s.sealedKey, hk)
		} else {
			p.ZAdd(ctx, s.expKey, redis.Z{Score: score(next), Member: hk})
			p.HSet(ctx, s.sealedKey, hk, sealed)
		}
		return nil
	})
	return err
}

// Get implements verify.Store. A stored record that does not decode reads
// as a zero record, as in Update, and is reported once.
func (s *Store) Get(ctx context.Context, phone string) (verify.Record, error) {
	if err := s.check(); err != nil {
		return verify.Record{}, err
	}
	v, err := s.rdb.Get(ctx, s.recordKey(s.hexKey(phone))).Bytes()
	if errors.Is(err, redis.Nil) {
		return verify.Record{}, nil
	}
	if err != nil {
		return verify.Record{}, wrap("get", err)
	}
	rec, err := record.Decode(v)
	if err != nil {
		s.reportUnreadable(phone)
		return verify.Record{}, nil
	}
	return rec, nil
}

// Expired implements verify.Store. Scores are whole milliseconds, so the
// entries of now's own millisecond are checked against their records,
// which say exactly when they change. An index entry whose number is
// missing or does not open is removed instead of listed, so it cannot take
// a place in every sweep.
func (s *Store) Expired(ctx context.Context, now time.Time, max int) ([]string, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	phones, err := s.expired(ctx, now, max)
	return phones, wrap("expired", err)
}

func (s *Store) expired(ctx context.Context, now time.Time, max int) ([]string, error) {
	if max <= 0 {
		return nil, nil
	}
	limit := now.UnixMilli()
	var phones []string
	for offset := int64(0); len(phones) < max; {
		want := int64(max - len(phones))
		zs, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: s.expKey, Start: "-inf", Stop: strconv.FormatInt(limit, 10),
			ByScore: true, Offset: offset, Count: want,
		}).Result()
		if err != nil {
			return phones, err
		}
		if len(zs) == 0 {
			break
		}
		found, dropped, err := s.numbers(ctx, zs, now, limit)
		phones = append(phones, found...)
		offset += int64(len(zs) - dropped) // what was dropped no longer takes a place
		if err != nil || int64(len(zs)) < want {
			return phones, err
		}
	}
	return phones, nil
}

// numbers opens the numbers of the index entries zs, keeping those due
// by now; entries without a number that opens are removed, and counted in
// dropped.
func (s *Store) numbers(ctx context.Context, zs []redis.Z, now time.Time, limit int64) (phones []string, dropped int, err error) {
	members := make([]string, len(zs))
	for i, z := range zs {
		members[i], _ = z.Member.(string)
	}
	vals, err := s.rdb.HMGet(ctx, s.sealedKey, members...).Result()
	if err != nil {
		return nil, 0, err
	}
	var stale []any // member, the sealed value seen ("" for none)
	for i, m := range members {
		sealed, _ := vals[i].(string)
		phone, err := s.keys.Open([]byte(sealed))
		if sealed == "" || err != nil {
			stale = append(stale, m, sealed)
			continue
		}
		if int64(zs[i].Score) == limit {
			due, err := s.dueBy(ctx, m, now)
			if err != nil {
				return phones, 0, err
			}
			if !due {
				continue
			}
		}
		phones = append(phones, phone)
	}
	if len(stale) > 0 {
		dropped, err = dropStale.Run(ctx, s.rdb, []string{s.expKey, s.sealedKey}, stale...).Int()
	}
	return phones, dropped, err
}

// dueBy reports whether the record under hex key hk next changes at or
// before now.
func (s *Store) dueBy(ctx context.Context, hk string, now time.Time) (bool, error) {
	v, err := s.rdb.Get(ctx, s.recordKey(hk)).Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	rec, err := record.Decode(v)
	if err != nil {
		return false, nil
	}
	next := rec.NextChange()
	return !next.IsZero() && !next.After(now), nil
}

// dropStale removes index entries whose sealed number is still what
// Expired saw (missing, or not opening): an Update that indexed the record
// again meanwhile is kept.
var dropStale = redis.NewScript(`
local n = 0
for i = 1, #ARGV, 2 do
  local v = redis.call('HGET', KEYS[2], ARGV[i])
  if (v == false and ARGV[i+1] == '') or v == ARGV[i+1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    n = n + 1
  end
end
return n
`)

// Spend implements token.SpentTokens: SET NX, expiring with the token. An
// expiry already past (or too close to set) is kept for a minute, so the
// id still reads as spent meanwhile.
func (s *Store) Spend(ctx context.Context, id string, expires time.Time) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	if now := time.Now(); expires.Before(now.Add(time.Second)) {
		expires = now.Add(time.Minute)
	}
	err := s.rdb.SetArgs(ctx, s.prefix+"spent:"+id, "1", redis.SetArgs{Mode: "NX", ExpireAt: expires}).Err()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, wrap("spend", err)
	}
	return true, nil
}

// ForgetSpent implements what db.Store.ForgetSpent does; Redis expires
// spent tokens by itself, so there is nothing to do.
func (s *Store) ForgetSpent(time.Time) (int, error) { return 0, s.check() }

// Secret returns the named secret, generating and storing it with
// generate on first use; servers racing to make it all get the one that
// was stored first.
func (s *Store) Secret(name string, generate func() ([]byte, error)) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	v, err := s.secret(name, generate)
	if err != nil {
		return nil, wrap("secret "+name, err)
	}
	return v, nil
}

func (s *Store) secret(name string, generate func() ([]byte, error)) ([]byte, error) {
	ctx := context.Background()
	field := "secret:" + name
	v, err := s.rdb.HGet(ctx, s.metaKey, field).Bytes()
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, redis.Nil) {
		return nil, err
	}
	fresh, err := generate()
	if err != nil {
		return nil, err
	}
	if err := s.rdb.HSetNX(ctx, s.metaKey, field, fresh).Err(); err != nil {
		return nil, err
	}
	return s.rdb.HGet(ctx, s.metaKey, field).Bytes()
}

// SetSecret replaces the named secret (a rotation).
func (s *Store) SetSecret(name string, v []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	return wrap("set secret "+name, s.rdb.HSet(context.Background(), s.metaKey, "secret:"+name, v).Err())
}

// Forget erases everything kept about phone: its record, its index entry
// and its sealed number, in one transaction.
func (s *Store) Forget(phone string) (found bool, err error) {
	if err := s.check(); err != nil {
		return false, err
	}
	ctx := context.Background()
	hk := s.hexKey(phone)
	var del *redis.IntCmd
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, s.recordKey(hk))
		p.ZRem(ctx, s.expKey, hk)
		p.HDel(ctx, s.sealedKey, hk)
		return nil
	})
	if err != nil {
		return false, wrap("forget", err)
	}
	return del.Val() > 0, nil
}

// ForgetVerifiedBefore erases the numbers verified before cutoff that have
// nothing pending or counting (data retention). It scans in batches, so
// writes go on meanwhile; a record is deleted only if it is still the one
// read, so an Update that came between is kept.
func (s *Store) ForgetVerifiedBefore(cutoff time.Time) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	ctx := context.Background()
	match := escapeGlob(s.prefix+"n:") + "*"
	total := 0
	var cursor uint64
	for {
		keys, next, err := s.rdb.Scan(ctx, cursor, match, scanBatch).Result()
		if err != nil {
			return total, wrap("forget verified", err)
		}
		n, err := s.forgetOld(ctx, keys, cutoff)
		total += n
		if err != nil {
			return total, wrap("forget verified", err)
		}
		if cursor = next; cursor == 0 {
			return total, nil
		}
	}
}

func (s *Store) forgetOld(ctx context.Context, keys []string, cutoff time.Time) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return 0, err
	}
	scriptKeys := []string{s.expKey, s.sealedKey}
	var args []any // per record: its hex key, the value read
	for i, k := range keys {
		v, ok := vals[i].(string)
		if !ok {
			continue
		}
		rec, err := record.Decode([]byte(v))
		if err != nil || !rec.Verified() || !rec.VerifiedAt.Before(cutoff) || !rec.NextChange().IsZero() {
			continue
		}
		scriptKeys = append(scriptKeys, k)
		args = append(args, strings.TrimPrefix(k, s.prefix+"n:"), v)
	}
	if len(args) == 0 {
		return 0, nil
	}
	return forgetIfSame.Run(ctx, s.rdb, scriptKeys, args...).Int()
}

// forgetIfSame deletes each record (KEYS[3...]) whose value is still the
// one read (ARGV, after its hex key), with its index entry and number.
var forgetIfSame = redis.NewScript(`
local n = 0
for j = 3, #KEYS do
  local hk, seen = ARGV[2*(j-2)-1], ARGV[2*(j-2)]
  if redis.call('GET', KEYS[j]) == seen then
    redis.call('DEL', KEYS[j])
    redis.call('ZREM', KEYS[1], hk)
    redis.call('HDEL', KEYS[2], hk)
    n = n + 1
  end
end
return n
`)

// escapeGlob quotes the characters SCAN MATCH treats as a pattern.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\^`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Backup is refused: Redis keeps its own persistence.
func (s *Store) Backup(io.Writer) (int64, error) {
	return 0, errors.New("redisstore: no backup through the verifier: Redis keeps its own persistence (AOF/RDB); back up Redis itself (BGSAVE, then copy the RDB file, or a replica's)")
}

// reportUnreadable logs, once per number, that its stored record does not
// decode and is treated as a new one.
func (s *Store) reportUnreadable(phone string) { s.unreadable.Report(phone) }
