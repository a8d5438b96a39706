package verify

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"
)

// LinkVia names verification by a tapped link, for sessions and metrics.
const LinkVia = "link"

// newLink makes the tap-to-verify link a text carries with its code, where
// links are on; a code the engine makes, or one that is not texted, gets
// none.
func (s *Service) newLink(a ask, p *Pending) (string, error) {
	if s.links == nil || p.Remote || a.channel != DefaultChannel {
		return "", nil
	}
	id, nonce, err := s.links.New(a.phone)
	if err != nil {
		return "", fmt.Errorf("link: %w", err)
	}
	p.Link = nonce
	return id, nil
}

// LinkInfo says what a link's page shows, changing nothing: link-preview
// bots fetch the page, and fetching must not verify.
func (s *Service) LinkInfo(ctx context.Context, who Requester, id string) (Outcome, error) {
	phone, nonce, refusal, ok := s.openLink(who, id)
	if !ok {
		return refusal, nil
	}
	rec, err := s.store.Get(ctx, phone)
	if err != nil {
		return Outcome{Phone: phone}, fmt.Errorf("link: read: %w", err)
	}
	p := rec.Pending
	if !s.linkLive(&rec, nonce, s.now()) {
		return Outcome{Kind: LinkUsed, Phone: phone}, nil
	}
	return Outcome{Kind: LinkLive, Phone: phone, Site: p.Site}, nil
}

// Tap verifies the number of a link that is live. Each tap counts against
// the number's wrong-code budget, as a code would. The page that asked
// gets verified with its token, live; the phone that tapped gets no token.
func (s *Service) Tap(ctx context.Context, who Requester, id string) (Outcome, error) {
	phone, nonce, refusal, ok := s.openLink(who, id)
	if !ok {
		return refusal, nil
	}
	now := s.now()
	var v verdict
	var conn string
	expired := false
	err := s.store.Update(ctx, phone, func(r *Record) error {
		v, conn, expired = verdict{}, "", false // a store may run this more than once
		if lock, over, err := s.settled(r, now); over {
			v, expired = lock, lock.Kind == Expired
			if lock.Kind != Locked {
				v.Kind = LinkUsed
			}
			return err
		}
		budget := s.cfg.Limits.WrongPerNumber
		r.Wrong.add(budget, now)
		if !s.linkLive(r, nonce, now) {
			v.Kind = LinkUsed
			return nil
		}
		conn = r.Pending.Conn
		site := r.Pending.Site
		v = s.right(r, LinkVia, now)
		v.Site = site
		return nil
	})
	if err != nil && !errors.Is(err, ErrNoChange) {
		return Outcome{Phone: phone}, fmt.Errorf("tap: store: %w", err)
	}
	o := v.Outcome
	o.Phone = phone
	s.logged("tap", o)
	if expired { // every tab waiting on the code starts over
		s.pub.Publish(phone, Outcome{Kind: Expired, Phone: phone}, "")
	}
	if o.Kind != Verified {
		return o, nil
	}
	o = s.verifiedFromAfar(o, v, conn)
	s.confirmLater(phone, Requester{ConnID: conn})
	return o, nil
}

// openLink opens a link id; one this server did not make costs the client
// a lookup, so ids cannot be tried in bulk.
func (s *Service) openLink(who Requester, id string) (phone, nonce string, refusal Outcome, ok bool) {
	now := s.now()
	if wait, _ := s.lookups.Wait(who.subject(""), now); wait > 0 {
		return "", "", Outcome{Kind: Locked, RetryAfter: wait}, false
	}
	if s.links == nil {
		return "", "", Outcome{Kind: LinkInvalid}, false
	}
	phone, nonce, err := s.links.Open(id)
	if err != nil {
		s.lookups.Take(who.subject(""), now)
		return "", "", Outcome{Kind: LinkInvalid}, false
	}
	return phone, nonce, Outcome{}, true
}

// linkLive reports whether the record's pending code is the link's and
// still works.
func (s *Service) linkLive(r *Record, nonce string, now time.Time) bool {
	p := r.Pending
	return p != nil && p.Link != "" && now.Before(p.ExpiresAt) &&
		r.Wrong.wait(s.cfg.Limits.WrongPerNumber, now) == 0 &&
		subtle.ConstantTimeCompare([]byte(p.Link), []byte(nonce)) == 1
}
