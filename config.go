package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"verifier/hub"
	"verifier/sms"
	"verifier/verify"
)

// config is everything run needs, read once: defaults, then VERIFIER_*
// variables, then flags.
type config struct {
	addr           string
	dbPath         string
	rules          verify.Config
	allowedOrigins []string // every origin the WebSocket accepts besides the request's own host
	hostOrigins    []string // the host sites among them (-allowed-origins)
	publicURL      string
	debugAddr      string // pprof, loopback only; "" for none
	smsTimeout     time.Duration
	twilio         *sms.TwilioConfig // nil: print texts on stdout instead
	logFormat      string            // text or json
	conns          hub.Limits
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{rules: verify.DefaultConfig()}
	lim := &cfg.rules.Limits
	var origins, testNumbers, countries string
	fs := flag.NewFlagSet("verifier", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.addr, "addr", ":3000", "listen address")
	fs.StringVar(&cfg.dbPath, "db", "verifier.db", "bbolt database file")
	fs.IntVar(&cfg.rules.CodeLength, "code-length", cfg.rules.CodeLength, "digits in a code (4 to 10)")
	fs.DurationVar(&cfg.rules.CodeTTL, "code-ttl", cfg.rules.CodeTTL, "how long a code is valid")
	fs.IntVar(&cfg.rules.MaxAttempts, "max-attempts", cfg.rules.MaxAttempts, "wrong codes allowed before the code is void")
	fs.DurationVar(&cfg.rules.ResendAfter, "resend-after", cfg.rules.ResendAfter, "wait before a new code may be sent to the same number")
	fs.StringVar(&origins, "allowed-origins", "", "comma-separated extra origins allowed to open the WebSocket (https://shop.example)")
	fs.StringVar(&cfg.publicURL, "public-url", "", "the server's public base URL, e.g. https://verify.example.com")
	fs.IntVar(&lim.PerMinute, "max-sms-per-minute", lim.PerMinute, "texts per minute, whole deployment (0: no cap)")
	fs.IntVar(&lim.PerHour, "max-sms-per-hour", lim.PerHour, "texts per hour, whole deployment (0: no cap)")
	fs.IntVar(&lim.PerNumber.N, "max-sms-per-number", lim.PerNumber.N, "texts per hour to one number (0: no cap)")
	fs.IntVar(&lim.PerClient.N, "max-sms-per-ip", lim.PerClient.N, "texts per hour requested from one client address (0: no cap)")
	fs.IntVar(&lim.PerPrefix.N, "max-sms-per-prefix", lim.PerPrefix.N, "texts per hour to one block of 1,000 numbers (0: no cap)")
	fs.StringVar(&countries, "countries", "", `ISO 3166 codes of countries whose numbers may get codes, "US,CA,GB"; "*" for all (default: the -region country)`)
	fs.IntVar(&lim.PerConnection.N, "max-sms-per-connection", lim.PerConnection.N, "texts per hour requested on one connection (0: no cap)")
	fs.StringVar(&cfg.rules.DefaultRegion, "region", cfg.rules.DefaultRegion, "region of numbers written without a country code (ISO 3166, e.g. US)")
	fs.DurationVar(&cfg.smsTimeout, "sms-timeout", 5*time.Second, "how long one call to the SMS provider may take")
	fs.StringVar(&cfg.debugAddr, "debug-addr", "", "serve net/http/pprof here (loopback only, e.g. 127.0.0.1:6060)")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "log lines as text or json")
	fs.IntVar(&cfg.conns.Max, "max-connections", 15000, "open WebSockets at most; more are refused with 503 (0: no cap)")
	fs.IntVar(&cfg.conns.PerClient, "max-connections-per-ip", 200, "open WebSockets from one client address; more get 429 (0: no cap)")
	fs.DurationVar(&cfg.conns.HandshakeTimeout, "handshake-timeout", 10*time.Second, "how long a client may take to send its request headers and finish a WebSocket upgrade")
	fs.DurationVar(&cfg.conns.IdleTimeout, "idle-timeout", 30*time.Minute, "close a WebSocket whose client sent nothing for this long (0: never)")
	fs.StringVar(&testNumbers, "test-numbers", "", `test numbers with fixed codes, "+15555550100=123456,...": no text is sent`)

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "VERIFIER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	})
	if envErr != nil {
		return cfg, envErr
	}
	err := fs.Parse(args)
	if err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if cfg.debugAddr != "" {
		host, _, err := net.SplitHostPort(cfg.debugAddr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return cfg, fmt.Errorf("debug address %q: must be a loopback address with a port", cfg.debugAddr)
		}
	}
	if cfg.logFormat != "text" && cfg.logFormat != "json" {
		return cfg, fmt.Errorf("log format %q: want text or json", cfg.logFormat)
	}
	cfg.rules.DefaultRegion = strings.ToUpper(cfg.rules.DefaultRegion)
	switch countries = strings.TrimSpace(countries); countries {
	case "*":
	case "":
		cfg.rules.Countries = []string{cfg.rules.DefaultRegion}
	default:
		for cc := range strings.SplitSeq(countries, ",") {
			if cc = strings.ToUpper(strings.TrimSpace(cc)); cc != "" {
				cfg.rules.Countries = append(cfg.rules.Countries, cc)
			}
		}
	}
	if cfg.rules.TestNumbers, err = parseTestNumbers(testNumbers); err != nil {
		return cfg, err
	}
	if err := cfg.rules.Validate(); err != nil {
		return cfg, err
	}
	for o := range strings.SplitSeq(origins, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" && u.Path != "/" {
			return cfg, fmt.Errorf("allowed origin %q: want scheme://host[:port]", o)
		}
		cfg.hostOrigins = append(cfg.hostOrigins, strings.TrimRight(o, "/"))
	}
	cfg.allowedOrigins = append(cfg.allowedOrigins, cfg.hostOrigins...)
	if cfg.publicURL != "" {
		u, err := url.Parse(cfg.publicURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return cfg, fmt.Errorf("public URL %q: want an absolute URL", cfg.publicURL)
		}
		cfg.allowedOrigins = append(cfg.allowedOrigins, u.Scheme+"://"+u.Host)
		cfg.rules.WebOTPHost = u.Hostname()
	}
	if sid := getenv("TWILIO_ACCOUNT_SID"); sid != "" {
		cfg.twilio = &sms.TwilioConfig{
			AccountSID:          sid,
			AuthToken:           getenv("TWILIO_AUTH_TOKEN"),
			From:                getenv("TWILIO_FROM_NUMBER"),
			MessagingServiceSID: getenv("TWILIO_MESSAGING_SERVICE_SID"),
			APIURL:              getenv("TWILIO_API_URL"),
			Timeout:             cfg.smsTimeout,
			ValidFor:            cfg.rules.CodeTTL,
		}
		if cfg.publicURL != "" {
			cfg.twilio.StatusCallback = strings.TrimRight(cfg.publicURL, "/") + statusPath
		}
	}
	return cfg, nil
}

// statusPath is where Twilio posts delivery reports.
const statusPath = "/twilio/status"

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
