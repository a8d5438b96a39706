package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Verify checks a code. A right code verifies the number and tells every
// connection on it; the requester alone gets the token.
func (s *Service) Verify(ctx context.Context, who Requester, rawPhone, code string) (Outcome, error) {
	phone, err := s.Normalize(rawPhone)
	if err != nil {
		return Outcome{Kind: InvalidPhone}, nil
	}
	now := s.now()
	sub := who.subject(phone)
	if wait, limit := s.lookups.Wait(sub, now); wait > 0 {
		s.observe.RateLimited(limit)
		return s.logged("verify", Outcome{Kind: Locked, Phone: phone, RetryAfter: wait}), nil
	}
	var v verdict
	err = s.store.Update(ctx, phone, func(r *Record) (err error) {
		v, err = s.judge(r, code, now)
		return err
	})
	if v.remote && (err == nil || errors.Is(err, ErrNoChange)) {
		v, err = s.checkRemote(ctx, phone, code, now)
	}
	if err != nil && !errors.Is(err, ErrNoChange) {
		return Outcome{Phone: phone}, fmt.Errorf("verify: store: %w", err)
	}
	o := v.Outcome
	o.Phone = phone
	if o.Kind != Verified && o.Kind != Locked {
		// A wrong or stray code tells a stranger whether a code is pending:
		// it costs a lookup, as resume does.
		s.lookups.Take(sub, now)
	}
	if v.limit != "" {
		s.observe.RateLimited(v.limit)
	}
	s.logged("verify", o)
	switch o.Kind {
	case Expired, TooManyAttempts: // every tab on the number starts over
		s.pub.Publish(phone, o, who.ConnID)
	case Verified:
		o = s.verified(o, v, who)
		s.confirmLater(o.Phone, who)
	}
	return o, nil
}

// verdict is what a code check decided, when the code was sent, and the
// limit that refused the check, if one did. remote asks for the code
// engine's judgement.
type verdict struct {
	Outcome
	sentAt time.Time
	via    string // the channel a right code came by
	limit  string
	remote bool
}

// judge decides a code against the record, and changes the record to
// match: a right, expired or last wrong code ends the pending code, and
// every wrong code counts against the number's budget, which no new code
// resets. Past that budget not even the right code works. A remote code
// that may be right is left to the engine.
func (s *Service) judge(r *Record, code string, now time.Time) (verdict, error) {
	if v, over, err := s.settled(r, now); over {
		return v, err
	}
	switch p := r.Pending; {
	case p.Channel == AppChannel:
		return s.appCheck(r, code, now)
	case p.Remote && p.wellFormed(strings.TrimSpace(code)):
		return verdict{remote: true}, ErrNoChange
	case p.matches(code):
		return s.right(r, p.Channel, now), nil
	}
	return s.wrong(r, now), nil
}

// settled answers a check that no code can pass: the number is locked, or
// it has no live code (an expired one is removed).
func (s *Service) settled(r *Record, now time.Time) (v verdict, over bool, err error) {
	if wait := r.Wrong.wait(s.cfg.Limits.WrongPerNumber, now); wait > 0 {
		return verdict{Outcome: Outcome{Kind: Locked, RetryAfter: wait}, limit: "wrong_codes"}, true, ErrNoChange
	}
	switch p := r.Pending; {
	case p == nil:
		return verdict{Outcome: Outcome{Kind: NotRequested}}, true, ErrNoChange
	case !now.Before(p.ExpiresAt):
		r.Pending = nil
		return verdict{Outcome: Outcome{Kind: Expired}}, true, nil
	}
	return verdict{}, false, nil
}

// right verifies the number, by the channel via.
func (s *Service) right(r *Record, via string, now time.Time) verdict {
	v := verdict{Outcome: Outcome{Kind: Verified, VerifiedAt: now}, sentAt: now, via: via}
	if r.Pending != nil {
		v.sentAt = r.Pending.SentAt
	}
	r.Pending, r.VerifiedAt = nil, now
	return v
}

