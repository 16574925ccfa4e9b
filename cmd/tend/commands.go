package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/storage"
)

// loadConfig loads path ("" = the embedded default) with env overrides.
func loadConfig(path string, env []string) (config.Config, error) {
	cfg, err := config.Load(path, env)
	if err != nil {
		return config.Config{}, err
	}
	return cfg, nil
}

// openStore opens the configured database.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (*storage.Store, error) {
	opts := storeOptions(cfg)
	opts.Logger = log
	return storage.Open(ctx, opts)
}

// storeOptions are the database's options from cfg. Leases go by the
// database's clock, so that replicas with skewed clocks never take each
// other's live leases (it changes nothing on SQLite).
func storeOptions(cfg config.Config) storage.Options {
	return storage.Options{Driver: cfg.Database.Driver, DSN: cfg.Database.DSN, DataDir: cfg.DataDir, DatabaseClock: true}
}

func cmdCheckConfig(args, env []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: check-config takes one FILE", errUsage)
	}
	cfg, err := loadConfig(fs.Arg(0), env)
	if err != nil {
		return err
	}
	if err := checkExtras(cfg); err != nil {
		return err
	}
	if err := checkDataDir(cfg.DataDir); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d inboxes, %d agents)\n", fs.Arg(0), len(cfg.Inboxes), len(cfg.Agents))
	return nil
}

// roleFlag parses a --role flag.
func roleFlag(fs *flag.FlagSet) *string {
	return fs.String("role", storage.RoleAgent, "role: lead, agent or admin")
}

func checkRole(role string) error {
	if !slices.Contains([]string{storage.RoleAgent, storage.RoleLead, storage.RoleAdmin}, role) {
		return fmt.Errorf("%w: --role must be lead, agent or admin, not %q", errUsage, role)
	}
	return nil
}

// parseInterspersed parses flags that may come after positional arguments
// ("token create NAME --role lead").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// storeCommand parses "SUB ARG --role ROLE [--config FILE] [more flags]",
// opens the configured database and calls fn with the argument and role.
func storeCommand(ctx context.Context, name string, args, env []string, flags func(*flag.FlagSet), fn func(st *storage.Store, arg, role string) error) error {
	usage := fmt.Errorf("%w: %s ARG --role ROLE", errUsage, name)
	_, verb, _ := strings.Cut(name, " ")
	if len(args) == 0 || args[0] != verb {
		return usage
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	role := roleFlag(fs)
	cfgPath := fs.String("config", "", "config file")
	if flags != nil {
		flags(fs)
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		return usage
	}
	if err := checkRole(*role); err != nil {
		return err
	}
	st, _, err := openExisting(ctx, name, *cfgPath, env, false)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st, pos[0], *role)
}

// openExisting opens the database of the config at cfgPath for command
// name, never creating one; exclusive as storage.Options.Exclusive.
func openExisting(ctx context.Context, name, cfgPath string, env []string, exclusive bool) (*storage.Store, config.Config, error) {
	cfg, err := loadConfig(cfgPath, env)
	if err != nil {
		return nil, cfg, err
	}
	opts := storeOptions(cfg)
	opts.Existing = true
	opts.Exclusive = exclusive
	st, err := storage.Open(ctx, opts)
	if errors.Is(err, storage.ErrNoDatabase) {
		return nil, cfg, fmt.Errorf("%w: start tend serve first, or give %s the --config file the server runs with", err, name)
	}
	if err != nil {
		return nil, cfg, err
	}
	return st, cfg, nil
}

func cmdToken(ctx context.Context, args, env []string, stdout io.Writer) error {
	return storeCommand(ctx, "token create", args, env, nil, func(st *storage.Store, name, role string) error {
		secret, err := st.CreateToken(ctx, name, role)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", secret)
		return nil
	})
}

func cmdUser(ctx context.Context, args, env []string, stdout io.Writer) error {
	var name *string
	return storeCommand(ctx, "user add", args, env, func(fs *flag.FlagSet) { name = fs.String("name", "", "display name") },
		func(st *storage.Store, email, role string) error {
			pw := rand.Text()
			if err := st.SetPassword(ctx, email, *name, role, pw); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s can log in with the password %s (shown once)\n", email, pw)
			return nil
		})
}

// cmdHealthcheck asks the local web listener whether tend is ready. It
// exists because the container image has no curl.
func cmdHealthcheck(ctx context.Context, args, env []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, env)
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(cfg.Web.Listen)
	if err != nil {
		return fmt.Errorf("healthcheck: web.listen: %w", err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s: %s", resp.Status, body)
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}

// checkDataDir says whether tend can write in dir, or create it, without
// leaving anything behind. Without it an unwritable data directory passed
// check-config and then failed in SQLite as "out of memory (14)".
func checkDataDir(dir string) error {
	probe := filepath.Clean(dir)
	for {
		fi, err := os.Stat(probe)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("data_dir %s: %s is not a directory", dir, probe)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("data_dir %s: %w", dir, err)
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			return fmt.Errorf("data_dir %s: no existing parent directory", dir)
		}
		probe = parent
	}
	f, err := os.CreateTemp(probe, ".tend-write-check-*")
	if err != nil {
		return fmt.Errorf("data_dir %s: cannot write in %s: %w", dir, probe, err)
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}
