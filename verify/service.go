// Package verify holds the rules of phone verification: numbers, codes,
// expiry, attempts, resends and rate limits. Each request ends in an
// Outcome; how an outcome is worded, encoded and carried is the caller's
// business. It knows nothing of WebSockets, JSON, databases or SMS
// providers: those sit behind the Store, Channel and Publisher interfaces.
package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
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
	// TestNumbers maps E.164 numbers to fixed codes: they get no text and
	// accept only that code, for host sites' own CI and app-store reviews.
	TestNumbers map[string]string
	// Countries lists the ISO 3166 regions (US, GB) whose numbers may
	// receive codes; empty allows every country.
	Countries []string
	// Issuer names the service in authenticator apps (the public host).
	Issuer string
	// FallbackAfter is how long a text may go without a delivery report
	// before the asking page is offered another channel; 0 for never
	// (delivery reports need Twilio's status callbacks).
	FallbackAfter time.Duration
}

// DefaultConfig is what a server runs with when nothing is set.
func DefaultConfig() Config {
	return Config{
		CodeLength:    6,
		CodeTTL:       10 * time.Minute,
		MaxAttempts:   5,
		ResendAfter:   30 * time.Second,
		Limits:        DefaultLimits(),
		DefaultRegion: "US",
		Issuer:        "verifier",
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
	case c.Issuer == "" || strings.Contains(c.Issuer, ":"):
		return fmt.Errorf("issuer %q: must be set, without a colon (authenticator apps split on it)", c.Issuer)
	}
	for phone, code := range c.TestNumbers {
		if !IsE164(phone) {
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
	return nil
}

// IsTestNumber reports whether phone (E.164) is a configured test number.
func (c Config) IsTestNumber(phone string) bool {
	_, ok := c.TestNumbers[phone]
	return ok
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

func (who Requester) subject(phone string) Subject {
	return Subject{Phone: phone, Conn: who.ConnID, Client: who.ClientAddr}
}

// Service applies the rules. It is safe for concurrent use.
type Service struct {
	cfg       Config
	store     Store
	channels  Channels
	pub       Publisher
	tokens    TokenIssuer
	observe   Observer
	limits    RateLimiter // the send limits not kept in the number's record
	lookups   RateLimiter // answers read from state, per client
	numbers   *numberCache
	countries map[string]bool // nil: every country
	confirm   Confirmer       // nil: no confirmation text
	engine    Engine          // nil: the server makes and checks the codes
	links     Links           // nil: texts carry no tap-to-verify link
	secrets   Secrets         // nil: no authenticator apps
	sessions  *sessions       // who verified what lately, per connection
	expecting RateLimiter     // codes the person texts us: no cost, but bounded per client
	fallback  fallbacks
	after     sync.WaitGroup // confirmation texts under way
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
	Store    Store
	Channels Channels // at least DefaultChannel
	Pub      Publisher
	Tokens   TokenIssuer
	Observe  Observer
	Confirm  Confirmer // texts a verified number a confirmation; nil for none
	// Engine checks the codes when a code engine outside the server makes
	// and sends them (Twilio Verify); Channels then deliver no code of
	// ours. nil: the server makes and checks them.
	Engine Engine
	// Links, when set, add a tap-to-verify link to every text.
	Links Links
	// Secrets, when set, seal authenticator apps' keys, and apps are
	// offered.
	Secrets Secrets
	// Limiters builds each of the Service's limiters over its limits,
	// whose names are unique within one call; limiters built over
	// different lists must not share counts. nil: NewLimiter, in memory.
	Limiters func(limits ...Limit) RateLimiter
	Now      func() time.Time
	Log      *slog.Logger
}

// NewService checks cfg and returns a Service.
func NewService(cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Store == nil || d.Pub == nil || d.Channels[DefaultChannel] == nil {
		return nil, fmt.Errorf("verify: a store, a publisher and the %q channel are required", DefaultChannel)
	}
	for name, ch := range d.Channels {
		if ch == nil {
			return nil, fmt.Errorf("verify: channel %q is nil", name)
		}
	}
	limiters := d.Limiters
	if limiters == nil {
		limiters = memoryLimiters
	}
	s := &Service{cfg: cfg, store: d.Store, channels: d.Channels, pub: d.Pub,
		tokens: d.Tokens, observe: d.Observe, confirm: d.Confirm, engine: d.Engine, links: d.Links, secrets: d.Secrets,
		now: d.Now, log: d.Log, sessions: newSessions(),
		expecting: limiters(cfg.Limits.PerKey()...),
		limits:    limiters(cfg.Limits.Table()...),
		lookups:   limiters(Limit{Name: "lookup", Rate: cfg.Limits.LookupsPerClient, Key: ByClient}),
		numbers:   newNumberCache(numberCacheBytes)}
	if s.now == nil {
		s.now = time.Now
	}
	if s.tokens == nil {
		s.tokens = randomTokens{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.observe == nil {
		s.observe = noObserver{}
	}
	s.fallback = fallbacks{after: cfg.FallbackAfter, timers: map[string]*time.Timer{}}
	if len(cfg.Countries) > 0 {
		s.countries = map[string]bool{}
		for _, cc := range cfg.Countries {
			s.countries[cc] = true
		}
	}
	return s, nil
}

// numberCacheBytes bounds the parsed-number cache: about 8,000 numbers.
const numberCacheBytes = 1 << 20

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
		if compact := compactPhone(raw); s.cfg.IsTestNumber(compact) {
			return parsedPhone{e164: compact}, nil
		}
	}
	return s.numbers.parse(raw, s.cfg.DefaultRegion)
}

// pendingOutcome describes a pending code: when it dies and when a new one
// may be sent.
func (s *Service) pendingOutcome(kind Kind, phone string, p *Pending, now time.Time) Outcome {
	return Outcome{Kind: kind, Phone: phone, CodeLength: p.Digits,
		ExpiresIn: p.ExpiresAt.Sub(now), ResendIn: p.SentAt.Add(s.cfg.ResendAfter).Sub(now)}
}

// logged writes one line naming op and the outcome, and returns it. An
// error among attrs is written with the number masked: providers quote it
// ("The 'To' number +14155552671 is not a valid phone number").
func (s *Service) logged(op string, o Outcome, attrs ...slog.Attr) Outcome {
	level := slog.LevelInfo
	if o.Kind == RateLimited || o.Kind == SendFailed {
		level = slog.LevelWarn
	}
	// On the stack, not boxed in interfaces: two log lines a flow.
	var buf [6]slog.Attr
	line := append(buf[:0], slog.String("event", op), slog.String("reason", o.Kind.String()), slog.String("phone", MaskPhone(o.Phone)))
	for _, a := range attrs {
		if err, ok := a.Value.Any().(error); ok && o.Phone != "" {
			a.Value = slog.StringValue(strings.ReplaceAll(err.Error(), o.Phone, MaskPhone(o.Phone)))
		}
		line = append(line, a)
	}
	s.log.LogAttrs(context.Background(), level, op, line...)
	return o
}

// Resume tells a reconnecting page where the number stands, sending
// nothing. Every resume is a lookup.
func (s *Service) Resume(ctx context.Context, who Requester, rawPhone string) (Outcome, error) {
	phone, err := s.Normalize(rawPhone)
	if err != nil {
		return Outcome{Kind: InvalidPhone}, nil
	}
	now := s.now()
	if locked, ok := s.takeLookup(who, phone, now); !ok {
		return s.logged("resume", locked), nil
	}
	rec, err := s.store.Get(ctx, phone)
	if err != nil {
		return Outcome{Phone: phone}, fmt.Errorf("resume: read: %w", err)
	}
	if p := rec.Pending; p != nil && now.Before(p.ExpiresAt) {
		return s.pendingOutcome(CodePending, phone, p, now), nil
	}
	if rec.Verified() {
		return Outcome{Kind: AlreadyVerified, Phone: phone}, nil
	}
	return Outcome{Kind: NothingPending, Phone: phone}, nil
}

// Delivered passes a delivery report for the number's pending code to the
// connection that asked for it, and to no one else.
func (s *Service) Delivered(ctx context.Context, report Outcome) error {
	rec, err := s.store.Get(ctx, report.Phone)
	if err != nil {
		return fmt.Errorf("delivered: read: %w", err)
	}
	if report.Kind == DeliveryDone || report.Kind == DeliveryFailed {
		s.fallback.settle(report.Phone)
	}
	if p := rec.Pending; p != nil && p.Conn != "" {
		s.pub.Tell(p.Conn, report)
	}
	return nil
}

// Wait stops the fallback waits and waits for the confirmation texts
// under way, at shutdown.
func (s *Service) Wait() {
	s.fallback.stop()
	s.after.Wait()
}

// Limited lists up to max keys a limit holds full now, for the operator:
// client addresses, connections, number ranges (shown as +1415555xxx),
// and "everyone" when a cost cap is reached.
func (s *Service) Limited(max int) []Hit {
	now := s.now()
	hits := append(s.limits.Full(now, max), s.lookups.Full(now, max)...)
	for i := range hits {
		switch h := &hits[i]; {
		case h.Key == "":
			h.Key = "everyone"
		case h.Limit == "prefix":
			h.Key += strings.Repeat("x", PrefixOmits)
		}
	}
	return hits[:min(len(hits), max)]
}

// CountryOf is the ISO 3166 region of an E.164 number, "" if it has none.
func CountryOf(phone string) string {
	n, err := parsePhone(phone, "")
	if err != nil {
		return ""
	}
	return n.country
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

// errRefused carries the refusal a store transaction refused with.
type errRefused struct{ refused }

func (e errRefused) Error() string { return "refused: " + e.Kind.String() }
