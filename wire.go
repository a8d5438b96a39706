package main

import (
	"context"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"verifier/assets"
	"verifier/channel"
	"verifier/clientip"
	"verifier/hub"
	"verifier/metrics"
	"verifier/seal"
	"verifier/server"
	"verifier/sms"
	"verifier/stats"
	"verifier/token"
	"verifier/verify"
)

// assemble builds every part on top of the open store and wires them.
func assemble(cfg config, store stateStore, peers *cluster, getenv func(string) string, stdout io.Writer, log *slog.Logger) (*app, error) {
	dev := cfg.twilio.sms == nil
	bundle, err := assets.Load(assets.Options{Dev: dev, Calls: cfg.twilio.placesCalls(), WhatsApp: cfg.twilio.sendsWhatsApp(),
		Inbound: cfg.inboundNumber(), Apps: true})
	if err != nil {
		return nil, err
	}
	texts, err := server.NewTexts(bundle.Languages)
	if err != nil {
		return nil, err
	}
	keys, err := loadKeys(store, getenv, stdout, log)
	if err != nil {
		return nil, err
	}
	meter, clients := metrics.New(), clientip.New(cfg.listen.trusted)
	watch := watchers{meter: meter, board: stats.New(stats.Caps{PerMinute: cfg.rules.Limits.PerMinute, PerHour: cfg.rules.Limits.PerHour}, nil)}
	wsHub := hub.New(hub.Config{AllowedOrigins: cfg.embed.allowedOrigins(), Limits: cfg.listen.conns, ClientAddr: clients.Of}, log)
	meter.WatchConnections(wsHub.Open)
	pub := peers.publisher(server.Publisher{Hub: wsHub, Texts: texts}, wsHub.Owns)
	carrier, engine, channels, err := newDelivery(cfg, pub, bundle, watch, stdout, log)
	if err != nil {
		return nil, err
	}
	sealed, err := newSeals(keys.tokens, cfg.embed)
	if err != nil {
		return nil, err
	}
	tokens, err := token.NewTokens(keys.tokens, store, token.Options{IsTest: cfg.rules.IsTestNumber, Dev: dev})
	if err != nil {
		return nil, err
	}
	svc, err := verify.NewService(cfg.rules.Config, verify.Deps{
		Store: timedStore{store, meter}, Channels: channels,
		Pub: pub, Tokens: tokens, Observe: watch, Log: log, Limiters: peers.limiters(),
		Confirm: newConfirmer(cfg.twilio.confirm, countedSender{carrier: carrier, watch: watch}, bundle),
		Engine:  engineOrNil(engine), Links: sealed.links, Secrets: sealed.secrets,
	})
	if err != nil {
		return nil, err
	}
	a := &app{log: log, out: stdout, store: store, peers: peers, hub: wsHub, svc: svc, metrics: meter.Handler(), board: watch.board, bundle: bundle}
	a.handler = server.NewHandler(server.Deps{
		Hub:           wsHub.Endpoint(&server.Frontend{Rules: svc, Texts: texts, Log: log, HostOrigins: cfg.embed.hostOrigins, Count: meter}),
		OriginAllowed: wsHub.OriginAllowed, Assets: bundle, Health: store.Ping, Log: log,
		Status:     newDeliveryStatus(cfg.twilio, reportsOnBoard{svc, watch.board}, meter, clients, log),
		Metrics:    a.publicMetrics(cfg.listen),
		SiteVerify: newSiteVerify(tokens, keys.api, peers, clients, log), Demo: dev || cfg.embed.demo,
		Tap:     newTapPage(sealed, svc, texts, bundle, cfg.embed, clients, log),
		Inbound: newInboundTexts(cfg, svc, clients, log),
	})
	return a, nil
}

// newDelivery builds what carries codes (Twilio or the console), the code
// engine if Verify makes the codes, and the channels over them.
func newDelivery(cfg config, inbox sms.Inbox, bundle *assets.Bundle, watch watchers, stdout io.Writer, log *slog.Logger) (
	carrier, *sms.Verify, verify.Channels, error) {
	c, err := newCarrier(cfg.twilio, inbox, stdout, log)
	if err != nil {
		return nil, nil, nil, err
	}
	engine, err := newEngine(c, cfg.twilio)
	if err != nil {
		return nil, nil, nil, err
	}
	channels, err := newChannels(c, engine, bundle, cfg, watch)
	return c, engine, channels, err
}

// seals are the values only this server can read: tap-to-verify links
// and authenticator apps' secrets, each under its own key.
type seals struct {
	links   verify.Links // nil: no tap-to-verify links
	secrets verify.Secrets
	tapKey  []byte // signs the tap page's form
}

func newSeals(secret []byte, embed embedConfig) (seals, error) {
	apps, err := seal.New(secret, "authenticator app secret")
	if err != nil || !embed.tapLinks {
		return seals{secrets: apps}, err
	}
	links, err := seal.NewLinks(secret)
	if err != nil {
		return seals{}, err
	}
	tapKey, err := seal.Key(secret, "tap-to-verify form")
	return seals{links: links, secrets: apps, tapKey: tapKey}, err
}

