package crypto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	updateVectors     = flag.Bool("update-vectors", false, "rewrite crypto/testdata vectors")
	updateFileVectors = flag.Bool("update-file-vectors", false, "rewrite crypto/testdata/*_file_* vectors (keeps the others)")
)

// vectorKeys is testdata/keys.json: the gateway keys and slot keys every
// vector was made with. They are test keys, published on purpose.
type vectorKeys struct {
	Comment     string          `json:"comment"`
	GatewayKeys json.RawMessage `json:"gateway_keys"`
	Passphrase  string          `json:"passphrase"`
	Slots       []string        `json:"slots"` // age-armored slot key files
	Quorum      int             `json:"quorum"`
}

// vector is one good_* or fail_* file. Every vector runs the whole unseal
// path: parse the epoch, parse the key record under tag, open the listed
// slots' shares, recover the day key, open the record under ref.
type vector struct {
	Comment   string `json:"comment"`
	Employee  string `json:"employee"`
	Day       string `json:"day"`
	Tag       string `json:"tag"`
	Ref       string `json:"ref"`
	Epoch     string `json:"epoch"`
	KeyRecord string `json:"key_record"`
	Record    string `json:"record,omitempty"`
	// File, instead of Record, is a sealed file content (hex); its
	// expected content is ExpectFile (hex).
	File       string `json:"file,omitempty"`
	ExpectFile string `json:"expect_file,omitempty"`
	Slots      []int  `json:"slots"`
	// Error is "" for good vectors, else auth, malformed or too_few_shares.
	Error  string        `json:"error,omitempty"`
	Expect *vectorExpect `json:"expect,omitempty"`
}

type vectorExpect struct {
	PostID  string `json:"post_id"`
	Kind    string `json:"kind"`
	Version int64  `json:"version"`
	TimeMs  int64  `json:"time_ms"`
	Body    string `json:"body"`
}

func loadVectorKeys(t *testing.T) (*GatewayKeys, []*HPKEIdentity, vectorKeys) {
	t.Helper()
	raw, err := os.ReadFile("testdata/keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var vk vectorKeys
	if err := json.Unmarshal(raw, &vk); err != nil {
		t.Fatal(err)
	}
	gk, err := ReadGatewayKeys(bytes.NewReader(vk.GatewayKeys))
	if err != nil {
		t.Fatal(err)
	}
	var ids []*HPKEIdentity
	for _, s := range vk.Slots {
		id, err := DecryptIdentity(strings.NewReader(s), vk.Passphrase)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return gk, ids, vk
}

func unhex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runVector returns the opened event or the first error on the unseal path.
func runVector(t *testing.T, gk *GatewayKeys, ids []*HPKEIdentity, v *vector) (*Event, error) {
	dk, ref, err := vectorDayKey(t, gk, ids, v)
	if err != nil {
		return nil, err
	}
	return OpenRecord(dk, ref, unhex(t, v.Record))
}

// runFileVector returns the opened file content or the first error.
func runFileVector(t *testing.T, gk *GatewayKeys, ids []*HPKEIdentity, v *vector) ([]byte, error) {
	dk, ref, err := vectorDayKey(t, gk, ids, v)
	if err != nil {
		return nil, err
	}
	return readFile(dk, ref, unhex(t, v.File))
}

// vectorDayKey runs the escrow part of a vector: the day key and the ref.
func vectorDayKey(t *testing.T, gk *GatewayKeys, ids []*HPKEIdentity, v *vector) (*DayKey, Ref, error) {
	var tag Tag
	var ref Ref
	copy(tag[:], unhex(t, v.Tag))
	copy(ref[:], unhex(t, v.Ref))
	ep, err := ParseEpochRecord(unhex(t, v.Epoch), gk.Verifier())
	if err != nil {
		return nil, ref, err
	}
	kr, err := ParseKeyRecord(tag, unhex(t, v.KeyRecord), gk.Verifier())
	if err != nil {
		return nil, ref, err
	}
	var shares []*Share
	for _, s := range v.Slots {
		sh, err := OpenShare(ids[s], s, ep, kr, v.Employee, v.Day)
		if err != nil {
			return nil, ref, err
		}
		shares = append(shares, sh)
	}
	dk, err := RecoverDayKey(kr, v.Employee, v.Day, shares)
	return dk, ref, err
}

func errorClass(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrTooFewShares):
		return "too_few_shares"
	case errors.Is(err, ErrAuth):
		return "auth"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	}
	return "other: " + err.Error()
}

