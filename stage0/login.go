package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/skiffpod/skiff/pkg/authfile"
	"github.com/skiffpod/skiff/pkg/oci"
)

func newLoginCmd(g *globals) *cobra.Command {
	var user, password string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [--username USER --password-stdin | -u USER -p PASSWORD] REGISTRY",
		Short: "Check credentials with a registry and store them in the auth file",
		Long: `Log in to a registry: the credentials are checked with the registry (a /v2/
request with them, as podman does) and stored in the auth file, written
atomically, readable by root only. The auth file is --authfile, else
$REGISTRY_AUTH_FILE, else LOCAL-CONFIG/auth.json (/etc/skiff/auth.json).
Fetches read it first, then ~/.docker/config.json.

  printf '%s' "$PASSWORD" | skiff login -u alice --password-stdin registry.example.com
  skiff login --insecure-options=http -u alice 127.0.0.1:5000   (asks on a terminal)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := authfile.Registry(args[0])
			if err != nil {
				return usagef("login: %v", err)
			}
			in := cmd.InOrStdin()
			switch {
			case password != "" && passwordStdin:
				return usagef("login: give --password or --password-stdin, not both")
			case password != "":
				fmt.Fprintln(g.stderr, "skiff: warning: a password on the command line is visible to other users and kept in shell history; use --password-stdin")
			case passwordStdin:
				if user == "" {
					return usagef("login: --password-stdin needs --username")
				}
				b, err := io.ReadAll(io.LimitReader(in, 64<<10))
				if err != nil {
					return fmt.Errorf("login: read password: %w", err)
				}
				password = strings.TrimRight(string(b), "\r\n")
			default:
				if user, password, err = prompt(in, g.stderr, user); err != nil {
					return err
				}
			}
			if user == "" || password == "" {
				return usagef("login: empty username or password")
			}
			conf, err := g.registries()
			if err != nil {
				return err
			}
			cred := authfile.Cred{Username: user, Password: password}
			if err := oci.Login(cmd.Context(), reg, cred, g.hostOptions(conf.Host(reg))); err != nil {
				return err
			}
			file := g.authFile()
			if err := authfile.Set(file, reg, user, password); err != nil {
				return fmt.Errorf("login %s: %w", reg, err)
			}
			fmt.Fprintf(g.stdout, "logged in to %s (credentials in %s)\n", reg, file)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&user, "username", "u", "", "user name")
	f.StringVarP(&password, "password", "p", "", "password (visible to other users: prefer --password-stdin)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

// prompt asks for what is missing on the terminal; without one it says
// how to give the credentials instead.
func prompt(in io.Reader, out io.Writer, user string) (string, string, error) {
	tty, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(tty.Fd())) {
		return "", "", usagef("login: no terminal to ask for the password: give --username and --password-stdin")
	}
	if user == "" {
		fmt.Fprint(out, "Username: ")
		line, err := bufio.NewReader(tty).ReadString('\n')
		if err != nil {
			return "", "", fmt.Errorf("login: read username: %w", err)
		}
		user = strings.TrimSpace(line)
	}
	fmt.Fprint(out, "Password: ")
	pw, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(out)
	if err != nil {
		return "", "", fmt.Errorf("login: read password: %w", err)
	}
	return user, string(pw), nil
}

func newLogoutCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "logout REGISTRY | --all",
		Short: "Remove a registry's credentials from the auth file",
		Long: `Remove the credentials for REGISTRY (or, with --all, every registry) from
the auth file skiff login writes (--authfile, $REGISTRY_AUTH_FILE, else
LOCAL-CONFIG/auth.json). ~/.docker/config.json is never changed.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			file := g.authFile()
			switch {
			case all && len(args) == 0:
				if err := authfile.RemoveAll(file); err != nil {
					return fmt.Errorf("logout: %w", err)
				}
				fmt.Fprintf(g.stdout, "removed all credentials from %s\n", file)
				return nil
			case all || len(args) != 1:
				return usagef("logout: give one REGISTRY or --all")
			}
			reg, err := authfile.Registry(args[0])
			if err != nil {
				return usagef("logout: %v", err)
			}
			if err := authfile.Remove(file, reg); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "removed the credentials for %s from %s\n", reg, file)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove the credentials of every registry")
	return cmd
}
