package dovecottest

import (
	"testing"
)

func TestHarness(t *testing.T) {
	s := Start(t)
	raw := []byte("From: a@example.com\r\nTo: support@example.com\r\nSubject: hi\r\nMessage-ID: <h1@example.com>\r\n\r\nhello\r\n")
	s.Append(t, "Support", raw)
	s.Append(t, "Support", raw)
	if n := s.Count(t, "Support"); n != 2 {
		t.Fatalf("count = %d, want 2", n)
	}
	before := uidValidity(t, s, "Support")
	s.RecreateMailbox(t, "Support")
	if n := s.Count(t, "Support"); n != 2 {
		t.Fatalf("count after recreate = %d, want 2", n)
	}
	if after := uidValidity(t, s, "Support"); after == before {
		t.Fatalf("UIDVALIDITY unchanged: %d", after)
	}
	s.Restart(t)
	if n := s.Count(t, "Support"); n != 2 {
		t.Fatalf("count after restart = %d, want 2", n)
	}
	if n := s.Count(t, "Missing"); n != 0 {
		t.Fatalf("count of missing = %d", n)
	}
}

func uidValidity(t *testing.T, s *Server, mbox string) uint32 {
	t.Helper()
	c := s.Client(t)
	defer c.Close()
	d, err := c.Select(mbox, nil).Wait()
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	return d.UIDValidity
}
