// Package followup carries out the follow-through: after a message is
// stored and parsed, a timer fires or a delivery fails, it builds the
// rules' view of the ticket, asks the rules engine what to do, and applies
// the answer in one transaction: state changes, timers, timeline entries,
// and outgoing mail as outbox rows (composed here, sent by the Sender).
//
// Where things are:
//   - executor.go: the Executor, a message's way through the rules, the
//     actions it applies (apply, setState, assign);
//   - commands.go: an agent's one-line commands, parsed (mail/agentcmd)
//     and carried out (#resolve, #close, #assign, …); followups.go the
//     follow-ups (#waiting until, #remind, #snooze); agent.go mail
//     through an agent's signed address;
//   - outgoing.go: composing and queuing mail to the customer; notify.go
//     the staff notifications, coalesced; notifycontent.go what they say;
//   - outbox.go: the Sender, which relays the outbox and records each
//     outcome; bounces.go the bounces that fail an outbox row;
//   - timers.go: the timer worker and what a fired timer does;
//   - fuse.go: the per-ticket mail fuse; collide.go agents answering at
//     once; actions.go what people do in the web view (resolve, merge,
//     split, confirm); the other files are named for what they hold
//     (language.go, satisfaction.go, mailbox.go, history.go, …).
//
// The Sender and the timers run the database-driven loop of
// internal/worker.
package followup
