package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestBenchCommand runs `tend bench` as a user would, small: every
// figure is filled, the relay sink got what tend marked sent (bench
// itself fails otherwise), and no round left work behind.
func TestBenchCommand(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			args := []string{"bench", "--messages", "30", "--concurrency", "1,3", "--json", "--quiet"}
			if backend == "postgres" {
				dsn := os.Getenv(storagetest.PostgresEnv)
				if dsn == "" {
					testenv.SkipOrFail(t, storagetest.PostgresEnv+" is not set")
				}
				args = append(args, "--dsn", dsn) // bench makes its own temporary database there
			}
			out, err := exec.Command(tendBinary(t), args...).Output()
			if err != nil {
				t.Fatalf("tend bench: %v\n%s", err, out)
			}
			var rep struct {
				Backend string
				Runs    []benchRun
			}
			if err := json.Unmarshal(out, &rep); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if rep.Backend != backend || len(rep.Runs) != 2 {
				t.Fatalf("report %+v", rep)
			}
			for _, r := range rep.Runs {
				if r.Messages != 30 || r.TicketsStored == 0 || r.Relayed < 30 || r.IngestRate <= 0 || r.DrainedRate <= 0 ||
					r.DrainedRate > r.IngestRate || r.CPUms <= 0 || r.PeakRSSMiB <= 0 || r.P99MS < r.P50MS ||
					r.QueueP95MS <= 0 || r.TicketP95MS <= 0 || r.ThreadingP95 <= 0 {
					t.Errorf("C=%d: %+v", r.Concurrency, r)
				}
			}
		})
	}
}
