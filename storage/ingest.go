package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tendhq/tend/vocab"
)

// Incoming is a received message, with the header fields the ingest path
// extracted cheaply before the full MIME parse.
type Incoming struct {
	// Body is the message's bytes: the door's spool file, read in bounded
	// chunks into a segment file (SQLite) or, when large, into raw_chunks
	// (PostgreSQL), else once into the raw row (PostgreSQL). Raw is for callers that hold the bytes already
	// (tests); it is used only when Body is nil.
	Body        Body
	Raw         []byte
	Hash        string // hex SHA-256 of the bytes
	ContentHash string // hex SHA-256 without trace fields; "" means Hash (see ingest's streamHash)
	MessageID   string // without brackets; never empty (derived from the content hash when absent)
	InReplyTo   string
	References  []string
	ThreadRoot  string
	ThreadTopic string
	From        string // lowercased address
	FromName    string
	To, Cc      []string
	EnvFrom     string
	EnvTo       []string
	Subject     string // decoded
	NormSubject string
	Date        *time.Time
	Class       vocab.Class
	Role        string   // customer, agent, system
	Inboxes     []string // inbox addresses the message reached (envelope); may be empty
	// DefaultInbox is the inbox a ticket opened by a message that reached
	// none (read from a mailbox, sent to a reply address) belongs to. It
	// is never linked to an existing ticket: a reply must not make a
	// second inbox see its ticket.
	DefaultInbox string
	Source       string
	Imported     bool
	// Auth is the sender authentication verdict.
	Auth SenderAuth
	// Place decides the ticket inside the delivery transaction, so that it
	// sees every message committed before it, including those earlier in
	// the same group commit.
	Place func(ctx context.Context, tx *Tx) (Placement, error)

	// NoAutoReply, Suspect and ClassReasons are the rest of the
	// classification (classify.Result), kept so the rules gate sees it.
	NoAutoReply  bool
	Suspect      bool
	ClassReasons []string

	seg   *segRef  // where the committer stored Raw, when beside SQLite
	file  FileBody // a large spool file, synced, to be moved in (beside SQLite)
	moved bool     // file was moved into the raw directory
	// chunked: the bytes were written to raw_chunks before the batch
	// (PostgreSQL); the raw row only points at them.
	chunked bool
	// packed is the message's zstd frame, made before the batch
	// (packing.go); nil: the bytes are stored as they are.
	packed []byte
}

// Body is a message's bytes as a reader with a known size, such as
// ingest.Spool or a bytes.Reader.
type Body interface {
	io.ReaderAt
	Size() int64
}

// FileBody is a Body that is a file of its own on the data directory's
// file system, such as the doors' spool: beside SQLite a large one is
// moved into the raw directory rather than copied.
type FileBody interface {
	Body
	Name() string // its path
	Sync() error
}

// body returns in's bytes as a Body.
func (in *Incoming) body() Body {
	if in.Body != nil {
		return in.Body
	}
	return bytes.NewReader(in.Raw)
}

func (in *Incoming) contentHash() string {
	if in.ContentHash != "" {
		return in.ContentHash
	}
	return in.Hash
}

// Placement is where a message goes: the outcome of threading.
type Placement struct {
	Ticket   int64 // 0: open a new ticket
	NoTicket bool  // store the message on no ticket (a bounce that matched nothing, our own mail)
	// Evidence is the JSON of the threading evidence, stored with the
	// message; Summary is its one-line form for the timeline.
	Evidence string
	Summary  string
	// Participants join the ticket (a reply-all's CCs).
	Participants []string
	// LinkedTo is set on a new ticket opened by a reply to an old one.
	LinkedTo int64
	// AgentID and Note record a verified signed agent address (reply or
	// internal note); Role overrides Incoming.Role when set.
	AgentID int64
	Note    bool
	Role    string
}

// Delivered is what happened to an Incoming.
type Delivered struct {
	MessageRowID int64
	Ticket       int64 // 0 when the message is on no ticket
	NewTicket    bool
	// Duplicate: a message with the same Message-ID and the same bytes,
	// or the same content but for trace fields, was already stored.
	Duplicate bool
}

