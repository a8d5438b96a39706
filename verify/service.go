// Package verify holds the rules of phone verification: numbers, codes,
// expiry, attempts, resends and rate limits, and what each outcome is called.
// It knows nothing of WebSockets, databases or SMS providers: those sit
// behind the Store, Sender and Publisher interfaces declared here.
package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"
)

// Config holds the rules' settings.
type Config struct {
	CodeLength    int
	CodeTTL       time.Duration
	MaxAttempts   int
	ResendAfter   time.Duration
	Limits        Limits
	DefaultRegion string // region for numbers written without +, e.g. "US"
	WebOTPHost    string // host named in the SMS's last line, "" for none
	// SMSTemplates maps a language ("en", "es") to the text's body, with
	// {code} where the code goes. "en" is the fallback.
	SMSTemplates map[string]string
	// TestNumbers maps E.164 numbers to fixed codes: they get no text and
	// accept only that code, for host sites' own CI and app-store reviews.
	TestNumbers map[string]string
	// Countries lists the ISO 3166 regions (US, GB) whose numbers may
	// receive codes; empty allows every country.
	Countries []string
}

// DefaultSMSTemplate is the English text.
const DefaultSMSTemplate = "Your verification code is: {code}"

// DefaultConfig is what a server runs with when nothing is set.
func DefaultConfig() Config {
	return Config{
		CodeLength:    6,
		CodeTTL:       10 * time.Minute,
		MaxAttempts:   5,
		ResendAfter:   30 * time.Second,
		Limits:        DefaultLimits(),
		DefaultRegion: "US",
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.CodeLength < 4 || c.CodeLength > 10:
		return fmt.Errorf("code length %d: must be 4 to 10", c.CodeLength)
	case c.CodeTTL <= 0:
		return fmt.Errorf("code TTL %v: must be positive", c.CodeTTL)
	case c.MaxAttempts < 1:
		return fmt.Errorf("max attempts %d: must be at least 1", c.MaxAttempts)
	case c.ResendAfter < 0:
		return fmt.Errorf("resend-after %v: must not be negative", c.ResendAfter)
	}
	for phone, code := range c.TestNumbers {
		if !strings.HasPrefix(phone, "+") || len(phone) < 8 || strings.Trim(phone[1:], "0123456789") != "" {
			return fmt.Errorf("test number %q: want E.164 (+15555550100)", phone)
		}
		if len(code) != c.CodeLength || strings.Trim(code, "0123456789") != "" {
			return fmt.Errorf("test number %s: code %q must be %d digits", phone, code, c.CodeLength)
		}
	}
	for _, cc := range c.Countries {
		if len(cc) != 2 || strings.Trim(cc, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			return fmt.Errorf("country %q: want an ISO 3166 code in capitals, e.g. US", cc)
		}
	}
	for lang, tmpl := range c.SMSTemplates {
		if !strings.Contains(tmpl, "{code}") {
			return fmt.Errorf("SMS template %q lacks {code}", lang)
		}
	}
	return nil
}

// Requester says who asks: the connection and the client's address, which
// rate limits count by, the person's language, and the host whose page
// asks (named in the WebOTP line; "" for the server's own).
type Requester struct {
	ConnID     string
	ClientAddr string
	Lang       string
	Host       string
}

// Service applies the rules. It is safe for concurrent use.
type Service struct {
	cfg       Config
	store     Store
	sender    Sender
	pub       Publisher
	tokens    TokenIssuer
	observe   Observer
	limits    *limiter
	numbers   *numberCache
	countries map[string]bool // nil: every country
	now       func() time.Time
	log       *slog.Logger
}

// Observer hears what the rules decide, for metrics.
type Observer interface {
	// Verified reports a number verified, d after its code was sent.
	Verified(d time.Duration)
	// RateLimited reports a send refused by the named limit.
	RateLimited(limit string)
}

type noObserver struct{}

func (noObserver) Verified(time.Duration) {}
func (noObserver) RateLimited(string)     {}

