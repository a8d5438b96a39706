// Package hub speaks WebSocket: it upgrades connections (checking their
// Origin), runs one reader and one writer per connection, and fans opaque
// frames out to the connections subscribed to a topic. It knows nothing of
// what the frames mean.
package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"verifier/clientip"
)

// Handler answers the frames a connection sends. It runs on that
// connection's reader goroutine, so a slow call delays that connection only.
type Handler interface {
	HandleFrame(ctx context.Context, c *Conn, frame []byte)
}

// Config tunes the hub. Zero fields take the defaults.
type Config struct {
	AllowedOrigins []string // extra origins, e.g. "https://shop.example"
	// ClientAddr names a request's client for the per-client limits; nil
	// takes the TCP peer's address.
	ClientAddr    func(*http.Request) string
	MaxFrameBytes int64         // larger frames close the connection with 1009
	SendQueue     int           // frames buffered per connection before it is dropped
	WriteWait     time.Duration // deadline of each write
	PongWait      time.Duration // how long a silent peer is kept
	FramesPerSec  float64       // sustained frames a client may send; a flood is closed with 1008
	FrameBurst    int
	Limits        Limits
}

// Limits bound what clients may hold open. Zero means no bound.
type Limits struct {
	Max         int           // open connections; more are refused with 503
	PerClient   int           // open connections from one client address; more get 429
	IdleTimeout time.Duration // a connection whose client sent nothing this long is closed
	// HandshakeTimeout bounds the upgrade's response; the http.Server's
	// ReadHeaderTimeout bounds the request before it.
	HandshakeTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = 4096
	}
	if c.SendQueue == 0 {
		c.SendQueue = 16
	}
	if c.WriteWait == 0 {
		c.WriteWait = 10 * time.Second
	}
	if c.PongWait == 0 {
		c.PongWait = 60 * time.Second
	}
	if c.FramesPerSec == 0 {
		c.FramesPerSec = 10
	}
	if c.FrameBurst == 0 {
		c.FrameBurst = 30
	}
}

// Hub owns the set of connections and their subscriptions, under a lock:
// a frame's handler subscribes, publishes and answers on its own goroutine,
// with no hand-off to another (each hand-off was a wait in a run queue
// under load).
type Hub struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader
	allowed  map[string]bool

	state   hubState
	stopped chan struct{} // closed by Shutdown once every connection was told

	ctx      context.Context // cancelled at shutdown, handed to the Handler
	cancel   context.CancelFunc
	idPrefix string // random per hub, so an id stored before a restart names no new connection
	nextID   atomic.Uint64
	conns    sync.WaitGroup // readers still running
	shutOnce sync.Once

	mu        sync.Mutex // guards open and perClient
	open      int
	perClient map[string]int
}

// Render makes a frame for connections tagged tag (see Conn.SetTag). It
// runs on the publisher's goroutine, once per tag among the listeners.
type Render func(tag string) []byte

