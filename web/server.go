package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/web/live"
)

// Store is what the web layer reads and writes.
type Store interface {
	ListTickets(ctx context.Context, f storage.TicketFilter) ([]storage.TicketRow, int64, error)
	GetTicket(ctx context.Context, number int64) (storage.TicketDetail, error)
	GetMessage(ctx context.Context, id int64) (storage.Message, error)
	Attachments(ctx context.Context, rowIDs []int64) (map[int64][]storage.Attachment, error)
	CheckToken(ctx context.Context, secret string) (storage.APIToken, error)
	CheckPassword(ctx context.Context, email, password string) (storage.Agent, error)
	CreateSession(ctx context.Context, agentID int64, ttl time.Duration) (string, string, error)
	Session(ctx context.Context, secret string) (storage.SessionInfo, error)
	DeleteSession(ctx context.Context, secret string) error
	Ping(ctx context.Context) error

	// The lead's queue (storage/leadqueue.go).
	Queue(ctx context.Context, f storage.QueueFilter) ([]storage.QueueRow, bool, error)
	// QueueFound is the queue page with the count of a search's matches.
	QueueFound(ctx context.Context, f storage.QueueFilter, limit int) ([]storage.QueueRow, bool, storage.SearchCount, error)
	AttentionCounts(ctx context.Context, inbox string, visible []string) ([storage.AttentionDone + 1]int64, error)
	ContentClusters(ctx context.Context, inbox string, visible []string, since time.Time, minCount, limit int) ([]storage.ContentCluster, error)
	ClusterTickets(ctx context.Context, cluster int64, visible []string) ([]storage.TicketRow, error)
	Inboxes(ctx context.Context) ([]storage.Inbox, error)
	Agents(ctx context.Context) ([]storage.Agent, error)
	// TicketInboxes are the inboxes that see a ticket, for access checks.
	TicketInboxes(ctx context.Context, number int64) ([]string, error)
	// Raw serves downloads: attachments are cut from the raw message.
	Raw(ctx context.Context, hash string) ([]byte, error)
	// Outbox tells where a ticket's outgoing mail stands.
	Outbox(ctx context.Context, ticket int64) ([]storage.OutboxMail, error)
	// CustomerHistory is a customer's tickets, open first, for the
	// ticket page.
	CustomerHistory(ctx context.Context, email string, limit int) ([]storage.HistoryTicket, error)
	// SatisfactionStats is the satisfaction figure for the API.
	SatisfactionStats(ctx context.Context) (storage.SatisfactionStats, error)
	// Stats is the report of /stats and /api/stats.
	Stats(ctx context.Context, f storage.StatsFilter) (storage.StatsReport, error)
}

// Check is a named readiness check for /readyz (the database, each IMAP
// mailbox). It returns nil when ready.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
	// Degrades marks a check whose failure is reported in the detail
	// but leaves the server ready: one IMAP mailbox with a wrong password
	// must not make an orchestrator restart a server whose SMTP door and
	// other mailboxes work.
	Degrades bool
}

// InboxStatus is how one inbox's mail source is doing, shown on the queue
// so that a lead notices a mailbox that stopped delivering (an IMAP poller
// that lost its login) before customers do.
type InboxStatus struct {
	Inbox  string // the inbox address or mailbox name
	State  string // short, e.g. "idle", "polling", "error"
	Detail string // one line for a person: the last error, the last sync
	Stale  bool   // nothing heard from the source for longer than expected
}

// LinkVerifier checks a signed link token (threading.Signer) and says what
// it was issued for: the purpose and the ticket.
type LinkVerifier interface {
	VerifyLinkToken(token string, now time.Time) (purpose string, ticket int64, err error)
}

