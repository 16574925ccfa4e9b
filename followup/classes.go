package followup

import (
	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/rules"
)

// ruleClass is the one mapping from the classifier's verdict, as stored in
// messages.class (classify.Kind.String), onto the rules' message classes.
// A name it does not know becomes rules.ClassUnknown, which the gate
// refuses: a kind added to the classifier and forgotten here holds
// automatic mail instead of answering a machine.
func ruleClass(stored string) string {
	k, ok := classify.ParseKind(stored)
	if !ok {
		return rules.ClassUnknown
	}
	return kindClass(k)
}

// kindClass maps one classify.Kind onto its rules class.
func kindClass(k classify.Kind) string {
	switch k {
	case classify.Human:
		return rules.ClassHuman
	case classify.AutoReply:
		return rules.ClassAutoReply
	case classify.Bounce:
		return rules.ClassBounce
	case classify.List:
		return rules.ClassList
	case classify.OwnMail:
		return rules.ClassOwn
	case classify.Spam:
		return rules.ClassSpam
	case classify.Report:
		return rules.ClassReport
	}
	return rules.ClassUnknown
}
