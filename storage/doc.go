// Package storage holds tend's durable state: the gorm models, the versioned
// schema, the group-committed ingest transaction, the queries the other
// packages need and the leases that let several replicas share one database.
// It is the only package that imports gorm.
package storage