// newTapPage serves the links' page, where links are on.
func newTapPage(s seals, links server.Links, texts *server.Texts, bundle *assets.Bundle, embed embedConfig,
	clients clientip.Resolver, log *slog.Logger) http.Handler {
	if s.links == nil {
		return nil
	}
	page := template.Must(template.New("tap").Parse(string(bundle.Tap)))
	return &server.TapPage{Links: links, Texts: texts, Page: page, Key: s.tapKey, Secure: embed.public.Scheme == "https",
		SiteName: embed.public.Hostname(), ClientAddr: clients.Of, Log: log}
}

// newInboundTexts takes the texts people send us, where that is offered.
func newInboundTexts(cfg config, inbox server.Inbox, clients clientip.Resolver, log *slog.Logger) http.Handler {
	if !cfg.receivesTexts() {
		return nil
	}
	return &server.InboundTexts{Check: sms.NewStatusValidator(cfg.twilio.sms.AuthToken),
		URL: strings.TrimRight(cfg.embed.publicURL, "/") + inboundPath, Inbox: inbox, Reply: cfg.twilio.confirm,
		ClientAddr: clients.Of, Log: log}
}

// inboundPath is where Twilio posts the texts people send our number.
const inboundPath = "/twilio/inbound"

// publicMetrics is /metrics on the public listener, unless -metrics-addr
// moves it to its own.
func (a *app) publicMetrics(cfg listenConfig) http.Handler {
	if cfg.metricsAddr != "" {
		return nil
	}
	return a.metrics
}

// newDeliveryStatus checks Twilio's signatures on delivery reports and
// hands them to the rules; without Twilio it refuses every request.
func newDeliveryStatus(cfg twilioConfig, rules server.Reports, meter *metrics.Metrics, clients clientip.Resolver, log *slog.Logger) *server.DeliveryStatus {
	status := &server.DeliveryStatus{Reports: rules, Observe: meter.Delivery, ClientAddr: clients.Of, Log: log}
	if cfg.sms != nil && cfg.sms.StatusCallback != "" {
		status.Check, status.URL = sms.NewStatusValidator(cfg.sms.AuthToken), cfg.sms.StatusCallback
	}
	return status
}

// wrongSecretsPerMinute is how many wrong API keys one client address may
// try a minute at /api/siteverify.
const wrongSecretsPerMinute = 10

func newSiteVerify(tokens *token.Tokens, apiKey string, peers *cluster, clients clientip.Resolver, log *slog.Logger) *server.SiteVerify {
	limit := verify.Limit{Name: "wrong_secret", Rate: verify.Rate{N: wrongSecretsPerMinute, Per: time.Minute}, Key: verify.ByClient}
	var wrong verify.RateLimiter = verify.NewLimiter(limit)
	if many := peers.limiters(); many != nil { // counted across servers
		wrong = many(limit)
	}
	return &server.SiteVerify{Tokens: tokens, APIKey: apiKey, Log: log, ClientAddr: clients.Of, WrongSecrets: wrong}
}

// carrier is what carries codes: Twilio, or the console in development.
type carrier interface {
	channel.Sender
	channel.Caller
}

// newCarrier texts and calls through Twilio when it is configured, else
// prints texts and calls and shows them in the asking page's dev inbox.
func newCarrier(cfg twilioConfig, inbox sms.Inbox, stdout io.Writer, log *slog.Logger) (carrier, error) {
	if cfg.sms != nil {
		return sms.NewTwilio(*cfg.sms)
	}
	log.Warn("development mode: no TWILIO_ACCOUNT_SID, so texts are printed on standard output and in the page's dev inbox, "+
		"not sent, and every token this server issues is a development token (siteverify answers \"dev\": true)",
		"event", "start", "reason", "console_sender")
	return sms.NewConsole(stdout, inbox), nil
}

// newChannels offers SMS, voice calls where the carrier can place them,
// WhatsApp where a sender is configured (with Twilio Verify, its own
// channels), and "text us the code" where asked for. Every channel that
// sends counts against every limit and the cost cap alike.
func newChannels(c carrier, engine *sms.Verify, bundle *assets.Bundle, cfg config, watch watchers) (verify.Channels, error) {
	channels, err := sendingChannels(c, engine, bundle, cfg, watch)
	if err == nil && cfg.receivesTexts() {
		channels[verify.InboundChannel] = channel.NewInbound(cfg.twilio.sms.From)
	}
	return channels, err
}

// sendingChannels are the ones that bring a code to the person.
func sendingChannels(c carrier, engine *sms.Verify, bundle *assets.Bundle, cfg config, watch watchers) (verify.Channels, error) {
	if engine != nil {
		return verifyChannels(engine, cfg.twilio), nil
	}
	counted := countedSender{carrier: c, watch: watch, codes: true}
	texter, err := channel.NewSMS(counted, bundle.SMSTemplates(), cfg.embed.webOTPHost())
	if err != nil {
		return nil, err
	}
	if cfg.embed.tapLinks {
		if err := texter.Links(cfg.embed.publicURL, bundle.Strings("sms_link")); err != nil {
			return nil, err
		}
	}
	channels := verify.Channels{"sms": texter}
	if cfg.twilio.placesCalls() {
		if channels["call"], err = channel.NewCall(counted, bundle.CallTemplates()); err != nil {
			return nil, err
		}
	}
	if cfg.twilio.sendsWhatsApp() {
		if channels["whatsapp"], err = channel.NewWhatsApp(counted, bundle.SMSTemplates(), cfg.twilio.whatsAppTemplate); err != nil {
			return nil, err
		}
	}
	return channels, nil
}