// Deps are the Service's collaborators. Tokens, Observe, Now and Log may
// be nil.
type Deps struct {
	Store   Store
	Sender  Sender
	Pub     Publisher
	Tokens  TokenIssuer
	Observe Observer
	Now     func() time.Time
	Log     *slog.Logger
}

// NewService checks cfg and returns a Service.
func NewService(cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Store == nil || d.Sender == nil || d.Pub == nil {
		return nil, errors.New("verify: store, sender and publisher are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Tokens == nil {
		d.Tokens = randomTokens{}
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Observe == nil {
		d.Observe = noObserver{}
	}
	var countries map[string]bool
	if len(cfg.Countries) > 0 {
		countries = map[string]bool{}
		for _, cc := range cfg.Countries {
			countries[cc] = true
		}
	}
	return &Service{cfg: cfg, store: d.Store, sender: d.Sender, pub: d.Pub,
		tokens: d.Tokens, observe: d.Observe, limits: newLimiter(cfg.Limits), numbers: newNumberCache(1 << 14),
		countries: countries, now: d.Now, log: d.Log}, nil
}

// seconds rounds up, so a browser never shows 0 while something still waits.
func seconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

// Normalize returns the E.164 form of a number, or ErrInvalidPhone. The
// configured test numbers are accepted as they are, although they may lie
// outside every numbering plan (+1 555 ...).
func (s *Service) Normalize(raw string) (string, error) {
	n, err := s.parse(raw)
	return n.e164, err
}

// parse normalises a number and finds its country; a test number has none.
func (s *Service) parse(raw string) (parsedPhone, error) {
	if len(s.cfg.TestNumbers) > 0 {
		compact := strings.Map(func(r rune) rune {
			if r == '+' || r >= '0' && r <= '9' {
				return r
			}
			if strings.ContainsRune(" -().", r) {
				return -1
			}
			return 'x'
		}, raw)
		if _, ok := s.cfg.TestNumbers[compact]; ok {
			return parsedPhone{e164: compact}, nil
		}
	}
	return s.numbers.parse(raw, s.cfg.DefaultRegion)
}

func (s *Service) invalidPhone() Event {
	return Update(ReasonInvalidPhone, "That doesn't look like a valid phone number. Include the country code, e.g. +1 415 555 2671.")
}

func (s *Service) internalError(op, phone string, err error) Event {
	event, _, _ := strings.Cut(op, ":")
	s.log.Error(op, "event", event, "reason", ReasonSendFailed, "err", err, "phone", MaskPhone(phone))
	return Update(ReasonSendFailed, "Something went wrong on our side. Please try again.")
}

func (s *Service) pendingState(phone, reason, message string, p *Pending, now time.Time) Event {
	return Update(reason, message,
		"phone_number", phone,
		"expires_in", seconds(p.ExpiresAt.Sub(now)),
		"resend_in", seconds(p.SentAt.Add(s.cfg.ResendAfter).Sub(now)),
		"code_length", p.Digits)
}

func alreadyVerified(phone string, at time.Time) Event {
	return Update(ReasonAlreadyVerified, "You have already verified "+phone+"!",
		"phone_number", phone, "verified_at", at.UTC().Format(time.RFC3339))
}

// registerRefusal is how a store transaction says why no code is sent.
type registerRefusal struct{ event Event }

func (r *registerRefusal) Error() string {
	return "register refused: " + r.event.Data["reason"].(string)
}

// Register starts verifying a number: it stores a new code and texts it. It
// returns the normalised number ("" if invalid), which the caller subscribes
// the connection to, and the answer for the requester.
func (s *Service) Register(ctx context.Context, who Requester, rawPhone string, reverify bool) (string, Event) {
	parsed, err := s.parse(rawPhone)
	if err != nil {
		s.log.Info("register", "event", "register", "reason", ReasonInvalidPhone)
		return "", s.invalidPhone()
	}
	phone := parsed.e164
	testCode, isTest := s.cfg.TestNumbers[phone]
	if !isTest && s.countries != nil && !s.countries[parsed.country] {
		s.log.Info("register", "event", "register", "reason", ReasonCountryNotAllowed, "country", parsed.country, "phone", MaskPhone(phone))
		return phone, Update(ReasonCountryNotAllowed, "We can't send codes to numbers in this country ("+parsed.country+").",
			"phone_number", phone, "country", parsed.country)
	}
	now := s.now()
	refusal := func(r *Record) *registerRefusal {
		if r.Verified() && !reverify {
			return &registerRefusal{alreadyVerified(phone, r.VerifiedAt)}
		}
		if p := r.Pending; p != nil && now.Before(p.ExpiresAt) && now.Before(p.SentAt.Add(s.cfg.ResendAfter)) {
			return &registerRefusal{s.pendingState(phone, ReasonAlreadyRequested,
				"A code was already sent to "+phone+". Enter it below, or wait to request a new one.", p, now)}
		}
		return nil
	}

	// A read first, so that refusals cost neither a rate-limit slot nor a write.
	current, err := s.store.Get(ctx, phone)
	if err != nil {
		return phone, s.internalError("register: read", phone, err)
	}
	if r := refusal(&current); r != nil {
		return phone, r.event
	}
	if isTest {
		return phone, s.registerTestNumber(ctx, phone, testCode, reverify, refusal, now)
	}
	if wait, limit, ok := s.limits.take(phone, who, now); !ok {
		s.observe.RateLimited(limit)
		s.log.Warn("register", "event", "register", "reason", ReasonRateLimited, "limit", limit, "phone", MaskPhone(phone), "client", who.ClientAddr)
		return phone, Update(ReasonRateLimited, "Too many codes requested. Please try again later.",
			"retry_after", seconds(wait))
	}

	secret, err := newSecret()
	if err != nil {
		s.limits.give(phone, who)
		return phone, s.internalError("register: secret", phone, err)
	}
	pending := &Pending{Secret: secret, Digits: s.cfg.CodeLength, SentAt: now, ExpiresAt: now.Add(s.cfg.CodeTTL)}
	var previous *Pending
	err = s.store.Update(ctx, phone, func(r *Record) error {
		if refused := refusal(r); refused != nil {
			return refused
		}
		previous = r.Pending
		r.Pending = pending
		return nil
	})
	if err != nil {
		s.limits.give(phone, who)
		if refused, ok := errors.AsType[*registerRefusal](err); ok {
			return phone, refused.event
		}
		return phone, s.internalError("register: store", phone, err)
	}

	code, err := pending.code()
	if err == nil {
		err = s.sender.Send(ctx, Message{To: phone, Body: s.smsBody(code, who)})
	}
	if err != nil {
		return phone, s.sendFailed(ctx, who, phone, pending, previous, err)
	}
	s.log.Info("register", "event", "register", "reason", EventCodeGenerated, "phone", MaskPhone(phone))
	return phone, s.codeGenerated(phone)
}

func (s *Service) codeGenerated(phone string) Event {
	return Event{Name: EventCodeGenerated, Data: map[string]any{
		"phone_number": phone,
		"expires_in":   seconds(s.cfg.CodeTTL),
		"resend_in":    seconds(s.cfg.ResendAfter),
		"code_length":  s.cfg.CodeLength,
	}}
}

// registerTestNumber stores a pending code whose value is fixed and sends
// nothing; limits do not apply, since nothing costs money.
func (s *Service) registerTestNumber(ctx context.Context, phone, code string, reverify bool,
	refusal func(*Record) *registerRefusal, now time.Time) Event {
	err := s.store.Update(ctx, phone, func(r *Record) error {
		if refused := refusal(r); refused != nil {
			return refused
		}
		r.Pending = &Pending{TestCode: code, Digits: len(code), SentAt: now, ExpiresAt: now.Add(s.cfg.CodeTTL)}
		return nil
	})
	if refused, ok := errors.AsType[*registerRefusal](err); ok {
		return refused.event
	}
	if err != nil {
		return s.internalError("register: store", phone, err)
	}
	s.log.Info("register", "event", "register", "reason", EventCodeGenerated, "phone", MaskPhone(phone), "test", true)
	return s.codeGenerated(phone)
}

// sendFailed undoes the stored code that never reached the phone: a rejected
// number leaves nothing behind, so the person can correct it at once; any
// other failure puts back the code sent before, if there was one.
func (s *Service) sendFailed(ctx context.Context, who Requester, phone string, sent, previous *Pending, sendErr error) Event {
	rejected := errors.Is(sendErr, ErrRejectedNumber)
	if rejected {
		previous = nil
	} else {
		s.limits.give(phone, who)
	}
	err := s.store.Update(ctx, phone, func(r *Record) error {
		if r.Pending == nil || r.Pending.Secret != sent.Secret {
			return ErrNoChange // replaced meanwhile: not ours to undo
		}
		r.Pending = previous
		return nil
	})
	if err != nil && !errors.Is(err, ErrNoChange) {
		s.log.Error("register: undo", "event", "register", "reason", "undo_failed", "err", err, "phone", MaskPhone(phone))
	}
	if rejected {
		s.log.Info("register", "event", "register", "reason", ReasonInvalidPhone, "phone", MaskPhone(phone), "err", sendErr)
		return Update(ReasonInvalidPhone, "We can't send a text to "+phone+". Check the number and try again.",
			"phone_number", phone)
	}
	s.log.Warn("register", "event", "register", "reason", ReasonSendFailed, "phone", MaskPhone(phone), "err", sendErr)
	return Update(ReasonSendFailed, "We couldn't send the text just now. Please try again in a moment.",
		"phone_number", phone)
}

// smsBody writes the text in the person's language. Its WebOTP last line
// names the host whose page asked, so the phone offers the code there.
func (s *Service) smsBody(code string, who Requester) string {
	tmpl, ok := s.cfg.SMSTemplates[who.Lang]
	if !ok {
		if tmpl, ok = s.cfg.SMSTemplates["en"]; !ok {
			tmpl = DefaultSMSTemplate
		}
	}
	body := strings.ReplaceAll(tmpl, "{code}", code)
	host := who.Host
	if host == "" {
		host = s.cfg.WebOTPHost
	}
	if host != "" {
		body += "\n\n@" + host + " #" + code
	}
	return body
}

type verifyOutcome int

const (
	outcomeNotRequested verifyOutcome = iota
	outcomeExpired
	outcomeWrong
	outcomeTooMany
	outcomeVerified
)

func (o verifyOutcome) String() string {
	return [...]string{ReasonNotRequested, ReasonExpired, ReasonWrongCode, ReasonTooManyAttempts, EventVerified}[o]
}

// Verify checks a code. A right code verifies the number and tells every
// connection on it; the requester alone gets the token.
func (s *Service) Verify(ctx context.Context, who Requester, rawPhone, code string) Event {
	phone, err := s.Normalize(rawPhone)
	if err != nil {
		return s.invalidPhone()
	}
	now := s.now()
	var outcome verifyOutcome
	var attemptsLeft int
	var sentAt time.Time
	err = s.store.Update(ctx, phone, func(r *Record) error {
		p := r.Pending
		switch {
		case p == nil:
			outcome = outcomeNotRequested
			return ErrNoChange
		case !now.Before(p.ExpiresAt):
			outcome = outcomeExpired
			r.Pending = nil
		case p.matches(code):
			outcome = outcomeVerified
			sentAt = p.SentAt
			r.Pending = nil
			r.VerifiedAt = now
		default:
			attempts := p.Attempts + 1
			if attempts >= s.cfg.MaxAttempts {
				outcome = outcomeTooMany
				r.Pending = nil
				return nil
			}
			outcome = outcomeWrong
			attemptsLeft = s.cfg.MaxAttempts - attempts
			copied := *p
			copied.Attempts = attempts
			r.Pending = &copied
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNoChange) {
		return s.internalError("verify: store", phone, err)
	}
	s.log.Info("verify", "event", "verify", "reason", outcome.String(), "phone", MaskPhone(phone))
	switch outcome {
	case outcomeNotRequested:
		return Update(ReasonNotRequested, "You have not requested a verification code for "+phone+" yet!",
			"phone_number", phone)
	case outcomeExpired:
		return s.resetAll(phone, ReasonExpired, "That code has expired. Request a new one.", who.ConnID)
	case outcomeTooMany:
		return s.resetAll(phone, ReasonTooManyAttempts, "Too many wrong codes. Request a new one.", who.ConnID)
	case outcomeWrong:
		return Update(ReasonWrongCode, "That code is not right. Please try again.",
			"phone_number", phone, "attempts_left", attemptsLeft)
	}
	s.observe.Verified(now.Sub(sentAt))
	verifiedAt := now.UTC().Format(time.RFC3339)
	s.pub.Publish(phone, Event{Name: EventVerified, Data: map[string]any{
		"phone_number": phone, "verified_at": verifiedAt}}, who.ConnID)
	token, err := s.tokens.Issue(phone, now)
	if err != nil {
		s.log.Error("verify: token", "event", "verify", "reason", "token_failed", "err", err, "phone", MaskPhone(phone))
	}
	return Event{Name: EventVerified, Data: map[string]any{
		"phone_number": phone, "verified_at": verifiedAt, "token": token}}
}

func (s *Service) resetAll(phone, reason, message, requester string) Event {
	ev := reset(phone, reason, message)
	s.pub.Publish(phone, ev, requester)
	return ev
}

// Resume tells a reconnecting page where the number stands, sending nothing.
func (s *Service) Resume(ctx context.Context, rawPhone string) (string, Event) {
	phone, err := s.Normalize(rawPhone)
	if err != nil {
		return "", s.invalidPhone()
	}
	rec, err := s.store.Get(ctx, phone)
	if err != nil {
		return phone, s.internalError("resume: read", phone, err)
	}
	now := s.now()
	if p := rec.Pending; p != nil && now.Before(p.ExpiresAt) {
		return phone, s.pendingState(phone, ReasonCodePending, "Enter the code we sent to "+phone+".", p, now)
	}
	if rec.Verified() {
		return phone, alreadyVerified(phone, rec.VerifiedAt)
	}
	return phone, reset(phone, ReasonNotRequested, "Request a new code to continue.")
}

// SweepExpired removes expired codes and tells the connections waiting on
// them. It returns how many it removed.
func (s *Service) SweepExpired(ctx context.Context) (int, error) {
	const batch = 256
	now := s.now()
	phones, err := s.store.Expired(ctx, now, batch)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, phone := range phones {
		err := s.store.Update(ctx, phone, func(r *Record) error {
			if r.Pending == nil || now.Before(r.Pending.ExpiresAt) {
				return ErrNoChange
			}
			r.Pending = nil
			return nil
		})
		if errors.Is(err, ErrNoChange) {
			continue
		}
		if err != nil {
			return removed, err
		}
		removed++
		s.resetAll(phone, ReasonExpired, "That code has expired. Request a new one.", "")
	}
	return removed, nil
}

// RunSweeper sweeps every interval until ctx ends.
func (s *Service) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.SweepExpired(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("sweep", "event", "sweep", "reason", "store_error", "err", err)
			}
		}
	}
}

// MaskPhone hides the middle digits of a number for logs.
func MaskPhone(phone string) string {
	if len(phone) < 8 {
		return "***"
	}
	return phone[:4] + "****" + phone[len(phone)-3:]
}

type randomTokens struct{}

func (randomTokens) Issue(string, time.Time) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// IsTestNumber reports whether phone is one of the configured test numbers.
func (s *Service) IsTestNumber(phone string) bool {
	_, ok := s.cfg.TestNumbers[phone]
	return ok
}
