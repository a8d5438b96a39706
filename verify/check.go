package verify

import (
	"context"
	"errors"
	"fmt"
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
	var v verdict
	err = s.store.Update(ctx, phone, func(r *Record) (err error) {
		v, err = s.judge(r, code, now)
		return err
	})
	if err != nil && !errors.Is(err, ErrNoChange) {
		return Outcome{Phone: phone}, fmt.Errorf("verify: store: %w", err)
	}
	o := v.Outcome
	o.Phone = phone
	s.logged("verify", o)
	switch o.Kind {
	case Expired, TooManyAttempts: // every tab on the number starts over
		s.pub.Publish(phone, o, who.ConnID)
	case Verified:
		return s.verified(o, now.Sub(v.sentAt), who), nil
	}
	return o, nil
}

// verdict is what a code check decided, and when the code was sent.
type verdict struct {
	Outcome
	sentAt time.Time
}

// judge decides a code against the record, and changes the record to
// match: a right, expired or last wrong code ends the pending code.
func (s *Service) judge(r *Record, code string, now time.Time) (verdict, error) {
	p := r.Pending
	switch {
	case p == nil:
		return verdict{Outcome: Outcome{Kind: NotRequested}}, ErrNoChange
	case !now.Before(p.ExpiresAt):
		r.Pending = nil
		return verdict{Outcome: Outcome{Kind: Expired}}, nil
	case p.matches(code):
		r.Pending, r.VerifiedAt = nil, now
		return verdict{Outcome{Kind: Verified, VerifiedAt: now}, p.SentAt}, nil
	case p.Attempts+1 >= s.cfg.MaxAttempts:
		r.Pending = nil
		return verdict{Outcome: Outcome{Kind: TooManyAttempts}}, nil
	}
	next := *p
	next.Attempts++
	r.Pending = &next
	return verdict{Outcome: Outcome{Kind: WrongCode, AttemptsLeft: s.cfg.MaxAttempts - next.Attempts}}, nil
}

// verified tells the other connections on the number, without a token, and
// hands the requester its token.
func (s *Service) verified(o Outcome, sinceSent time.Duration, who Requester) Outcome {
	s.observe.Verified(sinceSent)
	s.pub.Publish(o.Phone, o, who.ConnID)
	token, err := s.tokens.Issue(o.Phone, o.VerifiedAt)
	if err != nil {
		s.log.Error("verify: token", "event", "verify", "reason", "token_failed", "err", err, "phone", MaskPhone(o.Phone))
	}
	o.Token = token
	return o
}

// SweepExpired removes expired codes and tells the connections waiting on
// them. It returns how many it removed.
func (s *Service) SweepExpired(ctx context.Context) (int, error) {
	const batch = 256
	now := s.now()
	phones, err := s.store.Expired(ctx, now, batch)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, phone := range phones {
		err := s.store.Update(ctx, phone, func(r *Record) error {
			if r.Pending == nil || now.Before(r.Pending.ExpiresAt) {
				return ErrNoChange
			}
			r.Pending = nil
			return nil
		})
		if errors.Is(err, ErrNoChange) {
			continue
		}
		if err != nil {
			return removed, err
		}
		removed++
		s.pub.Publish(phone, Outcome{Kind: Expired, Phone: phone}, "")
	}
	return removed, nil
}
