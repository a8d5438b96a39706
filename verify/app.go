package verify

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// AppChannel is the register channel whose code comes from the number's
// authenticator app: nothing is sent.
const AppChannel = "app"

// TOTP as every authenticator app reads it: 6 digits every 30 s, SHA-1.
const (
	appDigits = 6
	appPeriod = 30 * time.Second
)

// offersApp reports whether channel is the app one and apps are on.
func (s *Service) offersApp(channel string) bool { return channel == AppChannel && s.secrets != nil }

// askApp starts a check of the app's code. Whether the number has an app
// is state a stranger should not read for free: saying it has none costs
// a lookup.
func (s *Service) askApp(ctx context.Context, a ask, current *Record) (Outcome, error) {
	if current.App == nil || !current.App.Enrolled {
		if locked, ok := s.takeLookup(a.who, a.phone, a.now); !ok {
			return s.logged("register", locked), nil
		}
		return s.logged("register", Outcome{Kind: AppNotSet, Phone: a.phone}), nil
	}
	p := &Pending{Digits: appDigits, SentAt: a.now, ExpiresAt: a.now.Add(s.cfg.CodeTTL), Conn: a.who.ConnID, Channel: AppChannel}
	if _, err := s.storePending(ctx, a, p); err != nil {
		return s.storeFailed(a, err)
	}
	o := s.codeSent(a)
	o.CodeLength = appDigits
	return s.logged("register", o, slog.String("channel", AppChannel)), nil
}

// appCheck decides a code from the app, at most one step of clock skew
// either way, never a step already used.
func (s *Service) appCheck(r *Record, code string, now time.Time) (verdict, error) {
	app := r.App
	if app == nil || !app.Enrolled { // removed meanwhile
		r.Pending = nil
		return verdict{Outcome: Outcome{Kind: NotRequested}}, nil
	}
	step, ok := s.appStep(app, code, now)
	if !ok {
		return s.wrong(r, now), nil
	}
	used := *app
	used.LastStep = step
	r.App = &used
	return s.right(r, AppChannel, now), nil
}

// appStep finds the time step whose code input is: now's, or one either
// side, and later than the last one taken.
func (s *Service) appStep(app *App, input string, now time.Time) (int64, bool) {
	input = strings.TrimSpace(input)
	if len(input) != appDigits || strings.Trim(input, "0123456789") != "" {
		return 0, false
	}
	key, err := s.secrets.Open(app.Secret)
	if err != nil {
		s.log.Error("app: unreadable secret", "event", "verify", "reason", "app_secret", "err", err)
		return 0, false
	}
	opts := totp.ValidateOpts{Period: uint(appPeriod / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	for skew := -1; skew <= 1; skew++ {
		at := now.Add(time.Duration(skew) * appPeriod)
		step := at.Unix() / int64(appPeriod/time.Second)
		want, err := totp.GenerateCodeCustom(string(key), at, opts)
		if err == nil && step > app.LastStep && subtle.ConstantTimeCompare([]byte(want), []byte(input)) == 1 {
			return step, true
		}
	}
	return 0, false
}

// AddApp offers the number a new authenticator app: the key, as a URL for
// a QR code and as text, for the connection that just verified the number
// by another channel, and it alone. The app is enrolled once ConfirmApp
// sees one right code from it.
func (s *Service) AddApp(ctx context.Context, who Requester, rawPhone string) (Outcome, error) {
	phone, err := s.Normalize(rawPhone)
	if err != nil {
		return Outcome{Kind: InvalidPhone}, nil
	}
	if !s.mayChangeApp(who, phone) {
		return s.logged("app_add", Outcome{Kind: AppNotAllowed, Phone: phone}), nil
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.cfg.Issuer, AccountName: phone,
		Period: uint(appPeriod / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return Outcome{Phone: phone}, fmt.Errorf("app: %w", err)
	}
	sealed, err := s.secrets.Seal([]byte(key.Secret()))
	if err != nil {
		return Outcome{Phone: phone}, fmt.Errorf("app: %w", err)
	}
	var kind Kind
	err = s.store.Update(ctx, phone, func(r *Record) error {
		kind = AppSetup // a store may run this more than once
		if r.App != nil && r.App.Enrolled {
			kind = AppAlreadySet
			return ErrNoChange
		}
		r.App = &App{Secret: sealed}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNoChange) {
		return Outcome{Phone: phone}, fmt.Errorf("app: store: %w", err)
	}
	if kind != AppSetup {
		return s.logged("app_add", Outcome{Kind: kind, Phone: phone}), nil
	}
	s.logged("app_add", Outcome{Kind: AppSetup, Phone: phone})
	return Outcome{Kind: AppSetup, Phone: phone, AppURL: key.URL(), AppSecret: key.Secret()}, nil
}

// ConfirmApp enrols the app being added when code is its code now. Wrong
// codes count against the number's budget.
func (s *Service) ConfirmApp(ctx context.Context, who Requester, rawPhone, code string) (Outcome, error) {
	phone, err := s.Normalize(rawPhone)
	if err != nil {
		return Outcome{Kind: InvalidPhone}, nil
	}
	if !s.mayChangeApp(who, phone) {
		return s.logged("app_confirm", Outcome{Kind: AppNotAllowed, Phone: phone}), nil
	}
	now := s.now()
	var kind Kind
	var wait time.Duration
	err = s.store.Update(ctx, phone, func(r *Record) error {
		budget := s.cfg.Limits.WrongPerNumber
		if wait = r.Wrong.wait(budget, now); wait > 0 {
			kind = Locked
			return ErrNoChange
		}
		if r.App == nil || r.App.Enrolled {
			kind = AppNotSet
			return ErrNoChange
		}
		step, ok := s.appStep(r.App, code, now)
		if !ok {
			kind = AppWrongCode
			r.Wrong.add(budget, now)
			return nil
		}
		kind = AppAdded
		r.App = &App{Secret: r.App.Secret, Enrolled: true, LastStep: step}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNoChange) {
		return Outcome{Phone: phone}, fmt.Errorf("app: store: %w", err)
	}
	return s.logged("app_confirm", Outcome{Kind: kind, Phone: phone, RetryAfter: wait}), nil
}

// RemoveApp removes the number's app, for a connection that just verified
// the number by another channel: a stolen app alone cannot remove itself.
func (s *Service) RemoveApp(ctx context.Context, who Requester, rawPhone string) (Outcome, error) {
	phone, err := s.Normalize(rawPhone)
	if err != nil {
		return Outcome{Kind: InvalidPhone}, nil
	}
	if !s.mayChangeApp(who, phone) {
		return s.logged("app_remove", Outcome{Kind: AppNotAllowed, Phone: phone}), nil
	}
	var kind Kind
	err = s.store.Update(ctx, phone, func(r *Record) error {
		kind = AppRemoved // a store may run this more than once
		if r.App == nil {
			kind = AppNotSet
			return ErrNoChange
		}
		r.App = nil
		if r.Pending != nil && r.Pending.Channel == AppChannel {
			r.Pending = nil
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNoChange) {
		return Outcome{Phone: phone}, fmt.Errorf("app: store: %w", err)
	}
	return s.logged("app_remove", Outcome{Kind: kind, Phone: phone}), nil
}

// mayChangeApp reports whether who verified phone lately, by a channel
// other than the app.
func (s *Service) mayChangeApp(who Requester, phone string) bool {
	if s.secrets == nil {
		return false
	}
	via, ok := s.sessions.fresh(who.ConnID, phone, s.now())
	return ok && via != AppChannel
}
