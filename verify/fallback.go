package verify

import (
	"context"
	"sync"
	"time"
)

// fallbacks watch texts whose delivery is reported: one that is not
// reported delivered within their wait makes the rules tell the asking page
// (DeliveryLate), which offers another channel at once. They live in
// memory: an offer is not state anyone was promised.
type fallbacks struct {
	after  time.Duration // 0: none
	mu     sync.Mutex
	timers map[string]*time.Timer // by number
}

// watch starts (or restarts) the wait for a text to phone; late runs if
// it passes without a delivery report.
func (f *fallbacks) watch(phone string, late func()) {
	if f.after <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.timers[phone]; t != nil {
		t.Stop()
	}
	f.timers[phone] = time.AfterFunc(f.after, func() {
		f.mu.Lock()
		delete(f.timers, phone)
		f.mu.Unlock()
		late()
	})
}

// settle ends the wait for phone: its text was reported delivered or
// failed (a failure reaches the page by itself).
func (f *fallbacks) settle(phone string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.timers[phone]; t != nil {
		t.Stop()
		delete(f.timers, phone)
	}
}

// stop ends every wait, at shutdown.
func (f *fallbacks) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for phone, t := range f.timers {
		t.Stop()
		delete(f.timers, phone)
	}
}

// watchDelivery arms the fallback for a text just sent as p: if its code
// is still the one pending when the wait ends, the page that asked hears
// that nothing was reported.
func (s *Service) watchDelivery(phone string, p *Pending) {
	s.fallback.watch(phone, func() {
		rec, err := s.store.Get(context.Background(), phone)
		if err != nil || rec.Pending == nil || rec.Pending.Secret != p.Secret {
			return // verified, replaced, expired or unreadable: nobody waits on this text
		}
		s.logged("fallback", Outcome{Kind: DeliveryLate, Phone: phone})
		s.pub.Tell(p.Conn, Outcome{Kind: DeliveryLate, Phone: phone, Channel: p.Channel})
	})
}
