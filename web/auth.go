package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tendhq/tend/storage"
)

const (
	sessionCookie = "tend_session"
	loginCSRF     = "tend_login_csrf"
	sessionTTL    = 12 * time.Hour
)

func (s *Server) secure(r *http.Request) bool {
	return s.opts.SecureCookies || r.TLS != nil || strings.HasPrefix(s.opts.BaseURL, "https://")
}

func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: s.secure(r), SameSite: http.SameSiteLaxMode,
	})
}

// page wraps a handler that needs a logged-in agent; state-changing
// requests must carry the session's CSRF token (a synchronizer token kept
// with the session, compared in constant time). Sessions end when they
// expire in the database, so an expired or logged-out cookie is worthless
// on every replica.
func (s *Server) page(h func(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		if err != nil {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		sess, err := s.store.Session(r.Context(), c.Value)
		if errors.Is(err, storage.ErrBadCredentials) {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if err != nil {
			s.internalError(w, r, "session", err)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(sess.CSRF)) != 1 {
				http.Error(w, "bad CSRF token", http.StatusForbidden)
				return
			}
		}
		ctx := context.WithValue(context.WithValue(r.Context(), sessionKey, sess), viewerKey, sess.Agent)
		r = r.WithContext(ctx)
		if err := s.mayOpen(r); err != nil {
			s.fail(w, r, "access", err)
			return
		}
		h(w, r, sess)
	})
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.showLogin(w, r, "", http.StatusOK)
}

// showLogin renders the login form with a fresh double-submit CSRF token.
func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, msg string, code int) {
	tok := rand.Text()
	s.setCookie(w, r, loginCSRF, tok, 600)
	s.render(w, "login.html", code, struct{ CSRF, Error string }{tok, msg})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCSRF)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		s.showLogin(w, r, "Your session expired, please try again.", http.StatusForbidden)
		return
	}
	if !s.limiter.allow(r.PostFormValue("email"), s.clientIP(r)) {
		s.showLogin(w, r, "Too many attempts. Wait a minute and try again.", http.StatusTooManyRequests)
		return
	}
	a, err := s.store.CheckPassword(r.Context(), r.PostFormValue("email"), r.PostFormValue("password"))
	if err != nil {
		if !errors.Is(err, storage.ErrBadCredentials) && !clientGone(r.Context(), err) {
			s.log.Error("login", "err", err)
		}
		s.showLogin(w, r, "Wrong email or password.", http.StatusUnauthorized)
		return
	}
	secret, _, err := s.store.CreateSession(r.Context(), a.ID, sessionTTL)
	if err != nil {
		s.internalError(w, r, "login", err)
		return
	}
	s.setCookie(w, r, loginCSRF, "", -1)
	s.setCookie(w, r, sessionCookie, secret, int(sessionTTL/time.Second))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ storage.SessionInfo) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := s.store.DeleteSession(r.Context(), c.Value); err != nil && !clientGone(r.Context(), err) {
			s.log.Error("logout", "err", err)
		}
	}
	s.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// loginLimiter limits login attempts per account and client address, and
// per client address over all accounts. Keying the account's budget by
// the address too means an attacker guessing Lena's password throttles
// only himself: Lena, from her own address, still logs in; the per-address
// budget stops one address from spraying every account.
type loginLimiter struct {
	mu    sync.Mutex
	clock storage.Clock
	seen  map[string]*rate.Limiter
	swept time.Time
}

func newLoginLimiter(c storage.Clock) *loginLimiter {
	return &loginLimiter{clock: c, seen: map[string]*rate.Limiter{}}
}

// Login budgets: per account and address a burst of 5 attempts, then one
// every 10 seconds; per address a burst of 20, then one every 10 seconds.
const (
	loginEvery        = 10 * time.Second
	loginBurstAccount = 5
	loginBurstIP      = 20
)

// allow reports whether one more attempt for account from ip may be
// checked; it spends from both budgets only when both have room.
func (l *loginLimiter) allow(account, ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	if now.Sub(l.swept) > 10*time.Minute {
		// Forget idle clients so the map cannot grow without bound.
		for k, v := range l.seen {
			if v.TokensAt(now) >= float64(v.Burst()) {
				delete(l.seen, k)
			}
		}
		l.swept = now
	}
	acct := l.limiter("a\x00"+strings.ToLower(strings.TrimSpace(account))+"\x00"+ip, loginBurstAccount)
	addr := l.limiter("i\x00"+ip, loginBurstIP)
	if acct.TokensAt(now) < 1 || addr.TokensAt(now) < 1 {
		return false
	}
	return acct.AllowN(now, 1) && addr.AllowN(now, 1)
}

func (l *loginLimiter) limiter(key string, burst int) *rate.Limiter {
	lim, ok := l.seen[key]
	if !ok {
		lim = rate.NewLimiter(rate.Every(loginEvery), burst)
		l.seen[key] = lim
	}
	return lim
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// canAct tells whether an agent may change tickets' states from the web:
// leads and admins may, agents act through their mail client.
func canAct(role string) bool { return role == storage.RoleLead || role == storage.RoleAdmin }

// clientIP is the address the request came from. Behind a trusted proxy
// (web.trusted_proxies) it is the rightmost X-Forwarded-For hop that is not
// itself trusted: everything left of it was written by the client and can
// be forged, everything right of it by our own proxies. From any other
// peer the header is ignored, so a client cannot choose its address.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trusted(peer) {
		return host
	}
	hops := r.Header.Values("X-Forwarded-For")
	var all []string
	for _, h := range hops {
		all = append(all, strings.Split(h, ",")...)
	}
	for i := len(all) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(all[i]))
		if err != nil {
			// A hop we cannot read: stop at the last one we trust rather
			// than believe what lies left of garbage.
			return peer.String()
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a.String()
		}
		peer = a
	}
	return peer.String()
}

func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseProxies reads web.trusted_proxies: CIDR prefixes or single
// addresses.
func parseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range list {
		if pre, err := netip.ParsePrefix(p); err == nil {
			out = append(out, pre.Masked())
			continue
		}
		a, err := netip.ParseAddr(p)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not an IP address or CIDR prefix", p)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
