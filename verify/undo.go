package verify

import (
	"context"
	"errors"
	"log/slog"
)

// deliveryFailed settles a code whose delivery failed, by what the failure
// proves. A rejected number leaves nothing pending, so the person can
// correct it at once; its send stays counted, so probing numbers costs. A
// message that provably never left gives back every slot it took and puts
// back the code sent before. Any other failure may have reached the phone:
// the code stays valid and counted, and a new one may be asked for at once.
// A code engine that will send no more gives everything back too, and says
// when to retry.
func (s *Service) deliveryFailed(ctx context.Context, a ask, sent, previous *Pending, sendErr error) Outcome {
	switch {
	case errors.Is(sendErr, ErrRejectedNumber):
		s.settle(ctx, a.phone, sent, func(r *Record) { r.Pending = nil })
		return s.logged("register", Outcome{Kind: NumberRejected, Phone: a.phone}, slog.Any("err", sendErr))
	case errors.Is(sendErr, ErrSendsExhausted):
		s.unsend(ctx, a, sent, previous)
		s.observe.RateLimited("engine_sends")
		// The engine's window is its code's lifetime (ten minutes at Twilio).
		return s.logged("register", Outcome{Kind: RateLimited, Phone: a.phone, RetryAfter: s.cfg.CodeTTL}, slog.Any("err", sendErr))
	case errors.Is(sendErr, ErrNotSent):
		s.unsend(ctx, a, sent, previous)
		return s.logged("register", Outcome{Kind: SendFailed, Phone: a.phone}, slog.Any("err", sendErr))
	}
	s.settle(ctx, a.phone, sent, func(r *Record) {
		uncertain := *r.Pending
		uncertain.Uncertain = true
		r.Pending = &uncertain
	})
	return s.logged("register", Outcome{Kind: SendUncertain, Phone: a.phone}, slog.Any("err", sendErr))
}

// unsend undoes a send that provably never left: it gives back every slot
// it took and puts back the code sent before.
func (s *Service) unsend(ctx context.Context, a ask, sent, previous *Pending) {
	s.limits.Give(a.who.subject(a.phone))
	s.settle(ctx, a.phone, sent, func(r *Record) {
		r.Pending = previous
		if r.Sends.Count > 0 {
			r.Sends.Count--
		}
	})
}

// settle changes the record if its pending code is still the one sent; one
// replaced meanwhile is not ours to change.
func (s *Service) settle(ctx context.Context, phone string, sent *Pending, change func(*Record)) {
	err := s.store.Update(ctx, phone, func(r *Record) error {
		if r.Pending == nil || r.Pending.Secret != sent.Secret {
			return ErrNoChange
		}
		change(r)
		return nil
	})
	if err != nil && !errors.Is(err, ErrNoChange) {
		s.log.Error("register: settle", "event", "register", "reason", "settle_failed", "err", err, "phone", MaskPhone(phone))
	}
}
