package verify

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Registration is what a person asks for when they request a code.
type Registration struct {
	Phone    string // as typed
	Reverify bool   // send a code even if the number was verified before
	Channel  string // how the code travels; "" for DefaultChannel
}

// Register starts verifying a number: it stores a new code and delivers
// it. The error is an internal failure (nothing was sent); every answer
// for the person is an Outcome.
func (s *Service) Register(ctx context.Context, who Requester, reg Registration) (Outcome, error) {
	parsed, err := s.parse(reg.Phone)
	if err != nil {
		return s.logged("register", Outcome{Kind: InvalidPhone}), nil
	}
	phone := parsed.e164
	name := reg.Channel
	if name == "" {
		name = DefaultChannel
	}
	channel, ok := s.channels[name]
	if !ok {
		return Outcome{Phone: phone}, fmt.Errorf("%w %q", ErrUnknownChannel, name)
	}
	testCode, isTest := s.cfg.TestNumbers[phone]
	if !isTest && s.countries != nil && !s.countries[parsed.country] {
		return s.logged("register", Outcome{Kind: CountryNotAllowed, Phone: phone, Country: parsed.country}), nil
	}
	now := s.now()
	// A read first, so that refusals cost neither a rate-limit slot nor a write.
	current, err := s.store.Get(ctx, phone)
	if err != nil {
		return Outcome{Phone: phone}, fmt.Errorf("register: read: %w", err)
	}
	if o, refused := s.refusal(&current, phone, reg.Reverify, now); refused {
		return o, nil
	}
	if isTest { // nothing is sent, so nothing costs money: no limits
		return s.storeTestCode(ctx, phone, name, testCode, reg.Reverify, now)
	}
	return s.sendCode(ctx, who, phone, name, channel, reg.Reverify, now)
}

// refusal says why no new code may be sent now, judging by the record.
func (s *Service) refusal(r *Record, phone string, reverify bool, now time.Time) (Outcome, bool) {
	if r.Verified() && !reverify {
		return Outcome{Kind: AlreadyVerified, Phone: phone, VerifiedAt: r.VerifiedAt}, true
	}
	if p := r.Pending; p != nil && now.Before(p.ExpiresAt) && now.Before(p.SentAt.Add(s.cfg.ResendAfter)) {
		return s.pendingOutcome(AlreadyRequested, phone, p, now), true
	}
	return Outcome{}, false
}

// storePending replaces the number's pending code with p unless a refusal
// applies by now, and returns the code it replaced.
func (s *Service) storePending(ctx context.Context, phone string, p *Pending, reverify bool) (previous *Pending, err error) {
	err = s.store.Update(ctx, phone, func(r *Record) error {
		if o, refused := s.refusal(r, phone, reverify, p.SentAt); refused {
			return errRefused{o}
		}
		previous, r.Pending = r.Pending, p
		return nil
	})
	return previous, err
}

func (s *Service) codeSent(phone, channel string) Outcome {
	return Outcome{Kind: CodeSent, Phone: phone, Channel: channel, CodeLength: s.cfg.CodeLength,
		ExpiresIn: s.cfg.CodeTTL, ResendIn: s.cfg.ResendAfter}
}

// storeTestCode stores a test number's fixed code and sends nothing.
func (s *Service) storeTestCode(ctx context.Context, phone, channel, code string, reverify bool, now time.Time) (Outcome, error) {
	p := &Pending{TestCode: code, Digits: len(code), SentAt: now, ExpiresAt: now.Add(s.cfg.CodeTTL)}
	_, err := s.storePending(ctx, phone, p, reverify)
	if o, refused := refusedOutcome(err); refused {
		return o, nil
	}
	if err != nil {
		return Outcome{Phone: phone}, fmt.Errorf("register: store: %w", err)
	}
	return s.logged("register", s.codeSent(phone, channel), "test", true), nil
}

// sendCode takes a slot of every send limit, stores a fresh code durably
// and then delivers it, so that a code that reached a phone always works.
func (s *Service) sendCode(ctx context.Context, who Requester, phone, name string, ch Channel, reverify bool, now time.Time) (Outcome, error) {
	sub := who.subject(phone)
	if wait, limit, ok := s.limits.Take(sub, now); !ok {
		s.observe.RateLimited(limit)
		return s.logged("register", Outcome{Kind: RateLimited, Phone: phone, RetryAfter: wait},
			"limit", limit, "client", who.ClientAddr), nil
	}
	secret, err := newSecret()
	if err != nil {
		s.limits.Give(sub)
		return Outcome{Phone: phone}, fmt.Errorf("register: %w", err)
	}
	p := &Pending{Secret: secret, Digits: s.cfg.CodeLength, SentAt: now, ExpiresAt: now.Add(s.cfg.CodeTTL)}
	previous, err := s.storePending(ctx, phone, p, reverify)
	if err != nil {
		s.limits.Give(sub)
		if o, refused := refusedOutcome(err); refused {
			return o, nil
		}
		return Outcome{Phone: phone}, fmt.Errorf("register: store: %w", err)
	}
	code, err := p.code()
	if err == nil {
		err = ch.Deliver(ctx, Delivery{To: phone, Code: code, Lang: who.Lang, Host: who.Host})
	}
	if err != nil {
		return s.deliveryFailed(ctx, sub, p, previous, err), nil
	}
	return s.logged("register", s.codeSent(phone, name), "channel", name), nil
}

// deliveryFailed undoes the stored code that never reached the phone: a
// rejected number leaves nothing behind, so the person can correct it at
// once; any other failure puts back the code sent before, if there was one.
func (s *Service) deliveryFailed(ctx context.Context, sub Subject, sent, previous *Pending, sendErr error) Outcome {
	o := Outcome{Kind: SendFailed, Phone: sub.Phone}
	if errors.Is(sendErr, ErrRejectedNumber) {
		o.Kind, previous = NumberRejected, nil
	} else {
		s.limits.Give(sub)
	}
	err := s.store.Update(ctx, sub.Phone, func(r *Record) error {
		if r.Pending == nil || r.Pending.Secret != sent.Secret {
			return ErrNoChange // replaced meanwhile: not ours to undo
		}
		r.Pending = previous
		return nil
	})
	if err != nil && !errors.Is(err, ErrNoChange) {
		s.log.Error("register: undo", "event", "register", "reason", "undo_failed", "err", err, "phone", MaskPhone(sub.Phone))
	}
	return s.logged("register", o, "err", sendErr)
}
