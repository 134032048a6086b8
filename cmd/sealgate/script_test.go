package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// The CLI's behaviour is specified by the scripts in testdata/script, run
// against the real binary code (testscript re-executes this test binary as
// "sealgate").
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"sealgate": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}
