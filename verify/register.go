package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Registration is what a person asks for when they request a code.
type Registration struct {
	Phone    string // as typed
	Reverify bool   // send a code even if the number was verified before
	Channel  string // how the code travels; "" for DefaultChannel
}

// ask is one register request on its way through the rules.
type ask struct {
	who      Requester
	phone    string
	channel  string
	reverify bool
	test     bool // a configured test number
	free     bool // nothing is sent (a test number, an app code, a code the person texts us): no send limits
	now      time.Time
}

// Register starts verifying a number: it stores a new code and delivers
// it. The error is an internal failure (nothing was sent); every answer
// for the person is an Outcome.
func (s *Service) Register(ctx context.Context, who Requester, reg Registration) (Outcome, error) {
	parsed, err := s.parse(reg.Phone)
	if err != nil {
		return s.logged("register", Outcome{Kind: InvalidPhone}), nil
	}
	// An app's code is for numbers verified before: asking for it is
	// always a reverification.
	a := ask{who: who, phone: parsed.e164, channel: reg.Channel, reverify: reg.Reverify || reg.Channel == AppChannel, now: s.now()}
	if a.channel == "" {
		a.channel = DefaultChannel
	}
	ch, ok := s.channels[a.channel]
	if !ok && !s.offersApp(a.channel) {
		return Outcome{Phone: a.phone}, fmt.Errorf("%w %q", ErrUnknownChannel, a.channel)
	}
	testCode, isTest := s.cfg.TestNumbers[a.phone]
	receiver, receives := ch.(Receiver)
	a.test, a.free = isTest, isTest || receives || a.channel == AppChannel
	if !isTest && s.countries != nil && !s.countries[parsed.country] {
		return s.logged("register", Outcome{Kind: CountryNotAllowed, Phone: a.phone, Country: parsed.country}), nil
	}
	// A read first, so that refusals cost neither a rate-limit slot nor a write.
	current, err := s.store.Get(ctx, a.phone)
	if err != nil {
		return Outcome{Phone: a.phone}, fmt.Errorf("register: read: %w", err)
	}
	if r, refused := s.refusal(&current, a); refused {
		return s.answerRefusal(r, a), nil
	}
	switch {
	case isTest:
		return s.storeTestCode(ctx, a, testCode)
	case a.channel == AppChannel:
		return s.askApp(ctx, a, &current)
	case receives:
		return s.expectText(ctx, a, receiver)
	}
	return s.sendCode(ctx, a, ch)
}

// refused is why no new code may be sent now, and the limit that says so,
// if it was one.
type refused struct {
	Outcome
	limit string
}

// refusal judges by the record whether a new code may be sent now.
func (s *Service) refusal(r *Record, a ask) (refused, bool) {
	lim := s.cfg.Limits
	if wait := r.Wrong.wait(lim.WrongPerNumber, a.now); wait > 0 {
		return refused{Outcome{Kind: Locked, Phone: a.phone, RetryAfter: wait}, "wrong_codes"}, true
	}
	if r.Verified() && !a.reverify { // no date: a stranger learns nothing more
		return refused{Outcome: Outcome{Kind: AlreadyVerified, Phone: a.phone}}, true
	}
	if p := r.Pending; p != nil && !p.Uncertain && sameChannel(p, a) && a.now.Before(p.ExpiresAt) && a.now.Before(p.SentAt.Add(s.cfg.ResendAfter)) {
		return refused{Outcome: s.pendingOutcome(AlreadyRequested, a.phone, p, a.now)}, true
	}
	if wait := r.Sends.wait(lim.PerNumber, a.now); wait > 0 && !a.free {
		return refused{Outcome{Kind: RateLimited, Phone: a.phone, RetryAfter: wait}, "number"}, true
	}
	return refused{}, false
}

// sameChannel reports whether a asks for the channel p travelled by: the
// resend wait does not apply to switching channel (a call when the text
// did not arrive).
func sameChannel(p *Pending, a ask) bool {
	return p.Channel == "" || p.Channel == a.channel || a.test
}

// answerRefusal counts a limit's refusal, and makes an answer read from
// state (already verified, already requested) cost a lookup.
func (s *Service) answerRefusal(r refused, a ask) Outcome {
	if r.limit != "" {
		s.observe.RateLimited(r.limit)
		return s.logged("register", r.Outcome, slog.String("limit", r.limit), slog.String("client", a.who.ClientAddr))
	}
	if locked, ok := s.takeLookup(a.who, a.phone, a.now); !ok {
		return s.logged("register", locked)
	}
	return s.logged("register", r.Outcome)
}

