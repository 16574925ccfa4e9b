// Package mail holds tend's mail doors: SMTP/LMTP ingress, the IMAP poller,
// classification, composing and sending.
package mail
