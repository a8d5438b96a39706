// Package metrics counts what the server does, for Prometheus at /metrics.
// Its methods are the small observer interfaces the other packages declare.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics owns its own registry: no global state, so two servers in one
// test process do not share counters.
type Metrics struct {
	reg         *prometheus.Registry
	eventsIn    *prometheus.CounterVec
	answers     *prometheus.CounterVec
	sms         *prometheus.CounterVec
	delivery    *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	verifyTime  prometheus.Histogram
	storeWrite  prometheus.Histogram
}

// New registers every metric, plus the Go runtime's and the process's.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		eventsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifier_events_in_total", Help: "Frames received from browsers, by event (bad_frame for undecodable ones).",
		}, []string{"event"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifier_answers_total", Help: "Events answered to the asking connection, by event and reason.",
		}, []string{"event", "reason"}),
		sms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifier_sms_total", Help: "Texts handed to the provider, by result (sent, failed) and provider error code.",
		}, []string{"result", "code"}),
		delivery: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifier_sms_status_total", Help: "Delivery reports received from the provider, by status.",
		}, []string{"status"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifier_rate_limited_total", Help: "Sends refused by a rate limit, by limit.",
		}, []string{"limit"}),
		verifyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "verifier_verification_seconds", Help: "From the code's sending to the number's verification.",
			Buckets: []float64{5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600},
		}),
		storeWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "verifier_store_write_seconds", Help: "Durable store writes, queueing and fsync included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12), // 0.5 ms to 1 s
		}),
	}
	m.reg.MustRegister(m.eventsIn, m.answers, m.sms, m.delivery, m.rateLimited, m.verifyTime, m.storeWrite,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// WatchConnections reports open() as the open connections gauge.
func (m *Metrics) WatchConnections(open func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "verifier_connections_open", Help: "WebSocket connections open now.",
	}, func() float64 { return float64(open()) }))
}

// EventIn counts a frame received.
func (m *Metrics) EventIn(event string) { m.eventsIn.WithLabelValues(event).Inc() }

// Answer counts an event answered to its asker.
func (m *Metrics) Answer(event, reason string) { m.answers.WithLabelValues(event, reason).Inc() }

// SMS counts a text: code "" is sent, anything else failed with that code.
func (m *Metrics) SMS(code string) {
	if code == "" {
		m.sms.WithLabelValues("sent", "").Inc()
		return
	}
	m.sms.WithLabelValues("failed", code).Inc()
}

// Delivery counts a delivery report.
func (m *Metrics) Delivery(status string) { m.delivery.WithLabelValues(status).Inc() }

// RateLimited counts a send refused by limit.
func (m *Metrics) RateLimited(limit string) { m.rateLimited.WithLabelValues(limit).Inc() }

// Verified records how long a verification took from the code's sending.
func (m *Metrics) Verified(d time.Duration) { m.verifyTime.Observe(d.Seconds()) }

// StoreWrite records one durable write's latency.
func (m *Metrics) StoreWrite(d time.Duration) { m.storeWrite.Observe(d.Seconds()) }
