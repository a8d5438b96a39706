package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"verifier/assets"
	"verifier/channel"
	"verifier/clientip"
	"verifier/db"
	"verifier/hub"
	"verifier/metrics"
	"verifier/server"
	"verifier/sms"
	"verifier/token"
	"verifier/verify"
)

// assemble builds every part on top of the open store and wires them.
func assemble(cfg config, store *db.Store, getenv func(string) string, stdout io.Writer, log *slog.Logger) (*app, error) {
	bundle, err := assets.Load()
	if err != nil {
		return nil, err
	}
	texts, err := server.NewTexts(bundle.Languages)
	if err != nil {
		return nil, err
	}
	keys, err := loadKeys(store, getenv, stdout)
	if err != nil {
		return nil, err
	}
	meter, clients := metrics.New(), clientip.New(nil)
	wsHub := hub.New(hub.Config{AllowedOrigins: cfg.embed.allowedOrigins(), Limits: cfg.listen.conns, ClientAddr: clients.Of}, log)
	meter.WatchConnections(wsHub.Open)
	pub := server.Publisher{Hub: wsHub, Texts: texts}
	sender, status, err := newSender(cfg.twilio, pub, stdout, log)
	if err != nil {
		return nil, err
	}
	status.Observe, status.ClientAddr = meter.Delivery, clients.Of
	texter, err := channel.NewSMS(countedSender{sender, meter}, bundle.SMSTemplates(), cfg.embed.webOTPHost())
	if err != nil {
		return nil, err
	}
	tokens, err := token.NewTokens(keys.tokens, store, nil, cfg.rules.IsTestNumber)
	if err != nil {
		return nil, err
	}
	svc, err := verify.NewService(cfg.rules.Config, verify.Deps{
		Store: timedStore{store, meter}, Channels: verify.Channels{"sms": texter},
		Pub: pub, Tokens: tokens, Observe: meter, Log: log,
	})
	if err != nil {
		return nil, err
	}
	frontend := &server.Frontend{Rules: svc, Texts: texts, Log: log, HostOrigins: cfg.embed.hostOrigins, Count: meter}
	handler := server.NewHandler(server.Deps{
		Hub: wsHub.Endpoint(frontend), OriginAllowed: wsHub.OriginAllowed, Assets: bundle,
		Health: store.Ping, Log: log, Status: status, Metrics: meter.Handler(),
		SiteVerify: newSiteVerify(tokens, keys.api, clients, log),
	})
	return &app{log: log, out: stdout, store: store, hub: wsHub, svc: svc, handler: handler}, nil
}

// wrongSecretsPerMinute is how many wrong API keys one client address may
// try a minute at /api/siteverify.
const wrongSecretsPerMinute = 10

func newSiteVerify(tokens *token.Tokens, apiKey string, clients clientip.Resolver, log *slog.Logger) *server.SiteVerify {
	return &server.SiteVerify{Tokens: tokens, APIKey: apiKey, Log: log, ClientAddr: clients.Of,
		WrongSecrets: verify.NewLimiter(verify.Limit{Name: "wrong_secret",
			Rate: verify.Rate{N: wrongSecretsPerMinute, Per: time.Minute}, Key: verify.ByClient})}
}

// newSender texts through Twilio when it is configured, else prints texts
// and shows them in the page's dev inbox. The status route checks Twilio's
// signatures; without Twilio it refuses every request.
func newSender(cfg twilioConfig, pub verify.Publisher, stdout io.Writer, log *slog.Logger) (channel.Sender, *server.DeliveryStatus, error) {
	status := &server.DeliveryStatus{Pub: pub, Log: log}
	if cfg.sms == nil {
		log.Warn("no TWILIO_ACCOUNT_SID: texts are printed on standard output and in the page's dev inbox, not sent",
			"event", "start", "reason", "console_sender")
		return sms.NewConsole(stdout, pub), status, nil
	}
	sender, err := sms.NewTwilio(*cfg.sms)
	if err != nil {
		return nil, nil, err
	}
	if cfg.sms.StatusCallback != "" {
		status.Check, status.URL = sms.NewStatusValidator(cfg.sms.AuthToken), cfg.sms.StatusCallback
	}
	return sender, status, nil
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

// countedSender counts texts by the provider's answer.
type countedSender struct {
	channel.Sender
	meter *metrics.Metrics
}

func (s countedSender) Send(ctx context.Context, to, body string) error {
	err := s.Sender.Send(ctx, to, body)
	s.meter.SMS(sms.ErrorCode(err))
	return err
}

// serveDebug serves net/http/pprof on its own loopback listener, never on
// the public one.
func serveDebug(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("pprof listening", "event", "start", "reason", "debug_addr", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