// wrong counts a wrong code against the number's budget and its pending
// code's attempts; the last attempt ends the code.
func (s *Service) wrong(r *Record, now time.Time) verdict {
	r.Wrong.add(s.cfg.Limits.WrongPerNumber, now)
	p := r.Pending
	if p.Attempts+1 >= s.cfg.MaxAttempts {
		r.Pending = nil
		return verdict{Outcome: Outcome{Kind: TooManyAttempts}}
	}
	next := *p
	next.Attempts++
	r.Pending = &next
	return verdict{Outcome: Outcome{Kind: WrongCode, AttemptsLeft: s.cfg.MaxAttempts - next.Attempts}}
}

// verified tells the other connections on the number, without a token, and
// hands the requester its token; the requester's connection may then add
// or remove an authenticator app for a while. The caller decides whether
// a confirmation text follows.
func (s *Service) verified(o Outcome, v verdict, who Requester) Outcome {
	s.observe.Verified(s.now().Sub(v.sentAt))
	s.sessions.add(who.ConnID, o.Phone, v.via, o.VerifiedAt)
	s.pub.Publish(o.Phone, o, who.ConnID)
	token, err := s.tokens.Issue(o.Phone, o.VerifiedAt)
	if err != nil {
		s.log.Error("verify: token", "event", "verify", "reason", "token_failed", "err", err, "phone", MaskPhone(o.Phone))
	}
	o.Token = token
	return o
}

// verifiedFromAfar finishes a verification made away from the page (a
// tapped link, a text we received): the page that asked gets the token,
// live, and the caller an outcome without it.
func (s *Service) verifiedFromAfar(o Outcome, v verdict, conn string) Outcome {
	o = s.verified(o, v, Requester{ConnID: conn})
	s.pub.Tell(conn, o)
	o.Token = ""
	return o
}

// confirmTimeout bounds one confirmation text.
const confirmTimeout = 30 * time.Second

// confirmLater texts the number that it is verified, after the answer has
// gone: a failure never undoes the verification, and the page is told.
func (s *Service) confirmLater(phone string, who Requester) {
	if s.confirm == nil || s.cfg.IsTestNumber(phone) {
		return
	}
	s.after.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), confirmTimeout)
		defer cancel()
		if err := s.confirm.Confirm(ctx, phone, who.Lang); err != nil {
			s.logged("confirm", Outcome{Kind: ConfirmFailed, Phone: phone}, slog.Any("err", err))
			s.pub.Tell(who.ConnID, Outcome{Kind: ConfirmFailed, Phone: phone})
		}
	})
}

// sweepBatch is how many records the sweeper reads at a time; their
// writes run together, so the store commits them in a few transactions.
const sweepBatch = 256

// SweepExpired removes expired codes and tells the connections waiting on
// them, and forgets the records' windows that have passed. It works
// through the whole backlog, so thousands of codes expiring in the same
// second are all pushed in this call. It returns how many codes it
// removed.
func (s *Service) SweepExpired(ctx context.Context) (int, error) {
	now := s.now()
	removed := 0
	for {
		phones, err := s.store.Expired(ctx, now, sweepBatch)
		if err != nil {
			return removed, err
		}
		n, changed, err := s.sweep(ctx, phones, now)
		removed += n
		if err != nil || len(phones) < sweepBatch || changed == 0 {
			return removed, err // done, failing, or making no progress
		}
	}
}

// sweep settles the records of phones concurrently, and says how many
// codes it removed and how many records it changed.
func (s *Service) sweep(ctx context.Context, phones []string, now time.Time) (removed, changed int, err error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, phone := range phones {
		wg.Go(func() {
			expired := false
			err := s.store.Update(ctx, phone, func(r *Record) (err error) {
				expired, err = sweepRecord(r, now)
				return err
			})
			if errors.Is(err, ErrNoChange) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			changed++
			if expired {
				removed++
				s.pub.Publish(phone, Outcome{Kind: Expired, Phone: phone}, "")
			}
		})
	}
	wg.Wait()
	return removed, changed, errors.Join(errs...)
}

// sweepRecord ends what in r has expired by now.
func sweepRecord(r *Record, now time.Time) (expired bool, err error) {
	if next := r.NextChange(); next.IsZero() || now.Before(next) {
		return false, ErrNoChange // changed since it was listed
	}
	if r.Pending != nil && !now.Before(r.Pending.ExpiresAt) {
		r.Pending, expired = nil, true
	}
	r.Sends.tidy(now)
	r.Wrong.tidy(now)
	return expired, nil
}
