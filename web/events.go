package web

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tendhq/tend/storage"
)

// The event stream's timing. A stream ends after liveMaxAge so that the
// browser reconnects and its session or token is checked again (a logged
// out viewer stops hearing within minutes, at one query per viewer per
// liveMaxAge instead of one per event); liveWriteWait bounds one write to
// a viewer whose connection stalls.
const (
	liveMaxAge    = 10 * time.Minute
	liveWriteWait = 10 * time.Second
	// liveRetry is the reconnection delay the browser is told (ms).
	liveRetry = "2000"
)

// streamViewer authenticates an event stream by Bearer token (scripts)
// or by the session cookie (the queue and ticket pages: EventSource sends
// cookies, not headers). ok is false when it has answered already.
func (s *Server) streamViewer(w http.ResponseWriter, r *http.Request) (storage.Agent, bool) {
	ctx := r.Context()
	deny := func(err error) (storage.Agent, bool) {
		if errors.Is(err, storage.ErrBadCredentials) || errors.Is(err, storage.ErrNotFound) || err == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tend"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "needs a bearer token or a session"})
			return storage.Agent{}, false
		}
		if !clientGone(r.Context(), err) {
			s.log.Error("event stream", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
		}
		return storage.Agent{}, false
	}
	if secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		tok, err := s.store.CheckToken(ctx, strings.TrimSpace(secret))
		if err != nil {
			return deny(err)
		}
		v, err := s.tokenViewer(ctx, tok)
		if err != nil {
			return deny(err)
		}
		return v, true
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return deny(nil)
	}
	sess, err := s.store.Session(ctx, c.Value)
	if err != nil {
		return deny(err)
	}
	return sess.Agent, true
}

// apiEvents is GET /api/events: Server-Sent Events, one per change of a
// ticket the viewer may see (`event: ticket`, data
// `{"ticket":42,"kind":"message","kinds":[…]}`), `event: reset` when the
// viewer must reload everything, and a comment line as a heartbeat. A
// reconnecting browser sends Last-Event-ID and gets what it missed.
func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request) {
	viewer, ok := s.streamViewer(w, r)
	if !ok {
		return
	}
	if s.opts.Live == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "live events are not available on this server"})
		return
	}
	sub := s.opts.Live.Subscribe(viewer.SeesTicket)
	defer sub.Close()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	// Proxies (nginx) must pass each event on at once.
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) bool {
		// The server's WriteTimeout would end a long stream: each write
		// gets its own deadline instead.
		_ = rc.SetWriteDeadline(time.Now().Add(liveWriteWait))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte("retry: " + liveRetry + "\n: tend live events\n\n")) {
		return
	}
	var done uint64
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		evs, ok := s.opts.Live.Since(sub, last)
		if !ok {
			if !write(s.opts.Live.ResetFrame()) {
				return
			}
		}
		for _, e := range evs {
			if !write(e.Frame) {
				return
			}
			done = e.Seq
		}
	}
	beat := time.NewTicker(s.opts.LiveHeartbeat)
	defer beat.Stop()
	end := time.NewTimer(liveMaxAge)
	defer end.Stop()
	for {
		select {
		case e, open := <-sub.C:
			if !open {
				// Dropped for falling behind, or the server stops: the
				// browser reconnects and catches up from Last-Event-ID.
				return
			}
			if e.Seq <= done {
				continue // replayed already
			}
			if !write(e.Frame) {
				return
			}
		case <-beat.C:
			if !write([]byte(": ping\n\n")) {
				return
			}
		case <-end.C:
			return
		case <-r.Context().Done():
			return
		}
	}
}
