package web

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
	"github.com/tendhq/tend/web/live"
)

// CountSource gives the totals reported at scrape time.
type CountSource interface {
	Counts(ctx context.Context) (storage.Counts, error)
}

// Metrics are tend's Prometheus metrics. They implement the ingest path's
// Observer and the SMTP door's rejection hook.
type Metrics struct {
	received *prometheus.CounterVec
	rejected *prometheus.CounterVec
	failed   prometheus.Counter
	latency  prometheus.Histogram
}

// NewMetrics registers tend's metrics on reg. Ticket counts by state are
// read from src when scraped, so every replica reports the shared truth.
func NewMetrics(reg prometheus.Registerer, src CountSource) *Metrics {
	m := &Metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tend_messages_received_total", Help: "Messages accepted and stored, by outcome (new_ticket, appended, no_ticket, duplicate).",
		}, []string{"outcome"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tend_messages_rejected_total", Help: "Messages or recipients refused at the door, by reason.",
		}, []string{"reason"}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tend_ingest_failures_total", Help: "Messages that could not be stored (answered 451 / left unflagged).",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tend_ingest_seconds", Help: "Time from the end of DATA to the durable commit.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
		}),
	}
	reg.MustRegister(m.received, m.rejected, m.failed, m.latency, &stateCollector{src: src, desc: prometheus.NewDesc(
		"tend_tickets", "Tickets by state.", []string{"state"}, nil)})
	return m
}

// Delivered counts a stored message.
func (m *Metrics) Delivered(d storage.Delivered, took time.Duration) {
	outcome := "appended"
	switch {
	case d.Duplicate:
		outcome = "duplicate"
	case d.NewTicket:
		outcome = "new_ticket"
	case d.Ticket == 0:
		outcome = "no_ticket"
	}
	m.received.WithLabelValues(outcome).Inc()
	m.latency.Observe(took.Seconds())
}

// Failed counts a message that could not be stored.
func (m *Metrics) Failed(error) { m.failed.Inc() }

// Rejected counts a refusal at the door.
func (m *Metrics) Rejected(reason string) { m.rejected.WithLabelValues(reason).Inc() }

type stateCollector struct {
	src  CountSource
	desc *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.src.Counts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, st := range vocab.States() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts.TicketsByState[st]), string(st))
	}
}

// SatisfactionSource gives the satisfaction figures at scrape time; a
// CountSource that is one (the store) also reports them.
type SatisfactionSource interface {
	SatisfactionStats(ctx context.Context) (storage.SatisfactionStats, error)
}

// RegisterSatisfaction reports tend_satisfaction_asked (thank-you mails
// that asked "how did we do?") and tend_satisfaction_ratings by score.
func RegisterSatisfaction(reg prometheus.Registerer, src SatisfactionSource) {
	reg.MustRegister(&satisfactionCollector{src: src,
		asked:   prometheus.NewDesc("tend_satisfaction_asked", "Tickets on which the satisfaction question was asked.", nil, nil),
		ratings: prometheus.NewDesc("tend_satisfaction_ratings", "Satisfaction answers, by score (1 bad .. 5 great).", []string{"score"}, nil)})
}

type satisfactionCollector struct {
	src            SatisfactionSource
	asked, ratings *prometheus.Desc
}

func (c *satisfactionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.asked; ch <- c.ratings }

func (c *satisfactionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.src.SatisfactionStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.asked, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.asked, prometheus.GaugeValue, float64(st.Asked))
	for score := 1; score <= 5; score++ {
		ch <- prometheus.MustNewConstMetric(c.ratings, prometheus.GaugeValue, float64(st.ByScore[score]), strconv.Itoa(score))
	}
}

// RegisterLive exports the live hub's figures: open event streams, events
// handed to them, and streams dropped for falling behind.
func RegisterLive(reg prometheus.Registerer, h *live.Hub) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tend_live_streams", Help: "Open /api/events streams (queue and ticket pages, scripts)."},
			func() float64 { return float64(h.Stats().Subscribers) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tend_live_events_sent_total", Help: "Change events handed to open streams."},
			func() float64 { return float64(h.Stats().Sent) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tend_live_streams_dropped_total", Help: "Streams dropped because their viewer fell behind (the browser reconnects and catches up)."},
			func() float64 { return float64(h.Stats().Dropped) }),
	)
}
