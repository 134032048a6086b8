package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/boltstore"
)

var checkpointLine = regexp.MustCompile(`(?m)^sealgate-audit-checkpoint-v1 seq=(\d+) hash=[0-9a-f]{64} time=\S+$`)

// auditDeployment is a deployment written by cmdInit, with its config.
type auditDeployment struct {
	cfgPath string
	dbPath  string
}

func newAuditDeployment(t *testing.T) auditDeployment {
	t.Helper()
	t.Setenv("SEALGATE_PASSPHRASE", "correct-horse-battery")
	dir := filepath.Join(t.TempDir(), "dep")
	if err := cmdInit([]string{"--dir", dir, "--approvers", "2", "--quorum", "2", "--kem", "x25519"}, io.Discard); err != nil {
		t.Fatalf("init: %v", err)
	}
	d := auditDeployment{cfgPath: filepath.Join(dir, "sealgate.yaml")}
	cfg, err := config.Load(d.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	d.dbPath = cfg.Path(cfg.Store.Path)
	return d
}

// reportMonth is the month the entries of appendEntries fall in.
const reportMonth = "2026-11"

// appendEntries appends a small investigation's entries, all in
// reportMonth but the last, which is in the month after, and returns them.
func (d auditDeployment) appendEntries(t *testing.T) []audit.Entry {
	t.Helper()
	st, err := boltstore.Open(d.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
	log := audit.New(st, func() time.Time { now = now.Add(time.Hour); return now })
	recs := []audit.Record{
		{ActorRole: "requester", ActorPseudonym: "p-1", Action: audit.ActionOrderFiled, OrderID: "ord-1"},
		{ActorRole: "legal", ActorPseudonym: "p-2", Action: audit.ActionApproved, OrderID: "ord-1", Object: "slot 0"},
		{ActorRole: "hr", ActorPseudonym: "p-3", Action: audit.ActionApproved, OrderID: "ord-1", Object: "slot 1"},
		{ActorRole: "system", Action: audit.ActionActivated, OrderID: "ord-1"},
		{ActorRole: "requester", ActorPseudonym: "p-1", Action: audit.ActionViewed, OrderID: "ord-1", Object: "page 1"},
		{ActorRole: "requester", ActorPseudonym: "p-4", Action: audit.ActionRefused, Detail: "not a requester"},
		{ActorRole: "requester", ActorPseudonym: "p-1", Action: audit.ActionOrderFiled, OrderID: "ord-2"},
		{ActorRole: "hr", ActorPseudonym: "p-3", Action: audit.ActionRejected, OrderID: "ord-2", Detail: "veto"},
	}
	var out []audit.Entry
	for _, r := range recs {
		e, err := log.Append(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	e, err := log.Append(t.Context(), audit.Record{ActorRole: "system", Action: audit.ActionExpired, OrderID: "ord-1"})
	if err != nil {
		t.Fatal(err)
	}
	return append(out, e)
}

// tamper changes the stored bytes of the audit bucket directly.
func (d auditDeployment) tamper(t *testing.T, fn func(b *bolt.Bucket) error) {
	t.Helper()
	db, err := bolt.Open(d.dbPath, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return fn(tx.Bucket([]byte("audit"))) }); err != nil {
		t.Fatal(err)
	}
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func runAudit(args ...string) (string, error) {
	var out bytes.Buffer
	err := cmdAudit(args, &out)
	return out.String(), err
}

func runReport(args ...string) (string, error) {
	var out bytes.Buffer
	err := cmdReport(args, &out)
	return out.String(), err
}

func TestAuditVerifyEmpty(t *testing.T) {
	d := newAuditDeployment(t)
	out, err := runAudit("verify", "--config", d.cfgPath)
	if err != nil {
		t.Fatalf("verify on a fresh deployment: %v\n%s", err, out)
	}
	for _, want := range []string{"does not exist yet", "0 entries", "chain intact", "ok:", "sealgate-audit-checkpoint-v1 seq=0 hash=" + strings.Repeat("0", 64)} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(d.dbPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("verify created the store file (stat: %v)", err)
	}
	// Against a checkpoint of a non-empty log, a missing store is truncation.
	out, err = runAudit("verify", "--config", d.cfgPath, "--checkpoint",
		"sealgate-audit-checkpoint-v1 seq=3 hash="+strings.Repeat("ab", 32)+" time=2026-11-01T00:00:00Z")
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("verify of an absent store against checkpoint seq=3: err = %v\n%s", err, out)
	}
}

func TestAuditVerifyAndCheckpoint(t *testing.T) {
	d := newAuditDeployment(t)
	es := d.appendEntries(t)
	head := es[len(es)-1]

	out, err := runAudit("verify", "--config", d.cfgPath)
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if !strings.Contains(out, "9 entries") || !strings.Contains(out, "chain intact") || !strings.Contains(out, "ok:") {
		t.Fatalf("verify output:\n%s", out)
	}
	m := checkpointLine.FindStringSubmatch(out)
	if m == nil || m[1] != "9" {
		t.Fatalf("verify output has no checkpoint line for seq 9:\n%s", out)
	}
	cp, err := audit.ParseCheckpoint(m[0])
	if err != nil || cp.Hash != head.Hash {
		t.Fatalf("printed checkpoint %q: %v (hash must be entry 9's)", m[0], err)
	}

	// audit checkpoint prints that line only.
	cpOut, err := runAudit("checkpoint", "--config", d.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !checkpointLine.MatchString(cpOut) || strings.Count(cpOut, "\n") != 1 {
		t.Fatalf("checkpoint output is not one checkpoint line: %q", cpOut)
	}
	if got, err := audit.ParseCheckpoint(cpOut); err != nil || got.Seq != 9 || got.Hash != head.Hash {
		t.Fatalf("checkpoint %q: %v", cpOut, err)
	}

	// Verifying against it (given as a line, and as the last line of a file).
	out, err = runAudit("verify", "--config", d.cfgPath, "--checkpoint", strings.TrimSpace(cpOut))
	if err != nil || !strings.Contains(out, "checkpoint seq=9") || !strings.Contains(out, "matches") {
		t.Fatalf("verify against its own checkpoint: %v\n%s", err, out)
	}
	cpFile := filepath.Join(t.TempDir(), "checkpoints.txt")
	os.WriteFile(cpFile, []byte("sealgate-audit-checkpoint-v1 seq=0 hash="+strings.Repeat("0", 64)+" time=2026-11-01T00:00:00Z\n"+cpOut+"\n\n"), 0o600)
	if out, err := runAudit("verify", "--config", d.cfgPath, "--checkpoint-file", cpFile); err != nil || !strings.Contains(out, "checkpoint seq=9") {
		t.Fatalf("verify --checkpoint-file: %v\n%s", err, out)
	}
}

func TestAuditVerifyDetectsModifiedEntry(t *testing.T) {
	d := newAuditDeployment(t)
	d.appendEntries(t)
	d.tamper(t, func(b *bolt.Bucket) error {
		v := bytes.Clone(b.Get(seqKey(4)))
		w := bytes.Replace(v, []byte("ord-1"), []byte("ord-9"), 1)
		if bytes.Equal(v, w) {
			t.Fatal("entry 4 does not hold ord-1")
		}
		return b.Put(seqKey(4), w)
	})
	out, err := runAudit("verify", "--config", d.cfgPath)
	if err == nil {
		t.Fatalf("verify passed a modified entry:\n%s", out)
	}
	if !strings.Contains(err.Error(), "audit entry 4: modified") {
		t.Errorf("error does not name entry 4 as modified: %v", err)
	}
	if !strings.Contains(out, "audit entry 4: modified") || checkpointLine.MatchString(out) {
		t.Errorf("report should list the problem and print no checkpoint to publish:\n%s", out)
	}
	if out, err := runAudit("checkpoint", "--config", d.cfgPath); err == nil || out != "" {
		t.Errorf("checkpoint of a tampered log: %v, output %q", err, out)
	}
	if out, err := runReport("--config", d.cfgPath, "--month", reportMonth); err == nil || !strings.Contains(err.Error(), "fails verification") {
		t.Errorf("report over a tampered log: %v\n%s", err, out)
	}
}

func TestAuditVerifyTruncationNeedsCheckpoint(t *testing.T) {
	d := newAuditDeployment(t)
	d.appendEntries(t)
	cp, err := runAudit("checkpoint", "--config", d.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	d.tamper(t, func(b *bolt.Bucket) error { return b.Delete(seqKey(9)) })

	out, err := runAudit("verify", "--config", d.cfgPath)
	if err != nil || !strings.Contains(out, "8 entries") {
		t.Fatalf("without a checkpoint, deleting the last entry cannot be seen; got %v\n%s", err, out)
	}
	out, err = runAudit("verify", "--config", d.cfgPath, "--checkpoint", cp)
	if err == nil {
		t.Fatalf("verify against the earlier checkpoint passed a truncated log:\n%s", out)
	}
	if !strings.Contains(err.Error(), "audit entry 9: truncated") || !strings.Contains(out, "does not match") {
		t.Errorf("error %v, output:\n%s", err, out)
	}
}

func TestAuditUsage(t *testing.T) {
	d := newAuditDeployment(t)
	for _, args := range [][]string{
		nil,
		{"--config", d.cfgPath},
		{"frobnicate", "--config", d.cfgPath},
		{"verify"},
		{"verify", "--config", d.cfgPath, "extra"},
		{"verify", "--config", d.cfgPath, "--checkpoint", "nonsense"},
		{"verify", "--config", d.cfgPath, "--checkpoint", "x", "--checkpoint-file", "y"},
		{"checkpoint"},
	} {
		if _, err := runAudit(args...); !errors.Is(err, errUsage) {
			t.Errorf("audit %q: %v, want a usage error", args, err)
		}
	}
	for _, args := range [][]string{
		{"--config", d.cfgPath},
		{"--month", reportMonth},
		{"--config", d.cfgPath, "--month", "2026-13"},
		{"--config", d.cfgPath, "--month", "Nov 2026"},
	} {
		if _, err := runReport(args...); !errors.Is(err, errUsage) {
			t.Errorf("report %q: %v, want a usage error", args, err)
		}
	}
	if _, err := runAudit("verify", "--config", d.cfgPath, "--checkpoint-file", filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing checkpoint file: %v", err)
	}
}

func TestReport(t *testing.T) {
	d := newAuditDeployment(t)
	d.appendEntries(t)

	out, err := runReport("--config", d.cfgPath, "--month", reportMonth)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`sealgate transparency report 2026-11-01 – 2026-11-30`,
		`(?m)^orders filed +2$`,
		`(?m)^orders approved \(reached their quorum\) +1$`,
		`(?m)^orders activated +1$`,
		`(?m)^orders rejected +1$`,
		`(?m)^orders expired +0$`,
		`(?m)^approvals given +2$`,
		`(?m)^refused attempts +1$`,
		`(?m)^views of sealed records +1$`,
		`(?m)^audit entries in the period +8$`,
		`counts only`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("report lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ord-") || strings.Contains(out, "p-1") {
		t.Errorf("report leaks an order id or pseudonym:\n%s", out)
	}

	out, err = runReport("--config", d.cfgPath, "--month", "2026-12", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var tr audit.Transparency
	if err := json.Unmarshal([]byte(out), &tr); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if tr.Expired != 1 || tr.Entries != 1 || tr.Filed != 0 || !tr.From.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("December: %+v", tr)
	}
}

func TestAuditStoreLockedByServe(t *testing.T) {
	d := newAuditDeployment(t)
	d.appendEntries(t)
	st, err := boltstore.Open(d.dbPath) // as a running serve holds it
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = runAudit("verify", "--config", d.cfgPath)
	if err == nil || !strings.Contains(err.Error(), "sealgate serve running") {
		t.Fatalf("verify while the store is held: %v", err)
	}
}

func TestAuditBackendRequired(t *testing.T) {
	if _, err := auditBackend(noAuditStore{}); err == nil || !strings.Contains(err.Error(), "keeps no audit log") {
		t.Fatalf("auditBackend of a store without a log: %v", err)
	}
}

// noAuditStore is a store.Store without an audit log.
type noAuditStore struct{ store.Store }
