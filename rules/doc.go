// Package rules is the pure policy half of tend's follow-through: given one
// event on a ticket it decides what should happen, and nothing else.
//
// The boundary is deliberate. The package never touches a database, a
// clock, the network or the outbox. The caller (the executor, which owns
// storage) builds an [Event] holding a plain view of the ticket as it
// stands, calls [Engine.Evaluate] inside the event's transaction, and
// applies the returned [Action] values in order: state changes, outbox rows
// for Send and Notify, timer rows for Schedule and Cancel, timeline entries
// for Record. Before an automatic mail becomes an outbox row the executor
// passes it through [Gate] (or [GateAll]), the loop and flood protection;
// a refused mail is put on the timeline with the gate's reason instead,
// and a person-caused notice the gate cannot let through now
// ([Action.Cause] person, [Verdict.Until] set) is queued deferred, never
// dropped. Beyond the gate the executor bounds all mail on a ticket with
// its mail fuse, whatever the rules say.
//
// Contract with the executor:
//
//   - Event.Now comes from the injected clock; the engine uses no other time.
//   - Event.Ticket describes the ticket before this event's actions are
//     applied. For message.received the message is already stored but the
//     counters (RepeatContacts, LastCustomerAt, state) are still those from
//     before it arrived, so rules can ask "was the customer already waiting?".
//   - The first message of a new ticket is delivered as ticket.created (with
//     Message set), never also as message.received.
//   - ticket.state_changed is only fed for changes made by people (a lead in
//     the web view, an agent's #close). SetState actions produced by rules
//     are not fed back, so rule chains stay finite.
//   - Schedule replaces a pending timer of the same name on the ticket;
//     Cancel of a timer that is not pending is a no-op. When a timer fires
//     the executor feeds timer.due with [Timer] set; rules re-check the
//     ticket, so a stale timer does nothing.
//   - Send goes to the customer in the ticket's thread; Notify goes to staff.
//     Both name a template rendered by [Templates.Render]. A send says
//     "cause: person" when a person's action caused it; otherwise it
//     answers inbound mail and is capped per address and ticket.
//
// Rules are YAML (see default.yaml, embedded and used by [Default]) whose
// conditions are github.com/expr-lang/expr expressions compiled once at
// load against [Env], so a typo is a load error with file, line and rule
// name, not a surprise on a live mail.
package rules
