package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/skiffpod/skiff/pkg/discovery"
	"github.com/skiffpod/skiff/pkg/trust"
)

func newTrustCmd(g *globals) *cobra.Command {
	var prefix string
	var root, list bool
	var remove string
	var skipReview bool
	cmd := &cobra.Command{
		Use:   "trust [--prefix NAME | --root] [KEYFILE | URL]...",
		Short: "Trust OpenPGP public keys to sign images under a name prefix",
		Long: `Trust public keys to sign images. A key trusted for --prefix example.com/app
is accepted for example.com/app and example.com/app/..., not example.com/apple.
--root trusts a key for every image: use it only for keys you control.
A prefix is an appc name or, for OCI images checked by simple signing
(docs/images.md), REGISTRY[:PORT][/NAME].
Keys are kept in --local-config (default /etc/skiff/trustedkeys), not in --dir.

A key may be fetched from an https URL, or found by appc discovery when
--prefix is given without keys (the ac-discovery-pubkeys of the prefix's
pages, as rkt's trust). A fetched key's fingerprint is shown and must be
confirmed on the terminal; --skip-fingerprint-review trusts it unasked (for
scripts that checked the fingerprint otherwise). Key files are trusted as
given.

  skiff trust --prefix skiff.local bin/images/test-key.asc
  skiff trust --prefix example.com/app
  skiff trust --prefix example.com/app https://example.com/pubkeys.asc
  skiff trust --prefix 127.0.0.1:5000/app key.asc
  skiff trust --list
  skiff trust --remove FINGERPRINT --prefix skiff.local`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ks := trust.Open(g.localConfig)
			switch {
			case list:
				keys, err := ks.List()
				if err != nil {
					return err
				}
				var rows [][]string
				for _, k := range keys {
					p := k.Prefix
					if k.Root() {
						p = "(root)"
					}
					rows = append(rows, []string{p, k.Fingerprint, strings.Join(k.Identities, ", ")})
				}
				return table(g.stdout, []string{"PREFIX", "FINGERPRINT", "IDENTITIES"}, rows, false)
			case remove != "":
				return ks.Remove(prefix, remove)
			}
			if root == (prefix != "") {
				return usagef("trust: give exactly one of --prefix NAME or --root")
			}
			if len(args) == 0 && root {
				return usagef("trust: no key file given (discovery needs --prefix)")
			}
			t := keyTrust{g: g, ks: ks, prefix: prefix, skipReview: skipReview, stdin: os.Stdin,
				dc: &discovery.Client{HTTP: g.http, InsecureHTTP: g.insecureOpt("http")}}
			if len(args) == 0 {
				urls, err := t.dc.PublicKeys(cmd.Context(), prefix)
				if err != nil {
					return fmt.Errorf("trust: %w", err)
				}
				args = urls
			}
			for _, src := range args {
				k, err := t.add(cmd.Context(), src)
				if err != nil {
					return err
				}
				what := "prefix " + k.Prefix
				if k.Root() {
					what = "every image (root key)"
				}
				fmt.Fprintf(g.stdout, "trusted key %s (%s) for %s\n", k.Fingerprint, strings.Join(k.Identities, ", "), what)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&prefix, "prefix", "", "image name prefix the keys are trusted for (appc name or REGISTRY[/NAME])")
	fs.BoolVar(&root, "root", false, "trust the keys for every image")
	fs.BoolVar(&list, "list", false, "list trusted keys")
	fs.BoolVar(&skipReview, "skip-fingerprint-review", false, "trust keys fetched from a URL or by discovery without asking (rkt's flag)")
	fs.StringVar(&remove, "remove", "", "stop trusting the key with this fingerprint (for --prefix, or root keys)")
	return cmd
}

// keyTrust adds keys from files, URLs or discovery to a keystore, asking
// a person to review each fetched key's fingerprint.
type keyTrust struct {
	g          *globals
	ks         *trust.Keystore
	dc         *discovery.Client
	prefix     string // "" for a root key
	skipReview bool
	stdin      *os.File
	isTerminal func(*os.File) bool // term.IsTerminal on the file's fd; tests replace it
}

func (t *keyTrust) add(ctx context.Context, src string) (trust.Key, error) {
	var b []byte
	var err error
	fetched := strings.Contains(src, "://")
	if fetched {
		b, err = t.dc.Get(ctx, src)
	} else {
		b, err = readKeyFile(src)
	}
	if err != nil {
		return trust.Key{}, fmt.Errorf("trust: %w", err)
	}
	if fetched && !t.skipReview {
		if err := t.review(src, b); err != nil {
			return trust.Key{}, err
		}
	}
	var k trust.Key
	if t.prefix == "" {
		k, err = t.ks.AddRoot(bytes.NewReader(b))
	} else {
		k, err = t.ks.Add(t.prefix, bytes.NewReader(b))
	}
	if err != nil {
		return k, fmt.Errorf("trust %s: %w", src, err)
	}
	return k, nil
}

// review shows a fetched key and asks on the terminal whether to trust it.
func (t *keyTrust) review(src string, b []byte) error {
	k, err := trust.ReadKey(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("trust %s: %w", src, err)
	}
	isTerm := t.isTerminal
	if isTerm == nil {
		isTerm = func(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
	}
	if !isTerm(t.stdin) {
		return fmt.Errorf("trust %s: key %s: stdin is not a terminal to confirm its fingerprint on: check it and pass --skip-fingerprint-review", src, k.Fingerprint)
	}
	what := "prefix " + t.prefix
	if t.prefix == "" {
		what = "every image (root key)"
	}
	fmt.Fprintf(t.g.stderr, "Key from %s\n  fingerprint %s\n  identities  %s\nTrust this key for %s? [y/N] ", src, k.Fingerprint, strings.Join(k.Identities, ", "), what)
	line, _ := bufio.NewReader(t.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return fmt.Errorf("trust %s: key %s not trusted", src, k.Fingerprint)
}

// readKeyFile reads a key file, at most 1 MiB (more is no key: Add says so).
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20+1))
}
