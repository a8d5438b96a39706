// Package bus lets several verifier servers share their events through
// Redis pub/sub. A Bus is a verify.Publisher: it delivers an event to this
// server's own connections at once, and sends it on one Redis channel to
// the other servers, which deliver it to theirs. A Tell for a connection of
// another server goes the same way and is delivered only by the server that
// owns the connection.
//
// Pub/sub keeps nothing: an event sent while a server is cut off from Redis
// does not reach that server later. The pages a server serves then miss the
// other servers' events until Redis is back; each page's own requests and
// answers, which stay on one server, are not affected.
//
// Redis is trusted: whoever may PUBLISH on the channel can hand any outcome
// to any connection, and a Tell's outcome may carry a verification token or
// an authenticator key in clear. Keep Redis private (ACL, TLS, own network).
package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"verifier/verify"
)

// DefaultChannel is the Redis channel used when Options.Channel is empty.
const DefaultChannel = "verifier:events"

// MaxMessage is the largest message a Bus sends or accepts, in bytes.
const MaxMessage = 64 << 10

const (
	publishTimeout = time.Second      // bound of one PUBLISH
	queueLen       = 1024             // messages waiting to be PUBLISHed
	flushWait      = time.Second      // how long Close lets queued messages go out
	maxAge         = 5 * time.Second  // a message queued longer is dropped: events are live
	healthEvery    = 30 * time.Second // a subscription silent this long is pinged, then dropped
	minBackoff     = 100 * time.Millisecond
	maxBackoff     = 5 * time.Second
	logEvery       = 10 * time.Second // rate limit of each kind of warning
)

// Message types.
const (
	typePublish = "publish"
	typeTell    = "tell"
)

// Options tune a Bus. Zero fields take the defaults.
type Options struct {
	Channel string       // the Redis channel; DefaultChannel if empty
	Log     *slog.Logger // nil discards
}

// Bus is a verify.Publisher shared by several servers through Redis.
type Bus struct {
	rdb     *redis.Client
	local   verify.Publisher
	owns    func(conn string) bool
	channel string
	origin  string // random per Bus: a Bus ignores what it sent itself
	log     *slog.Logger
	warns   limiter
	health  time.Duration
	maxAge  time.Duration

	queue      chan queued
	closing    context.Context // ends with Close
	stop       context.CancelFunc
	done       <-chan struct{} // closing.Done()
	senderDone chan struct{}
	closeOnce  sync.Once
	running    atomic.Bool

	mu     sync.Mutex // held while delivering what came from Redis
	closed bool
}

var _ verify.Publisher = (*Bus)(nil)

// New returns a Bus over rdb that delivers to this server's connections
// through local. owns reports whether a connection id is one of this
// server's (hub.Hub.Owns). Messages are sent from now on; call Run to
// receive the other servers'.
func New(rdb *redis.Client, local verify.Publisher, owns func(conn string) bool, opts Options) *Bus {
	if opts.Channel == "" {
		opts.Channel = DefaultChannel
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	b := &Bus{
		rdb: rdb, local: local, owns: owns,
		channel:    opts.Channel,
		origin:     randomID(),
		log:        opts.Log.With("channel", opts.Channel),
		warns:      limiter{every: logEvery},
		health:     healthEvery,
		maxAge:     maxAge,
		queue:      make(chan queued, queueLen),
		senderDone: make(chan struct{}),
	}
	b.closing, b.stop = context.WithCancel(context.Background())
	b.done = b.closing.Done()
	go b.send()
	return b
}

// Publish implements verify.Publisher: this server's connections get the
// outcome at once, the other servers' when Redis has passed it on. A token
// never travels this way. It does not wait for Redis.
func (b *Bus) Publish(phone string, o verify.Outcome, exceptConn string) {
	o.Token = ""
	b.local.Publish(phone, o, exceptConn)
	b.enqueue(message{Type: typePublish, Phone: phone, Except: exceptConn, O: fromOutcome(o)})
}

// Tell implements verify.Publisher: a connection of this server gets the
// outcome at once; one of another server's, through Redis. The outcome
// keeps its token. It does not wait for Redis.
func (b *Bus) Tell(conn string, o verify.Outcome) {
	if conn == "" {
		return
	}
	if b.owns(conn) {
		b.local.Tell(conn, o)
		return
	}
	b.enqueue(message{Type: typeTell, Conn: conn, O: fromOutcome(o)})
}

// enqueue hands m to the sender; a full queue (Redis slow or gone) drops it.
func (b *Bus) enqueue(m message) {
	select {
	case <-b.done:
		return // closed: this server's connections only
	default:
	}
	m.Origin = b.origin
	payload, err := json.Marshal(m)
	if err != nil || len(payload) > MaxMessage {
		b.warn("encode", "bus: event not sent to the other servers: too large or not encodable",
			"type", m.Type, "kind", verify.Kind(m.O.Kind).String(), "bytes", len(payload), "err", err)
		return
	}
	select {
	case b.queue <- queued{payload, time.Now()}:
	default:
		b.warn("queue", "bus: event not sent to the other servers: Redis is not keeping up",
			"type", m.Type, "kind", verify.Kind(m.O.Kind).String())
	}
}

// queued is a message waiting to be PUBLISHed.
type queued struct {
	payload []byte
	at      time.Time
}

// send PUBLISHes what is queued, one message at a time, so they arrive in
// order. After Close it lets what is already queued go out, for flushWait.
func (b *Bus) send() {
	defer close(b.senderDone)
	for {
		select {
		case p := <-b.queue:
			b.publish(context.Background(), p)
		case <-b.done:
			b.flush()
			return
		}
	}
}

// flush PUBLISHes what is still queued, for up to flushWait.
func (b *Bus) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), flushWait)
	defer cancel()
	for ctx.Err() == nil {
		select {
		case p := <-b.queue:
			b.publish(ctx, p)
		default:
			return
		}
	}
}

