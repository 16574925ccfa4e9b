// Package web serves the lead's queue, the ticket timeline, the JSON API,
// health and metrics.
//
// The queue (GET /) ranks open tickets by what needs a person first
// (storage.Queue: breaches, repeat contacts, unconfirmed resolutions, then
// the longest wait), shows clusters of similar complaints and each inbox's
// source status, and updates itself when anything changes (static/live.js
// listens to GET /api/events, which web/live fans out from the database's
// change feed: that is how several replicas stay in step). A ticket page
// (GET /tickets/{n}) interleaves messages and events by time, shows each
// message's text (its sanitized HTML only when it has no text part), its
// attachments and the threading evidence. Attachments and raw messages are
// served as downloads cut from the stored raw bytes, never inline.
//
// Leads and admins act on tickets through Actions, which the rules
// executor implements; agents act by mail. Every form POST carries the
// session's CSRF token, every page's CSP allows scripts and styles only
// from the server itself, and mail HTML passes through bluemonday.
package web
