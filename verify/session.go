package verify

import (
	"sync"
	"time"
)

// sessions remember, for a few minutes, which number each connection
// verified last and by which channel: adding or removing an authenticator
// app needs a fresh verification on the same connection. They live in
// memory, since a connection does not outlive the process.
type sessions struct {
	mu     sync.Mutex
	byConn map[string]session
}

type session struct {
	phone, via string
	at         time.Time
}

// sessionTTL is how long after verifying a connection may change the
// number's authenticator app.
const sessionTTL = 10 * time.Minute

// maxSessions bounds the memory sessions take (about 100 bytes each).
const maxSessions = 100_000

func newSessions() *sessions { return &sessions{byConn: map[string]session{}} }

func (s *sessions) add(conn, phone, via string, now time.Time) {
	if conn == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byConn) >= maxSessions {
		s.forget(now)
	}
	s.byConn[conn] = session{phone: phone, via: via, at: now}
}

// forget drops the sessions that have ended, or, if none has, any one.
func (s *sessions) forget(now time.Time) {
	for conn, ss := range s.byConn {
		if now.Sub(ss.at) >= sessionTTL {
			delete(s.byConn, conn)
		}
	}
	for conn := range s.byConn {
		if len(s.byConn) < maxSessions {
			return
		}
		delete(s.byConn, conn)
	}
}

// fresh reports by which channel conn verified phone, if it did so lately.
func (s *sessions) fresh(conn, phone string, now time.Time) (via string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byConn[conn]
	if !ok || ss.phone != phone || now.Sub(ss.at) >= sessionTTL {
		return "", false
	}
	return ss.via, true
}
