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
	// Sends counts codes sent to the number, and Wrong the wrong codes
	// typed for it, each in its current window. They live here, beside
	// the code, so that neither a restart nor a new code reopens them.
	Sends Window
	Wrong Window
	App   *App // the number's authenticator app, nil for none
}

// App is a number's authenticator app (TOTP).
type App struct {
	Secret   []byte // the TOTP key, sealed (Deps.Secrets): the store never holds it readable
	Enrolled bool   // confirmed with one right code; until then only offered
	LastStep int64  // the last time step accepted: no code works twice
}

// Empty reports whether there is nothing worth keeping.
func (r *Record) Empty() bool {
	return r.VerifiedAt.IsZero() && r.Pending == nil && r.Sends.Count == 0 && r.Wrong.Count == 0 && r.App == nil
}

// Verified reports whether the number was ever verified.
func (r Record) Verified() bool { return !r.VerifiedAt.IsZero() }

// NextChange is when something in the record next expires on its own (the
// pending code, a window), or the zero time if nothing will. The store
// indexes records by it, so the sweeper finds them.
func (r *Record) NextChange() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if r.Pending != nil {
		consider(r.Pending.ExpiresAt)
	}
	if r.Sends.Count > 0 {
		consider(r.Sends.Until)
	}
	if r.Wrong.Count > 0 {
		consider(r.Wrong.Until)
	}
	return next
}

// Window counts events until Until; after that it starts again from zero.
type Window struct {
	Until time.Time
	Count int
}

// wait is how long until the window lets another event in under r; 0
// when it does now.
func (w Window) wait(r Rate, now time.Time) time.Duration {
	if r.N <= 0 || !now.Before(w.Until) || w.Count < r.N {
		return 0
	}
	return w.Until.Sub(now)
}

// add counts one event, opening a new window if the old one has passed.
func (w *Window) add(r Rate, now time.Time) {
	if r.N <= 0 {
		return
	}
	if !now.Before(w.Until) {
		*w = Window{Until: now.Add(r.Per)}
	}
	w.Count++
}

// tidy forgets a window that has passed.
func (w *Window) tidy(now time.Time) {
	if !now.Before(w.Until) {
		*w = Window{}
	}
}

// Pending is a code that was sent and not yet used up.
type Pending struct {
	// Secret is the HOTP key (counter 0) of a sent code; for a Remote code
	// it is a random name that tells this send from the next.
	Secret    string
	TestCode  string // or a configured test number's fixed code
	Digits    int
	SentAt    time.Time
	ExpiresAt time.Time
	Attempts  int    // wrong codes so far
	Conn      string // the connection that asked for it: delivery reports go there only
	Channel   string // how it travelled ("" for a test number or an older record)
	// Uncertain marks a code whose sending failed in a way that may still
	// have reached the phone: it stays valid, and a new one may be asked
	// for at once.
	Uncertain bool
	// Remote marks a code the code engine (Twilio Verify) made and sent:
	// only the engine can check it.
	Remote bool
	// Link is the nonce of the tap-to-verify link sent with the code, ""
	// for none; Site is the host whose page asked ("" for the server's
	// own), which the link's page names.
	Link, Site string
}

// ErrNoChange, returned from an Update function, asks the store to write
// nothing: no fsync is spent on answers that change no state.
var ErrNoChange = errors.New("no change")

// Store keeps records durably. Implementations live outside this package.
type Store interface {
	// Update runs fn on the number's record (zero Record if there is
	// none) and stores the result atomically and durably before returning.
	// fn may run more than once (a store shared by several servers runs it
	// again when another got there first): it must set everything it
	// reports from scratch on each run.
	// If fn returns an error nothing is written and Update returns it
	// (ErrNoChange included). An empty record is deleted.
	Update(ctx context.Context, phone string, fn func(*Record) error) error
	// Get returns the number's record, or a zero Record.
	Get(ctx context.Context, phone string) (Record, error)
	// Expired lists up to max numbers whose record's NextChange is at or
	// before now.
	Expired(ctx context.Context, now time.Time, max int) ([]string, error)
}

// Publisher fans an outcome out to every connection that registered a
// number, skipping the connection with the given id ("" skips none). A
// multi-node deployment puts a cross-node bus behind it.
type Publisher interface {
	Publish(phone string, o Outcome, exceptConn string)
	// Tell sends an outcome to one connection, if it is still open.
	Tell(conn string, o Outcome)
}

// TokenIssuer mints the proof of verification handed to the browser.
type TokenIssuer interface {
	Issue(phone string, verifiedAt time.Time) (string, error)
}
