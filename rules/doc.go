// Package rules reacts to ticket events with actions: acknowledgements,
// follow-through timers, nudges, escalations.
package rules
