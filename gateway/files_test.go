package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/store"
)

const (
	fileEmployee = "g6e8xk8t6t86tjy8nrqyeqmm5c"
	fileID       = "7ugdtgrbhbn5bp6mqajxq3ej3h"
	fileCanary   = "CANARY-file-content-5ec2"
)

type fileReq struct {
	id, employee, createAt, sha, tok string
	body                             io.Reader
	length                           int64 // -1: chunked, no Content-Length
}

func (g *testGateway) putFile(t *testing.T, r fileReq) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("PUT", g.srv.URL+"/v1/files/"+r.id, r.body)
	req.ContentLength = r.length
	if r.tok != "" {
		req.Header.Set("Authorization", "Bearer "+r.tok)
	}
	req.Header.Set("X-Sealgate-Employee", r.employee)
	req.Header.Set("X-Sealgate-Create-At", r.createAt)
	req.Header.Set("X-Sealgate-Content-SHA256", r.sha)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func fileContent(t *testing.T, n int) ([]byte, string) {
	b := make([]byte, n)
	rand.Read(b)
	for i := 0; i+len(fileCanary) <= n; i += 256 << 10 {
		copy(b[i:], fileCanary)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// openStoredFile recovers the day key of (employee, day of at) through the
// escrow, as an approved release does, and opens the stored file.
func (g *testGateway) openStoredFile(t *testing.T, employee, id string, at time.Time) ([]byte, error) {
	t.Helper()
	ctx := context.Background()
	day := crypto.Day(at)
	krs, err := g.store.KeyRecords(ctx, g.keys.Tag(employee, day))
	if err != nil || len(krs) != 1 {
		t.Fatalf("key records: %d, %v", len(krs), err)
	}
	kr, err := crypto.ParseKeyRecord(krs[0].Tag, krs[0].Blob, g.keys.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	epr, err := g.store.Epoch(ctx, krs[0].EpochID)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := crypto.ParseEpochRecord(epr.Blob, g.keys.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	var shares []*crypto.Share
	for _, slot := range []int{0, 2} {
		sh, err := crypto.OpenShare(g.ids[slot], slot, ep, kr, employee, day)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, sh)
	}
	dk, err := crypto.RecoverDayKey(kr, employee, day, shares)
	if err != nil {
		t.Fatal(err)
	}
	ref := g.keys.Ref(id, crypto.KindFile, at.UnixMilli())
	f, rc, err := g.store.OpenFile(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if f.KeyRecordID != dk.ID() || f.Tag != g.keys.Tag(employee, day) || f.Hour != at.Unix()/3600 {
		t.Fatalf("file row %+v does not name its day key", f)
	}
	r, err := crypto.OpenFile(dk, ref, rc)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestPutFile(t *testing.T) {
	g := newTestGateway(t)
	ctx := context.Background()
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	ms := strconv.FormatInt(at.UnixMilli(), 10)
	content, sum := fileContent(t, 3<<20+17)

	// The metadata event first, as the plugin sends it: the file shares
	// the day key of its uploader's posts.
	meta := fmt.Sprintf(`{"events":[{"kind":"file","file":{"id":%q,"user_id":%q,"post_id":"9da1gibgibgtfbw6dt4u3smkzh","channel_id":"qgrjjwpm6frgznmapkpze56dfe","create_at":%d,"name":"%s.pdf","size":%d,"sha256":%q,"content_sealed":true}}]}`,
		fileID, fileEmployee, at.UnixMilli(), fileCanary, len(content), sum)
	if code, ans := g.do(t, "POST", token, "application/json", meta); code != 200 {
		t.Fatalf("metadata: %d %s", code, ans)
	}
	before, _ := g.store.Stats(ctx)

	code, ans := g.putFile(t, fileReq{id: fileID, employee: fileEmployee, createAt: ms, sha: sum, tok: token, body: bytes.NewReader(content), length: int64(len(content))})
	if code != 200 || ans["stored"] != true || ans["bytes"] != float64(len(content)) {
		t.Fatalf("put: %d %v", code, ans)
	}
	got, err := g.openStoredFile(t, fileEmployee, fileID, at)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("stored content does not open to what was sent (%d bytes, %v)", len(got), err)
	}
	if after, _ := g.store.Stats(ctx); after.KeyRecords != before.KeyRecords || after.Records != before.Records {
		t.Fatalf("the file must reuse the day key and add no record: %+v → %+v", before, after)
	}
	// Re-sending is a duplicate, chunked or not.
	code, ans = g.putFile(t, fileReq{id: fileID, employee: fileEmployee, createAt: ms, sha: sum, tok: token, body: bytes.NewReader(content), length: -1})
	if code != 200 || ans["stored"] != false {
		t.Fatalf("re-put: %d %v", code, ans)
	}

	// A file whose day has no event yet gets its key record with it.
	at2 := at.Add(-24 * time.Hour)
	small, smallSum := fileContent(t, 1000)
	code, ans = g.putFile(t, fileReq{id: "otherfile1", employee: "i8p86y7at78kbpor7j5myu77uw", createAt: strconv.FormatInt(at2.UnixMilli(), 10), sha: smallSum, tok: token, body: bytes.NewReader(small), length: -1})
	if code != 200 || ans["stored"] != true {
		t.Fatalf("put on a new day: %d %v", code, ans)
	}
	if got, err := g.openStoredFile(t, "i8p86y7at78kbpor7j5myu77uw", "otherfile1", at2); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("file on a new day: %v", err)
	}

	// Refusals: each leaves nothing behind.
	wrong, wrongSum := fileContent(t, 2<<20)
	_, otherSum := fileContent(t, 10)
	big := bytes.Repeat([]byte("x"), 8<<20+1)
	bigSum := sha256.Sum256(big)
	for _, tc := range []struct {
		name string
		r    fileReq
		code int
	}{
		{"no token", fileReq{id: "f1", employee: fileEmployee, createAt: ms, sha: wrongSum, body: bytes.NewReader(wrong), length: -1}, 401},
		{"wrong token", fileReq{id: "f1", employee: fileEmployee, createAt: ms, sha: wrongSum, tok: "test-token-0123456789abcdeX", body: bytes.NewReader(wrong), length: -1}, 401},
		{"digest of other content", fileReq{id: "f1", employee: fileEmployee, createAt: ms, sha: otherSum, tok: token, body: bytes.NewReader(wrong), length: -1}, 400},
		{"malformed digest", fileReq{id: "f1", employee: fileEmployee, createAt: ms, sha: "abc", tok: token, body: bytes.NewReader(wrong), length: -1}, 400},
		{"no employee", fileReq{id: "f1", createAt: ms, sha: wrongSum, tok: token, body: bytes.NewReader(wrong), length: -1}, 400},
		{"employee with a slash", fileReq{id: "f1", employee: "a/b", createAt: ms, sha: wrongSum, tok: token, body: bytes.NewReader(wrong), length: -1}, 400},
		{"no create_at", fileReq{id: "f1", employee: fileEmployee, sha: wrongSum, tok: token, body: bytes.NewReader(wrong), length: -1}, 400},
		{"create_at in the future", fileReq{id: "f1", employee: fileEmployee, createAt: strconv.FormatInt(time.Now().Add(48*time.Hour).UnixMilli(), 10), sha: wrongSum, tok: token, body: bytes.NewReader(wrong), length: -1}, 400},
		{"too large, declared", fileReq{id: "f1", employee: fileEmployee, createAt: ms, sha: hex.EncodeToString(bigSum[:]), tok: token, body: bytes.NewReader(big), length: int64(len(big))}, 413},
		{"too large, chunked", fileReq{id: "f1", employee: fileEmployee, createAt: ms, sha: hex.EncodeToString(bigSum[:]), tok: token, body: bytes.NewReader(big), length: -1}, 413},
		{"body cut short", fileReq{id: "f1", employee: fileEmployee, createAt: ms, sha: wrongSum, tok: token, body: io.MultiReader(bytes.NewReader(wrong[:1<<20]), errReader{}), length: -1}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("PUT", g.srv.URL+"/v1/files/"+tc.r.id, tc.r.body)
			req.ContentLength = tc.r.length
			if tc.r.tok != "" {
				req.Header.Set("Authorization", "Bearer "+tc.r.tok)
			}
			req.Header.Set("X-Sealgate-Employee", tc.r.employee)
			req.Header.Set("X-Sealgate-Create-At", tc.r.createAt)
			req.Header.Set("X-Sealgate-Content-SHA256", tc.r.sha)
			resp, err := http.DefaultClient.Do(req)
			if tc.code == -1 {
				if err == nil { // the client gave up sending: no answer is expected
					resp.Body.Close()
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.code || !strings.Contains(string(b), `"error"`) {
					t.Fatalf("%d %s, want %d with a reason", resp.StatusCode, b, tc.code)
				}
			}
			ref := g.keys.Ref("f1", crypto.KindFile, at.UnixMilli())
			// The handler may still be unwinding after a cut body.
			deadline := time.Now().Add(5 * time.Second)
			for {
				has, err := g.store.HasFile(ctx, ref)
				if err != nil {
					t.Fatal(err)
				}
				if !has {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("a refused upload is visible in the store")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if _, _, err := g.store.OpenFile(ctx, ref); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("OpenFile after a refusal: %v", err)
			}
		})
	}
	// The same id and digest with the right content is accepted after all
	// of that: the refusals left no half file in the way.
	code, ans = g.putFile(t, fileReq{id: "f1", employee: fileEmployee, createAt: ms, sha: wrongSum, tok: token, body: bytes.NewReader(wrong), length: -1})
	if code != 200 || ans["stored"] != true {
		t.Fatalf("put after refusals: %d %v", code, ans)
	}

	// Nothing in clear: no content, no file name, no ids in the store file
	// or the log.
	g.store.Close()
	raw, err := os.ReadFile(g.path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fileCanary, fileID, fileEmployee, "otherfile1", "i8p86y7at78kbpor7j5myu77uw"} {
		if bytes.Contains(raw, []byte(s)) {
			t.Fatalf("store file holds %q", s)
		}
		if bytes.Contains(g.log.Bytes(), []byte(s)) {
			t.Fatalf("log holds %q", s)
		}
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection dropped") }