// New returns a running hub.
func New(cfg Config, log *slog.Logger) *Hub {
	cfg.setDefaults()
	if cfg.ClientAddr == nil {
		cfg.ClientAddr = clientip.New(nil).Of
	}
	ctx, cancel := context.WithCancel(context.Background())
	hb := &Hub{
		cfg: cfg, log: log,
		allowed:   map[string]bool{},
		perClient: map[string]int{},
		state:     hubState{conns: map[*Conn]bool{}, byID: map[string]*Conn{}, topics: map[string]map[*Conn]bool{}},
		idPrefix:  randomPrefix(),
		stopped:   make(chan struct{}),
		ctx:       ctx, cancel: cancel,
	}
	for _, o := range cfg.AllowedOrigins {
		hb.allowed[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	hb.upgrader = websocket.Upgrader{
		ReadBufferSize:   512, // frames are small; a bigger one is read in pieces
		WriteBufferSize:  1024,
		WriteBufferPool:  &sync.Pool{},
		CheckOrigin:      hb.OriginAllowed,
		HandshakeTimeout: cfg.Limits.HandshakeTimeout,
	}
	go hb.pinger()
	return hb
}

// OriginAllowed lets in the server's own origin, the allow-list, and clients
// that send no Origin at all (not browsers, so not a cross-site risk).
func (h *Hub) OriginAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return h.allowed[strings.ToLower(origin)]
}

// pinger pings every connection on one ticker, rather than a timer per
// socket, until Shutdown.
func (h *Hub) pinger() {
	ping := time.NewTicker(h.cfg.PongWait * 9 / 10)
	defer ping.Stop()
	for {
		select {
		case now := <-ping.C:
			h.ping(now, h.cfg.Limits.IdleTimeout)
		case <-h.stopped:
			return
		}
	}
}

// hubState is the set of connections and their topics. Its lock is held
// only to read or change the maps: never while a frame is rendered or
// written.
type hubState struct {
	mu sync.Mutex
	// closing is set when Shutdown begins, before it lists the connections
	// to close: add reads it under mu, so a connection is either on that
	// list or refused.
	closing atomic.Bool
	conns   map[*Conn]bool
	byID    map[string]*Conn
	topics  map[string]map[*Conn]bool
}

// add counts a new connection in, unless the hub is shutting down.
func (st *hubState) add(c *Conn) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closing.Load() {
		return false
	}
	st.conns[c], st.byID[c.id] = true, c
	return true
}

func (st *hubState) remove(c *Conn) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.conns[c] {
		st.leave(c)
		delete(st.conns, c)
		delete(st.byID, c.id)
	}
}

func (st *hubState) leave(c *Conn) {
	if subs := st.topics[c.topic]; subs != nil {
		delete(subs, c)
		if len(subs) == 0 {
			delete(st.topics, c.topic)
		}
	}
	c.topic = ""
}

// join moves a connection to topic; one that has gone is ignored.
func (st *hubState) join(c *Conn, topic string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.conns[c] {
		return
	}
	st.leave(c)
	c.topic = topic
	if st.topics[topic] == nil {
		st.topics[topic] = map[*Conn]bool{}
	}
	st.topics[topic][c] = true
}

// listeners are the connections on topic but exclude.
func (st *hubState) listeners(topic, exclude string) []*Conn {
	st.mu.Lock()
	defer st.mu.Unlock()
	subs := st.topics[topic]
	if len(subs) == 0 {
		return nil
	}
	out := make([]*Conn, 0, len(subs))
	for c := range subs {
		if c.id != exclude {
			out = append(out, c)
		}
	}
	return out
}

func (st *hubState) conn(id string) *Conn {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.byID[id]
}

// all lists every connection.
func (st *hubState) all() []*Conn {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]*Conn, 0, len(st.conns))
	for c := range st.conns {
		out = append(out, c)
	}
	return out
}

// ping queues a ping for every connection and closes the ones whose
// client has been silent longer than idle (0: never).
func (h *Hub) ping(now time.Time, idle time.Duration) {
	for _, c := range h.state.all() {
		if idle > 0 && now.Sub(time.Unix(0, c.lastFrame.Load())) > idle {
			go c.closeWith(websocket.CloseNormalClosure, "idle timeout")
			continue
		}
		c.enqueue(nil, false)
	}
}

// closeAll tells every connection the server is going away, in parallel.
func (h *Hub) closeAll() {
	var wg sync.WaitGroup
	for _, c := range h.state.all() {
		wg.Go(func() { c.closeWith(websocket.CloseGoingAway, "server shutting down") })
	}
	wg.Wait()
}

// deliver renders a frame once per tag among the listeners and queues it
// for each of them.
func deliver(listeners []*Conn, render Render) {
	var rendered map[string][]byte // few tags: one per language in use
	for _, c := range listeners {
		tag := c.Tag()
		frame, ok := rendered[tag]
		if !ok {
			frame = render(tag)
			if rendered == nil {
				rendered = map[string][]byte{}
			}
			rendered[tag] = frame
		}
		c.Send(frame)
	}
}

