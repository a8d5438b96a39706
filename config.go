package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"verifier/clientip"
	"verifier/hub"
	"verifier/sms"
	"verifier/verify"
)

// config is everything run needs, read once: defaults, then VERIFIER_*
// variables, then flags. Each section registers its own flags and checks
// itself.
type config struct {
	listen listenConfig
	rules  rulesConfig
	embed  embedConfig
	twilio twilioConfig
	admin  adminConfig
}

type section interface {
	flags(fs *flag.FlagSet)
	check(getenv func(string) string) error
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{rules: rulesConfig{Config: verify.DefaultConfig()}}
	sections := []section{&cfg.listen, &cfg.rules, &cfg.embed, &cfg.twilio, &cfg.admin}
	fs := flag.NewFlagSet("verifier", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, s := range sections {
		s.flags(fs)
	}
	if err := setFromEnv(fs, getenv); err != nil {
		return cfg, err
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	for _, s := range sections {
		if err := s.check(getenv); err != nil {
			return cfg, err
		}
	}
	if cfg.embed.inbound && !cfg.receivesTexts() {
		return cfg, errors.New("-inbound needs Twilio (TWILIO_ACCOUNT_SID) and TWILIO_FROM_NUMBER, the number people text")
	}
	cfg.rules.Issuer = cfg.embed.issuer
	cfg.twilio.link(cfg.embed, cfg.rules.CodeTTL)
	if cfg.twilio.sms == nil || cfg.twilio.sms.StatusCallback == "" || cfg.twilio.usesVerify() {
		cfg.rules.FallbackAfter = 0 // no delivery reports to wait for
	}
	return cfg, nil
}

// setFromEnv sets each flag from VERIFIER_<NAME>; flags given on the
// command line win, since they are parsed afterwards.
func setFromEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var errs error
	fs.VisitAll(func(f *flag.Flag) {
		name := "VERIFIER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = errors.Join(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	})
	return errs
}

// listenConfig is where the server listens and keeps its state, and what
// clients may hold open.
type listenConfig struct {
	addr        string
	dbPath      string
	store       string // redis://... for several servers; "" for the bbolt file
	storePrefix string // the Redis keys' and channels' prefix
	debugAddr   string // pprof, loopback only; "" for none
	metricsAddr string // /metrics on its own listener; "" serves it on addr
	logFormat   string // text or json
	conns       hub.Limits
	proxies     string
	trusted     []netip.Prefix // proxies whose forwarding headers name the client
	gcPercent   int            // GOGC
	memoryLimit int64          // GOMEMLIMIT in MiB; 0: none; -1: from the connection cap
}

func (c *listenConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", ":3000", "listen address")
	fs.StringVar(&c.dbPath, "db", "verifier.db", "bbolt database file")
	fs.StringVar(&c.storePrefix, "store-prefix", "verifier:", "with a Redis -store: the prefix of every key and channel, so several deployments may share one Redis")
	fs.StringVar(&c.store, "store", "", "redis://[:password@]host:6379/0 (or rediss://) to keep state in Redis, shared by several servers; default: the -db file")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "serve net/http/pprof here (loopback only, e.g. 127.0.0.1:6060)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve /metrics on this address instead of the public one (e.g. 127.0.0.1:9100)")
	fs.IntVar(&c.gcPercent, "gc-percent", defaultGCPercent, "garbage collector target (GOGC): heap growth in percent before a collection")
	fs.Int64Var(&c.memoryLimit, "memory-limit-mb", -1, "soft memory limit for the Go runtime (GOMEMLIMIT) in MiB; the collector runs harder near it (default: 64 MiB and 8 KiB per connection -max-connections allows, unless GOMEMLIMIT is set; 0: none)")
	fs.StringVar(&c.proxies, "trusted-proxies", "", "CIDRs of reverse proxies whose X-Forwarded-For/Forwarded name the client (e.g. 10.0.0.0/8); empty: the TCP peer is the client")
	fs.StringVar(&c.logFormat, "log-format", "text", "log lines as text or json")
	fs.IntVar(&c.conns.Max, "max-connections", -1, "open WebSockets at most; more are refused with 503 (default: the open-files limit, raised to its hard limit, less 512; 0: no cap)")
	fs.IntVar(&c.conns.PerClient, "max-connections-per-ip", 200, "open WebSockets from one client address; more get 429 (0: no cap)")
	fs.DurationVar(&c.conns.HandshakeTimeout, "handshake-timeout", 10*time.Second, "how long a client may take to send its request headers and finish a WebSocket upgrade")
	fs.DurationVar(&c.conns.IdleTimeout, "idle-timeout", 30*time.Minute, "close a WebSocket whose client sent nothing for this long (0: never)")
}

func (c *listenConfig) check(func(string) string) error {
	if c.store != "" && !strings.HasPrefix(c.store, "redis://") && !strings.HasPrefix(c.store, "rediss://") {
		return fmt.Errorf("-store %q: want redis://host:port/db or rediss://...", c.store)
	}
	if c.debugAddr != "" && !isLoopback(c.debugAddr) {
		return fmt.Errorf("debug address %q: must be a loopback address with a port", c.debugAddr)
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return fmt.Errorf("log format %q: want text or json", c.logFormat)
	}
	if c.gcPercent < 10 || c.memoryLimit < -1 {
		return fmt.Errorf("-gc-percent %d / -memory-limit-mb %d: want at least 10, and 0 or more (-1: from the connection cap)", c.gcPercent, c.memoryLimit)
	}
	var err error
	c.trusted, err = clientip.ParseCIDRs(c.proxies)
	return err
}

// defaultGCPercent trades memory for CPU: a flow allocates about 40 KB and
// lives briefly, so collecting less often cuts the collector's share of the
// CPU. The default memory limit (memoryBudget) bounds what that costs: near
// it the collector runs harder and hands freed memory back, so an idle
// socket still costs under 12 KB (measured with flowload; see
// bench/RESULTS.md).
const defaultGCPercent = 400

// memoryBudget is the default soft memory limit for a connection cap: a
// base for the program and its caches, and what an idle socket needs
// (about 7.5 KB measured) with a little room, per allowed connection. No
// cap, no default limit.
func memoryBudget(maxConns int) (mib int64) {
	if maxConns <= 0 {
		return 0
	}
	return 64 + int64(maxConns)*8/1024
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && (host == "localhost" || ip != nil && ip.IsLoopback())
}

// rulesConfig is the verification rules and limits; verify.NewService
// validates them.
type rulesConfig struct {
	verify.Config
	countries, testNumbers string
	wrongCodes             int           // -1: -max-attempts x -max-sms-per-number
	retention              time.Duration // forget numbers verified longer ago; 0: keep them
}

func (c *rulesConfig) flags(fs *flag.FlagSet) {
	lim := &c.Limits
	fs.IntVar(&c.CodeLength, "code-length", c.CodeLength, "digits in a code (4 to 10)")
	fs.DurationVar(&c.CodeTTL, "code-ttl", c.CodeTTL, "how long a code is valid")
	fs.IntVar(&c.MaxAttempts, "max-attempts", c.MaxAttempts, "wrong codes allowed before the code is void")
	fs.DurationVar(&c.ResendAfter, "resend-after", c.ResendAfter, "wait before a new code may be sent to the same number")
	fs.StringVar(&c.DefaultRegion, "region", c.DefaultRegion, "region of numbers written without a country code (ISO 3166, e.g. US)")
	fs.StringVar(&c.countries, "countries", "", `ISO 3166 codes of countries whose numbers may get codes, "US,CA,GB"; "*" for all (default: the -region country)`)
	fs.StringVar(&c.testNumbers, "test-numbers", "", `test numbers with fixed codes, "+15555550100=123456,...": no text is sent`)
	fs.IntVar(&lim.PerMinute, "max-sms-per-minute", lim.PerMinute, "texts per minute, whole deployment (0: no cap)")
	fs.IntVar(&lim.PerHour, "max-sms-per-hour", lim.PerHour, "texts per hour, whole deployment (0: no cap)")
	fs.IntVar(&lim.PerNumber.N, "max-sms-per-number", lim.PerNumber.N, "texts per hour to one number (0: no cap)")
	fs.IntVar(&lim.PerClient.N, "max-sms-per-ip", lim.PerClient.N, "texts per hour requested from one client address (0: no cap)")
	fs.IntVar(&lim.PerPrefix.N, "max-sms-per-prefix", lim.PerPrefix.N, "texts per hour to one block of 1,000 numbers (0: no cap)")
	fs.IntVar(&lim.PerConnection.N, "max-sms-per-connection", lim.PerConnection.N, "texts per hour requested on one connection (0: no cap)")
	fs.DurationVar(&c.FallbackAfter, "fallback-after", 30*time.Second, "offer a call when a text has no delivery report this long after sending (needs -public-url and Twilio, for status callbacks; 0: never)")
	fs.IntVar(&c.wrongCodes, "max-wrong-codes-per-number", -1, "wrong codes per hour for one number, across all its codes; past it no code works until the hour ends (default -max-attempts x -max-sms-per-number; 0: no cap)")
	fs.DurationVar(&c.retention, "forget-verified-after", 0, "erase numbers verified longer ago than this, e.g. 8760h for a year (0: keep them)")
	fs.IntVar(&lim.LookupsPerClient.N, "max-lookups-per-ip", lim.LookupsPerClient.N, "answers read from state without sending (already verified, already requested, resume) per hour for one client address (0: no cap)")
}

func (c *rulesConfig) check(func(string) string) error {
	c.DefaultRegion = strings.ToUpper(c.DefaultRegion)
	if c.retention < 0 {
		return fmt.Errorf("-forget-verified-after %v: must not be negative", c.retention)
	}
	if c.Limits.WrongPerNumber.N = c.wrongCodes; c.wrongCodes < 0 {
		c.Limits.WrongPerNumber.N = c.MaxAttempts * c.Limits.PerNumber.N
	}
	switch list := strings.TrimSpace(c.countries); list {
	case "*":
	case "":
		c.Countries = []string{c.DefaultRegion}
	default:
		for cc := range strings.SplitSeq(list, ",") {
			if cc = strings.ToUpper(strings.TrimSpace(cc)); cc != "" {
				c.Countries = append(c.Countries, cc)
			}
		}
	}
	var err error
	c.TestNumbers, err = parseTestNumbers(c.testNumbers)
	return err
}

// parseTestNumbers reads "+15555550100=123456,+15555550101=654321".
func parseTestNumbers(list string) (map[string]string, error) {
	numbers := map[string]string{}
	for pair := range strings.SplitSeq(list, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		phone, code, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("test number %q: want +15555550100=123456", pair)
		}
		numbers[strings.TrimSpace(phone)] = strings.TrimSpace(code)
	}
	return numbers, nil
}

// embedConfig is how the server is reached and which host sites may embed
// it.
type embedConfig struct {
	origins     string
	publicURL   string
	demo        bool     // serve /demo/embed even with Twilio configured
	tapLinks    bool     // texts carry a tap-to-verify link (needs the public URL)
	inbound     bool     // offer "text us the code" (needs Twilio, a From number and the public URL)
	issuer      string   // the name authenticator apps show
	hostOrigins []string // the host sites (-allowed-origins)
	public      *url.URL // nil when -public-url is unset
}

func (c *embedConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.origins, "allowed-origins", "", "comma-separated extra origins allowed to open the WebSocket (https://shop.example)")
	fs.StringVar(&c.publicURL, "public-url", "", "the server's public base URL, e.g. https://verify.example.com")
	fs.BoolVar(&c.demo, "demo", false, "serve the demo host page /demo/embed even with Twilio configured (it is always served in development mode)")
	fs.BoolVar(&c.tapLinks, "tap-links", true, "with -public-url, texts also carry a link that verifies with one tap (<public-url>/v/<id>)")
	fs.BoolVar(&c.inbound, "inbound", false, `offer "text us the code" (register channel "inbound"): needs Twilio, TWILIO_FROM_NUMBER and -public-url, with the number's incoming-message webhook set to <public-url>/twilio/inbound`)
	fs.StringVar(&c.issuer, "issuer", "", "the name authenticator apps show for this service (default: the -public-url host, else \"verifier\")")
}