func TestVectors(t *testing.T) {
	if *updateVectors {
		writeVectors(t)
	}
	if *updateFileVectors {
		writeFileVectors(t)
	}
	gk, ids, _ := loadVectorKeys(t)
	files, _ := filepath.Glob("testdata/*_*.json")
	var good, fail int
	for _, file := range files {
		name := filepath.Base(file)
		if name == "keys.json" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var v vector
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			if v.File != "" {
				good, fail = runFileCase(t, gk, ids, name, &v, good, fail)
				return
			}
			got, err := runVector(t, gk, ids, &v)
			switch {
			case strings.HasPrefix(name, "good_"):
				good++
				if err != nil {
					t.Fatalf("good vector failed: %v", err)
				}
				e := v.Expect
				if got.PostID != e.PostID || got.Kind.String() != e.Kind || got.Version != e.Version || got.Time.UnixMilli() != e.TimeMs || string(got.Body) != e.Body || got.Employee != v.Employee {
					t.Fatalf("opened %+v, want %+v", got, e)
				}
			case strings.HasPrefix(name, "fail_"):
				fail++
				if c := errorClass(err); c != v.Error {
					t.Fatalf("error class %q (%v), want %q", c, err, v.Error)
				}
			default:
				t.Fatalf("vector file %s is neither good_* nor fail_*", name)
			}
		})
	}
	if good < 3 || fail < 14 {
		t.Fatalf("only %d good and %d fail vectors", good, fail)
	}
}

