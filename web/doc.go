// Package web serves the lead's queue, the JSON API, health and metrics.
package web
