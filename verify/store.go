package verify

import (
	"context"
	"errors"
	"time"
)

// Record is everything kept about one phone number.
type Record struct {
	VerifiedAt time.Time
	Pending    *Pending
}

// Empty reports whether there is nothing worth keeping.
func (r *Record) Empty() bool { return r.VerifiedAt.IsZero() && r.Pending == nil }

// Verified reports whether the number was ever verified.
func (r *Record) Verified() bool { return !r.VerifiedAt.IsZero() }

// Pending is a code that was sent and not yet used up.
type Pending struct {
	Secret    string // the HOTP key (counter 0) of a sent code
	TestCode  string // or a configured test number's fixed code
	Digits    int
	SentAt    time.Time
	ExpiresAt time.Time
	Attempts  int // wrong codes so far
}

// ErrNoChange, returned from an Update function, asks the store to write
// nothing: no fsync is spent on answers that change no state.
var ErrNoChange = errors.New("no change")

// Store keeps records durably. Implementations live outside this package.
type Store interface {
	// Update runs fn once on the number's record (zero Record if there is
	// none) and stores the result atomically and durably before returning.
	// If fn returns an error nothing is written and Update returns it
	// (ErrNoChange included). An empty record is deleted.
	Update(ctx context.Context, phone string, fn func(*Record) error) error
	// Get returns the number's record, or a zero Record.
	Get(ctx context.Context, phone string) (Record, error)
	// Expired lists up to max numbers whose pending code expired at or
	// before now.
	Expired(ctx context.Context, now time.Time, max int) ([]string, error)
}

// Publisher fans an outcome out to every connection that registered a
// number, skipping the connection with the given id ("" skips none). A
// multi-node deployment puts a cross-node bus behind it.
type Publisher interface {
	Publish(phone string, o Outcome, exceptConn string)
}

// TokenIssuer mints the proof of verification handed to the browser.
type TokenIssuer interface {
	Issue(phone string, verifiedAt time.Time) (string, error)
}
