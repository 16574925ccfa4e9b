package imappoll

import (
	"fmt"

	"github.com/emersion/go-imap/v2"
)

// after applies the configured after-action to messages whose delivery
// was committed. It runs only after Deliver returned nil for each of them:
// if it fails, or the process dies first, the messages stay untouched and
// are delivered again (as duplicates) and acted on then.
func (p *Poller) after(s *session, uids []imap.UID) error {
	set := imap.UIDSetNum(uids...)
	switch p.opts.After.Action {
	case AfterMove:
		return p.move(s, set)
	case AfterDelete:
		if err := s.storeFlag(set, imap.FlagDeleted); err != nil {
			return err
		}
		return s.expunge(set)
	default:
		return s.storeFlag(set, imap.FlagSeen)
	}
}

// move uses MOVE (RFC 6851) when offered; otherwise the classic COPY,
// STORE \Deleted and EXPUNGE, which is not atomic: a crash between COPY
// and EXPUNGE leaves the message in both places, and the next pass
// delivers it again as a duplicate and finishes the move.
func (p *Poller) move(s *session, set imap.UIDSet) error {
	folder := p.opts.After.Folder
	if s.caps.Has(imap.CapMove) {
		return s.do(func() error {
			if _, err := s.c.Move(set, folder).Wait(); err != nil {
				return fmt.Errorf("move to %s: %w", folder, err)
			}
			return nil
		})
	}
	if err := s.do(func() error {
		if _, err := s.c.Copy(set, folder).Wait(); err != nil {
			return fmt.Errorf("copy to %s: %w", folder, err)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := s.storeFlag(set, imap.FlagDeleted); err != nil {
		return err
	}
	return s.expunge(set)
}

// storeFlag adds flag silently (RFC 9051 section 6.4.6).
func (s *session) storeFlag(set imap.UIDSet, flag imap.Flag) error {
	return s.do(func() error {
		store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{flag}}
		if err := s.c.Store(set, store, nil).Close(); err != nil {
			return fmt.Errorf("store %s: %w", flag, err)
		}
		return nil
	})
}

// expunge removes exactly our messages with UID EXPUNGE (UIDPLUS, RFC
// 4315) when offered. Without it, plain EXPUNGE also removes whatever else
// a person had marked \Deleted in this mailbox: the only way left.
func (s *session) expunge(set imap.UIDSet) error {
	return s.do(func() error {
		var err error
		if s.caps.Has(imap.CapUIDPlus) {
			err = s.c.UIDExpunge(set).Close()
		} else {
			err = s.c.Expunge().Close()
		}
		if err != nil {
			return fmt.Errorf("expunge: %w", err)
		}
		return nil
	})
}