// Options configure the web server.
type Options struct {
	BaseURL  string
	Gatherer prometheus.Gatherer
	Checks   []Check
	Logger   *slog.Logger
	Clock    storage.Clock
	// SecureCookies marks cookies Secure; on by default when BaseURL is
	// https.
	SecureCookies bool
	// Actions carries out leads' state changes; nil hides the buttons and
	// answers the state API with 501.
	Actions Actions
	// InboxStatus lists the state of each inbox's mail source for the
	// queue page; nil shows none. It is called on every queue render and
	// must be cheap (a snapshot the pollers keep up to date).
	InboxStatus func() []InboxStatus
	// QueueRefresh is how often an open queue page redraws when nothing
	// changed (its "waiting 5 min" figures age); default 60 s. Changes
	// arrive through Live at once.
	QueueRefresh time.Duration
	// Live is the fan-out of the database's change feed behind
	// /api/events and the pages' live updates; nil answers /api/events
	// with 501 and leaves the pages to QueueRefresh.
	Live *live.Hub
	// LiveHeartbeat is how often an idle event stream sends a comment
	// line, so that proxies and browsers keep it open; default 20 s.
	LiveHeartbeat time.Duration
	// RelayConfigured says whether outgoing mail can leave at all; without
	// a relay the ticket page says "not sent: no relay configured".
	RelayConfigured bool
	// Answer takes a reply or an internal note written on the ticket page
	// or through the API as the agent's mail (mail/webreply); nil hides
	// the form and answers the API with 501.
	Answer func(ctx context.Context, a Answer) error
	// Confirm applies a customer's signed confirmation link and returns
	// the ticket and the answer ("yes" or "no"); nil disables /confirm.
	Confirm func(ctx context.Context, token string) (int64, string, error)
	// Links reads a customer's signed link token without acting on it
	// (threading.Signer), so the page behind a confirmation or
	// satisfaction link can name the ticket before the customer presses
	// its button; nil shows a page that names no ticket until then.
	Links LinkVerifier
	// Company names the organisation on the pages customers see
	// (web.company); "" uses the display name of the ticket's inbox.
	Company string
	// Rate applies a customer's signed satisfaction link with an optional
	// comment and returns the ticket and the score on it; nil disables
	// /rate.
	Rate func(ctx context.Context, token, comment string) (int64, int, error)
	// TrustedProxies are IP addresses or CIDR prefixes of reverse proxies
	// whose X-Forwarded-For names the client (web.trusted_proxies); from
	// any other peer the header is ignored.
	TrustedProxies []string
	// MetricsToken, when set, is the bearer token /metrics requires.
	MetricsToken string
	// ClusterWindow is how long a closed ticket still counts in its
	// cluster (clusters.window); default 7 days.
	ClusterWindow time.Duration
	// MetricsSeparate leaves /metrics off this handler: it is served by
	// MetricsHandler on its own listener (web.metrics_listen).
	MetricsSeparate bool
	// Profiling serves Go's profiles (/debug/pprof/) beside /metrics,
	// behind the same bearer token, which it then requires (tend serve
	// --pprof): a profile shows mail's contents in strings and stacks.
	Profiling bool
}

//go:embed templates/*.html static/*
var assets embed.FS

// Server serves the queue, the JSON API, health and metrics.
type Server struct {
	store   Store
	opts    Options
	log     *slog.Logger
	pages   *template.Template
	mux     *http.ServeMux
	limiter *loginLimiter
	proxies []netip.Prefix
	// shared are the queue renders open tabs share (livecache.go).
	shared sharedRenders
}

// New returns the web server's handler.
func New(store Store, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = storage.SystemClock{}
	}
	if opts.ClusterWindow <= 0 {
		opts.ClusterWindow = defaultClusterWindow
	}
	if opts.QueueRefresh <= 0 {
		opts.QueueRefresh = 60 * time.Second
	}
	if opts.LiveHeartbeat <= 0 {
		opts.LiveHeartbeat = 20 * time.Second
	}
	pages, err := template.New("").Funcs(funcs(opts.Clock.Now)).ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	proxies, err := parseProxies(opts.TrustedProxies)
	if err != nil {
		return nil, err
	}
	s := &Server{store: store, opts: opts, log: opts.Logger, pages: pages, mux: http.NewServeMux(), limiter: newLoginLimiter(opts.Clock), proxies: proxies}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	m.HandleFunc("GET /readyz", s.readyz)
	if !s.opts.MetricsSeparate {
		s.metricsRoutes(m)
	}
	m.Handle("GET /static/", http.FileServerFS(assets))
	m.Handle("GET /api/tickets", s.api(s.apiTickets))
	m.Handle("GET /api/tickets/{number}", s.api(s.apiTicket))
	m.Handle("GET /api/messages/{id}", s.api(s.apiMessage))
	m.HandleFunc("GET /api/events", s.apiEvents)
	m.HandleFunc("GET /confirm", s.confirmPage)
	m.HandleFunc("POST /confirm", s.confirm)
	m.HandleFunc("GET /rate", s.ratePage)
	m.HandleFunc("POST /rate", s.rate)
	m.Handle("GET /api/stats/satisfaction", s.api(s.apiSatisfaction))
	m.Handle("GET /api/stats", s.api(s.apiStats))
	m.Handle("GET /api/clusters", s.api(s.apiClusters))
	m.Handle("GET /clusters/{cluster}", s.page(s.clusterPage))
	m.Handle("POST /clusters/{cluster}/update", s.page(s.clusterUpdate))
	m.Handle("GET /stats", s.page(s.statsPage))
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.Handle("POST /logout", s.page(s.logout))
	m.Handle("POST /api/tickets/{number}/state", s.api(s.apiState))
	m.Handle("POST /api/messages/{id}/split", s.api(s.apiSplit))
	m.Handle("POST /api/tickets/{number}/reply", s.api(s.apiAnswer(false)))
	m.Handle("POST /api/tickets/{number}/note", s.api(s.apiAnswer(true)))
	m.HandleFunc("/api/", s.apiNoRoute)
	m.Handle("GET /{$}", s.page(s.queue))
	m.Handle("GET /queue/live", s.page(s.queueLive))
	m.Handle("GET /tickets/{number}", s.page(s.ticketPage))
	m.Handle("POST /tickets/{number}/actions", s.page(s.ticketAction))
	m.Handle("POST /tickets/{number}/reply", s.page(s.ticketAnswer(false)))
	m.Handle("POST /tickets/{number}/note", s.page(s.ticketAnswer(true)))
	m.Handle("POST /tickets/{number}/messages/{id}/split", s.page(s.ticketSplit))
	m.Handle("GET /tickets/{number}/messages/{id}/raw", s.page(s.rawDownload))
	m.Handle("GET /tickets/{number}/messages/{id}/attachments/{part}", s.page(s.attachmentDownload))
}