func (c *embedConfig) check(func(string) string) error {
	for o := range strings.SplitSeq(c.origins, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" && u.Path != "/" {
			return fmt.Errorf("allowed origin %q: want scheme://host[:port]", o)
		}
		c.hostOrigins = append(c.hostOrigins, strings.TrimRight(o, "/"))
	}
	if c.publicURL == "" {
		c.tapLinks = false
		if c.inbound {
			return errors.New("-inbound needs -public-url, where Twilio posts the texts")
		}
		if c.issuer == "" {
			c.issuer = "verifier"
		}
		return nil
	}
	u, err := url.Parse(c.publicURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("public URL %q: want an absolute URL", c.publicURL)
	}
	c.public = u
	if c.issuer == "" {
		c.issuer = u.Hostname()
	}
	return nil
}

// allowedOrigins are every origin the WebSocket accepts besides the
// request's own host: the host sites and the public URL's.
func (c embedConfig) allowedOrigins() []string {
	origins := append([]string(nil), c.hostOrigins...)
	if c.public != nil {
		origins = append(origins, c.public.Scheme+"://"+c.public.Host)
	}
	return origins
}

// webOTPHost is the host a text names when the server's own page asks.
func (c embedConfig) webOTPHost() string {
	if c.public == nil {
		return ""
	}
	return c.public.Hostname()
}

