package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestBenchCommand runs `tend bench` as a user would, small: every
// figure is filled, the relay sink got what tend marked sent (bench
// itself fails otherwise), no round left work behind, and each round's
// server wrote its CPU profile.
func TestBenchCommand(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var rep struct {
				Backend string
				Runs    []benchRun
			}
			// A profile directory that does not exist yet is made.
			prof := filepath.Join(t.TempDir(), "profiles", "today")
			runBench(t, backend, &rep, "--messages", "30", "--concurrency", "1,3", "--quiet", "--cpuprofile", prof)
			if rep.Backend != backend || len(rep.Runs) != 2 {
				t.Fatalf("report %+v", rep)
			}
			for _, c := range []string{"1", "3"} {
				if fi, err := os.Stat(filepath.Join(prof, "cpu-"+backend+"-c"+c+".pprof")); err != nil || fi.Size() == 0 {
					t.Errorf("CPU profile of C=%s: %v", c, err)
				}
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

// TestBenchBurst runs `tend bench --burst` small: the large messages and
// the small mail beside them are answered, the round drains, and every
// figure is filled.
func TestBenchBurst(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var rep struct {
				Backend string
				Burst   burstRun
			}
			runBench(t, backend, &rep, "--burst", "2", "--burst-mib", "1", "--drain-timeout", "2m")
			r := rep.Burst
			if rep.Backend != backend || r.Large != 2 || r.LargeMiB != 1 || r.SmallMsgs == 0 || r.SmallP99MS <= 0 || r.Refused != 0 ||
				!r.Drained || r.DoorPeakRSSMiB <= 0 || r.PeakRSSMiB < r.DoorPeakRSSMiB || r.CPUs <= 0 || r.DiskRatio <= 0 {
				t.Errorf("%+v", rep)
			}
		})
	}
}

// TestBenchBlast runs `tend bench --blast` with the shared load generator
// (../shared/bench) on a small generated corpus: the round sends what
// blast sent and drains.
func TestBenchBlast(t *testing.T) {
	src := filepath.Join("..", "..", "..", "shared", "bench", "blast")
	if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
		testenv.SkipOrFail(t, "the shared load generator is not beside the repository: "+err.Error())
	}
	bin, corpus := t.TempDir(), t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "./cmd/blast", "./cmd/gencorpus")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build blast: %v\n%s", err, out)
	}
	if out, err := exec.Command(filepath.Join(bin, "gencorpus"), "-dir", corpus, "-n", "20").CombinedOutput(); err != nil {
		t.Fatalf("gencorpus: %v\n%s", err, out)
	}
	var rep struct{ Runs []benchRun }
	runBench(t, "sqlite", &rep, "--blast", filepath.Join(bin, "blast"), "--corpus", corpus, "--messages", "100", "--concurrency", "2", "--quiet")
	// 100 asked for, the corpus holds 20: blast sends each file once.
	if len(rep.Runs) != 1 || rep.Runs[0].Messages != 20 || rep.Runs[0].Relayed < 20 || rep.Runs[0].P99MS <= 0 || rep.Runs[0].DrainedRate <= 0 {
		t.Errorf("%+v", rep)
	}
}

// runBench runs `tend bench ARGS --json` on backend and decodes its
// report into rep.
func runBench(t *testing.T, backend string, rep any, args ...string) {
	t.Helper()
	args = append([]string{"bench", "--json"}, args...)
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
	if err := json.Unmarshal(out, rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