// writeVectors regenerates testdata/. Run: go test ./crypto -run TestVectors -update-vectors
func writeVectors(t *testing.T) {
	keys, _ := NewGatewayKeys()
	var gkBuf bytes.Buffer
	keys.Write(&gkBuf)
	vk := vectorKeys{Comment: "test keys for the vectors in this directory; never use them elsewhere",
		GatewayKeys: json.RawMessage(gkBuf.Bytes()), Passphrase: "vector-passphrase", Quorum: 3}
	var ids []*HPKEIdentity
	var rcps []Recipient
	for i := 0; i < 5; i++ {
		kem := KEMMLKEM768X25519
		if i == 4 {
			kem = KEMX25519 // slots may mix KEMs
		}
		id, _ := GenerateSlotKey(kem)
		var b bytes.Buffer
		if err := EncryptIdentity(&b, id, vk.Passphrase, 10); err != nil {
			t.Fatal(err)
		}
		vk.Slots = append(vk.Slots, b.String())
		ids = append(ids, id)
		rcps = append(rcps, id.Recipient())
	}
	other, _ := NewGatewayKeys()
	at := time.Date(2026, 11, 22, 11, 22, 8, 366e6, time.UTC)
	mk := func(k *GatewayKeys, e *Event) (*vector, *Sealed) {
		s, err := NewSealer(SealerConfig{Keys: k, Slots: rcps, Quorum: 3, Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		ref := k.Ref(e.PostID, e.Kind, e.Version)
		out, err := s.Seal(e, ref)
		if err != nil {
			t.Fatal(err)
		}
		return &vector{Employee: e.Employee, Day: Day(e.Time), Tag: hex.EncodeToString(out.Tag[:]), Ref: hex.EncodeToString(out.Ref[:]),
			Epoch: hex.EncodeToString(out.Epoch), KeyRecord: hex.EncodeToString(out.KeyRecord), Record: hex.EncodeToString(out.Record),
			Slots:  []int{0, 2, 4},
			Expect: &vectorExpect{PostID: e.PostID, Kind: e.Kind.String(), Version: e.Version, TimeMs: e.Time.UnixMilli(), Body: string(e.Body)}}, out
	}
	posted := &Event{Employee: "g6e8xk8t6t86tjy8nrqyeqmm5c", PostID: "9da1gibgibgtfbw6dt4u3smkzh", Kind: KindPosted, Version: at.UnixMilli(), Time: at,
		Body: []byte(`{"kind":"posted","post":{"id":"9da1gibgibgtfbw6dt4u3smkzh","user_id":"g6e8xk8t6t86tjy8nrqyeqmm5c","channel_id":"qgrjjwpm6frgznmapkpze56dfe","create_at":1795346528366,"message":"Goedemorgen — zullen we vandaag afronden? 🇳🇱"}}`)}
	deleted := &Event{Employee: "g6e8xk8t6t86tjy8nrqyeqmm5c", PostID: "jhf5m8yys3gz9ydn943d9y3sta", Kind: KindDeleted, Version: at.UnixMilli() + 5000, Time: at.Add(5 * time.Second),
		Body: []byte(`{"kind":"deleted","post":{"id":"jhf5m8yys3gz9ydn943d9y3sta","user_id":"g6e8xk8t6t86tjy8nrqyeqmm5c","channel_id":"qgrjjwpm6frgznmapkpze56dfe","create_at":1795346520000,"delete_at":0,"message":"to be deleted"},"deleted_at":1795346533366}`)}

	out := map[string]*vector{}
	good, _ := mk(keys, posted)
	good.Comment = "a post sealed under its author's day key, opened with slots 0, 2 and 4 (two PQ hybrid slots and one X25519 slot)"
	out["good_record_posted.json"] = good
	gd, _ := mk(keys, deleted)
	gd.Comment = "a delete tombstone, stamped by the plugin, opened with slots 1, 2, 3"
	gd.Slots = []int{1, 2, 3}
	out["good_record_deleted.json"] = gd

	mut := func(name, comment, class string, f func(v *vector)) {
		v := *good
		v.Expect = nil
		v.Comment, v.Error = comment, class
		v.Slots = append([]int(nil), good.Slots...)
		f(&v)
		out[name] = &v
	}
	mut("fail_record_bitflip.json", "one bit of the record ciphertext flipped", "auth", func(v *vector) { v.Record = flip(v.Record, 40) })
	mut("fail_record_tag_bitflip.json", "one bit of the record's GCM tag flipped", "auth", func(v *vector) { v.Record = flip(v.Record, -1) })
	mut("fail_record_truncated.json", "the record cut inside its header", "malformed", func(v *vector) { v.Record = v.Record[:20] })
	mut("fail_record_version.json", "an unknown record format version", "malformed", func(v *vector) { v.Record = "02" + v.Record[2:] })
	mut("fail_record_moved_post.json", "the record presented under the ref of another post", "auth", func(v *vector) { v.Ref = gd.Ref })
	mut("fail_record_wrong_employee.json", "opened as if it belonged to another employee", "auth", func(v *vector) { v.Employee = "i8p86y7at78kbpor7j5myu77uw" })
	mut("fail_record_wrong_day.json", "opened as if it belonged to the next day", "auth", func(v *vector) { v.Day = "2026-11-23" })
	mut("fail_keyrecord_other_tag.json", "the key record moved to another employee-day's tag", "auth", func(v *vector) { v.Tag = hex.EncodeToString(make([]byte, 16)) })
	mut("fail_keyrecord_bitflip.json", "one bit of a sealed share in the key record flipped (breaks the gateway signature)", "auth", func(v *vector) { v.KeyRecord = flip(v.KeyRecord, 100) })
	mut("fail_keyrecord_truncated.json", "the key record cut short", "malformed", func(v *vector) { v.KeyRecord = v.KeyRecord[:60] })
	mut("fail_epoch_bitflip.json", "one bit of a slot's encapsulated key in the epoch flipped", "auth", func(v *vector) { v.Epoch = flip(v.Epoch, 200) })
	mut("fail_shares_too_few.json", "only two of the three required slots", "too_few_shares", func(v *vector) { v.Slots = []int{0, 4} })
	forged, _ := mk(other, posted)
	mut("fail_keyrecord_forged.json", "sealed with the real public slot keys but signed by another gateway key", "auth", func(v *vector) {
		v.Epoch, v.KeyRecord, v.Record, v.Tag, v.Ref = forged.Epoch, forged.KeyRecord, forged.Record, good.Tag, good.Ref
	})
	write := func(name string, v any) {
		b, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(filepath.Join("testdata", name), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := filepath.Glob("testdata/*.json")
	for _, f := range old {
		os.Remove(f)
	}
	write("keys.json", vk)
	for name, v := range out {
		write(name, v)
	}
}

func runFileCase(t *testing.T, gk *GatewayKeys, ids []*HPKEIdentity, name string, v *vector, good, fail int) (int, int) {
	got, err := runFileVector(t, gk, ids, v)
	switch {
	case strings.HasPrefix(name, "good_"):
		if err != nil {
			t.Fatalf("good vector failed: %v", err)
		}
		if !bytes.Equal(got, unhex(t, v.ExpectFile)) {
			t.Fatalf("opened %d bytes, not the expected content", len(got))
		}
		return good + 1, fail
	case strings.HasPrefix(name, "fail_"):
		if c := errorClass(err); c != v.Error {
			t.Fatalf("error class %q (%v), want %q", c, err, v.Error)
		}
		return good, fail + 1
	}
	t.Fatalf("vector file %s is neither good_* nor fail_*", name)
	return good, fail
}

// writeFileVectors (re)writes the sealed-file vectors under the day key of
// good_record_posted.json, recovered through its escrow, so the other
// vectors stay as they are. The segment size is the real one (1 MiB), so
// the vector is a one-segment file; multi-segment files are covered by
// TestOpenFileRefusals.
// Run: go test ./crypto -run TestVectors -update-file-vectors
func writeFileVectors(t *testing.T) {
	gk, ids, _ := loadVectorKeys(t)
	raw, err := os.ReadFile("testdata/good_record_posted.json")
	if err != nil {
		t.Fatal(err)
	}
	var base vector
	if err := json.Unmarshal(raw, &base); err != nil {
		t.Fatal(err)
	}
	dk, _, err := vectorDayKey(t, gk, ids, &base)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 22, 11, 23, 0, 0, time.UTC)
	ref := gk.Ref("7ugdtgrbhbn5bp6mqajxq3ej3h", KindFile, at.UnixMilli())
	content := []byte("%PDF-1.7 quarterly-figures.pdf: a small shared file sealed with the day key's streaming AEAD\n")
	var sealed bytes.Buffer
	w, err := dk.SealFile(ref, &sealed)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(content)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	good := base
	good.Comment = "a shared file's content sealed with the streaming key of the same key record as good_record_posted, opened with slots 0, 2 and 4"
	good.Ref, good.Record, good.File, good.ExpectFile, good.Expect = hex.EncodeToString(ref[:]), "", hex.EncodeToString(sealed.Bytes()), hex.EncodeToString(content), nil
	out := map[string]*vector{"good_file_small.json": &good}
	mut := func(name, comment, class string, f func(v *vector)) {
		v := good
		v.ExpectFile = ""
		v.Comment, v.Error = comment, class
		f(&v)
		out[name] = &v
	}
	mut("fail_file_bitflip.json", "one bit of the file ciphertext flipped", "auth", func(v *vector) { v.File = flip(v.File, 17+40+10) })
	mut("fail_file_truncated.json", "the last byte of the last segment cut off", "auth", func(v *vector) { v.File = v.File[:len(v.File)-2] })
	mut("fail_file_header_truncated.json", "the sealed file cut inside sealgate's header", "malformed", func(v *vector) { v.File = v.File[:20] })
	mut("fail_file_version.json", "an unknown sealed-file format version", "malformed", func(v *vector) { v.File = "02" + v.File[2:] })
	mut("fail_file_moved.json", "the sealed file presented under the ref of the posted record", "auth", func(v *vector) { v.Ref = base.Ref })
	mut("fail_file_wrong_employee.json", "opened as if it belonged to another employee", "auth", func(v *vector) { v.Employee = "i8p86y7at78kbpor7j5myu77uw" })
	for name, v := range out {
		b, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(filepath.Join("testdata", name), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// flip flips the low bit of byte i (from the end if negative) of hex s.
func flip(s string, i int) string {
	b, _ := hex.DecodeString(s)
	if i < 0 {
		i += len(b)
	}
	b[i] ^= 0x01
	return hex.EncodeToString(b)
}