// metricsRoutes adds /metrics and, with Options.Profiling, Go's
// profiles to m.
func (s *Server) metricsRoutes(m *http.ServeMux) {
	if s.opts.Gatherer != nil {
		m.Handle("GET /metrics", s.metricsToken(promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{})))
	}
	if s.opts.Profiling {
		m.Handle("GET /debug/pprof/", s.profiles(http.HandlerFunc(pprof.Index)))
		m.Handle("GET /debug/pprof/cmdline", s.profiles(http.HandlerFunc(pprof.Cmdline)))
		m.Handle("GET /debug/pprof/profile", s.profiles(http.HandlerFunc(pprof.Profile)))
		m.Handle("GET /debug/pprof/symbol", s.profiles(http.HandlerFunc(pprof.Symbol)))
		m.Handle("GET /debug/pprof/trace", s.profiles(http.HandlerFunc(pprof.Trace)))
	}
}

// metricsToken puts h behind the metrics bearer token when one is
// configured (compared in constant time).
func (s *Server) metricsToken(h http.Handler) http.Handler {
	if s.opts.MetricsToken == "" {
		return h
	}
	want := []byte("Bearer " + s.opts.MetricsToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tend metrics"`)
			http.Error(w, "metrics need the bearer token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// profiles puts a profile handler behind the metrics token, and refuses
// it altogether without one: profiles are never open.
func (s *Server) profiles(h http.Handler) http.Handler {
	if s.opts.MetricsToken == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "profiles need web.metrics_token_file", http.StatusForbidden)
		})
	}
	return s.metricsToken(h)
}

// MetricsHandler serves GET /metrics (and the profiles with
// Options.Profiling) alone, for a listener of its own
// (Options.MetricsSeparate).
func (s *Server) MetricsHandler() http.Handler {
	m := http.NewServeMux()
	s.metricsRoutes(m)
	return m
}

// ServeHTTP sets the headers every response carries and routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	s.mux.ServeHTTP(w, r)
}

// readyz reports every check; 503 when any fails.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := append([]Check{{Name: "database", Fn: s.store.Ping}}, s.opts.Checks...)
	out := map[string]string{}
	code := http.StatusOK
	degraded := false
	for _, c := range checks {
		if err := c.Fn(ctx); err != nil {
			if c.Degrades {
				out[c.Name] = "degraded: " + err.Error()
				degraded = true
				continue
			}
			out[c.Name] = err.Error()
			code = http.StatusServiceUnavailable
			continue
		}
		out[c.Name] = "ok"
	}
	writeJSON(w, code, map[string]any{"ready": code == http.StatusOK, "degraded": degraded, "checks": out})
}

// httpStatus maps the errors handlers branch on to HTTP status codes.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, storage.ErrBadCredentials):
		return http.StatusUnauthorized
	case errors.Is(err, ErrNotAllowed), errors.Is(err, storage.ErrConflict):
		return http.StatusConflict
	case errors.As(err, new(badRequest)):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}
