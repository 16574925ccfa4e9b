// Command tend is an email-first support inbox server.
//
//	tend serve [--config FILE]        run everything
//	tend check-config FILE            validate a config (and its rules and templates)
//	tend token create NAME --role R   make an API token (lead, agent or admin)
//	tend user add EMAIL --role R      create a web login and print its password
//	tend healthcheck                  probe the local server (container HEALTHCHECK)
//	tend import mbox|maildir PATH…    import old mail, quietly and resumably
//	tend export --ticket N | --customer EMAIL --out DIR   JSON and raw .eml files
//	tend forget EMAIL                 erase a person's mail (GDPR), leaving an audit record
//	tend backup DIR                   a consistent online copy (SQLite)
//	tend verify-raw                   check every stored raw message against its SHA-256
//	tend bench                        measure this machine: ingest, drained end to end, CPU, RSS, pages
//	tend version                      print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: tend <command> [arguments]

commands:
  serve [--config FILE]          run the server (no config: the embedded default)
  check-config FILE              check a config file, its rules and templates
  token create NAME --role ROLE  create an API token (lead, agent, admin); printed once
  user add EMAIL --role ROLE     create or reset a web login; the password is printed once
  healthcheck [--config FILE]    exit 0 when the local server answers /readyz (for container HEALTHCHECK)
  import mbox|maildir PATH… [--config FILE] [--inbox ADDR]
                                 import old mail: threaded, never answered, resumable after a kill
  export --ticket N | --customer EMAIL --out DIR [--config FILE]
                                 write tickets as JSON plus their raw .eml files
  forget EMAIL [--config FILE]   erase a person's tickets, messages, raw bytes and contact (server stopped on SQLite)
  backup DIR [--config FILE]     a consistent copy of a running SQLite installation (PostgreSQL: pg_dump)
  verify-raw [--config FILE]     check every stored raw message (length, SHA-256) against the database;
                                 runs beside the server, exits 1 on any damage
  bench [--dsn DSN] [--messages N] [--concurrency 1,8,32] [--corpus DIR [--blast PATH]] [--json]
                                 benchmark this machine in a temporary database
  bench --burst N [--burst-mib 24] [--dsn DSN] [--json]
                                 N large messages at once with small mail beside them: RSS, p99, disk
  version                        print the version
`

// errUsage marks errors that should print the usage text.
var errUsage = errors.New("usage")

// run is main without the process: testable, and exit codes in one place.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], env, stdout, stderr)
	case "check-config":
		err = cmdCheckConfig(args[1:], env, stdout)
	case "token":
		err = cmdToken(ctx, args[1:], env, stdout)
	case "user":
		err = cmdUser(ctx, args[1:], env, stdout)
	case "healthcheck":
		err = cmdHealthcheck(ctx, args[1:], env, stdout)
	case "import":
		err = cmdImport(ctx, args[1:], env, stdout, stderr)
	case "export":
		err = cmdExport(ctx, args[1:], env, stdout)
	case "forget":
		err = cmdForget(ctx, args[1:], env, stdout)
	case "backup":
		err = cmdBackup(ctx, args[1:], env, stdout)
	case "verify-raw":
		err = cmdVerifyRaw(ctx, args[1:], env, stdout)
	case "bench":
		err = cmdBench(ctx, args[1:], env, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "tend", versionString())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "tend: %v\n\n%s", err, usage)
		return 2
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "tend: %v\n", err)
		return 1
	}
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + bi.GoVersion
	}
	return v
}
