// Package senderauth decides whether the author domain of a received
// message (its From) is authenticated: DKIM (RFC 6376), SPF (RFC 7208) and
// DMARC alignment (RFC 7489 section 3.1). It verifies locally, through an
// injectable DNS resolver, or reads the Authentication-Results (RFC 8601)
// of one trusted upstream server. Anyone can write a From field; only an
// aligned DKIM signature or an aligned SPF pass says the domain's owner
// sent the mail, and that is what ingest and the agent path rely on.
package senderauth

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	"blitiri.com.ar/go/spf"
)

// Result is one method's outcome, spelled as in Authentication-Results
// (RFC 8601 section 2.7): pass, fail, softfail, neutral, none, temperror,
// permerror, policy.
type Result string

// The results tend stores and acts on.
const (
	Pass      Result = "pass"
	Fail      Result = "fail"
	SoftFail  Result = "softfail"
	Neutral   Result = "neutral"
	None      Result = "none"
	TempError Result = "temperror"
	PermError Result = "permerror"
	Policy    Result = "policy"
)

// The methods a Verdict can come from.
const (
	// MethodLocal: tend verified DKIM (and SPF, with an SMTP session) itself.
	MethodLocal = "local"
	// MethodUpstream: the Authentication-Results of the trusted authserv-id.
	MethodUpstream = "authres"
)

// Verdict is what tend knows about who sent a message. The zero Verdict
// (Method "") means nothing was checked.
type Verdict struct {
	Method string // MethodLocal, MethodUpstream, or "" (not checked)
	// ServID is the authserv-id of an upstream verdict.
	ServID     string
	DKIM       Result
	DKIMDomain string // d= of the signature the result is about
	SPF        Result
	SPFDomain  string // the MAIL FROM domain (or the HELO name for a null sender)
	DMARC      Result
	// FromDomain is the author domain (RFC 5322 From).
	FromDomain string
	// Aligned is true when DKIM or SPF passed for a domain aligned with
	// FromDomain: the From is authenticated.
	Aligned bool
}

// Checked reports whether any verification produced this verdict.
func (v Verdict) Checked() bool { return v.Method != "" }

// Authenticated reports whether the From domain is proven: an aligned
// DKIM or SPF pass.
func (v Verdict) Authenticated() bool { return v.Checked() && v.Aligned }

// Failed reports whether the evidence speaks against the sender: DMARC
// failed, or nothing aligned passed and no check ended in a temporary
// error.
func (v Verdict) Failed() bool {
	if !v.Checked() || v.Aligned {
		return false
	}
	return v.DMARC == Fail || (v.DKIM != TempError && v.SPF != TempError && v.DMARC != TempError)
}

// Resolver is the DNS a local verification uses; *net.Resolver satisfies
// it. Tests inject a fake.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Options configure a Verifier.
type Options struct {
	// Local turns local verification on.
	Local bool
	// AuthServID, when set, is the one authserv-id whose
	// Authentication-Results are believed; a message carrying a result
	// from it is judged by that result and not verified again (behind an
	// MTA, our SMTP client is that MTA, so a local SPF check would be
	// about the wrong host).
	AuthServID string
	// Resolver is the DNS; nil means net.DefaultResolver.
	Resolver Resolver
	// Timeout bounds one whole verification; past it the unfinished
	// checks are temperror. Zero means 5 seconds.
	Timeout time.Duration
}

// Input is what the door knows about one message.
type Input struct {
	// Message reads the whole raw message (DKIM hashes the body).
	Message io.Reader
	// AuthResults are the Authentication-Results field values, in order.
	AuthResults []string
	// From is the author address (lowercase addr-spec); "" when the From
	// field is missing or names several mailboxes.
	From string
	// ClientIP, Helo and MailFrom are the SMTP session's; ClientIP nil
	// means there was no session (IMAP) and SPF cannot be checked.
	ClientIP net.IP
	Helo     string
	MailFrom string
}

// Verifier produces Verdicts. It is safe for concurrent use.
type Verifier struct {
	opts Options
}

// New returns a Verifier.
func New(opts Options) *Verifier {
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	return &Verifier{opts: opts}
}

// Verify judges one message. It never fails and returns within the
// configured timeout even when the resolver ignores its context: what is
// unfinished by then is temperror, which never refuses delivery.
func (v *Verifier) Verify(ctx context.Context, in Input) Verdict {
	if v.opts.AuthServID != "" {
		if vd, ok := Upstream(v.opts.AuthServID, in.AuthResults, in.From); ok {
			return vd
		}
	}
	if !v.opts.Local {
		return Verdict{}
	}
	ctx, cancel := context.WithTimeout(ctx, v.opts.Timeout)
	defer cancel()
	done := make(chan Verdict, 1)
	go func() { done <- v.local(ctx, in) }()
	select {
	case vd := <-done:
		return vd
	case <-ctx.Done():
		return Verdict{Method: MethodLocal, FromDomain: domainOf(in.From), DKIM: TempError, SPF: TempError, DMARC: TempError}
	}
}