// Tx is the view of the delivery transaction that threading's lookups run
// against.
type Tx struct {
	db *gorm.DB
	s  *Store
	// nextOutbox is, on SQLite, the next outbox ID this transaction
	// hands out (0 until it has looked): the transaction is the one
	// writer, and only QueueMails inserts outbox rows (outboxIDs).
	nextOutbox int64
	// agents is the agents list as this transaction first read it: the
	// executor asks for it for every message of a batch, and nothing in
	// a processing transaction changes it (SyncAgents runs in its own).
	agents []Agent
	// bodies are the bytes of the outbox rows queued in this transaction,
	// composed beside it and stored before it commits (flushBodies);
	// marks keep them in step with the savepoints.
	bodies []*bodyJob
	marks  []savepointMark
	// events are the timeline entries AddEvent took, inserted together
	// (flushEvents) before the transaction commits, a savepoint is set,
	// or anything reads or moves events.
	events []Event
	// parsedAttachments are the attachment rows SaveParsed wrote in this
	// transaction, by message row: the executor reads a message's
	// attachments right after its parse is saved (their names for the
	// acknowledgement, the files for the notifications), and these are
	// those rows. A rollback to a savepoint forgets them all.
	parsedAttachments map[int64][]Attachment
}

// inboxIDs resolves inbox addresses to IDs, from the cache SyncInboxes
// fills (inboxes never disappear, so a cached ID stays right), else from
// the database.
func (t *Tx) inboxIDs(addrs []string) ([]int64, error) {
	ids := make([]int64, 0, len(addrs))
	t.s.inboxMu.RLock()
	for _, a := range addrs {
		if id, ok := t.s.inboxCache[a]; ok {
			ids = append(ids, id)
		}
	}
	t.s.inboxMu.RUnlock()
	if len(ids) == len(addrs) {
		return ids, nil
	}
	ids = ids[:0]
	err := t.db.Model(&Inbox{}).Where("address IN ?", addrs).Order("id").Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("inboxes: %w", err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("inboxes %v: %w", addrs, ErrNotFound)
	}
	return ids, nil
}

// ErrNotFound is returned when a row asked for does not exist.
var ErrNotFound = errors.New("not found")

// later holds the rows of a batch that nothing in its transaction reads
// back (events, work): they are inserted together at the end of the
// batch, a statement for all instead of two or three per message. A nil
// *later inserts each row at once.
type later struct {
	events []Event
	work   []Work
}

// event stores ev now (l is nil) or with the batch's other rows.
func (l *later) event(s *Store, db *gorm.DB, ev Event) error {
	if l != nil {
		l.events = append(l.events, ev)
		return nil
	}
	if err := insertRows(db.Statement.Context, s, db, []Event{ev}, false); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	return nil
}

// job stores w now (l is nil) or with the batch's other rows.
func (l *later) job(s *Store, db *gorm.DB, w Work) error {
	if l != nil {
		l.work = append(l.work, w)
		return nil
	}
	if err := insertRows(db.Statement.Context, s, db, []Work{w}, false); err != nil {
		return fmt.Errorf("work: %w", err)
	}
	return nil
}

// flush inserts the rows held, in the order they were added.
func (l *later) flush(s *Store, db *gorm.DB) error {
	if len(l.events) > 0 {
		if err := insertRows(db.Statement.Context, s, db, l.events, false); err != nil {
			return fmt.Errorf("events: %w", err)
		}
	}
	if len(l.work) > 0 {
		if err := insertRows(db.Statement.Context, s, db, l.work, false); err != nil {
			return fmt.Errorf("work: %w", err)
		}
	}
	l.events, l.work = l.events[:0], l.work[:0]
	return nil
}

