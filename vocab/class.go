package vocab

import "slices"

// Class is what sent a message, as the classifier decided it
// (mail/classify, docs/design.md "Classify"). Stored as text in
// messages.class, shown in the API and seen by the rules as message.class.
// What automatic mail may do for each class is rules.Permit; a value that
// is not one of these constants is refused there.
type Class string

// The classes, from the plain human case to the machine ones.
const (
	// ClassHuman is mail a person wrote (as far as the header tells).
	ClassHuman Class = "human"
	// ClassAutoReply is automatically submitted mail (RFC 3834): vacation
	// and out-of-office responders, no-reply notifications.
	ClassAutoReply Class = "auto-reply"
	// ClassBounce is a delivery status notification (RFC 3464) or an
	// old-style text bounce.
	ClassBounce Class = "bounce"
	// ClassList is mailing-list or bulk traffic.
	ClassList Class = "list"
	// ClassOwnMail is our own mail coming back: a loop.
	ClassOwnMail Class = "own-mail"
	// ClassSpam is mail an upstream filter marked as spam.
	ClassSpam Class = "spam"
	// ClassReport is a read receipt (RFC 8098), abuse feedback (RFC 5965)
	// or a DMARC or TLS report.
	ClassReport Class = "report"
)

// Classes lists every class.
func Classes() []Class {
	return []Class{ClassHuman, ClassAutoReply, ClassBounce, ClassList, ClassOwnMail, ClassSpam, ClassReport}
}

// Valid reports whether c is one of the Class constants.
func (c Class) Valid() bool { return slices.Contains(Classes(), c) }

// ParseClass returns the Class s names, or an error for a string that
// names none.
func ParseClass(s string) (Class, error) { return parse(s, Classes(), "message class") }
