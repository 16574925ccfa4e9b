package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// The methods a fault can be injected into, named as the interfaces
// name them.
const (
	opClaim    = "ClaimWork"
	opMessages = "MessagesByID"
	opRaw      = "Raw"
	opInTx     = "InTx" // the commit fails after fn ran: the transaction is rolled back
	opRetry    = "RetryWork"
	opRelease  = "ReleaseWork"
	opDeliver  = "Deliver" // the commit fails: nothing is stored
	// opDeliverLost: the commit succeeds but its answer is lost (a
	// timeout after COMMIT): the message is stored and the caller told
	// it failed.
	opDeliverLost = "Deliver(lost)"
)

// faults is the plan of a fault-injecting fake, as maddy's test targets
// carry an error per phase: each method fails its next calls with the
// errors queued for it, then passes through to the real implementation.
// It counts every call, and tells ch (when set) of each, so that a test
// can wait for a background worker without sleeping.
type faults struct {
	mu     sync.Mutex
	queued map[string][]error
	calls  map[string]int
	ch     chan string
}

func newFaults() *faults {
	return &faults{queued: map[string][]error{}, calls: map[string]int{}}
}

// fail makes the next n calls of op return err.
func (f *faults) fail(op string, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.queued[op] = append(f.queued[op], err)
	}
}

// next counts a call of op and returns the error injected into it, if any.
func (f *faults) next(op string) error {
	f.mu.Lock()
	f.calls[op]++
	var err error
	if q := f.queued[op]; len(q) > 0 {
		err, f.queued[op] = q[0], q[1:]
	}
	ch := f.ch
	f.mu.Unlock()
	if ch != nil {
		ch <- op
	}
	return err
}

// pending is how many injected errors of op are still to come.
func (f *faults) pending(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queued[op])
}

// faultyWorkStore is an ingest.WorkStore over a real one with faults
// injected per method. Raw can also fail for one message only
// (rawFailsFor), the way a damaged segment file fails one message and
// not the others, and MessagesByID can lose rows (vanished), the way a
// split deletes a message between the claim and the read.
type faultyWorkStore struct {
	ingest.WorkStore
	*faults
	mu          sync.Mutex
	rawFailsFor map[string]error // raw hash → error, every call
	vanished    map[int64]bool   // message rows MessagesByID does not return
	retries     []retried        // what RetryWork was asked, in order
}

// retried is one call of RetryWork that reached the store.
type retried struct {
	work    int64
	cause   error
	retryAt time.Time
}

var _ ingest.WorkStore = (*faultyWorkStore)(nil)

func newFaultyWorkStore(s ingest.WorkStore) *faultyWorkStore {
	return &faultyWorkStore{WorkStore: s, faults: newFaults(), rawFailsFor: map[string]error{}, vanished: map[int64]bool{}}
}

func (f *faultyWorkStore) ClaimWork(ctx context.Context, owner string, limit int, lease time.Duration) ([]storage.Work, error) {
	if err := f.next(opClaim); err != nil {
		return nil, err
	}
	return f.WorkStore.ClaimWork(ctx, owner, limit, lease)
}

func (f *faultyWorkStore) MessagesByID(ctx context.Context, ids []int64) (map[int64]storage.Message, error) {
	if err := f.next(opMessages); err != nil {
		return nil, err
	}
	ms, err := f.WorkStore.MessagesByID(ctx, ids)
	f.mu.Lock()
	for id := range f.vanished {
		delete(ms, id)
	}
	f.mu.Unlock()
	return ms, err
}

func (f *faultyWorkStore) Raw(ctx context.Context, hash string) ([]byte, error) {
	if err := f.next(opRaw); err != nil {
		return nil, err
	}
	f.mu.Lock()
	err := f.rawFailsFor[hash]
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return f.WorkStore.Raw(ctx, hash)
}

func (f *faultyWorkStore) InTx(ctx context.Context, fn func(tx *storage.Tx) error) error {
	injected := f.next(opInTx)
	return f.WorkStore.InTx(ctx, func(tx *storage.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return injected
	})
}

func (f *faultyWorkStore) RetryWork(ctx context.Context, id int64, cause error, retryAt time.Time) error {
	if err := f.next(opRetry); err != nil {
		return err
	}
	f.mu.Lock()
	f.retries = append(f.retries, retried{id, cause, retryAt})
	f.mu.Unlock()
	return f.WorkStore.RetryWork(ctx, id, cause, retryAt)
}

func (f *faultyWorkStore) ReleaseWork(ctx context.Context, ids []int64) error {
	if err := f.next(opRelease); err != nil {
		return err
	}
	return f.WorkStore.ReleaseWork(ctx, ids)
}

// failRaw makes every read of the message with raw hash fail with err.
func (f *faultyWorkStore) failRaw(hash string, err error) {
	f.mu.Lock()
	f.rawFailsFor[hash] = err
	f.mu.Unlock()
}

// vanish makes MessagesByID lose message row id.
func (f *faultyWorkStore) vanish(id int64) {
	f.mu.Lock()
	f.vanished[id] = true
	f.mu.Unlock()
}

// faultyCommitter is an ingest.Committer over a real one with faults
// injected into Deliver: opDeliver fails before anything is stored,
// opDeliverLost stores the message and then reports a failure.
type faultyCommitter struct {
	ingest.Committer
	*faults
}

var _ ingest.Committer = (*faultyCommitter)(nil)

func (f *faultyCommitter) Deliver(ctx context.Context, in *storage.Incoming) (storage.Delivered, error) {
	if err := f.next(opDeliver); err != nil {
		return storage.Delivered{}, err
	}
	d, err := f.Committer.Deliver(ctx, in)
	if lost := f.next(opDeliverLost); err == nil && lost != nil {
		return storage.Delivered{}, fmt.Errorf("answer of committed message %d lost: %w", d.MessageRowID, lost)
	}
	return d, err
}

// errInjected is the root of every injected error, so that a test can
// tell an injected failure from a real one.
var errInjected = errors.New("injected fault")

// injected is an error for op that wraps errInjected.
func injected(op string) error { return fmt.Errorf("%s: %w", op, errInjected) }

// TestFaultyWorkStoreKeepsTheContract: with no fault armed the fake is
// the store it wraps, so that what the fault tests see of it is what
// production sees of the store.
func TestFaultyWorkStoreKeepsTheContract(t *testing.T) {
	storagetest.WorkQueueContract(t, storagetest.Backend{Name: "sqlite", Open: storagetest.OpenSQLite},
		func(s *storage.Store) storage.WorkQueue { return newFaultyWorkStore(s) })
}
