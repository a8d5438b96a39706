package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"verifier/bus"
	"verifier/redislimit"
	"verifier/redisstore"
	"verifier/verify"
)

// cluster is what several servers on one Redis share beside the store:
// the event bus, the rate limits and the sweep lock. A nil cluster is a
// single server: everything stays in this process.
type cluster struct {
	rdb    *redis.Client
	prefix string
	id     string // this server, for the sweep lock
	bus    *bus.Bus
	log    *slog.Logger
}

// openState opens where the state lives: the Redis -store names, or the
// bbolt file. The cluster is nil for the file.
func openState(cfg listenConfig, getenv func(string) string, log *slog.Logger) (stateStore, *cluster, error) {
	if cfg.store == "" {
		store, err := openStore(cfg.dbPath, getenv, log)
		return store, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := redisstore.Open(ctx, cfg.store, redisstore.Options{Prefix: cfg.storePrefix, Log: log,
		Secret: func(s *redisstore.Store) ([]byte, error) { return tokenKey(s, getenv("VERIFIER_SECRET")) }})
	if err != nil {
		return nil, nil, err
	}
	rdb, err := redisstore.NewClient(cfg.store)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	b := make([]byte, 8)
	rand.Read(b)
	return store, &cluster{rdb: rdb, prefix: cfg.storePrefix, id: hex.EncodeToString(b), log: log}, nil
}

// publisher is local for a single server; with a cluster, events cross
// servers over the bus.
func (c *cluster) publisher(local verify.Publisher, owns func(conn string) bool) verify.Publisher {
	if c == nil {
		return local
	}
	c.bus = bus.New(c.rdb, local, owns, bus.Options{Channel: c.prefix + "events", Log: c.log})
	return c.bus
}

// limiters count in memory for a single server, in Redis for a cluster.
func (c *cluster) limiters() func(limits ...verify.Limit) verify.RateLimiter {
	if c == nil {
		return nil
	}
	return redislimit.New(c.rdb, c.prefix+"limits:")
}

// sweepLockFor is how long a server holds the sweep: a little less than
// the sweep's period, so the next second's sweep is anyone's.
const sweepLockFor = 900 * time.Millisecond

// holdsSweep reports whether this server sweeps this second: expiry is
// pushed once, by whichever server takes the lock first.
func (c *cluster) holdsSweep(ctx context.Context) bool {
	if c == nil {
		return true
	}
	ok, err := c.rdb.SetNX(ctx, c.prefix+"sweep", c.id, sweepLockFor).Result()
	return err == nil && ok
}

// run delivers other servers' events until ctx ends.
func (c *cluster) run(ctx context.Context, wg *sync.WaitGroup) {
	if c == nil || c.bus == nil {
		return
	}
	wg.Go(func() {
		if err := c.bus.Run(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("bus", "event", "bus", "reason", "bus_stopped", "err", err)
		}
	})
}

func (c *cluster) close() {
	if c == nil {
		return
	}
	if c.bus != nil {
		c.bus.Close()
	}
	c.rdb.Close()
}
