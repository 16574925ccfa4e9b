// Package imappoll takes mail from existing IMAP mailboxes (Gmail,
// Microsoft 365, Fastmail, Dovecot) into tend's inboxes, exactly once.
//
// One Poller watches one mailbox: it logs in (PLAIN, LOGIN, XOAUTH2 or
// OAUTHBEARER over TLS or STARTTLS), waits for mail with IDLE (RFC 2177)
// or by polling, fetches new messages by UID ranges in batches with
// BODY.PEEK[], streams each body literal into the Deliverer's spool (the
// same ingest path as SMTP, in bounded buffers: no message is held whole
// in memory) and delivers the spooled messages concurrently, so that the
// group committer stores them together, while the next batch streams in.
// Only after a batch is committed does it flag, move or delete its
// messages. UIDVALIDITY and the highest UID processed without a gap are
// persisted after every batch (RFC 9051 section 2.3.1.1); a restart
// resumes there and the Deliverer's dedup absorbs any overlap. Mail older
// than the first connection is backfill, delivered as Imported (no
// automatic mail) and throttled when Options.BackfillRate is set.
//
// Only one replica polls a mailbox at a time, through a lease in the
// StateStore. Failures are retried with exponential backoff and jitter,
// shown in Status and in Prometheus metrics; RunAll runs many pollers so
// that one failing mailbox never stops another.
package imappoll
