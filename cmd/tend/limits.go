package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
)

// The resource bounds of issue 10 (bounded memory, bounded transactions,
// disk proportional to mail, no poison message sticking), from the config
// into each component's options.

// processorLimits fills the processor's bounds from cfg.Processing.
func processorLimits(cfg config.Config, o ingest.ProcessorOptions) ingest.ProcessorOptions {
	o.MaxAttempts = cfg.Processing.MaxAttempts
	o.RetryBackoff = cfg.Processing.RetryBackoff
	o.BatchBytes = int64(cfg.Processing.BatchBytes)
	o.MaxText = int(cfg.Processing.MaxBodyText)
	o.Workers = cfg.Processing.Workers
	if o.Workers == 0 {
		o.Workers = 1
		if cfg.Database.Driver == storage.DriverPostgres {
			o.Workers = pgWorkers
		}
	}
	return o
}

// pgWorkers is processing.workers' default on PostgreSQL: with one worker
// the after-work drained 18 msgs/s at C=16, waiting on round trips at a
// fifth of a core; four drained 33 (tend bench, 2 cores).
const pgWorkers = 4

// notifyLimits returns the executor's notification caps: max text bytes,
// and the attachment forwarding cap (negative: never forward).
func notifyLimits(cfg config.Config) (maxText int, attachMax int64) {
	attachMax = int64(cfg.Notifications.AttachMax)
	if attachMax == 0 {
		attachMax = -1
	}
	return int(cfg.Notifications.MaxText), attachMax
}

// housekeeping returns the background pruning and compaction options.
func housekeeping(cfg config.Config) storage.HousekeepingOptions {
	return storage.HousekeepingOptions{OutboxRetention: cfg.Retention.OutboxBodies, StaffRetention: cfg.Retention.NotificationBodies,
		CompactEvery: cfg.Retention.CompactEvery, ClusterWindow: cfg.Clusters.Window}
}

// processorMetrics reports each processor batch: how long its transaction
// held the database and how much it wrote, so that a long write
// transaction shows before intake suffers from it.
func processorMetrics(reg prometheus.Registerer) func(ingest.BatchStats) {
	dur := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tend_processor_transaction_seconds", Help: "Time one processor batch held its write transaction.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	written := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tend_processor_transaction_bytes", Help: "Body text written by one processor batch.",
		Buckets: prometheus.ExponentialBuckets(4096, 4, 8),
	})
	reg.MustRegister(dur, written)
	return func(s ingest.BatchStats) {
		dur.Observe(s.Duration.Seconds())
		written.Observe(float64(s.TextBytes))
	}
}
