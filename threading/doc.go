// Package threading decides which ticket a message belongs to. It is pure:
// given a message, its envelope and a Lookup, it returns a Decision and the
// evidence behind it, strongest first (see Decide for the rules).
//
// It also owns everything signed with the installation secret (Signer):
// agent reply and note addresses, our outgoing Message-IDs, VERP bounce
// addresses and customer link tokens; and the helpers threading needs:
// subject normalization and tags, Outlook Thread-Index handling, and lax
// parsing of ids and addresses.
//
// A decision on forwards, documented because issue 3 left it open: a
// reference to mail WE sent joins whoever sends it (only a participant
// could have handed it on, and our ids carry a MAC); a reference to a
// customer's own mail joins only if the sender or one of its To/Cc
// addresses already takes part in the ticket, because customer ids are
// seen by every recipient and list archive of that mail.
package threading
