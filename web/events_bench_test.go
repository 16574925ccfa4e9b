package web

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/web/live"
)

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLiveFanout measures the CPU one change costs with 1 and with
// 100 viewers connected to /api/events over real HTTP: the hub encodes a
// change once, so the extra viewers add a channel send and a socket write
// each, and no query. Reported as cpu-µs/event (server and clients in one
// process, so the figure includes the clients' reading) and µs/viewer.
func BenchmarkLiveFanout(b *testing.B) {
	for _, viewers := range []int{1, 100} {
		b.Run(strconv.Itoa(viewers)+"-viewers", func(b *testing.B) {
			hub := live.New(live.Options{Buffer: 1024})
			srv, err := New(benchStore{}, Options{Live: hub, LiveHeartbeat: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var got sync.WaitGroup
			counts := make([]chan struct{}, viewers)
			for i := range viewers {
				counts[i] = make(chan struct{}, 1<<16)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/events", nil)
				req.Header.Set("Authorization", "Bearer bench")
				res, err := http.DefaultClient.Do(req)
				if err != nil || res.StatusCode != http.StatusOK {
					b.Fatalf("viewer %d: %v %v", i, err, res)
				}
				// The stream's first frame comes after it subscribed.
				sc := bufio.NewScanner(res.Body)
				for sc.Scan() && sc.Text() != "" {
				}
				go func(ch chan struct{}) {
					for sc.Scan() {
						if strings.HasPrefix(sc.Text(), "event: ticket") {
							ch <- struct{}{}
						}
					}
				}(counts[i])
			}
			if n := hub.Stats().Subscribers; n != viewers {
				b.Fatalf("%d subscribers, want %d", n, viewers)
			}
			change := []storage.Change{{Ticket: 42, Kinds: []string{storage.ChangeMessage}, Inboxes: []string{support}}}
			b.ResetTimer()
			start := cpuTime(b)
			for range b.N {
				hub.Publish(change)
				got.Add(viewers)
				for _, ch := range counts {
					<-ch
					got.Done()
				}
			}
			got.Wait()
			cpu := cpuTime(b) - start
			b.StopTimer()
			if st := hub.Stats(); st.Dropped != 0 {
				b.Fatalf("viewers dropped: %+v", st)
			}
			per := float64(cpu.Microseconds()) / float64(b.N)
			b.ReportMetric(per, "cpu-µs/event")
			b.ReportMetric(per/float64(viewers), "cpu-µs/viewer")
		})
	}
}

// benchStore answers the token check and nothing else: the benchmark
// measures the fan-out, not the database.
type benchStore struct{ Store }

func (benchStore) CheckToken(context.Context, string) (storage.APIToken, error) {
	return storage.APIToken{Name: "bench", Role: storage.RoleLead}, nil
}

// BenchmarkQueueLiveTabs measures what one change costs the server when
// that many queue tabs are open and each fetches the queue's live part
// again, as live.js does on every event: with the hub, tabs that ask
// together share one render; "unshared" is the same without the hub (each
// tab runs the queue's queries, as the former poll did). Reported as
// cpu-ms/change.
func BenchmarkQueueLiveTabs(b *testing.B) {
	for _, tc := range []struct {
		name   string
		tabs   int
		shared bool
	}{{"1-tab", 1, true}, {"100-tabs", 100, true}, {"100-tabs-unshared", 100, false}} {
		b.Run(tc.name, func(b *testing.B) {
			hub := live.New(live.Options{})
			e := newEnv(b, "sqlite", func(o *Options) {
				if tc.shared {
					o.Live = hub
				}
			})
			for i := range 60 {
				e.deliver(mail("c"+strconv.Itoa(i)+"@example.com", "bq"+strconv.Itoa(i)+"@example.com", "Question "+strconv.Itoa(i), "help"))
			}
			ts := e.serve()
			br := newBrowser(b, ts.URL)
			br.login("lena@acme.test", leadPW)
			fetch := func() {
				req, _ := http.NewRequest(http.MethodGet, ts.URL+"/queue/live", nil)
				res, err := br.c.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			b.ResetTimer()
			start := cpuTime(b)
			for i := range b.N {
				e.setTicket(1, "priority = '"+[]string{"high", "normal"}[i%2]+"'")
				hub.Publish([]storage.Change{{Ticket: 1, Kinds: []string{storage.ChangeTicket}, Inboxes: []string{support}}})
				var wg sync.WaitGroup
				for range tc.tabs {
					wg.Add(1)
					go func() { defer wg.Done(); fetch() }()
				}
				wg.Wait()
			}
			cpu := cpuTime(b) - start
			b.StopTimer()
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/change")
		})
	}
}
