package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/internal/testredis"
	"github.com/sealgate/sealgate/order"
)

type fixture struct {
	st  *Store
	srv *testredis.Server
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	srv := testredis.Start(t)
	f := &fixture{srv: srv, now: time.Now().UTC().Truncate(time.Second)} // Redis expires keys by its own, real clock
	f.st = New(srv.Client(), time.Hour, func() time.Time { return f.now })
	return f
}

func (f *fixture) file(t *testing.T, id, subject string, quorum int, opts ...func(*Filing)) {
	t.Helper()
	fl := Filing{ID: id, SubjectKey: "pseudo-" + subject, Subject: subject, Requester: "officer", Quorum: quorum,
		ExpiresAt: f.now.Add(7 * 24 * time.Hour), Body: []byte("signed order " + id), VetoRoles: []string{"works-council"}}
	for _, o := range opts {
		o(&fl)
	}
	if err := f.st.File(context.Background(), fl); err != nil {
		t.Fatal(err)
	}
}

func ap(slot int, role, who string) Approval {
	return Approval{Slot: slot, Role: role, Approver: who, Blob: []byte("approval by " + who)}
}

func TestQuorumActivates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.file(t, "ord_a", "alice", 3)
	for i, a := range []Approval{ap(0, "legal", "lena"), ap(1, "hr", "henk")} {
		r, err := f.st.Approve(ctx, "ord_a", a)
		if err != nil || r.Activated || r.Approvals != i+1 {
			t.Fatalf("approval %d: %+v %v", i, r, err)
		}
	}
	st, _ := f.st.Get(ctx, "ord_a")
	if st.State != order.StatePending || len(st.Approvals) != 2 {
		t.Fatalf("before quorum: %+v", st)
	}
	r, err := f.st.Approve(ctx, "ord_a", ap(3, "security", "sam"))
	if err != nil || !r.Activated || r.Approvals != 3 {
		t.Fatalf("quorum approval: %+v %v", r, err)
	}
	st, _ = f.st.Get(ctx, "ord_a")
	if st.State != order.StateActive || !st.ActivatedAt.Equal(f.now) || len(st.Approvals) != 3 || string(st.Body) != "signed order ord_a" {
		t.Fatalf("after quorum: %+v", st)
	}
	if _, err := f.st.Approve(ctx, "ord_a", ap(4, "dpo-office", "dirk")); !errors.Is(err, ErrNotPending) {
		t.Fatalf("approval after activation: %v", err)
	}
	// The keys end with the order, plus grace.
	pttl := f.srv.Client().PTTL(ctx, approvalsKey("ord_a")).Val()
	if want := time.Until(f.now.Add(7*24*time.Hour + time.Hour)); pttl < want-time.Minute || pttl > want+time.Minute {
		t.Fatalf("approvals TTL %s, want about %s", pttl, want)
	}
}

func TestRefusedApprovals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.file(t, "ord_b", "alice", 3)
	if _, err := f.st.Approve(ctx, "ord_b", ap(0, "legal", "lena")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		a    Approval
		want error
	}{
		{"requester", ap(1, "hr", "officer"), ErrSelfApproval},
		{"subject", ap(1, "hr", "alice"), ErrSubjectApproval},
		{"same slot twice", ap(0, "hr", "henk"), ErrDuplicateSlot},
		{"same role twice", ap(1, "legal", "lotte"), ErrDuplicateRole},
		{"same person in another slot", ap(1, "hr", "lena"), ErrDuplicateApprover},
	}
	for _, c := range cases {
		if _, err := f.st.Approve(ctx, "ord_b", c.a); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	st, _ := f.st.Get(ctx, "ord_b")
	if st.State != order.StatePending || len(st.Approvals) != 1 {
		t.Fatalf("refusals changed the order: %+v", st)
	}
	if _, err := f.st.Approve(ctx, "ord_nope", ap(1, "hr", "henk")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown order: %v", err)
	}
}

