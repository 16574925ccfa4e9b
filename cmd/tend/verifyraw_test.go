package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyRawCommand runs tend verify-raw beside a running tend serve:
// a clean store exits 0 with its summary; on SQLite a byte flipped in a
// segment file makes it exit 1 and name the file, the offset and the
// message.
func TestVerifyRawCommand(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			cfg := writeConfig(t, dir, backend, "")
			p := startTend(t, cfg)
			for _, id := range []string{"vr1", "vr2", "vr3"} {
				msg := mailText("ann@example.com", "support@acme.test", "Question "+id, id+"@example.com", "", "BODY-OF-"+id)
				if err := sendMail(p.SMTPAddr, "ann@example.com", []string{"support@acme.test"}, msg); err != nil {
					t.Fatalf("send %s: %v", id, err)
				}
			}
			tok := p.token("lead")
			waitFor(t, "three tickets", 30e9, func() bool {
				var list ticketList
				p.getJSON(tok, "/api/tickets?state=all", &list)
				return len(list.Tickets) >= 3
			})
			var out, errb bytes.Buffer
			if code := run(ctx, []string{"verify-raw", "--config", cfg}, nil, &out, &errb); code != 0 {
				t.Fatalf("verify-raw on a clean store: exit %d: %s %s", code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), "raw mail: 3 records") || !strings.Contains(out.String(), "; 0 bad;") {
				t.Errorf("summary: %q", out.String())
			}
			if backend != "sqlite" {
				return
			}
			seg := filepath.Join(dir, "data", "raw", "seg-00000001.dat")
			b, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			at := bytes.Index(b, []byte("BODY-OF-vr2"))
			if at < 0 {
				t.Fatalf("vr2 not in %s", seg)
			}
			f, err := os.OpenFile(seg, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte{'b'}, int64(at)); err != nil {
				t.Fatal(err)
			}
			_ = f.Close()
			out.Reset()
			errb.Reset()
			if code := run(ctx, []string{"verify-raw", "--config", cfg}, nil, &out, &errb); code != 1 {
				t.Fatalf("verify-raw on a damaged segment: exit %d, want 1: %s %s", code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), "bad: "+seg+" at offset ") || !strings.Contains(out.String(), "does not match") ||
				!strings.Contains(out.String(), "; 1 bad;") || !strings.Contains(errb.String(), "damaged") || strings.Contains(out.String(), "message 0 ") {
				t.Errorf("report: %q / %q", out.String(), errb.String())
			}
		})
	}
}
