package verify

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// checkRemote asks the code engine about a code, outside any store
// transaction (it is a call over the network), and then records its
// answer. An engine that cannot answer leaves everything as it was.
func (s *Service) checkRemote(ctx context.Context, phone, code string, now time.Time) (verdict, error) {
	if s.engine == nil { // made by an engine this server no longer runs with
		s.logged("verify", Outcome{Kind: CheckFailed, Phone: phone}, slog.Any("err", errNoEngine))
		return verdict{Outcome: Outcome{Kind: CheckFailed}}, ErrNoChange
	}
	right, checkErr := s.engine.Check(ctx, phone, code)
	if checkErr != nil && !errors.Is(checkErr, ErrNoCode) && !errors.Is(checkErr, ErrChecksExhausted) {
		s.logged("verify", Outcome{Kind: CheckFailed, Phone: phone}, slog.Any("err", checkErr))
		return verdict{Outcome: Outcome{Kind: CheckFailed}}, ErrNoChange
	}
	var v verdict
	err := s.store.Update(ctx, phone, func(r *Record) (err error) {
		v, err = s.engineSaid(r, right, checkErr, now)
		return err
	})
	return v, err
}

var errNoEngine = errors.New("the code was made by a code engine, and none is configured")

// engineSaid changes the record to match the engine's answer. The engine's
// approval stands even if the code died here meanwhile: the person did
// type the code sent to them.
func (s *Service) engineSaid(r *Record, right bool, checkErr error, now time.Time) (verdict, error) {
	switch {
	case right:
		via := ""
		if r.Pending != nil {
			via = r.Pending.Channel
		}
		return s.right(r, via, now), nil
	case errors.Is(checkErr, ErrNoCode): // it expired or was used up there
		if r.Pending == nil {
			return verdict{Outcome: Outcome{Kind: NotRequested}}, ErrNoChange
		}
		r.Pending = nil
		return verdict{Outcome: Outcome{Kind: Expired}}, nil
	case errors.Is(checkErr, ErrChecksExhausted):
		r.Wrong.add(s.cfg.Limits.WrongPerNumber, now)
		r.Pending = nil
		return verdict{Outcome: Outcome{Kind: TooManyAttempts}}, nil
	}
	if v, over, err := s.settled(r, now); over {
		return v, err
	}
	return s.wrong(r, now), nil
}