// TestConcurrentApprovalsActivateOnce races 100 approvals of distinct slots,
// roles and people on one order with quorum 3.
func TestConcurrentApprovalsActivateOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.file(t, "ord_race", "alice", 3)
	var wg sync.WaitGroup
	var mu sync.Mutex
	activations, accepted := 0, 0
	start := make(chan struct{})
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := f.st.Approve(ctx, "ord_race", ap(i, fmt.Sprint("role-", i), fmt.Sprint("person-", i)))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				accepted++
				if r.Activated {
					activations++
				}
			} else if !errors.Is(err, ErrNotPending) {
				t.Errorf("approval %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	st, _ := f.st.Get(ctx, "ord_race")
	if activations != 1 || accepted != 3 || len(st.Approvals) != 3 || st.State != order.StateActive {
		t.Fatalf("activations %d, accepted %d, stored %d, state %s", activations, accepted, len(st.Approvals), st.State)
	}
}

func TestExpiry(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.file(t, "ord_e", "alice", 2)
	f.st.Approve(ctx, "ord_e", ap(0, "legal", "lena"))
	f.now = f.now.Add(7*24*time.Hour + time.Second)
	if _, err := f.st.Approve(ctx, "ord_e", ap(1, "hr", "henk")); !errors.Is(err, ErrExpired) {
		t.Fatalf("approval after expiry: %v", err)
	}
	st, err := f.st.Get(ctx, "ord_e")
	if err != nil || st.State != order.StateExpired || len(st.Approvals) != 0 {
		t.Fatalf("expired order: %+v %v", st, err)
	}
	// An active order expires too, and its approvals go with it.
	f.file(t, "ord_e2", "bob", 2)
	f.st.Approve(ctx, "ord_e2", ap(0, "legal", "lena"))
	f.st.Approve(ctx, "ord_e2", ap(1, "hr", "henk"))
	f.now = f.now.Add(8 * 24 * time.Hour)
	if st, _ := f.st.Get(ctx, "ord_e2"); st.State != order.StateExpired || len(st.Approvals) != 0 {
		t.Fatalf("expired active order: %+v", st)
	}
	if err := f.st.File(ctx, Filing{ID: "ord_late", SubjectKey: "s", Subject: "s", Requester: "r", Quorum: 2, ExpiresAt: f.now, Body: []byte("x")}); !errors.Is(err, ErrExpired) {
		t.Fatalf("filing that is already expired: %v", err)
	}
}

func TestFlushAllCancelsPendingOrders(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.file(t, "ord_f", "alice", 3)
	f.st.Approve(ctx, "ord_f", ap(0, "legal", "lena"))
	f.st.Approve(ctx, "ord_f", ap(1, "hr", "henk"))
	if err := f.srv.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Approve(ctx, "ord_f", ap(2, "security", "sam")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("approval after FLUSHALL: %v", err)
	}
	if _, err := f.st.Get(ctx, "ord_f"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("order after FLUSHALL: %v", err)
	}
	// Filing it again starts from zero approvals.
	f.file(t, "ord_f", "alice", 3)
	if st, _ := f.st.Get(ctx, "ord_f"); st.State != order.StatePending || len(st.Approvals) != 0 {
		t.Fatalf("refiled: %+v", st)
	}
}

func TestOneOpenOrderPerSubject(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.file(t, "ord_1", "alice", 2)
	err := f.st.File(ctx, Filing{ID: "ord_2", SubjectKey: "pseudo-alice", Subject: "alice", Requester: "officer", Quorum: 2, ExpiresAt: f.now.Add(time.Hour), Body: []byte("x")})
	if !errors.Is(err, ErrSubjectBusy) {
		t.Fatalf("second open order: %v", err)
	}
	f.file(t, "ord_3", "alice", 2, func(fl *Filing) { fl.NewFacts = true })
	if err := f.st.File(ctx, Filing{ID: "ord_1", SubjectKey: "pseudo-zed", Subject: "zed", Requester: "officer", Quorum: 2, ExpiresAt: f.now.Add(time.Hour), Body: []byte("x")}); !errors.Is(err, ErrExists) {
		t.Fatalf("reused id: %v", err)
	}
	// Once the open order is revoked the subject is free again.
	if err := f.st.Revoke(ctx, "ord_3", "filed in error"); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Revoke(ctx, "ord_1", "filed in error"); err != nil {
		t.Fatal(err)
	}
	f.file(t, "ord_4", "alice", 2)
}

func TestRejectAndRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.file(t, "ord_r", "alice", 3)
	f.st.Approve(ctx, "ord_r", ap(0, "legal", "lena"))
	rejected, err := f.st.Reject(ctx, "ord_r", "hr", "henk", "not proportionate")
	if err != nil || rejected {
		t.Fatalf("hr rejection: %v %v", rejected, err)
	}
	if st, _ := f.st.Get(ctx, "ord_r"); st.State != order.StatePending {
		t.Fatalf("a non-veto rejection closed the order: %s", st.State)
	}
	rejected, err = f.st.Reject(ctx, "ord_r", "works-council", "wendy", "no works-council agreement covers this")
	if err != nil || !rejected {
		t.Fatalf("veto: %v %v", rejected, err)
	}
	st, _ := f.st.Get(ctx, "ord_r")
	if st.State != order.StateRejected || len(st.Approvals) != 0 || st.Reason != "no works-council agreement covers this" {
		t.Fatalf("vetoed: %+v", st)
	}
	if _, err := f.st.Approve(ctx, "ord_r", ap(2, "security", "sam")); !errors.Is(err, ErrNotPending) {
		t.Fatalf("approval after veto: %v", err)
	}
	// Revoking an active order deletes its approvals.
	f.file(t, "ord_v", "bob", 2)
	f.st.Approve(ctx, "ord_v", ap(0, "legal", "lena"))
	f.st.Approve(ctx, "ord_v", ap(1, "hr", "henk"))
	if err := f.st.Revoke(ctx, "ord_v", "investigation closed"); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.st.Get(ctx, "ord_v"); st.State != order.StateRevoked || len(st.Approvals) != 0 {
		t.Fatalf("revoked: %+v", st)
	}
	if n := f.srv.Client().Exists(ctx, approvalsKey("ord_v")).Val(); n != 0 {
		t.Fatal("approvals key survives revocation")
	}
	if err := f.st.Revoke(ctx, "ord_v", "again"); !errors.Is(err, ErrNotActive) {
		t.Fatalf("second revoke: %v", err)
	}
}