// verifyChannels are Twilio Verify's texts and calls, and its WhatsApp
// where the account has a WhatsApp sender (Verify uses the one set on the
// service).
func verifyChannels(engine *sms.Verify, cfg twilioConfig) verify.Channels {
	channels := verify.Channels{"sms": engine.Channel("sms"), "call": engine.Channel("call")}
	if cfg.sendsWhatsApp() {
		channels["whatsapp"] = engine.Channel("whatsapp")
	}
	return channels
}

// newEngine is Twilio Verify when it makes the codes, else nil.
func newEngine(c carrier, cfg twilioConfig) (*sms.Verify, error) {
	t, ok := c.(*sms.Twilio)
	if !ok || !cfg.usesVerify() {
		return nil, nil
	}
	return t.Verify()
}

// engineOrNil keeps a nil *sms.Verify from becoming a non-nil interface.
func engineOrNil(v *sms.Verify) verify.Engine {
	if v == nil {
		return nil
	}
	return v
}

// newConfirmer texts verified numbers the -confirm-message, or nothing.
func newConfirmer(text string, sender channel.Sender, bundle *assets.Bundle) verify.Confirmer {
	if text == "" {
		return nil
	}
	return channel.NewConfirmation(sender, text, bundle.Strings("confirm_message"))
}

// timedStore measures the rules' durable writes.
type timedStore struct {
	verify.Store
	meter *metrics.Metrics
}

func (s timedStore) Update(ctx context.Context, phone string, fn func(*verify.Record) error) error {
	start := time.Now()
	err := s.Store.Update(ctx, phone, fn)
	if err == nil {
		s.meter.StoreWrite(time.Since(start))
	}
	return err
}

// countedSender counts texts by the provider's answer, and, when they
// carry codes, texts and calls on the admin board.
type countedSender struct {
	carrier
	watch watchers
	codes bool // not a confirmation text
}

func (s countedSender) Send(ctx context.Context, t channel.Text) error {
	err := s.carrier.Send(ctx, t)
	s.watch.meter.SMS(sms.ErrorCode(err))
	if s.codes {
		s.watch.sent(strings.TrimPrefix(t.To, "whatsapp:"), err)
	}
	return err
}

func (s countedSender) Call(ctx context.Context, v channel.Voice) error {
	err := s.carrier.Call(ctx, v)
	s.watch.sent(v.To, err)
	return err
}

// adminHandler is the admin listener's routes.
func (a *app) adminHandler(cfg adminConfig) http.Handler {
	admin := &server.Admin{Key: cfg.key, Backup: a.store.Backup, Snapshot: a.snapshot, Assets: a.bundle, Log: a.log}
	return admin.Handler()
}

// snapshot is the admin page's numbers: the board's, and the keys the
// limits hold now.
func (a *app) snapshot() any {
	s := a.board.Snapshot()
	for _, hit := range a.svc.Limited(maxLimitedShown) {
		s.Limited = append(s.Limited, stats.Limited{Limit: hit.Limit, Key: hit.Key, Until: hit.Until.UTC()})
	}
	return s
}

// maxLimitedShown bounds the limited keys the admin page lists.
const maxLimitedShown = 50

// serveSide starts the side listeners: pprof (loopback only), /metrics
// when -metrics-addr moves it off the public listener, and the admin one.
func (a *app) serveSide(all config) (stop func(), err error) {
	cfg := all.listen
	var servers []*http.Server
	// Cancelled on stop, so that sockets the listeners upgraded (the admin
	// page's), which Close leaves alone, end too.
	base, cancel := context.WithCancel(context.Background())
	stop = func() {
		cancel()
		for _, srv := range servers {
			srv.Close()
		}
	}
	if cfg.debugAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		servers = append(servers, &http.Server{Addr: cfg.debugAddr, Handler: mux})
	}
	if cfg.metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.metrics)
		servers = append(servers, &http.Server{Addr: cfg.metricsAddr, Handler: mux})
	}
	if all.admin.addr != "" {
		servers = append(servers, &http.Server{Addr: all.admin.addr, Handler: a.adminHandler(all.admin)})
	}
	for _, srv := range servers {
		srv.ReadHeaderTimeout = 10 * time.Second
		srv.BaseContext = func(net.Listener) context.Context { return base }
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			stop()
			return nil, err
		}
		go srv.Serve(ln)
		a.log.Info("side listener", "event", "start", "reason", "side_listener", "addr", ln.Addr().String())
		fmt.Fprintf(a.out, "verifier side listener on http://%s\n", listenURLHost(ln.Addr()))
	}
	return stop, nil
}
