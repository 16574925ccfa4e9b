// Package header is tend's one reading of mail header fields: the lenient
// header-block reader, line ends, Message-ID lists, address lists,
// RFC 2047 encoded words on one charset index, the fields every layer
// reads from a message, and the numbering of a message's parts. Ingest,
// classification, threading and the web all parse through it, so that a
// message means the same thing wherever it is looked at.
//
// It is a leaf: it imports nothing of tend's.
package header
