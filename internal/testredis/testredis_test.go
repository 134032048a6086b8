package testredis

import (
	"bytes"
	"context"
	"testing"
)

func TestStartDumpStop(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	if err := s.Client().Set(ctx, "k", "VALUE-IN-DUMP", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if s.Addr() == "127.0.0.1:6379" {
		t.Fatal("used the system redis port")
	}
	if !bytes.Contains(s.Dump(t), []byte("VALUE-IN-DUMP")) {
		t.Fatal("dump lacks the value")
	}
	s.Stop()
	s.Stop()
}
