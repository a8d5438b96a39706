package record

import (
	"log/slog"
	"sync"

	"verifier/verify"
)

// maxReported bounds the numbers remembered as already reported: the set
// is cleared when full, so a number may be reported again after that many
// others.
const maxReported = 1024

// Unreadable logs, once per number, that its stored record does not
// decode and reads as a new one. It is safe for concurrent use.
type Unreadable struct {
	store string // names the store in the line
	log   *slog.Logger
	mu    sync.Mutex
	seen  map[string]struct{}
}

// NewUnreadable reports through log, naming store.
func NewUnreadable(store string, log *slog.Logger) *Unreadable {
	return &Unreadable{store: store, log: log, seen: map[string]struct{}{}}
}

// Report logs phone's record as unreadable, unless it was lately.
func (u *Unreadable) Report(phone string) {
	u.mu.Lock()
	_, seen := u.seen[phone]
	if !seen {
		if len(u.seen) >= maxReported {
			clear(u.seen)
		}
		u.seen[phone] = struct{}{}
	}
	u.mu.Unlock()
	if !seen {
		u.log.Warn(u.store+": unreadable record", "event", "store", "reason", "bad_record", "phone", verify.MaskPhone(phone))
	}
}
