package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
)

// InboundChannel is the register channel by which the person texts us the
// code shown on the page (see Receiver).
const InboundChannel = "inbound"

// expectText stores a code for the person to text us, and answers it with
// the number to text. Nothing is sent, so no send limit applies: the
// per-connection, per-client and per-range ones still bound how many codes
// one client makes.
func (s *Service) expectText(ctx context.Context, a ask, rc Receiver) (Outcome, error) {
	sub := a.who.subject(a.phone)
	if wait, limit, ok := s.expecting.Take(sub, a.now); !ok {
		return s.answerRefusal(refused{Outcome{Kind: RateLimited, Phone: a.phone, RetryAfter: wait}, limit}, a), nil
	}
	secret, err := newSecret()
	if err != nil {
		return Outcome{Phone: a.phone}, fmt.Errorf("register: %w", err)
	}
	p := &Pending{Secret: secret, Digits: s.cfg.CodeLength, SentAt: a.now, ExpiresAt: a.now.Add(s.cfg.CodeTTL),
		Conn: a.who.ConnID, Channel: a.channel}
	if _, err := s.storePending(ctx, a, p); err != nil {
		s.expecting.Give(sub)
		return s.storeFailed(a, err)
	}
	code, err := p.code()
	if err != nil {
		return Outcome{Phone: a.phone}, fmt.Errorf("register: %w", err)
	}
	o := s.codeSent(a)
	o.Code, o.SendTo = code, rc.Number()
	return s.logged("register", o, slog.String("channel", a.channel)), nil
}

// digitRun finds a code in a text: the first run of 4 to 10 digits.
var digitRun = regexp.MustCompile(`\b\d{4,10}\b`)

// Received checks a text that reached our number: from is its sender (the
// provider vouches for it), body what it says. The sender's pending
// inbound code, typed right, verifies the number, and the page that asked
// gets verified with its token, live. A wrong code counts like one typed
// on the page; a text from anyone else changes nothing.
func (s *Service) Received(ctx context.Context, from, body string) (Outcome, error) {
	phone, err := s.Normalize(from)
	if err != nil {
		return Outcome{Kind: InvalidPhone}, nil
	}
	code, now := digitRun.FindString(body), s.now()
	var v verdict
	var conn string
	err = s.store.Update(ctx, phone, func(r *Record) error {
		conn = "" // a store may run this more than once
		if lock, over, err := s.settled(r, now); over {
			v = lock
			return err
		}
		p := r.Pending
		if p.Channel != InboundChannel {
			v = verdict{Outcome: Outcome{Kind: NotRequested}}
			return ErrNoChange
		}
		conn = p.Conn
		if p.matches(code) {
			v = s.right(r, InboundChannel, now)
		} else {
			v = s.wrong(r, now)
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNoChange) {
		return Outcome{Phone: phone}, fmt.Errorf("received: store: %w", err)
	}
	o := v.Outcome
	o.Phone = phone
	s.logged("received", o)
	switch o.Kind {
	case Expired, TooManyAttempts:
		s.pub.Publish(phone, o, "")
	case WrongCode:
		s.pub.Tell(conn, o)
	case Verified: // the reply to the text is the confirmation, if any
		return s.verifiedFromAfar(o, v, conn), nil
	}
	return o, nil
}
