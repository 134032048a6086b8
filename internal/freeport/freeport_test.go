package freeport

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

func TestGetIsFreeAndBindable(t *testing.T) {
	port, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	if port <= 0 || port > 65535 || reserved[port] {
		t.Fatalf("bad port %d", port)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("port %d from Get is not bindable: %v", port, err)
	}
	ln.Close()
}

func TestGetNeverRepeatsConcurrently(t *testing.T) {
	const n = 50
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[int]bool{}
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			port, err := Get()
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[port] {
				t.Errorf("port %d handed out twice", port)
			}
			seen[port] = true
		}()
	}
	wg.Wait()
}
