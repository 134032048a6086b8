package notice_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealgate/sealgate/notice"
)

// TestMattermostDownEscalatesNeverLoses: the real Mattermost sender against
// a server whose API fails the first 11 posts. The notice is retried with
// backoff, escalated after 5 and 10 failures, delivered on the 12th try,
// and then gone from the outbox — counted, never lost.
func TestMattermostDownEscalatesNeverLoses(t *testing.T) {
	var posts, channels atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v4/channels/direct":
			channels.Add(1)
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"id":"64yoetujjt8iumuwf99xoxyzpc","type":"D"}`))
		case "/api/v4/posts":
			if posts.Add(1) <= 11 {
				w.WriteHeader(http.StatusInternalServerError)
				w.Write([]byte(`{"id":"app.post.save.app_error","status_code":500}`))
				return
			}
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"id":"z5hxa691a7yn3ycgkmyqu1bjbe","channel_id":"64yoetujjt8iumuwf99xoxyzpc"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	mm := &notice.MattermostSender{BaseURL: srv.URL, BotToken: "b0tt0kenb0tt0kenb0tt0kenbo", BotUserID: "i8p86y7at78kbpor7j5myu77uw"}
	f := newDspFixture(t, mm)
	n := obNotice("ntc_down", obT0)
	n.UserID = "g6e8xk8t6t86tjy8nrqyeqmm5c"
	f.enqueue(n)
	for attempt := 1; attempt <= 11; attempt++ {
		f.run(0, 1)
		if q := f.queued(); len(q) != 1 || q[0].Attempts != attempt {
			t.Fatalf("after %d failures the outbox holds %+v", attempt, q)
		}
		f.clock.Set(f.queued()[0].Due)
	}
	f.run(1, 0)
	if len(f.escal) != 2 || f.escal[0].attempts != 5 || f.escal[1].attempts != 10 {
		t.Fatalf("escalations %+v, want at 5 and 10", f.escal)
	}
	if len(f.deliver) != 1 || f.deliver[0] != (delivery{"ntc_down", "mattermost"}) || posts.Load() != 12 {
		t.Fatalf("delivered %v after %d posts", f.deliver, posts.Load())
	}
	if q := f.queued(); len(q) != 0 {
		t.Fatalf("outbox still holds %+v", q)
	}
	f.clock.Set(f.clock.Now().Add(24 * time.Hour))
	f.run(0, 0)
	if posts.Load() != 12 {
		t.Fatal("delivered twice")
	}
}
