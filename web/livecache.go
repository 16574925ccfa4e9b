package web

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tendhq/tend/storage"
)

// sharedRenders lets every open queue tab that asks for the same view
// after a change share one render: when an event reaches a hundred leads'
// tabs at once, they all fetch /queue/live, and one of them runs the
// queue's queries while the others wait for its bytes. A render is reused
// while no change has passed through the hub since its queries started
// and for at most sharedRenderTTL, because the "waiting 5 min" it shows
// ages.
type sharedRenders struct {
	group singleflight.Group
	mu    sync.Mutex
	cache map[string]sharedRender
}

type sharedRender struct {
	seq  uint64
	at   time.Time
	code int
	body []byte
}

const (
	sharedRenderTTL = 5 * time.Second
	// sharedRenderMax bounds the cache: views are few (a filter, a page,
	// an inbox restriction), and past this many it starts over.
	sharedRenderMax = 256
)

// render returns the view under key as of hub sequence seq: a cached
// render that is still current, or the one fn makes (once, however many
// ask at the same time).
func (c *sharedRenders) render(key string, seq uint64, now time.Time, fn func() (int, []byte)) (int, []byte) {
	c.mu.Lock()
	r, ok := c.cache[key]
	c.mu.Unlock()
	if ok && r.seq == seq && now.Sub(r.at) < sharedRenderTTL {
		return r.code, r.body
	}
	v, _, _ := c.group.Do(key+"\x00"+itoa(int64(seq)), func() (any, error) {
		code, body := fn()
		out := sharedRender{seq: seq, at: now, code: code, body: body}
		if code == http.StatusOK {
			c.mu.Lock()
			if c.cache == nil || len(c.cache) >= sharedRenderMax {
				c.cache = map[string]sharedRender{}
			}
			c.cache[key] = out
			c.mu.Unlock()
		}
		return out, nil
	})
	r = v.(sharedRender)
	return r.code, r.body
}

// renderKey is a queue view's identity: its query and what the viewer may
// see (the fragment shows nothing else of the viewer).
func renderKey(rawQuery string, visible []string) string {
	var b strings.Builder
	b.WriteString(rawQuery)
	b.WriteByte(0)
	if visible == nil {
		b.WriteString("*")
	}
	b.WriteString(strings.Join(visible, ","))
	return b.String()
}

// bufferedWriter captures a render's status and bytes.
type bufferedWriter struct {
	h    http.Header
	code int
	buf  bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.h }

func (b *bufferedWriter) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.buf.Write(p)
}

// sharedQueueLive serves /queue/live from a shared render. The render
// runs without the asking request's cancellation: others may be waiting
// for it when the first tab closes.
func (s *Server) sharedQueueLive(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo) {
	visible, err := s.visibleInboxes(r.Context())
	if err != nil {
		s.internalError(w, r, "queue", err)
		return
	}
	seq := s.opts.Live.Seq()
	code, body := s.shared.render(renderKey(r.URL.RawQuery, visible), seq, s.opts.Clock.Now(), func() (int, []byte) {
		rec := &bufferedWriter{h: http.Header{}}
		s.serveQueue(rec, r.WithContext(context.WithoutCancel(r.Context())), sess, "live")
		return rec.code, rec.buf.Bytes()
	})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