// deliver applies one message inside tx; its events and work row go to
// l (nil: inserted at once).
func (s *Store) deliver(ctx context.Context, db *gorm.DB, in *Incoming, l *later) (Delivered, error) {
	var dup struct {
		ID       int64
		TicketID *int64
	}
	err := db.Model(&Message{}).Select("id, ticket_id").
		Where("message_id = ? AND (raw_hash = ? OR content_hash = ?)", in.MessageID, in.Hash, in.contentHash()).Limit(1).Scan(&dup).Error
	if err != nil {
		return Delivered{}, fmt.Errorf("dedup: %w", err)
	}
	tx := &Tx{db: db, s: s}
	inboxIDs, err := tx.inboxIDs(in.Inboxes)
	if err != nil {
		return Delivered{}, err
	}
	// home is where a new ticket goes: the first inbox reached, else
	// the default one.
	home := inboxIDs
	if len(home) == 0 && in.DefaultInbox != "" {
		if home, err = tx.inboxIDs([]string{in.DefaultInbox}); err != nil {
			return Delivered{}, err
		}
	}
	if dup.ID != 0 {
		// Delivered again (an MTA retry, a second inbox's copy, an IMAP
		// resync): keep one message, let every inbox see its ticket.
		d := Delivered{MessageRowID: dup.ID, Duplicate: true}
		if dup.TicketID != nil {
			d.Ticket = *dup.TicketID
			if err := linkInboxes(s, db, d.Ticket, inboxIDs); err != nil {
				return Delivered{}, err
			}
		}
		return d, nil
	}
	now := s.now()
	body := in.body()
	raw := RawMessage{Hash: in.Hash, Size: body.Size(), CreatedAt: now}
	switch {
	case in.file != nil:
		// A transaction run again (a conflict, or a batch applied
		// again in savepoints) finds the file moved in already.
		if !in.moved {
			if err := s.segs.moveIn(in.file.Name(), in.Hash); err != nil {
				return Delivered{}, err
			}
			in.moved = true
		}
		raw.Segment = fileSegment
	case in.seg != nil:
		raw.Segment, raw.Offset = in.seg.id, in.seg.offset
		raw.Packed = int64(len(in.packed))
	case in.chunked:
		raw.Segment = chunkSegment
	case in.packed != nil:
		raw.Data, raw.Packed = in.packed, int64(len(in.packed))
	default:
		// PostgreSQL keeps the bytes of a small message in the row,
		// which every replica sees (a large one is in raw_chunks). They
		// are read here, one message at a time on the one committer
		// goroutine, and are below fileMin.
		data := make([]byte, body.Size())
		if _, err := body.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
			return Delivered{}, fmt.Errorf("raw: read spool: %w", err)
		}
		raw.Data = data
	}
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&raw).Error; err != nil {
		return Delivered{}, fmt.Errorf("raw: %w", err)
	}
	p := Placement{}
	if in.Place != nil {
		if p, err = in.Place(ctx, tx); err != nil {
			return Delivered{}, fmt.Errorf("place: %w", err)
		}
	}
	if p.Role != "" {
		in.Role = p.Role
	}
	d := Delivered{}
	switch {
	case p.NoTicket:
	case p.Ticket == 0:
		if len(home) == 0 {
			return Delivered{}, errors.New("deliver: the message reached no inbox and there is no default inbox")
		}
		id, err := s.openTicket(db, in, home[0], p, now, l)
		if err != nil {
			return Delivered{}, err
		}
		d.Ticket, d.NewTicket = id, true
		inboxIDs = home
	default:
		d.Ticket = p.Ticket
		if err := s.appendToTicket(db, in, p, now); err != nil {
			return Delivered{}, err
		}
	}
	if d.Ticket != 0 {
		if err := linkInboxes(s, db, d.Ticket, inboxIDs); err != nil {
			return Delivered{}, err
		}
		if err := addParticipants(s, db, d.Ticket, p.Participants, "cc", now); err != nil {
			return Delivered{}, err
		}
	}
	msg := Message{
		Direction: DirectionIn, MessageID: in.MessageID, RawHash: in.Hash, ContentHash: in.contentHash(),
		InReplyTo: in.InReplyTo, References: strings.Join(in.References, " "),
		ThreadRoot: in.ThreadRoot, ThreadTopic: in.ThreadTopic,
		FromAddr: in.From, FromName: in.FromName,
		ToAddrs: strings.Join(in.To, ","), CcAddrs: strings.Join(in.Cc, ","),
		EnvFrom: in.EnvFrom, EnvTo: strings.Join(in.EnvTo, ","),
		Subject: in.Subject, Date: in.Date, Class: in.Class, Role: in.Role,
		NoAutoReply: in.NoAutoReply, Suspect: in.Suspect, ClassReasons: classReasons(in.ClassReasons),
		Evidence: p.Evidence, Size: body.Size(), Source: in.Source,
		Imported: in.Imported, ReceivedAt: now, Auth: in.Auth,
	}
	if d.Ticket != 0 {
		msg.TicketID = &d.Ticket
	}
	if p.AgentID != 0 {
		msg.AgentID = &p.AgentID
	}
	msg.Note = p.Note
	if err := insertRow(ctx, s, db, &msg); err != nil {
		return Delivered{}, fmt.Errorf("message: %w", err)
	}
	d.MessageRowID = msg.ID
	if err := insertRefs(s, db, msg.ID, in.InReplyTo, in.References); err != nil {
		return Delivered{}, err
	}
	if d.Ticket != 0 {
		ev := Event{TicketID: d.Ticket, Kind: vocab.EventMessageReceived, Actor: in.From, Detail: p.Summary, MessageRowID: &msg.ID, CreatedAt: now}
		if err := l.event(s, db, ev); err != nil {
			return Delivered{}, err
		}
	}
	if err := l.job(s, db, Work{Kind: WorkProcess, MessageRowID: msg.ID, NotBefore: now, CreatedAt: now}); err != nil {
		return Delivered{}, err
	}
	return d, nil
}