// twilioConfig is the SMS provider; without TWILIO_ACCOUNT_SID texts are
// printed instead.
type twilioConfig struct {
	timeout  time.Duration
	provider string            // auto, messages or verify
	confirm  string            // the confirmation text; "" for none
	sms      *sms.TwilioConfig // nil: print texts on stdout instead
	// whatsAppTemplate is an approved template's ContentSid for WhatsApp
	// codes (its variable 1 is the code); "" sends the text.
	whatsAppTemplate string
}

func (c *twilioConfig) flags(fs *flag.FlagSet) {
	fs.DurationVar(&c.timeout, "sms-timeout", 5*time.Second, "how long one call to the SMS provider may take")
	fs.StringVar(&c.provider, "provider", "auto", "who makes and checks the codes: messages (this server, sent through Twilio's Messages and Calls APIs), verify (Twilio Verify, TWILIO_VERIFY_SERVICE_SID), or auto (verify when TWILIO_VERIFY_SERVICE_SID is set)")
	fs.StringVar(&c.confirm, "confirm-message", "", `a text sent to a number once it is verified, e.g. "Your number is verified." (i18n key confirm_message translates it; empty: none)`)
}

func (c *twilioConfig) check(getenv func(string) string) error {
	sid := getenv("TWILIO_ACCOUNT_SID")
	if c.provider != "auto" && c.provider != "messages" && c.provider != "verify" {
		return fmt.Errorf("-provider %q: want auto, messages or verify", c.provider)
	}
	if sid == "" {
		if c.provider == "verify" {
			return errors.New("-provider verify needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_VERIFY_SERVICE_SID")
		}
		return nil
	}
	c.whatsAppTemplate = getenv("TWILIO_WHATSAPP_CONTENT_SID")
	c.sms = &sms.TwilioConfig{
		AccountSID:          sid,
		AuthToken:           getenv("TWILIO_AUTH_TOKEN"),
		From:                getenv("TWILIO_FROM_NUMBER"),
		MessagingServiceSID: getenv("TWILIO_MESSAGING_SERVICE_SID"),
		WhatsAppFrom:        getenv("TWILIO_WHATSAPP_FROM"),
		APIURL:              getenv("TWILIO_API_URL"),
		Timeout:             c.timeout,
	}
	if c.provider != "messages" {
		c.sms.VerifyServiceSID = getenv("TWILIO_VERIFY_SERVICE_SID")
	}
	switch {
	case c.provider == "verify" && c.sms.VerifyServiceSID == "":
		return errors.New("-provider verify needs TWILIO_VERIFY_SERVICE_SID")
	case c.confirm != "" && c.sms.From == "" && c.sms.MessagingServiceSID == "":
		return errors.New("-confirm-message needs TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID to text from")
	}
	return nil
}