func (b *Bus) publish(ctx context.Context, q queued) {
	if time.Since(q.at) > b.maxAge {
		// Redis has been slow or gone: an event this late would mislead.
		b.warn("stale", "bus: event not sent to the other servers: queued too long", "age", time.Since(q.at).Round(time.Millisecond))
		return
	}
	// The timeout bounds the socket's reads and writes only if the client
	// was made with ContextTimeoutEnabled; otherwise its own ReadTimeout
	// and WriteTimeout do. Either way the callers do not wait: send does.
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if err := b.rdb.Publish(ctx, b.channel, q.payload).Err(); err != nil {
		b.warn("publish", "bus: Redis unreachable: the other servers were not told of an event", "err", err)
	}
}

// Run subscribes to the channel and delivers the other servers' messages
// until ctx ends or Close is called. When Redis goes away it logs once,
// and subscribes again when Redis is back. It returns nil after Close and
// ctx's error when ctx ends. Call it once.
func (b *Bus) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("bus: Run called twice")
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(b.closing, cancel)
	defer stop()

	end := func() error {
		if parent.Err() != nil {
			return parent.Err()
		}
		return nil // Close
	}
	down := false // logged that Redis is gone, not yet that it is back
	backoff := minBackoff
	for {
		subscribed, err := b.session(ctx, func() {
			if down {
				b.log.Info("bus: Redis is back: subscribed again")
				down = false
			}
		})
		if ctx.Err() != nil {
			return end()
		}
		if subscribed {
			backoff = minBackoff
		}
		if !down {
			b.log.Warn("bus: lost Redis: the other servers' events do not reach this one until it is back", "err", err)
			down = true
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return end()
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session subscribes once and delivers until the subscription fails or ctx
// ends; up is called when Redis confirms the subscription. A subscription
// that hears nothing for b.health is pinged; one that still hears nothing
// for another b.health (Redis gone without closing the connection) is
// dropped.
func (b *Bus) session(ctx context.Context, up func()) (subscribed bool, err error) {
	ps := b.rdb.Subscribe(ctx, b.channel)
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()

	var heard atomic.Bool // a reply since the last check
	var silent atomic.Bool
	watch := make(chan struct{})
	defer close(watch)
	go func() {
		t := time.NewTicker(b.health)
		defer t.Stop()
		pinged := false
		for {
			select {
			case <-watch:
				return
			case <-t.C:
			}
			switch {
			case heard.Swap(false):
				pinged = false
			case !pinged:
				pinged = true
				ps.Ping(ctx)
			default:
				silent.Store(true)
				ps.Close() // Receive returns
				return
			}
		}
	}()

	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if silent.Load() {
				err = fmt.Errorf("no answer from Redis in %v", 2*b.health)
			}
			return subscribed, err
		}
		heard.Store(true)
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && !subscribed {
				subscribed = true
				up()
			}
		case *redis.Message:
			b.handle(m.Payload)
		}
	}
}

// handle delivers one message from the channel, if it is sound and meant
// for this server.
func (b *Bus) handle(payload string) {
	if len(payload) > MaxMessage {
		b.warn("drop:size", "bus: dropped a message: too large", "bytes", len(payload))
		return
	}
	var m message
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		b.warn("drop:json", "bus: dropped a message: not a bus message", "err", err)
		return
	}
	if m.Origin == b.origin {
		return // ours: delivered locally already
	}
	if why := m.invalid(); why != "" {
		b.warn("drop:"+why, "bus: dropped a message: "+why, "type", m.Type, "origin", m.Origin)
		return
	}
	o := m.O.outcome()

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	switch m.Type {
	case typePublish:
		o.Token = "" // never by Publish, whoever sent it
		b.local.Publish(m.Phone, o, m.Except)
	case typeTell:
		if b.owns(m.Conn) {
			b.local.Tell(m.Conn, o)
		}
	}
}