// classReasons renders the classifier's reasons for the message row: a
// JSON list, as Evidence is.
func classReasons(rs []string) string {
	if len(rs) == 0 {
		return ""
	}
	b, _ := json.Marshal(rs) // strings: cannot fail
	return string(b)
}

// Reasons returns the classifier's reasons stored with the message.
func (m Message) Reasons() []string {
	var rs []string
	if m.ClassReasons != "" {
		_ = json.Unmarshal([]byte(m.ClassReasons), &rs) // written by classReasons; a damaged value reads as none
	}
	return rs
}

// WorkProcess is the work kind that runs the full parse and the rules for
// a received message.
const WorkProcess = "process"

func (s *Store) openTicket(db *gorm.DB, in *Incoming, inboxID int64, p Placement, now time.Time, l *later) (int64, error) {
	contactID, err := upsertContact(db, in.From, in.FromName, now)
	if err != nil {
		return 0, err
	}
	t := Ticket{
		Subject: in.Subject, NormSubject: SubjectKey(in.NormSubject), State: vocab.StateNew, Priority: "normal",
		CustomerID: contactID, InboxID: inboxID, CreatedAt: now, UpdatedAt: now, LastCustomerAt: &now,
	}
	if in.Role == "customer" && in.Class == vocab.ClassHuman {
		t.WaitingSince = &now
		if p.LinkedTo == 0 {
			// A customer with a ticket still open writes about something
			// new (or the same thing under a new subject): the tickets
			// are linked, so nobody answers them as a stranger.
			open, err := newestOpenTicket(db, contactID)
			if err != nil {
				return 0, err
			}
			p.LinkedTo = open
		}
	}
	if p.LinkedTo != 0 {
		t.LinkedTo = &p.LinkedTo
	}
	if err := insertRow(db.Statement.Context, s, db, &t); err != nil {
		return 0, fmt.Errorf("ticket: %w", err)
	}
	if err := addParticipants(s, db, t.ID, []string{in.From}, "customer", now); err != nil {
		return 0, err
	}
	detail := "ticket opened"
	if p.LinkedTo != 0 {
		detail = fmt.Sprintf("ticket opened, linked to #%d", p.LinkedTo)
	}
	if err := l.event(s, db, Event{TicketID: t.ID, Kind: vocab.EventTicketCreated, Actor: in.From, Detail: detail, CreatedAt: now}); err != nil {
		return 0, err
	}
	return t.ID, nil
}

