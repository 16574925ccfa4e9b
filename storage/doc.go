// Package storage holds tend's durable state: the gorm models, the versioned
// schema, the group-committed ingest transaction, the queries the other
// packages need and the leases that let several replicas share one database.
// It is the only package that imports gorm.
//
// Its queues each have a file: the work after the 250 in work.go, the
// outbox (outgoing mail, its claims and outcomes) in outbox.go, the timers
// in timers.go, and the leads' queue of tickets in leadqueue.go.
package storage