// local verifies DKIM, SPF and DMARC alignment through the resolver.
func (v *Verifier) local(ctx context.Context, in Input) Verdict {
	vd := Verdict{Method: MethodLocal, FromDomain: domainOf(in.From), SPF: None, DKIM: None, DMARC: None}
	rec, dmarcRes := v.policy(ctx, vd.FromDomain)
	var adkim, aspf dmarc.AlignmentMode = dmarc.AlignmentRelaxed, dmarc.AlignmentRelaxed
	if rec != nil {
		adkim, aspf = rec.DKIMAlignment, rec.SPFAlignment
	}
	dkimAligned := false
	if in.Message != nil {
		vd.DKIM, vd.DKIMDomain, dkimAligned = v.dkim(ctx, in.Message, vd.FromDomain, adkim)
	}
	spfAligned := false
	if in.ClientIP != nil {
		vd.SPF, vd.SPFDomain = v.spf(ctx, in)
		spfAligned = vd.SPF == Pass && aligned(vd.SPFDomain, vd.FromDomain, aspf)
	}
	vd.Aligned = dkimAligned || spfAligned
	vd.DMARC = dmarcRes
	if rec != nil {
		switch {
		case vd.Aligned:
			vd.DMARC = Pass
		case vd.DKIM == TempError || vd.SPF == TempError:
			vd.DMARC = TempError
		default:
			vd.DMARC = Fail
		}
	}
	return vd
}

// policy finds the DMARC record of the author domain, then of its
// organizational domain (RFC 7489 section 6.6.3).
func (v *Verifier) policy(ctx context.Context, domain string) (*dmarc.Record, Result) {
	if domain == "" {
		return nil, None
	}
	opts := &dmarc.LookupOptions{LookupTXT: v.lookupTXT(ctx)}
	names := []string{domain}
	if org := orgDomain(domain); org != domain {
		names = append(names, org)
	}
	for _, d := range names {
		rec, err := dmarc.LookupWithOptions(d, opts)
		switch {
		case err == nil:
			return rec, None
		case dmarc.IsTempFail(err):
			return nil, TempError
		case errors.Is(err, dmarc.ErrNoPolicy):
			continue
		default:
			return nil, PermError
		}
	}
	return nil, None
}

// maxSignatures bounds the DKIM work one message can cause: each
// signature costs a DNS lookup and an RSA verification.
const maxSignatures = 5

// dkim verifies the signatures and reports the best one: an aligned pass,
// else any pass, else the first signature's result.
func (v *Verifier) dkim(ctx context.Context, msg io.Reader, from string, mode dmarc.AlignmentMode) (Result, string, bool) {
	vs, err := dkim.VerifyWithOptions(msg, &dkim.VerifyOptions{LookupTXT: v.lookupTXT(ctx), MaxVerifications: maxSignatures})
	if err != nil && len(vs) == 0 {
		return PermError, "", false // an unreadable header block
	}
	if len(vs) == 0 {
		return None, "", false
	}
	var best *dkim.Verification
	for _, s := range vs {
		if s.Err == nil && aligned(s.Domain, from, mode) {
			return Pass, strings.ToLower(s.Domain), true
		}
		if s.Err == nil && (best == nil || best.Err != nil) {
			best = s
		}
	}
	if best == nil {
		best = vs[0]
	}
	return dkimResult(best.Err), strings.ToLower(best.Domain), false
}

func dkimResult(err error) Result {
	switch {
	case err == nil:
		return Pass
	case dkim.IsTempFail(err):
		return TempError
	case dkim.IsPermFail(err):
		return PermError
	default:
		return Fail
	}
}

// spf checks the MAIL FROM domain, or the HELO name for a null sender
// (RFC 7208 section 2.4).
func (v *Verifier) spf(ctx context.Context, in Input) (Result, string) {
	sender, helo := in.MailFrom, strings.TrimSuffix(strings.ToLower(in.Helo), ".")
	if sender == "" {
		if helo == "" {
			return None, ""
		}
		sender = "postmaster@" + helo
	}
	dom := domainOf(sender)
	if dom == "" {
		return None, ""
	}
	res, _ := spf.CheckHostWithSender(in.ClientIP, helo, sender, spf.WithContext(ctx), spf.WithResolver(ctxResolver{v.opts.Resolver}))
	if ctx.Err() != nil {
		return TempError, dom
	}
	return Result(res), dom
}