func (s *Store) appendToTicket(db *gorm.DB, in *Incoming, p Placement, now time.Time) error {
	upd := map[string]any{"updated_at": now}
	if in.Role == "customer" && in.Class == vocab.ClassHuman {
		upd["last_customer_at"] = now
		// The wait runs from the oldest message still unanswered.
		upd["waiting_since"] = gorm.Expr("COALESCE(waiting_since, ?)", now)
	}
	if err := db.Model(&Ticket{}).Where("id = ?", p.Ticket).Updates(upd).Error; err != nil {
		return fmt.Errorf("ticket %d: %w", p.Ticket, err)
	}
	return nil
}

// newestOpenTicket is the contact's newest ticket in an open state, 0
// when there is none. One indexed query (customer_id leads
// idx_tickets_customer_subject).
func newestOpenTicket(db *gorm.DB, contactID int64) (int64, error) {
	var ids []int64
	err := db.Model(&Ticket{}).Where("customer_id = ? AND merged_into IS NULL AND state IN ?", contactID, openStates()).
		Order("id DESC").Limit(1).Pluck("id", &ids).Error
	if err != nil {
		return 0, fmt.Errorf("open ticket of contact %d: %w", contactID, err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	return ids[0], nil
}

func upsertContact(db *gorm.DB, email, name string, now time.Time) (int64, error) {
	// The row is updated only when it gains a name: an UPDATE that
	// changes nothing would still rewrite it and its search entry
	// (search_contacts_au), for every message of a known customer. When
	// nothing was written, RETURNING gives no row and a read finds it.
	var ids []int64
	err := db.Raw(`INSERT INTO contacts (email, name, suppress_reason, created_at) VALUES (?, ?, '', ?)
		ON CONFLICT (email) DO UPDATE SET name = excluded.name WHERE contacts.name = '' AND excluded.name <> ''
		RETURNING id`, email, name, now).Scan(&ids).Error
	if err == nil && len(ids) == 0 {
		err = db.Raw(`SELECT id FROM contacts WHERE email = ?`, email).Scan(&ids).Error
	}
	if err == nil && len(ids) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("contact %s: %w", email, err)
	}
	return ids[0], nil
}

func linkInboxes(s *Store, db *gorm.DB, ticket int64, inboxIDs []int64) error {
	if len(inboxIDs) == 0 {
		return nil
	}
	rows := make([]TicketInbox, len(inboxIDs))
	for i, id := range inboxIDs {
		rows[i] = TicketInbox{TicketID: ticket, InboxID: id}
	}
	if err := insertRows(db.Statement.Context, s, db, rows, true); err != nil {
		return fmt.Errorf("ticket inboxes: %w", err)
	}
	return nil
}

func addParticipants(s *Store, db *gorm.DB, ticket int64, emails []string, role string, now time.Time) error {
	if len(emails) == 0 {
		return nil
	}
	rows := make([]Participant, 0, len(emails))
	seen := map[string]bool{}
	for _, e := range emails {
		if e == "" || seen[e] {
			continue
		}
		seen[e] = true
		rows = append(rows, Participant{TicketID: ticket, Email: e, Role: role, CreatedAt: now})
	}
	if len(rows) == 0 {
		return nil
	}
	if err := insertRows(db.Statement.Context, s, db, rows, true); err != nil {
		return fmt.Errorf("participants: %w", err)
	}
	return nil
}

func insertRefs(s *Store, db *gorm.DB, rowID int64, inReplyTo string, refs []string) error {
	seen := map[string]bool{}
	var rows []MessageRef
	for _, r := range append([]string{inReplyTo}, refs...) {
		if r == "" || seen[r] || len(r) > 998 {
			continue
		}
		seen[r] = true
		rows = append(rows, MessageRef{MessageRowID: rowID, Ref: r})
	}
	if len(rows) == 0 {
		return nil
	}
	if err := insertRows(db.Statement.Context, s, db, rows, true); err != nil {
		return fmt.Errorf("refs: %w", err)
	}
	return nil
}
