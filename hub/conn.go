package hub

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// Conn is one browser connection.
type Conn struct {
	id      string
	ws      *websocket.Conn
	hub     *Hub
	send    chan []byte   // frames to write; nil is a ping
	writing atomic.Bool   // a writeLoop runs
	done    chan struct{} // closed once the connection is finished
	once    sync.Once
	client  string
	origin  string
	handler Handler
	tag     atomic.Pointer[string]
	topic   string // guarded by the hub's state lock
	// lastFrame is when the client last sent a frame (Unix nanoseconds).
	lastFrame atomic.Int64
}

// ID names the connection uniquely within the process.
func (c *Conn) ID() string { return c.id }

// ClientAddr is the peer's IP address.
func (c *Conn) ClientAddr() string { return c.client }

// Origin is the handshake's Origin header ("" when none was sent).
func (c *Conn) Origin() string { return c.origin }

// SetTag labels the connection for published frames: a Render is asked for
// one frame per tag (the server tags each connection with its language).
func (c *Conn) SetTag(tag string) {
	if old := c.tag.Load(); old == nil || *old != tag {
		c.tag.Store(&tag)
	}
}

// Tag is the connection's label, "" until SetTag.
func (c *Conn) Tag() string {
	if t := c.tag.Load(); t != nil {
		return *t
	}
	return ""
}

// Send queues a frame without waiting. A connection whose queue is full is
// too slow to keep: it is dropped rather than allowed to hold anyone up.
func (c *Conn) Send(frame []byte) {
	c.enqueue(frame, true)
}

// Reply answers the connection's own frame: its handler calls it, on the
// connection's reader goroutine. With no writer running it writes the frame
// at once, on that goroutine, rather than start a writer for it; a slow
// peer then holds up only its own reader. Otherwise it queues, as Send.
func (c *Conn) Reply(frame []byte) {
	if !c.writing.CompareAndSwap(false, true) {
		c.enqueue(frame, true)
		return
	}
	if c.write(frame) {
		c.writeLoop() // what was queued meanwhile
	}
}

// enqueue puts a frame (nil: a ping) in the queue and makes sure a writer
// runs. A full queue drops the connection, or for a ping, the ping.
func (c *Conn) enqueue(frame []byte, dropIfFull bool) {
	select {
	case <-c.done:
		return
	case c.send <- frame:
	default:
		if dropIfFull {
			c.hub.log.Warn("dropping slow connection", "event", "drop", "reason", "send_queue_full", "conn", c.id)
			c.finish()
		}
		return
	}
	if c.writing.CompareAndSwap(false, true) {
		go c.writeLoop()
	}
}

// Subscribe makes the connection hear topic's frames instead of any topic
// it heard before.
func (c *Conn) Subscribe(topic string) { c.hub.state.join(c, topic) }

func (c *Conn) finish() {
	c.once.Do(func() {
		close(c.done)
		c.ws.Close()
	})
}

// closeWith tells the peer why and closes. WriteControl may run beside the
// writer goroutine; gorilla serialises them.
func (c *Conn) closeWith(code int, text string) {
	msg := websocket.FormatCloseMessage(code, text)
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	c.finish()
}

func (c *Conn) readPump() {
	defer func() {
		c.finish()
		c.hub.state.remove(c)
	}()
	wait := c.hub.cfg.PongWait
	c.ws.SetReadLimit(c.hub.cfg.MaxFrameBytes) // gorilla answers 1009 above it
	_ = c.ws.SetReadDeadline(time.Now().Add(wait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(wait))
	})
	flood := rate.NewLimiter(rate.Limit(c.hub.cfg.FramesPerSec), c.hub.cfg.FrameBurst)
	for grown := false; ; grown = true {
		_, frame, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		if !flood.Allow() {
			msg := websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "too many messages")
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			return
		}
		// Any frame proves the peer alive, as a pong does.
		now := time.Now()
		_ = c.ws.SetReadDeadline(now.Add(wait))
		c.lastFrame.Store(now.UnixNano())
		if !grown {
			roomForHandlers()
		}
		c.handler.HandleFrame(c.hub.ctx, c, frame)
	}
}

// writeLoop is the connection's only writer. It runs while frames are
// queued and then ends, so an idle socket keeps no writer goroutine.
func (c *Conn) writeLoop() {
	for {
		select {
		case frame := <-c.send:
			if !c.write(frame) {
				return
			}
		case <-c.done:
			return
		default:
			c.writing.Store(false)
			// A frame queued between the empty check and the store found
			// writing still true and started no writer: take it.
			if len(c.send) == 0 || !c.writing.CompareAndSwap(false, true) {
				return
			}
		}
	}
}

// write writes one frame (nil: a ping) as the connection's writer, and
// finishes the connection if that fails.
func (c *Conn) write(frame []byte) bool {
	kind := websocket.TextMessage
	if frame == nil {
		kind = websocket.PingMessage
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteWait))
	if err := c.ws.WriteMessage(kind, frame); err != nil {
		c.finish()
		return false
	}
	return true
}

// roomForHandlers grows the calling goroutine's stack to 16 KB in one step.
// A reader starts with a small stack and its handler (JSON, the rules, the
// store, a Twilio POST) needs more: grown by doubling deep inside the
// handler, each copy walks and adjusts every frame on the stack, which with
// a new connection per flow was about 5% of the server's CPU under load
// (1.8% after this). Grown once here, at the first frame, the copy is of a
// shallow stack; an idle connection that never sends a frame keeps its
// small one. 16 KB holds a whole flow (32 KB bought nothing more and cost
// memory). The same trick as CockroachDB's growstack.
//
//go:noinline
func roomForHandlers() {
	var room [12 << 10]byte
	keep(room[:])
}

//go:noinline
func keep([]byte) {}