// Close stops Run and delivery: once it returns, nothing more from Redis
// reaches the local publisher. Publish and Tell still reach this server's
// own connections, but no longer the other servers. Messages already
// queued get up to a second to go out. It does not close the Redis client.
func (b *Bus) Close() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.stop()
		t := time.NewTimer(flushWait + publishTimeout)
		defer t.Stop()
		select {
		case <-b.senderDone:
		case <-t.C:
		}
	})
}

// warn logs at most once per logEvery for each key, counting the rest.
func (b *Bus) warn(key, msg string, args ...any) {
	if n, ok := b.warns.allow(key, time.Now()); ok {
		if n > 0 {
			args = append(args, "suppressed", n)
		}
		b.log.Warn(msg, args...)
	}
}

// limiter lets one log line per key through each period and counts the
// ones it holds back.
type limiter struct {
	every time.Duration

	mu      sync.Mutex
	last    map[string]time.Time
	skipped map[string]int
}

func (l *limiter) allow(key string, now time.Time) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.skipped = map[string]time.Time{}, map[string]int{}
	}
	if last, seen := l.last[key]; seen && now.Sub(last) < l.every {
		l.skipped[key]++
		return 0, false
	}
	suppressed = l.skipped[key]
	l.last[key], l.skipped[key] = now, 0
	return suppressed, true
}

// message is what travels on the channel, as JSON.
type message struct {
	Origin string  `json:"origin"`           // the sending Bus
	Type   string  `json:"type"`             // "publish" or "tell"
	Phone  string  `json:"phone,omitempty"`  // publish: the number whose listeners get it
	Except string  `json:"except,omitempty"` // publish: the connection skipped
	Conn   string  `json:"conn,omitempty"`   // tell: the connection addressed
	O      outcome `json:"o"`
}

// invalid says what is wrong with a message from another Bus, or "".
func (m *message) invalid() string {
	switch {
	case m.Origin == "":
		return "no origin"
	case m.Type == typePublish && m.Phone == "":
		return "publish without a phone"
	case m.Type == typeTell && m.Conn == "":
		return "tell without a connection"
	case m.Type != typePublish && m.Type != typeTell:
		return "unknown type"
	case m.O.Kind == 0 || verify.Kind(m.O.Kind).String() == "unknown":
		return "unknown kind"
	}
	return ""
}

// outcome is verify.Outcome on the wire; durations are nanoseconds.
type outcome struct {
	Kind         uint8     `json:"kind"`
	Phone        string    `json:"phone,omitempty"`
	Channel      string    `json:"channel,omitempty"`
	ExpiresIn    int64     `json:"expires_in,omitempty"`
	ResendIn     int64     `json:"resend_in,omitempty"`
	CodeLength   int       `json:"code_length,omitempty"`
	AttemptsLeft int       `json:"attempts_left,omitempty"`
	RetryAfter   int64     `json:"retry_after,omitempty"`
	Country      string    `json:"country,omitempty"`
	VerifiedAt   time.Time `json:"verified_at,omitzero"`
	Token        string    `json:"token,omitempty"`
	Status       string    `json:"status,omitempty"`
	ErrorCode    string    `json:"error_code,omitempty"`
	Body         string    `json:"body,omitempty"`
	Code         string    `json:"code,omitempty"`
	SendTo       string    `json:"send_to,omitempty"`
	Site         string    `json:"site,omitempty"`
	AppURL       string    `json:"app_url,omitempty"`
	AppSecret    string    `json:"app_secret,omitempty"`
}

func fromOutcome(o verify.Outcome) outcome {
	return outcome{
		Kind: uint8(o.Kind), Phone: o.Phone, Channel: o.Channel,
		ExpiresIn: int64(o.ExpiresIn), ResendIn: int64(o.ResendIn),
		CodeLength: o.CodeLength, AttemptsLeft: o.AttemptsLeft,
		RetryAfter: int64(o.RetryAfter), Country: o.Country,
		VerifiedAt: o.VerifiedAt, Token: o.Token, Status: o.Status,
		ErrorCode: o.ErrorCode, Body: o.Body, Code: o.Code, SendTo: o.SendTo,
		Site: o.Site, AppURL: o.AppURL, AppSecret: o.AppSecret,
	}
}

func (w outcome) outcome() verify.Outcome {
	return verify.Outcome{
		Kind: verify.Kind(w.Kind), Phone: w.Phone, Channel: w.Channel,
		ExpiresIn: time.Duration(w.ExpiresIn), ResendIn: time.Duration(w.ResendIn),
		CodeLength: w.CodeLength, AttemptsLeft: w.AttemptsLeft,
		RetryAfter: time.Duration(w.RetryAfter), Country: w.Country,
		VerifiedAt: w.VerifiedAt, Token: w.Token, Status: w.Status,
		ErrorCode: w.ErrorCode, Body: w.Body, Code: w.Code, SendTo: w.SendTo,
		Site: w.Site, AppURL: w.AppURL, AppSecret: w.AppSecret,
	}
}

func randomID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
