package classify

import "github.com/tendhq/tend/mail/header"

// Header is the read side of a parsed header block (header.Header).
type Header = header.Header
