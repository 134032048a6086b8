// Command sealgate is the one sealgate binary.
//
//	sealgate demo                                   the whole flow in one process, no services needed
//	sealgate init --dir DIR --approvers N --quorum M  a test or demo deployment: config, gateway keys, N slot keys
//	sealgate keygen --out FILE [--kem x25519]       one approver slot key (passphrase-protected) and FILE.pub
//	sealgate serve --config FILE                    the gateway: ingest API, order API, health, metrics (needs Redis)
//	sealgate reconcile --config FILE --since T      ingest what the capture paths missed, read from Mattermost's API
//	sealgate order file|show|revoke, approve, reject, unseal   investigation orders, through the order API
//	sealgate audit verify|checkpoint --config FILE  verify the audit log; print the head to publish
//	sealgate report --config FILE --month YYYY-MM   monthly transparency report (counts only)
//	sealgate aggregates --config FILE --from D --to D  the k-anonymous activity aggregates (table, JSON, CSV, chart)
//	sealgate privacy-scan --canary S [--redis ADDR] [--url URL] PATH…  search what was written for planted canaries
//
// Passphrases come from a prompt on the terminal, or from SEALGATE_PASSPHRASE
// (for tests and automation).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `sealgate — sealed, quorum-gated retention for Mattermost

usage:
  sealgate demo                                     run the whole flow in one process on embedded defaults
  sealgate init --dir DIR [--approvers N] [--quorum M]
                                                    write a test/demo deployment: config, gateway keys, slot keys
  sealgate keygen --out FILE [--kem mlkem768x25519|x25519]
                                                    create one approver slot key; prints the public key
  sealgate serve --config FILE                      run the gateway (requires a reachable Redis)
  sealgate reconcile --config FILE --since T [--json]
                                                    ingest what the capture paths missed since T (RFC 3339, YYYY-MM-DD or 24h/7d back)

audit log (the file store cannot be read while serve runs on it):
  sealgate audit verify --config FILE [--checkpoint LINE | --checkpoint-file FILE]
                                                    check the hash chain (and a published checkpoint); print the head to publish
  sealgate audit checkpoint --config FILE           print the verified head as one checkpoint line
  sealgate report --config FILE --month YYYY-MM [--json]
                                                    transparency report of one month (UTC): counts only
  sealgate aggregates --config FILE --from YYYY-MM-DD --to YYYY-MM-DD [--by hour|day]
          [--format table|json|csv] [--chart FILE.png|FILE.svg] [--k N]
                                                    activity aggregates of groups of at least k people
  sealgate privacy-scan --canary S [--canaries FILE] [--redis ADDR] [--url URL] [PATH ...]
                                                    search files, Redis and URLs for planted canaries (also encoded); exit 1 on a hit

investigation orders (the caller's Mattermost token in SEALGATE_TOKEN):
  sealgate order file --config FILE --key REQUESTER.key --form ORDER.json
                                                    file an order, signed with the requester's key
  sealgate order show ORDER --config FILE           print an order for review
  sealgate approve ORDER --config FILE --key SLOT.key [--yes] [--deferral]
                                                    review, then approve with your slot key
  sealgate reject ORDER --config FILE --key SLOT.key --reason TEXT
  sealgate order revoke ORDER --config FILE --reason TEXT
  sealgate order defer ORDER --config FILE --key REQUESTER.key --until YYYY-MM-DD --ground TEXT
                                                    renew a deferred notice once; then approve it with --deferral
  sealgate unseal ORDER --config FILE --format html|json|eml --out FILE
                                                    the requester's watermarked export

Passphrases are read from the terminal, or from SEALGATE_PASSPHRASE.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks errors caused by the command line; they exit with 2.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "demo":
		err = cmdDemo(args[1:], stdout)
	case "init":
		err = cmdInit(args[1:], stdout)
	case "keygen":
		err = cmdKeygen(args[1:], stdout)
	case "serve":
		err = cmdServe(args[1:], stdout, stderr)
	case "order":
		err = cmdOrder(args[1:], stdout)
	case "approve":
		err = cmdApprove(args[1:], os.Stdin, stdout)
	case "reject":
		err = cmdReject(args[1:], stdout)
	case "unseal":
		err = cmdUnseal(args[1:], stdout)
	case "audit":
		err = cmdAudit(args[1:], stdout)
	case "report":
		err = cmdReport(args[1:], stdout)
	case "reconcile":
		err = cmdReconcile(args[1:], stdout, stderr)
	case "aggregates":
		err = cmdAggregates(args[1:], stdout)
	case "privacy-scan":
		err = cmdPrivacyScan(args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "sealgate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "sealgate %s: %v\n", args[0], err)
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			return 2
		}
		return 1
	}
	return 0
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}
