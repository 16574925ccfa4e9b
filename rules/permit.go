package rules

import (
	"fmt"
	"strings"

	"github.com/tendhq/tend/vocab"
)

// Permission is what automatic mail may do in answer to one message, by
// its classification alone; Gate adds the checks of the address, the
// bounce suppression and the flood limits.
type Permission int

const (
	// Refused: nothing automatic answers the message.
	Refused Permission = iota
	// FirstAcknowledgement: only a new ticket's acknowledgement (on
	// ticket.created) answers it; every further automatic mail is held.
	FirstAcknowledgement
	// Permitted: automatic mail may answer it.
	Permitted
)

// String names the permission for logs and test output.
func (p Permission) String() string {
	switch p {
	case FirstAcknowledgement:
		return "first-acknowledgement"
	case Permitted:
		return "permitted"
	}
	return "refused"
}

// Classification is a message's classification as it reaches the gate:
// the class and the classifier's two flags beside it (classify.Result),
// carried whole so that no part of the verdict is lost on the way.
type Classification struct {
	Class vocab.Class
	// NoAutoReply: answer nothing automatically (X-Auto-Response-Suppress,
	// a postmaster or null sender, any class but human).
	NoAutoReply bool
	// Suspect: only heuristics (a subject) say the mail is automatic.
	Suspect bool
	// Reasons are the classifier's reasons, quoted in a refusal.
	Reasons []string
}

// Classification is m's classification, as Permit takes it.
func (m *Message) Classification() Classification {
	return Classification{Class: m.Class, NoAutoReply: m.NoAutoReply, Suspect: m.Suspect, Reasons: m.ClassReasons}
}

// Permit is the one mapping from a message's classification to what the
// rules' automatic mail may do in answer to it, with the reason of
// anything short of Permitted for the timeline. It fails closed: only human
// mail is answered, and a class that is not in the vocabulary (a kind
// added to the classifier but not here, a damaged row, the zero value of
// a classification nobody filled in) is refused like a machine's.
func Permit(c Classification) (Permission, string) {
	switch c.Class {
	case vocab.ClassHuman:
	case vocab.ClassAutoReply:
		return Refused, "the message is an automatic reply (RFC 3834); answering it could loop"
	case vocab.ClassBounce:
		return Refused, "the message is a delivery failure report"
	case vocab.ClassList:
		return Refused, "the message came from a mailing list"
	case vocab.ClassOwnMail:
		return Refused, "the message is our own mail coming back (loop)"
	case vocab.ClassSpam:
		return Refused, "the message was classified as spam"
	case vocab.ClassReport:
		return Refused, "the message is a report (read receipt, abuse or DMARC report)"
	default:
		return Refused, fmt.Sprintf("the message's class %q is unknown, so nothing automatic answers it", c.Class)
	}
	if c.NoAutoReply {
		return Refused, "the sender asked for no automatic reply or looks automatic (" + strings.Join(c.Reasons, "; ") + ")"
	}
	if c.Suspect {
		// A subject alone never stops the first acknowledgement; after it,
		// an out-of-office that reads like one gets nothing more.
		return FirstAcknowledgement, "the message looks automatic (" + strings.Join(c.Reasons, "; ") + "); only a new ticket's acknowledgement answers such mail"
	}
	return Permitted, ""
}
