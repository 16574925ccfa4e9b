package rules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"

	"github.com/tendhq/tend/vocab"
)

// Env is what a rule's expressions see. Conditions are compiled against it
// (expr.Env(Env{})), so an unknown name or a type mismatch is a load error.
// The expr tags are the names in rules: ticket.inbox.response_time,
// message.class, now - ticket.resolved_at <= reopen_window, nudges[0].
// Rules read the vocabulary as strings (vocabPatch).
type Env struct {
	Event vocab.EventKind `expr:"event"`
	Now   time.Time       `expr:"now"`
	// The views are pointers because expr fetches fields by reflection,
	// and fetching a struct value copies it onto the heap for every access;
	// a pointer costs nothing. They are never nil.
	Ticket  *Ticket  `expr:"ticket"`
	Message *Message `expr:"message"` // zero when the event has no message
	Timer   *Timer   `expr:"timer"`   // zero unless timer.due
	Outbox  *Outbox  `expr:"outbox"`  // zero unless outbox.failed
	// NewState and Reason come from state changes and resolve requests.
	NewState vocab.State `expr:"new_state"`
	Reason   string      `expr:"reason"`
	// Answer is the customer's confirmation answer, from a click or from
	// the message text; empty when neither applies.
	Answer Answer `expr:"answer"`
	// HasMessage tells whether message is meaningful for this event.
	HasMessage bool `expr:"has_message"`

	// Configuration from Options, so rules need no magic numbers.
	Nudges               []time.Duration `expr:"nudges"`
	RepeatContactsToLead int             `expr:"repeat_contacts_to_lead"`
	ReopenWindow         time.Duration   `expr:"reopen_window"`
	BounceSuppression    time.Duration   `expr:"bounce_suppression"`
	// Acknowledge is false when acknowledgements are turned off.
	Acknowledge bool `expr:"acknowledge"`
}

// newEnv builds the expression environment for one event; it points into
// ev, which Evaluate owns (a copy of the caller's). ev.Message.Answer is
// filled before this.
func newEnv(ev *Event, opts *Options) Env {
	env := Env{
		Event:                ev.Type,
		Now:                  ev.Now,
		Ticket:               &ev.Ticket,
		Message:              &Message{},
		Timer:                &Timer{},
		Outbox:               &Outbox{},
		NewState:             ev.NewState,
		Reason:               ev.Reason,
		Answer:               ev.Answer,
		Nudges:               opts.Nudges,
		RepeatContactsToLead: opts.RepeatContactsToLead,
		ReopenWindow:         opts.ReopenWindow,
		BounceSuppression:    opts.BounceSuppression,
		Acknowledge:          !opts.NoAcknowledgement,
	}
	if ev.Message != nil {
		env.Message = ev.Message
		env.HasMessage = true
		if env.Answer == "" {
			env.Answer = ev.Message.Answer
		}
	}
	if ev.Timer != nil {
		env.Timer = ev.Timer
	}
	if ev.Outbox != nil {
		env.Outbox = ev.Outbox
	}
	return env
}

// errNotDuration is returned by parseDurationLiteral for text that is not a
// duration literal (it is then compiled as an expression).
var errNotDuration = errors.New("not a duration literal")

// parseDurationLiteral accepts Go durations ("48h", "90m", "1h30m") plus a
// day unit ("2d", "1d12h") because support promises are made in days.
// time.ParseDuration has no day unit, hence this small wrapper: a day is
// 24 hours here (calendar-free, like every timer in tend).
func parseDurationLiteral(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || (s[0] < '0' || s[0] > '9') {
		return 0, errNotDuration
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n > 36500 {
			return 0, errNotDuration
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errNotDuration
	}
	return days + d, nil
}

// DescribeResponseTime turns an inbox's response time into the honest
// promise shown to customers: "within 4 hours", "within 30 minutes",
// "within 2 days". Zero or negative means no promise is configured.
func DescribeResponseTime(d time.Duration) string {
	if d <= 0 {
		return "as soon as we can"
	}
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	// Round up to the unit shown: promising less time than configured
	// would be dishonest in the other direction, so never round down.
	switch {
	case d%(24*time.Hour) == 0:
		return "within " + unit(int64(d/(24*time.Hour)), "day")
	case d >= 2*time.Hour && d%time.Hour == 0:
		return "within " + unit(int64(d/time.Hour), "hour")
	case d >= 2*time.Hour:
		return "within " + unit(int64((d+time.Hour-1)/time.Hour), "hour")
	case d%time.Hour == 0:
		return "within 1 hour"
	}
	return "within " + unit(int64((d+time.Minute-1)/time.Minute), "minute")
}

// DescribeAgo says how long ago something was, as a person would: "2 days
// ago", "5 hours ago", "20 minutes ago", rounded to the nearest unit shown.
func DescribeAgo(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one + " ago"
		}
		return fmt.Sprintf("%d %ss ago", n, one)
	}
	switch {
	case d >= 24*time.Hour:
		return unit(int64((d+12*time.Hour)/(24*time.Hour)), "day")
	case d >= time.Hour:
		return unit(int64((d+30*time.Minute)/time.Hour), "hour")
	case d >= time.Minute:
		return unit(int64((d+30*time.Second)/time.Minute), "minute")
	}
	return "a moment ago"
}

// durationFolder is an expr patcher that turns duration("2d") with a
// literal argument into a constant at load: the literal is then checked
// once (a typo is a load error, not a run-time one), costs nothing per
// event, and may use the day unit like "after:" literals do.
type durationFolder struct{ err error }

// Visit implements ast.Visitor.
func (f *durationFolder) Visit(node *ast.Node) {
	// expr parses calls of its builtins as BuiltinNode.
	call, ok := (*node).(*ast.BuiltinNode)
	if !ok || call.Name != "duration" || len(call.Arguments) != 1 {
		return
	}
	lit, ok := call.Arguments[0].(*ast.StringNode)
	if !ok {
		return
	}
	d, err := parseDurationLiteral(lit.Value)
	if err != nil {
		if d, err = time.ParseDuration(lit.Value); err != nil {
			if f.err == nil {
				f.err = fmt.Errorf("duration(%q): want a duration like 2d, 4h or 90m", lit.Value)
			}
			return
		}
	}
	ast.Patch(node, &ast.ConstantNode{Value: d})
}
