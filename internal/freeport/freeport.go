// Package freeport finds free TCP ports on the loopback interface for tests
// that start servers (redis-server, PostgreSQL, the gateway) as separate
// processes.
//
// A port returned by Get is free at the moment Get returns; nothing stops
// another process from taking it before the caller binds it. Callers that
// hand the port to a child process must therefore detect "address already in
// use" and retry with a new port (testredis does). Within one process Get
// never returns the same port twice, so parallel tests of one package do not
// collide with each other.
package freeport

import (
	"fmt"
	"net"
	"sync"
)

// reserved ports are never returned even if free: the machine's own services
// listen there, and a test must never talk to them by accident.
var reserved = map[int]bool{
	5432: true, // PostgreSQL
	6379: true, // Redis
}

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// maxTries bounds the search; the kernel picks ephemeral ports at random, so
// running out means the ephemeral range is nearly exhausted.
const maxTries = 100

// Get returns a TCP port that is free on 127.0.0.1, chosen by the kernel.
func Get() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < maxTries; i++ {
		port, err := probe()
		if err != nil {
			return 0, err
		}
		if reserved[port] || handed[port] {
			continue
		}
		handed[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("freeport: no new free loopback port after %d tries", maxTries)
}

func probe() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("freeport: listen on 127.0.0.1:0: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		return 0, fmt.Errorf("freeport: close probe listener: %w", err)
	}
	return port, nil
}