// takeLookup counts an answer read from state for the client, or says it
// has had too many: a script walking a list of numbers to learn which are
// verified or being verified stops there.
func (s *Service) takeLookup(who Requester, phone string, now time.Time) (locked Outcome, ok bool) {
	wait, limit, ok := s.lookups.Take(who.subject(phone), now)
	if !ok {
		s.observe.RateLimited(limit)
		return Outcome{Kind: Locked, Phone: phone, RetryAfter: wait}, false
	}
	return Outcome{}, true
}

// storePending replaces the number's pending code with p unless a refusal
// applies by now, counts the send in the record, and returns the code it
// replaced.
func (s *Service) storePending(ctx context.Context, a ask, p *Pending) (previous *Pending, err error) {
	err = s.store.Update(ctx, a.phone, func(r *Record) error {
		if ref, refused := s.refusal(r, a); refused {
			return errRefused{ref}
		}
		previous, r.Pending = r.Pending, p
		if !a.free {
			r.Sends.add(s.cfg.Limits.PerNumber, a.now)
		}
		r.Wrong.tidy(a.now)
		return nil
	})
	return previous, err
}

func (s *Service) codeSent(a ask) Outcome {
	return Outcome{Kind: CodeSent, Phone: a.phone, Channel: a.channel, CodeLength: s.cfg.CodeLength,
		ExpiresIn: s.cfg.CodeTTL, ResendIn: s.cfg.ResendAfter}
}

// storeFailed answers a storePending that did not store.
func (s *Service) storeFailed(a ask, err error) (Outcome, error) {
	if r, ok := errors.AsType[errRefused](err); ok {
		return s.answerRefusal(r.refused, a), nil
	}
	return Outcome{Phone: a.phone}, fmt.Errorf("register: store: %w", err)
}

// storeTestCode stores a test number's fixed code and sends nothing.
func (s *Service) storeTestCode(ctx context.Context, a ask, code string) (Outcome, error) {
	p := &Pending{TestCode: code, Digits: len(code), SentAt: a.now, ExpiresAt: a.now.Add(s.cfg.CodeTTL), Conn: a.who.ConnID}
	if _, err := s.storePending(ctx, a, p); err != nil {
		return s.storeFailed(a, err)
	}
	return s.logged("register", s.codeSent(a), slog.Bool("test", true)), nil
}

// sendCode takes a slot of every send limit, stores a fresh code durably
// and then delivers it, so that a code that reached a phone always works.
func (s *Service) sendCode(ctx context.Context, a ask, ch Channel) (Outcome, error) {
	sub := a.who.subject(a.phone)
	if wait, limit, ok := s.limits.Take(sub, a.now); !ok {
		return s.answerRefusal(refused{Outcome{Kind: RateLimited, Phone: a.phone, RetryAfter: wait}, limit}, a), nil
	}
	secret, err := newSecret()
	if err != nil {
		s.limits.Give(sub)
		return Outcome{Phone: a.phone}, fmt.Errorf("register: %w", err)
	}
	p := &Pending{Secret: secret, Digits: s.cfg.CodeLength, SentAt: a.now, ExpiresAt: a.now.Add(s.cfg.CodeTTL),
		Conn: a.who.ConnID, Channel: a.channel, Remote: s.engine != nil, Site: a.who.Host}
	link, err := s.newLink(a, p)
	if err != nil {
		s.limits.Give(sub)
		return Outcome{Phone: a.phone}, fmt.Errorf("register: %w", err)
	}
	previous, err := s.storePending(ctx, a, p)
	if err != nil {
		s.limits.Give(sub)
		return s.storeFailed(a, err)
	}
	if err := s.deliver(ctx, a, p, ch, link); err != nil {
		return s.deliveryFailed(ctx, a, p, previous, err), nil
	}
	// A call answers at once; texts are reported later, but not by the
	// code engine.
	if a.channel != "call" && !p.Remote {
		s.watchDelivery(a.phone, p)
	}
	return s.logged("register", s.codeSent(a), slog.String("channel", a.channel)), nil
}

// deliver hands the stored code to the channel; a remote code is the
// engine's to make, so the channel gets none.
func (s *Service) deliver(ctx context.Context, a ask, p *Pending, ch Channel, link string) error {
	d := Delivery{To: a.phone, Lang: a.who.Lang, Host: a.who.Host, Conn: a.who.ConnID, Link: link}
	if !p.Remote {
		code, err := p.code()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNotSent, err)
		}
		d.Code = code
	}
	return ch.Deliver(ctx, d)
}