// lookupTXT adapts the resolver to go-msgauth's context-free hook; a
// cancelled lookup is reported as a temporary DNS error, which both
// libraries map to temperror.
func (v *Verifier) lookupTXT(ctx context.Context) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		txt, err := v.opts.Resolver.LookupTXT(ctx, name)
		if err != nil && ctx.Err() != nil {
			return nil, &net.DNSError{Err: ctx.Err().Error(), Name: name, IsTimeout: true, IsTemporary: true}
		}
		return txt, err
	}
}

// ctxResolver turns a cancelled context into a temporary DNS error for
// the SPF library, which treats other errors as permanent.
type ctxResolver struct{ r Resolver }

func temp(ctx context.Context, name string, err error) error {
	if err != nil && ctx.Err() != nil {
		return &net.DNSError{Err: ctx.Err().Error(), Name: name, IsTimeout: true, IsTemporary: true}
	}
	return err
}

func (c ctxResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	v, err := c.r.LookupTXT(ctx, name)
	return v, temp(ctx, name, err)
}

func (c ctxResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	v, err := c.r.LookupMX(ctx, name)
	return v, temp(ctx, name, err)
}

func (c ctxResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	v, err := c.r.LookupIPAddr(ctx, host)
	return v, temp(ctx, host, err)
}

func (c ctxResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	v, err := c.r.LookupAddr(ctx, addr)
	return v, temp(ctx, addr, err)
}

// aligned compares an authenticated domain with the author domain:
// strict means equal, relaxed means the same organizational domain
// (RFC 7489 section 3.1).
func aligned(authDomain, from string, mode dmarc.AlignmentMode) bool {
	a, f := strings.ToLower(strings.TrimSuffix(authDomain, ".")), strings.ToLower(from)
	if a == "" || f == "" {
		return false
	}
	if a == f {
		return true
	}
	if mode == dmarc.AlignmentStrict {
		return false
	}
	return orgDomain(a) == orgDomain(f)
}

// orgDomain is the organizational domain: the public suffix plus one
// label (RFC 7489 section 3.2).
func orgDomain(d string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// domainOf returns the lowercase domain of an address, "" if none.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 || i == len(addr)-1 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
}

// Upstream builds a Verdict from the Authentication-Results fields stamped
// with servID, the first such field only (our MTA adds its field on top;
// a sender can add any number of fake ones below, and those with another
// authserv-id are ignored). ok is false when no field carries servID.
func Upstream(servID string, fields []string, from string) (Verdict, bool) {
	for _, f := range fields {
		id, results, err := authres.Parse(f)
		if err != nil && id == "" {
			continue
		}
		if servID == "" || !strings.EqualFold(id, servID) {
			continue
		}
		return upstreamVerdict(id, results, domainOf(from)), true
	}
	return Verdict{}, false
}

func upstreamVerdict(id string, results []authres.Result, from string) Verdict {
	vd := Verdict{Method: MethodUpstream, ServID: strings.ToLower(id), FromDomain: from, DKIM: None, SPF: None, DMARC: None}
	dkimAligned, spfAligned := false, false
	for _, r := range results {
		switch r := r.(type) {
		case *authres.DKIMResult:
			res := Result(r.Value)
			d := strings.ToLower(r.Domain)
			if res == Pass && aligned(d, from, dmarc.AlignmentRelaxed) && !dkimAligned {
				vd.DKIM, vd.DKIMDomain, dkimAligned = Pass, d, true
			} else if vd.DKIM == None || (res == Pass && vd.DKIM != Pass) {
				vd.DKIM, vd.DKIMDomain = res, d
			}
		case *authres.SPFResult:
			vd.SPF = Result(r.Value)
			vd.SPFDomain = domainOf(r.From)
			if vd.SPFDomain == "" {
				vd.SPFDomain = strings.ToLower(r.From)
			}
			if vd.SPFDomain == "" {
				vd.SPFDomain = strings.ToLower(r.Helo)
			}
			spfAligned = vd.SPF == Pass && aligned(vd.SPFDomain, from, dmarc.AlignmentRelaxed)
		case *authres.DMARCResult:
			vd.DMARC = Result(r.Value)
			if vd.DMARC == Pass && r.From != "" && !strings.EqualFold(strings.TrimSuffix(r.From, "."), from) {
				// A pass for another author domain (a second From
				// field) says nothing about this one.
				vd.DMARC = PermError
			}
		}
	}
	switch vd.DMARC {
	case Pass:
		// The upstream server applied the domain's own alignment mode.
		vd.Aligned = from != ""
	case Fail:
		vd.Aligned = false
	default:
		vd.Aligned = dkimAligned || spfAligned
	}
	return vd
}
