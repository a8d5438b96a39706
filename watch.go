package main

import (
	"context"
	"time"

	"verifier/metrics"
	"verifier/sms"
	"verifier/stats"
	"verifier/verify"
)

// watchers are what counts the server's work: Prometheus metrics and the
// admin page's board.
type watchers struct {
	meter *metrics.Metrics
	board *stats.Board
}

var _ verify.Observer = watchers{}

func (w watchers) Verified(d time.Duration) {
	w.meter.Verified(d)
	w.board.Verified()
}

func (w watchers) RateLimited(limit string) { w.meter.RateLimited(limit) }

// sent puts a code's sending to phone on the board, by its outcome.
func (w watchers) sent(phone string, err error) {
	if err == nil {
		w.board.Sent()
		return
	}
	w.board.Failed(verify.CountryOf(phone), sms.ErrorCode(err))
}

// reportsOnBoard puts failed deliveries on the board before the rules
// hear of them.
type reportsOnBoard struct {
	rules interface {
		Delivered(ctx context.Context, report verify.Outcome) error
	}
	board *stats.Board
}

func (r reportsOnBoard) Delivered(ctx context.Context, report verify.Outcome) error {
	if report.Kind == verify.DeliveryFailed {
		r.board.Failed(verify.CountryOf(report.Phone), report.ErrorCode)
	}
	return r.rules.Delivered(ctx, report)
}