// usesVerify reports whether Twilio Verify makes and checks the codes.
func (c twilioConfig) usesVerify() bool { return c.sms != nil && c.sms.VerifyServiceSID != "" }

// receivesTexts reports whether "text us the code" is offered.
func (c config) receivesTexts() bool {
	return c.embed.inbound && c.twilio.sms != nil && c.twilio.sms.From != ""
}

// inboundNumber is the number people text their code to, "" for none.
func (c config) inboundNumber() string {
	if !c.receivesTexts() {
		return ""
	}
	return c.twilio.sms.From
}

// placesCalls reports whether the server offers voice calls: the console
// "places" them in development, Verify places its own; Twilio's Calls API
// needs a From number (a messaging service places no calls).
func (c twilioConfig) placesCalls() bool { return c.sms == nil || c.sms.From != "" || c.usesVerify() }

// sendsWhatsApp reports whether a WhatsApp sender is configured.
func (c twilioConfig) sendsWhatsApp() bool { return c.sms != nil && c.sms.WhatsAppFrom != "" }

// statusPath is where Twilio posts delivery reports.
const statusPath = "/twilio/status"

// link asks Twilio for delivery reports at the public URL, and to drop a
// text still queued when its code has expired.
func (c *twilioConfig) link(embed embedConfig, codeTTL time.Duration) {
	if c.sms == nil {
		return
	}
	c.sms.ValidFor = codeTTL
	if embed.public != nil {
		c.sms.StatusCallback = strings.TrimRight(embed.publicURL, "/") + statusPath
	}
}

// adminConfig is the operator's listener: the live admin page, its
// WebSocket and the live backup.
type adminConfig struct {
	addr string // "" for none
	key  string // VERIFIER_ADMIN_KEY: needed off loopback, and then asked for
}

func (c *adminConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "admin-addr", "", "serve the admin page, its live stats and GET /admin/backup here (loopback, e.g. 127.0.0.1:3001; another address needs VERIFIER_ADMIN_KEY)")
}

func (c *adminConfig) check(getenv func(string) string) error {
	c.key = getenv("VERIFIER_ADMIN_KEY")
	if c.addr != "" && !isLoopback(c.addr) && len(c.key) < 16 {
		return fmt.Errorf("admin address %q: off loopback it needs VERIFIER_ADMIN_KEY (16 characters or more)", c.addr)
	}
	return nil
}