// Endpoint returns the WebSocket endpoint: it upgrades requests and hands
// every frame a connection sends to handler.
func (h *Hub) Endpoint(handler Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, handler) })
}

// serve upgrades the request and starts serving the connection.
func (h *Hub) serve(w http.ResponseWriter, r *http.Request, handler Handler) {
	if h.state.closing.Load() {
		refuse(w, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	client := h.cfg.ClientAddr(r)
	if status, why := h.admit(client); status != 0 {
		h.log.Warn("connection refused", "event", "connect", "reason", why, "client", client)
		refuse(w, status, why)
		return
	}
	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		h.release(client)
		return // the upgrader has answered (403 for a foreign origin)
	}
	c := h.newConn(ws, client, r.Header.Get("Origin"), handler)
	// Counted before it is registered, so Shutdown, which closes what is
	// registered, always waits for this reader too.
	h.conns.Add(1)
	if !h.state.add(c) {
		ws.Close()
		h.release(client)
		h.conns.Done()
		return
	}
	// The handler returns at once, so net/http lets go of its buffers and
	// goroutine: an idle socket then costs only its two pumps.
	go func() {
		defer h.conns.Done()
		defer h.release(client)
		c.readPump()
	}()
}

func (h *Hub) newConn(ws *websocket.Conn, client, origin string, handler Handler) *Conn {
	c := &Conn{
		id:      h.idPrefix + strconv.FormatUint(h.nextID.Add(1), 10),
		ws:      ws,
		hub:     h,
		send:    make(chan []byte, h.cfg.SendQueue),
		done:    make(chan struct{}),
		client:  client,
		origin:  origin,
		handler: handler,
	}
	c.lastFrame.Store(time.Now().UnixNano())
	return c
}

// admit counts a new connection in, or says why it may not open.
func (h *Hub) admit(client string) (status int, why string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if lim := h.cfg.Limits.Max; lim > 0 && h.open >= lim {
		return http.StatusServiceUnavailable, "too many connections"
	}
	if lim := h.cfg.Limits.PerClient; lim > 0 && h.perClient[client] >= lim {
		return http.StatusTooManyRequests, "too many connections from your address"
	}
	h.open++
	h.perClient[client]++
	return 0, ""
}

func (h *Hub) release(client string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open--
	if h.perClient[client]--; h.perClient[client] <= 0 {
		delete(h.perClient, client)
	}
}

// Open is the number of connections open now.
func (h *Hub) Open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.open
}

func refuse(w http.ResponseWriter, status int, why string) {
	w.Header().Set("Content-Type", "application/json")
	if status != http.StatusForbidden {
		w.Header().Set("Retry-After", "5")
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"error\":%q}\n", why)
}

// Publish queues a frame, rendered for each listener's tag, for every
// connection subscribed to topic except the one whose ID is exclude.
func (h *Hub) Publish(topic string, render Render, exclude string) {
	deliver(h.state.listeners(topic, exclude), render)
}

// SendTo queues a frame, rendered for its tag, for the connection whose ID
// is conn, if it is still open.
func (h *Hub) SendTo(conn string, render Render) {
	if c := h.state.conn(conn); c != nil {
		c.Send(render(c.Tag()))
	}
}

// Owns reports whether conn is an id this hub handed out: it carries the
// hub's random prefix. It says nothing of whether that connection is still
// open (SendTo drops a frame for one that is not). A server sharing a bus
// with others uses it to keep only the messages meant for its connections.
func (h *Hub) Owns(conn string) bool {
	return len(conn) > len(h.idPrefix) && strings.HasPrefix(conn, h.idPrefix)
}

func randomPrefix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "c" + hex.EncodeToString(b) + "."
}

// Shutdown refuses new connections, closes every open one with 1001 (going
// away) and waits, until ctx ends, for their handlers to return.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.shutOnce.Do(func() {
		h.state.closing.Store(true)
		h.closeAll()
		close(h.stopped)
		h.cancel()
	})
	finished := make(chan struct{})
	go func() { h.conns.Wait(); close(finished) }()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
