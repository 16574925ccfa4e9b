package followup

import "github.com/tendhq/tend/storage"

// newText is what the sender newly wrote.
func newText(m *storage.Message) string { return m.Text }
