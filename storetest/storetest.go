// Package storetest pins the behaviour every store of verification state
// must share (the bbolt file of package db, Redis of package redisstore):
// Run runs the same subtests against any of them.
package storetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"verifier/verify"
)

// Store is what Run needs of a store: verify.Store, spent tokens, secrets,
// data retention and a health check.
type Store interface {
	verify.Store
	Spend(ctx context.Context, id string, expires time.Time) (bool, error)
	Secret(name string, generate func() ([]byte, error)) ([]byte, error)
	Forget(phone string) (bool, error)
	ForgetVerifiedBefore(cutoff time.Time) (int, error)
	Ping() error
}

// Run runs the contract's subtests. open returns a new, empty store for
// the subtest t (its own file, or its own key prefix), and closes it and
// removes what it kept in t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, Store)
	}{
		{"MissingNumberIsAZeroRecord", testMissing},
		{"FunctionErrorWritesNothing", testFunctionError},
		{"EmptyRecordIsDeleted", testEmptyDeleted},
		{"GetReturnsWhatUpdateStored", testRoundTrip},
		{"ExpiredListsDueNumbers", testExpired},
		{"ExpiredFollowsChangesAndDeletes", testExpiredFollows},
		{"ConcurrentUpdatesOfOneNumberLoseNone", testConcurrentOne},
		{"ConcurrentUpdatesOfManyNumbersAllLand", testConcurrentMany},
		{"SpendIsFreshOnce", testSpend},
		{"SecretIsGeneratedOnce", testSecret},
		{"ForgetRemovesTheNumber", testForget},
		{"ForgetVerifiedBeforeKeepsTheLiving", testForgetVerifiedBefore},
		{"Ping", func(t *testing.T, s Store) {
			if err := s.Ping(); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// ctx bounds every call of a subtest.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// phone is the i-th test number.
func phone(i int) string { return fmt.Sprintf("+1415555%04d", i) }

func mustUpdate(t *testing.T, s Store, phone string, fn func(*verify.Record)) {
	t.Helper()
	err := s.Update(ctx(t), phone, func(r *verify.Record) error { fn(r); return nil })
	if err != nil {
		t.Fatalf("Update %s: %v", phone, err)
	}
}

func mustPut(t *testing.T, s Store, phone string, rec verify.Record) {
	t.Helper()
	mustUpdate(t, s, phone, func(r *verify.Record) { *r = rec })
}

func mustGet(t *testing.T, s Store, phone string) verify.Record {
	t.Helper()
	rec, err := s.Get(ctx(t), phone)
	if err != nil {
		t.Fatalf("Get %s: %v", phone, err)
	}
	return rec
}

func mustExpired(t *testing.T, s Store, now time.Time, max int) []string {
	t.Helper()
	phones, err := s.Expired(ctx(t), now, max)
	if err != nil {
		t.Fatalf("Expired: %v", err)
	}
	return phones
}

func requireZero(t *testing.T, rec verify.Record, what string) {
	t.Helper()
	if d := Diff(verify.Record{}, rec); d != "" || !rec.Empty() {
		t.Errorf("%s: want a zero record, got %+v (%s)", what, rec, d)
	}
}

func testMissing(t *testing.T, s Store) {
	p := phone(1)
	calls := 0
	err := s.Update(ctx(t), p, func(r *verify.Record) error {
		calls++
		requireZero(t, *r, "Update on a missing number")
		return verify.ErrNoChange
	})
	if !errors.Is(err, verify.ErrNoChange) {
		t.Fatalf("Update: %v, want ErrNoChange", err)
	}
	if calls == 0 {
		t.Fatal("Update did not run the function")
	}
	requireZero(t, mustGet(t, s, p), "Get of a missing number")
}

var errRefused = errors.New("refused by the function")

func testFunctionError(t *testing.T, s Store) {
	now := time.Now()
	fresh, kept := phone(1), phone(2)
	for _, want := range []error{errRefused, verify.ErrNoChange} {
		// Nothing is created for a missing number...
		err := s.Update(ctx(t), fresh, func(r *verify.Record) error {
			r.VerifiedAt = now
			r.Pending = pending(now.Add(-time.Minute))
			return want
		})
		if !errors.Is(err, want) {
			t.Fatalf("Update returned %v, want %v", err, want)
		}
		requireZero(t, mustGet(t, s, fresh), "after a refused Update")
		if got := mustExpired(t, s, now, 10); slices.Contains(got, fresh) {
			t.Errorf("a refused Update indexed the number: Expired = %v", got)
		}
		// ...and nothing changes for a stored one.
		stored := verify.Record{VerifiedAt: now.Add(-time.Hour), Sends: verify.Window{Until: now.Add(time.Hour), Count: 1}}
		mustPut(t, s, kept, stored)
		err = s.Update(ctx(t), kept, func(r *verify.Record) error {
			r.VerifiedAt = time.Time{}
			r.Sends.Count = 9
			r.Pending = pending(now.Add(-time.Minute))
			return fmt.Errorf("wrapped: %w", want)
		})
		if !errors.Is(err, want) {
			t.Fatalf("Update returned %v, want %v", err, want)
		}
		if d := Diff(stored, mustGet(t, s, kept)); d != "" {
			t.Errorf("a refused Update changed the record: %s", d)
		}
		if got := mustExpired(t, s, now, 10); slices.Contains(got, kept) {
			t.Errorf("a refused Update indexed the number: Expired = %v", got)
		}
	}
}

func pending(expires time.Time) *verify.Pending {
	return &verify.Pending{Secret: "JBSWY3DPEHPK3PXP", Digits: 6, SentAt: expires.Add(-5 * time.Minute), ExpiresAt: expires}
}

func testEmptyDeleted(t *testing.T, s Store) {
	now := time.Now()
	p := phone(1)
	mustPut(t, s, p, verify.Record{Pending: pending(now.Add(-time.Second)), Wrong: verify.Window{Until: now.Add(-time.Second), Count: 2}})
	if got := mustExpired(t, s, now, 10); !slices.Equal(got, []string{p}) {
		t.Fatalf("Expired = %v, want [%s]", got, p)
	}
	mustPut(t, s, p, verify.Record{})
	requireZero(t, mustGet(t, s, p), "after storing an empty record")
	if got := mustExpired(t, s, now.Add(time.Hour), 10); len(got) != 0 {
		t.Errorf("Expired = %v after the record was emptied", got)
	}
	found, err := s.Forget(p)
	if err != nil || found {
		t.Errorf("Forget after storing an empty record = %v, %v: want false (the record was deleted)", found, err)
	}
}

// Every field of Record, Pending, App and Window set: Diff and Full
// together make sure a field added later is stored too.
func fullRecord(now time.Time) verify.Record {
	return verify.Record{
		VerifiedAt: now.Add(-48 * time.Hour).Add(123 * time.Nanosecond),
		Pending: &verify.Pending{
			Secret: "JBSWY3DPEHPK3PXP", TestCode: "123456", Digits: 8,
			SentAt: now.Add(-time.Minute).Add(7), ExpiresAt: now.Add(9 * time.Minute).Add(11),
			Attempts: 2, Conn: "conn-42", Channel: "sms", Uncertain: true, Remote: true,
			Link: "nonce-abc", Site: "shop.example",
		},
		Sends: verify.Window{Until: now.Add(time.Hour).Add(3), Count: 3},
		Wrong: verify.Window{Until: now.Add(30 * time.Minute).Add(5), Count: 4},
		App:   &verify.App{Secret: []byte{0, 1, 2, 0xfe, 0xff, 'x'}, Enrolled: true, LastStep: 58_000_001},
	}
}

func testRoundTrip(t *testing.T, s Store) {
	now := time.Date(2031, 5, 6, 7, 8, 9, 987_654_321, time.FixedZone("X", 3600))
	full := fullRecord(now)
	if unset := Unset(full); len(unset) > 0 {
		t.Fatalf("the sample record leaves %v unset: set every field, so that the store must keep it", unset)
	}
	records := []verify.Record{
		full,
		{VerifiedAt: now},
		{Pending: &verify.Pending{Secret: "s", Digits: 6, SentAt: now, ExpiresAt: now.Add(time.Minute)}},
		{Sends: verify.Window{Until: now, Count: 1}},
		{Wrong: verify.Window{Until: now, Count: 1}},
		{App: &verify.App{Secret: []byte("key")}},
		{VerifiedAt: now, App: &verify.App{Secret: []byte("key"), Enrolled: true, LastStep: -1}},
	}
	for i, rec := range records {
		p := phone(100 + i)
		mustPut(t, s, p, rec)
		if d := Diff(rec, mustGet(t, s, p)); d != "" {
			t.Errorf("record %d: Get returned another record than Update stored: %s", i, d)
		}
		// Update sees the same record.
		err := s.Update(ctx(t), p, func(r *verify.Record) error {
			if d := Diff(rec, *r); d != "" {
				t.Errorf("record %d: Update saw another record than it stored: %s", i, d)
			}
			return verify.ErrNoChange
		})
		if !errors.Is(err, verify.ErrNoChange) {
			t.Fatalf("Update: %v", err)
		}
	}
}

func testExpired(t *testing.T, s Store) {
	// Not on a millisecond, so that a store rounding times is caught.
	now := time.Now().Truncate(time.Millisecond).Add(400 * time.Microsecond)
	due := map[string]verify.Record{
		phone(1): {Pending: pending(now.Add(-3 * time.Minute))},
		phone(2): {VerifiedAt: now.Add(-time.Hour), Sends: verify.Window{Until: now.Add(-2 * time.Minute), Count: 1}},
		phone(3): {Wrong: verify.Window{Until: now.Add(-time.Minute), Count: 1}},
		phone(4): {Pending: pending(now)}, // at now exactly
	}
	notDue := map[string]verify.Record{
		phone(10): {Pending: pending(now.Add(time.Hour))},
		phone(11): {Pending: pending(now.Add(time.Nanosecond))},
		phone(12): {Pending: pending(now.Add(100 * time.Microsecond))}, // the same millisecond
		phone(13): {VerifiedAt: now.Add(-time.Hour)},                   // nothing will change
		phone(14): {App: &verify.App{Secret: []byte("k")}},
	}
	for p, rec := range due {
		mustPut(t, s, p, rec)
	}
	for p, rec := range notDue {
		mustPut(t, s, p, rec)
	}
	got := mustExpired(t, s, now, 100)
	if want := slices.Sorted(mapKeys(due)); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Errorf("Expired(now, 100) = %v, want %v", got, want)
	}
	// At most max, the earliest first.
	if got := mustExpired(t, s, now, 1); !slices.Equal(got, []string{phone(1)}) {
		t.Errorf("Expired(now, 1) = %v, want the earliest [%s]", got, phone(1))
	}
	got = mustExpired(t, s, now, 3)
	if len(got) != 3 {
		t.Errorf("Expired(now, 3) = %v, want 3 numbers", got)
	}
	for _, p := range got {
		if _, ok := due[p]; !ok {
			t.Errorf("Expired(now, 3) lists %s, which is not due", p)
		}
	}
	if got := mustExpired(t, s, now.Add(-time.Hour), 100); len(got) != 0 {
		t.Errorf("Expired an hour ago = %v, want none", got)
	}
	got = mustExpired(t, s, now.Add(2*time.Hour), 100)
	if len(got) != 7 || slices.Contains(got, phone(13)) || slices.Contains(got, phone(14)) {
		t.Errorf("Expired in two hours = %v, want the 7 numbers with something expiring", got)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func testExpiredFollows(t *testing.T, s Store) {
	now := time.Now()
	changed, deleted, pushed, stays := phone(1), phone(2), phone(3), phone(4)
	for _, p := range []string{changed, deleted, pushed, stays} {
		mustPut(t, s, p, verify.Record{Pending: pending(now.Add(-time.Minute))})
	}
	mustUpdate(t, s, changed, func(r *verify.Record) { r.Pending, r.VerifiedAt = nil, now })
	mustUpdate(t, s, deleted, func(r *verify.Record) { *r = verify.Record{} })
	mustUpdate(t, s, pushed, func(r *verify.Record) { r.Pending.ExpiresAt = now.Add(time.Hour) })
	if got := mustExpired(t, s, now, 100); !slices.Equal(got, []string{stays}) {
		t.Errorf("Expired = %v, want only [%s]: the others changed or went", got, stays)
	}
	if got := mustExpired(t, s, now.Add(2*time.Hour), 100); !slices.Equal(slices.Sorted(slices.Values(got)), []string{pushed, stays}) {
		t.Errorf("Expired later = %v, want [%s %s]", got, pushed, stays)
	}
}

// increment counts one wrong code on the record's pending code, making
// one if there is none: verify's functions likewise start from the record
// they are given every time they run.
func increment(expires time.Time) func(*verify.Record) error {
	return func(r *verify.Record) error {
		if r.Pending == nil {
			r.Pending = pending(expires)
		}
		r.Pending.Attempts++
		return nil
	}
}

// ConcurrentIncrements runs n Updates at once, each counting one on the
// same number's Pending.Attempts, through the stores in turn, and checks
// that none is lost: a store must not race read-modify-writes, also
// between servers.
func ConcurrentIncrements(t *testing.T, n int, phone string, stores ...Store) {
	t.Helper()
	expires := time.Now().Add(time.Hour)
	c := ctx(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		s := stores[i%len(stores)]
		wg.Go(func() { errs <- s.Update(c, phone, increment(expires)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
	}
	for i, s := range stores {
		rec, err := s.Get(c, phone)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if rec.Pending == nil || rec.Pending.Attempts != n {
			t.Fatalf("store %d: after %d concurrent increments the record holds %+v: updates were lost", i, n, rec.Pending)
		}
	}
}

func testConcurrentOne(t *testing.T, s Store) { ConcurrentIncrements(t, 200, phone(1), s) }

func testConcurrentMany(t *testing.T, s Store) {
	const numbers, each = 100, 3
	now := time.Now()
	c := ctx(t)
	var wg sync.WaitGroup
	errs := make(chan error, numbers*each)
	for i := range numbers * each {
		p := phone(i % numbers)
		wg.Go(func() {
			errs <- s.Update(c, p, func(r *verify.Record) error {
				r.VerifiedAt = now
				r.Sends.Until = now.Add(time.Hour)
				r.Sends.Count++
				return nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
	}
	for i := range numbers {
		want := verify.Record{VerifiedAt: now, Sends: verify.Window{Until: now.Add(time.Hour), Count: each}}
		if d := Diff(want, mustGet(t, s, phone(i))); d != "" {
			t.Errorf("%s: %s", phone(i), d)
		}
	}
}

func testSpend(t *testing.T, s Store) {
	expires := time.Now().Add(5 * time.Minute)
	for _, id := range []string{"00112233445566778899aabbccddeeff", "ffeeddccbbaa99887766554433221100"} {
		for i, want := range []bool{true, false, false} {
			fresh, err := s.Spend(ctx(t), id, expires)
			if err != nil {
				t.Fatalf("Spend: %v", err)
			}
			if fresh != want {
				t.Errorf("Spend %s, call %d = %v, want %v", id, i+1, fresh, want)
			}
		}
	}
}

func testSecret(t *testing.T, s Store) {
	first := []byte("0123456789abcdef0123456789abcdef")
	generated := 0
	gen := func() ([]byte, error) { generated++; return bytes.Clone(first), nil }
	for i := range 3 {
		got, err := s.Secret("token-key", gen)
		if err != nil {
			t.Fatalf("Secret: %v", err)
		}
		if !bytes.Equal(got, first) {
			t.Errorf("Secret call %d = %q, want %q", i+1, got, first)
		}
	}
	if generated != 1 {
		t.Errorf("the secret was generated %d times, want once", generated)
	}
	other, err := s.Secret("other", func() ([]byte, error) { return []byte("another secret"), nil })
	if err != nil || string(other) != "another secret" {
		t.Errorf("Secret(other) = %q, %v: secrets are kept by name", other, err)
	}
	// A failing generate stores nothing.
	boom := errors.New("no entropy")
	if _, err := s.Secret("failing", func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("Secret with a failing generate: %v, want %v", err, boom)
	}
	got, err := s.Secret("failing", func() ([]byte, error) { return []byte("now"), nil })
	if err != nil || string(got) != "now" {
		t.Errorf("Secret after a failed generate = %q, %v, want \"now\"", got, err)
	}
}

func testForget(t *testing.T, s Store) {
	now := time.Now()
	gone, kept := phone(1), phone(2)
	for _, p := range []string{gone, kept} {
		mustPut(t, s, p, verify.Record{VerifiedAt: now, Pending: pending(now.Add(-time.Second)), Sends: verify.Window{Until: now.Add(time.Hour), Count: 1}})
	}
	found, err := s.Forget(gone)
	if err != nil || !found {
		t.Fatalf("Forget = %v, %v, want true", found, err)
	}
	requireZero(t, mustGet(t, s, gone), "after Forget")
	if got := mustExpired(t, s, now.Add(2*time.Hour), 100); !slices.Equal(got, []string{kept}) {
		t.Errorf("Expired = %v after Forget, want [%s]", got, kept)
	}
	if found, err := s.Forget(gone); err != nil || found {
		t.Errorf("Forget again = %v, %v, want false", found, err)
	}
	if found, err := s.Forget(phone(99)); err != nil || found {
		t.Errorf("Forget of an unknown number = %v, %v, want false", found, err)
	}
	if rec := mustGet(t, s, kept); rec.Pending == nil {
		t.Errorf("Forget of another number took %s's record: %+v", kept, rec)
	}
}

func testForgetVerifiedBefore(t *testing.T, s Store) {
	now := time.Now()
	cutoff := now.Add(-30 * 24 * time.Hour)
	old := cutoff.Add(-time.Hour)
	const oldOnes = 600 // more than one batch
	keep := map[string]verify.Record{
		phone(9000): {VerifiedAt: cutoff.Add(time.Hour)},                                              // recent
		phone(9001): {VerifiedAt: old, Pending: pending(now.Add(time.Minute))},                        // a code pending
		phone(9002): {VerifiedAt: old, Pending: pending(now.Add(-time.Minute))},                       // pending, even expired
		phone(9003): {VerifiedAt: old, Sends: verify.Window{Until: now.Add(time.Hour), Count: 1}},     // counting sends
		phone(9004): {VerifiedAt: old, Wrong: verify.Window{Until: now.Add(time.Hour), Count: 1}},     // counting wrong codes
		phone(9005): {Pending: pending(now.Add(time.Minute))},                                         // never verified
		phone(9006): {Sends: verify.Window{Until: now.Add(-time.Hour), Count: 1}},                     // never verified
		phone(9007): {VerifiedAt: cutoff.Add(time.Nanosecond), App: &verify.App{Secret: []byte("k")}}, // just after
	}
	c := ctx(t)
	var wg sync.WaitGroup
	errs := make(chan error, oldOnes+len(keep))
	put := func(p string, rec verify.Record) {
		wg.Go(func() {
			errs <- s.Update(c, p, func(r *verify.Record) error { *r = rec; return nil })
		})
	}
	for i := range oldOnes {
		put(phone(i), verify.Record{VerifiedAt: old.Add(-time.Duration(i) * time.Minute)})
	}
	for p, rec := range keep {
		put(p, rec)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
	}
	n, err := s.ForgetVerifiedBefore(cutoff)
	if err != nil {
		t.Fatalf("ForgetVerifiedBefore: %v", err)
	}
	if n != oldOnes {
		t.Errorf("ForgetVerifiedBefore removed %d, want %d", n, oldOnes)
	}
	for i := range oldOnes {
		if rec := mustGet(t, s, phone(i)); !rec.Empty() {
			t.Fatalf("%s verified before the cutoff is still kept: %+v", phone(i), rec)
		}
	}
	for p, rec := range keep {
		if d := Diff(rec, mustGet(t, s, p)); d != "" {
			t.Errorf("%s should have stayed: %s", p, d)
		}
	}
	if n, err := s.ForgetVerifiedBefore(cutoff); err != nil || n != 0 {
		t.Errorf("ForgetVerifiedBefore again = %d, %v, want 0", n, err)
	}
	if got := mustExpired(t, s, now.Add(2*time.Hour), 100); len(got) != 6 {
		t.Errorf("Expired after ForgetVerifiedBefore = %v, want the 6 kept records that expire", got)
	}
}

// Diff describes how got differs from want, "" when they are the same
// record. It walks every field, so a field added later is compared too;
// times compare with Equal (location and monotonic reading aside), byte
// slices by content (nil and empty alike).
func Diff(want, got verify.Record) string {
	var d []string
	diff(&d, "Record", reflect.ValueOf(want), reflect.ValueOf(got))
	return strings.Join(d, "; ")
}

var timeType = reflect.TypeFor[time.Time]()

func diff(d *[]string, path string, a, b reflect.Value) {
	if a.Type() == timeType {
		ta, tb := a.Interface().(time.Time), b.Interface().(time.Time)
		if !ta.Equal(tb) {
			*d = append(*d, fmt.Sprintf("%s: %v, want %v", path, tb, ta))
		}
		return
	}
	switch a.Kind() {
	case reflect.Pointer:
		switch {
		case a.IsNil() && b.IsNil():
		case a.IsNil() || b.IsNil():
			*d = append(*d, fmt.Sprintf("%s: %v, want %v", path, describe(b), describe(a)))
		default:
			diff(d, path, a.Elem(), b.Elem())
		}
	case reflect.Struct:
		for i := range a.NumField() {
			diff(d, path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
		}
	case reflect.Slice:
		if a.Type().Elem().Kind() != reflect.Uint8 {
			panic("storetest: Diff does not know " + a.Type().String() + " (" + path + "): teach it")
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			*d = append(*d, fmt.Sprintf("%s: %q, want %q", path, b.Bytes(), a.Bytes()))
		}
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !a.Equal(b) {
			*d = append(*d, fmt.Sprintf("%s: %v, want %v", path, b, a))
		}
	default:
		panic("storetest: Diff does not know " + a.Type().String() + " (" + path + "): teach it")
	}
}

func describe(v reflect.Value) string {
	if v.IsNil() {
		return "nil"
	}
	return fmt.Sprintf("%+v", v.Elem().Interface())
}

// Unset lists the fields of rec (and of what it points to) left at their
// zero value.
func Unset(rec verify.Record) []string {
	var unset []string
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch {
		case v.Type() == timeType:
			if v.Interface().(time.Time).IsZero() {
				unset = append(unset, path)
			}
		case v.Kind() == reflect.Pointer:
			if v.IsNil() {
				unset = append(unset, path)
			} else {
				walk(path, v.Elem())
			}
		case v.Kind() == reflect.Struct:
			for i := range v.NumField() {
				walk(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
		case v.IsZero() || (v.Kind() == reflect.Slice && v.Len() == 0):
			unset = append(unset, path)
		}
	}
	walk("Record", reflect.ValueOf(rec))
	return unset
}

// NumberForms are the ways phone (E.164) could sit in a store: E.164, its
// digits, its national digits (after a one-digit country code, as in
// +1), and as the 8-byte big-endian integer links carry.
func NumberForms(phone string) [][]byte {
	digits := strings.TrimPrefix(phone, "+")
	n, _ := strconv.ParseUint(digits, 10, 64)
	return [][]byte{[]byte(phone), []byte(digits), []byte(digits[1:]), binary.BigEndian.AppendUint64(nil, n)}
}

// NoNumberIn fails t if dump holds any form (NumberForms) of any of
// phones.
func NoNumberIn(t testing.TB, dump []byte, phones ...string) {
	t.Helper()
	for _, phone := range phones {
		for _, form := range NumberForms(phone) {
			if i := bytes.Index(dump, form); i >= 0 {
				t.Errorf("the dump holds %s as %q at byte %d", phone, form, i)
			}
		}
	}
}
