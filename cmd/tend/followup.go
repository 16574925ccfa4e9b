package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/mail/followup"
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
	ft := cfg.FollowThrough
	opts := rules.Options{
		Nudges: ft.Nudges, RepeatContactsToLead: ft.RepeatContactsToLead, ReopenWindow: ft.ReopenWindow,
		BounceSuppression: ft.BounceSuppression, MaxAutoPerAddressPerHour: noneIfZero(ft.MaxAutoPerAddressPerHour),
		MaxAutoPerTicketPerDay: noneIfZero(ft.MaxAutoPerTicketPerDay), OwnAddresses: inboxes, Templates: tpl,
		NoAcknowledgement: !ft.Acknowledge,
	}
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

// noneIfZero maps the config's 0 ("sends none") onto the rules' negative
// limit (their zero means "the default").
func noneIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// executorOptions are the follow-through's options from the config; the
// caller adds the store, rules, signer and the rest it built.
func executorOptions(cfg config.Config) followup.Options {
	ft := cfg.FollowThrough
	return followup.Options{
		Domain: cfg.SMTP.Hostname, BaseURL: cfg.Web.BaseURL, TagPrefix: cfg.Threading.TagPrefix,
		FuseMaxMails: ft.FuseMaxMails, FuseWindow: ft.FuseWindow, FuseMaxPerDay: ft.FuseMaxMailsPerDay, NotifyWindow: ft.NotifyWindow,
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
