package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/rules"
)

// loadRules compiles the rules (rules_file, else the embedded defaults)
// and the templates (embedded, overridden from templates_dir). Errors name
// the file, line and rule: check-config reports them before a live mail
// could meet them.
func loadRules(cfg config.Config, inboxes []string) (*rules.Engine, *rules.Templates, error) {
	tpl, err := rules.LoadTemplates(cfg.TemplatesDir)
	if err != nil {
		return nil, nil, fmt.Errorf("templates: %w", err)
	}
	opts := rulesOptions(cfg, inboxes)
	opts.Templates = tpl
	if cfg.RulesFile == "" {
		eng, err := rules.Default(opts)
		return eng, tpl, err
	}
	src, err := os.ReadFile(cfg.RulesFile)
	if err != nil {
		return nil, nil, fmt.Errorf("rules_file: %w", err)
	}
	eng, err := rules.Load(cfg.RulesFile, src, opts)
	return eng, tpl, err
}

// rulesOptions are the rules' options from follow_through.
func rulesOptions(cfg config.Config, inboxes []string) rules.Options {
	ft := cfg.FollowThrough
	return rules.Options{
		Nudges: ft.Nudges, RepeatContactsToLead: ft.RepeatContactsToLead, ReopenWindow: ft.ReopenWindow,
		BounceSuppression: ft.BounceSuppression, MaxAutoPerAddressPerHour: ft.MaxAutoPerAddressPerHour,
		MaxAutoPerTicketPerDay: ft.MaxAutoPerTicketPerDay, OwnAddresses: inboxes,
		NoAcknowledgement: !ft.Acknowledge,
	}
}

// checkExtras compiles what the config points at (rules, templates).
func checkExtras(cfg config.Config) error {
	_, _, err := loadRules(cfg, inboxAddresses(cfg))
	return err
}

func inboxAddresses(cfg config.Config) []string {
	out := make([]string, len(cfg.Inboxes))
	for i, in := range cfg.Inboxes {
		out[i] = strings.ToLower(in.Address)
	}
	return out
}

// inboxPolicies turns each inbox's language, time_zone, business_hours
// and holidays into what the executor writes and counts with.
func inboxPolicies(cfg config.Config) (map[string]followup.InboxPolicy, error) {
	out := make(map[string]followup.InboxPolicy, len(cfg.Inboxes))
	for _, in := range cfg.Inboxes {
		cal, err := rules.NewCalendar(in.TimeZone, in.BusinessHours, in.Holidays)
		if err != nil {
			return nil, fmt.Errorf("inbox %s: %w", in.Address, err)
		}
		out[strings.ToLower(in.Address)] = followup.InboxPolicy{Language: in.Language, Calendar: cal}
	}
	return out, nil
}
