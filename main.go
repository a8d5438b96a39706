// Command verifier serves a live phone-number verifier: one page, a
// WebSocket hub and SMS codes through Twilio.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"verifier/assets"
	"verifier/db"
	"verifier/hub"
	"verifier/metrics"
	"verifier/server"
	"verifier/sms"
	"verifier/verify"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "verifier:", err)
		os.Exit(1)
	}
}

// shutdownBudget is how long a stop may take, within the 10 s the contract
// allows.
const shutdownBudget = 8 * time.Second

// run starts the server and blocks until ctx ends, then shuts down.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg.logFormat, stderr)
	meter := metrics.New()

	bundle, err := assets.Load()
	if err != nil {
		return err
	}
	cfg.rules.SMSTemplates = bundle.SMSTemplates()
	if err := cfg.rules.Validate(); err != nil {
		return err
	}

	store, err := db.Open(cfg.dbPath)
	if err != nil {
		return err
	}
	defer store.Close()
	keys, err := loadKeys(store, getenv, stdout)
	if err != nil {
		return err
	}

	frontend := &server.Frontend{Log: log, HostOrigins: cfg.hostOrigins, Count: meter}
	wsHub := hub.New(hub.Config{AllowedOrigins: cfg.allowedOrigins, Limits: cfg.conns}, frontend, log)
	meter.WatchConnections(wsHub.Open)
	publisher := server.Publisher{Hub: wsHub}

	var sender verify.Sender
	status := &server.DeliveryStatus{Pub: publisher, Observe: meter.Delivery, Log: log}
	if cfg.twilio != nil {
		if sender, err = sms.NewTwilio(*cfg.twilio); err != nil {
			return err
		}
		if cfg.twilio.StatusCallback != "" {
			status.Check, status.URL = sms.NewStatusValidator(cfg.twilio.AuthToken), cfg.twilio.StatusCallback
		}
	} else {
		sender = sms.NewConsole(stdout, publisher)
		log.Warn("no TWILIO_ACCOUNT_SID: texts are printed on standard output and in the page's dev inbox, not sent",
			"event", "start", "reason", "console_sender")
	}

	isTest := func(phone string) bool { _, ok := cfg.rules.TestNumbers[phone]; return ok }
	tokens, err := verify.NewTokens(keys.tokens, store, nil, isTest)
	if err != nil {
		return err
	}
	svc, err := verify.NewService(cfg.rules, verify.Deps{
		Store: timedStore{store, meter}, Sender: countedSender{sender, meter},
		Pub: publisher, Tokens: tokens, Observe: meter, Log: log,
	})
	if err != nil {
		return err
	}
	frontend.Rules = svc

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: server.NewHandler(server.Deps{
			Hub: wsHub, OriginAllowed: wsHub.OriginAllowed, Assets: bundle, Health: store.Ping, Log: log,
			Status: status, Metrics: meter.Handler(),
			SiteVerify: &server.SiteVerify{
				Tokens: tokens, APIKey: keys.api, Log: log,
				WrongSecrets: verify.NewWindowLimiter(verify.Rate{N: 10, Per: time.Minute}, nil),
			},
		}),
		ReadHeaderTimeout: cfg.conns.HandshakeTimeout, // a slow-headers client holds no socket for long
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(stdout, "verifier listening on http://%s\n", listenURLHost(ln.Addr()))

	if cfg.debugAddr != "" {
		stopDebug, err := serveDebug(cfg.debugAddr, log)
		if err != nil {
			return err
		}
		defer stopDebug()
	}

	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()
	go svc.RunSweeper(sweepCtx, time.Second)
	go forgetSpentTokens(sweepCtx, store, log)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}

	log.Info("shutting down", "event", "shutdown", "reason", "signal")
	stopSweep()
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancel()
	// http.Server.Shutdown leaves hijacked WebSockets alone: the hub closes
	// them (1001) and waits for their handlers, so no write is cut short.
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Shutdown(shutCtx) }()
	hubErr := wsHub.Shutdown(shutCtx)
	if err := errors.Join(hubErr, <-srvDone); err != nil {
		log.Warn("shutdown incomplete", "event", "shutdown", "reason", "timeout", "err", err)
	}
	return nil
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
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
	verify.Sender
	meter *metrics.Metrics
}

func (s countedSender) Send(ctx context.Context, m verify.Message) error {
	err := s.Sender.Send(ctx, m)
	s.meter.SMS(sms.ErrorCode(err))
	return err
}

// listenURLHost names the listener in a form a browser can open.
func listenURLHost(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || tcp.IP.IsUnspecified() {
		port := 0
		if ok {
			port = tcp.Port
		}
		return fmt.Sprintf("localhost:%d", port)
	}
	return tcp.String()
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
