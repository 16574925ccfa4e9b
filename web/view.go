package web

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/microcosm-cc/bluemonday"
)

// mailPolicy is the sanitizer for HTML mail: mail is written by
// strangers. bluemonday's UGC policy drops scripts, event handlers, style
// attributes and javascript: URLs; links open in a new tab without the
// opener. Remote images are kept as markup but the page's CSP (img-src
// 'self' data:) stops them from loading, so no tracking pixel fires.
func mailPolicy() *bluemonday.Policy {
	p := bluemonday.UGCPolicy()
	p.AddTargetBlankToFullyQualifiedLinks(true)
	p.RequireNoReferrerOnLinks(true)
	return p
}

func funcs(now func() time.Time) template.FuncMap {
	policy := mailPolicy()
	return template.FuncMap{
		// safeHTML sanitizes mail HTML before it is shown.
		"safeHTML": func(s string) template.HTML { return template.HTML(policy.Sanitize(s)) }, //nolint:gosec // sanitized above
		"stamp":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
		"stampp": func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		// since is a short, calm duration ("3 h", "2 d") for queue cells.
		"since": func(t time.Time) string { return shortDuration(now().Sub(t)) },
		"bytes": func(n int64) string { return humanize.IBytes(uint64(max(n, 0))) },
		// secs is a report's duration in seconds, shown as queue cells are
		// ("—" when nothing was measured).
		"secs": func(count int, s float64) string {
			if count == 0 {
				return "—"
			}
			if s < 60 {
				return fmt.Sprintf("%.0f s", s)
			}
			return shortDuration(time.Duration(s) * time.Second)
		},
		"pct":  func(x float64) string { return fmt.Sprintf("%.0f%%", x*100) },
		"join": strings.Join,
		// filename shows an attachment's name as it will be saved: the
		// sender's name may carry paths or bidi overrides that disguise
		// its extension.
		"filename": func(name string, part int) string { return safeFilename(name, fmt.Sprintf("attachment-%d", part)) },
	}
}

// shortDuration renders d in the largest unit that fits, rounded down:
// a lead scanning a queue wants "5 h", not "5h12m3.2s".
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	default:
		return fmt.Sprintf("%d d", int(d/(24*time.Hour)))
	}
}

// render executes a template into a buffer first, so that a template
// error becomes a clean 500 instead of half a page.
func (s *Server) render(w http.ResponseWriter, name string, code int, data any) {
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, data); err != nil {
		s.log.Error("render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// internalError logs err and answers 500 without details.
func (s *Server) internalError(w http.ResponseWriter, what string, err error) {
	s.log.Error(what, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// fail answers a page request with err's status; only unexpected errors
// are logged, and their text never reaches the browser.
func (s *Server) fail(w http.ResponseWriter, what string, err error) {
	code := httpStatus(err)
	if code == http.StatusInternalServerError {
		s.internalError(w, what, err)
		return
	}
	msg := http.StatusText(code)
	if code == http.StatusBadRequest || code == http.StatusConflict {
		msg = err.Error()
	}
	http.Error(w, msg, code)
}
