package main

import (
	"testing"
	"time"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/mail/ingest"
)

// TestLimitsReachTheComponents loads every resource key of issue 10 with
// a value other than its default and checks that each reaches the option
// of the component that enforces it (the components' own tests show the
// options take effect).
func TestLimitsReachTheComponents(t *testing.T) {
	cfg, err := config.Parse("tend.yaml", []byte(`
processing: {max_attempts: 7, retry_backoff: 2m, batch_bytes: 3MiB, max_body_text: 200KiB, workers: 3}
notifications: {max_text: 10KiB, attach_max: 5MiB}
retention: {outbox_bodies: 72h, notification_bodies: 2h, compact_every: 10m}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := processorLimits(cfg, ingest.ProcessorOptions{Owner: "kept"})
	if p.MaxAttempts != 7 || p.RetryBackoff != 2*time.Minute || p.BatchBytes != 3<<20 || p.MaxText != 200<<10 || p.Workers != 3 || p.Owner != "kept" {
		t.Errorf("processor options = %+v", p)
	}
	// workers 0 chooses by database.
	for driver, want := range map[string]int{"sqlite": 1, "postgres": pgWorkers} {
		c := config.Default()
		c.Database.Driver = driver
		if got := processorLimits(c, ingest.ProcessorOptions{}).Workers; got != want {
			t.Errorf("%s: %d workers by default, want %d", driver, got, want)
		}
	}
	text, attach := notifyLimits(cfg)
	if text != 10<<10 || attach != 5<<20 {
		t.Errorf("notification caps = %d, %d", text, attach)
	}
	h := housekeeping(cfg)
	if h.OutboxRetention != 72*time.Hour || h.StaffRetention != 2*time.Hour || h.CompactEvery != 10*time.Minute {
		t.Errorf("housekeeping = %+v", h)
	}
	if !senderOptions(cfg).KeepStaffBodies {
		t.Error("retention.notification_bodies 2h: the sender drops staff mail's bytes at relay")
	}
	if senderOptions(config.Default()).KeepStaffBodies {
		t.Error("by default the sender keeps staff mail's bytes after relay")
	}
	never, err := config.Parse("tend.yaml", []byte("notifications: {attach_max: 0}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, attach := notifyLimits(never); attach >= 0 {
		t.Errorf("attach_max 0 gives %d, want never (negative)", attach)
	}
}
