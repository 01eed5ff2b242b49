package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/trust"
)

func newTrustCmd(g *globals) *cobra.Command {
	var prefix string
	var root, list bool
	var remove string
	cmd := &cobra.Command{
		Use:   "trust [--prefix NAME | --root] KEYFILE...",
		Short: "Trust OpenPGP public keys to sign images under a name prefix",
		Long: `Trust public keys to sign images. A key trusted for --prefix example.com/app
is accepted for example.com/app and example.com/app/..., not example.com/apple.
--root trusts a key for every image: use it only for keys you control.
A prefix is an appc name or, for OCI images checked by simple signing
(docs/images.md), REGISTRY[:PORT][/NAME].
Keys are kept in --local-config (default /etc/skiff/trustedkeys), not in --dir.

  skiff trust --prefix skiff.local bin/images/test-key.asc
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
			if len(args) == 0 {
				return usagef("trust: no key file given")
			}
			if root == (prefix != "") {
				return usagef("trust: give exactly one of --prefix NAME or --root")
			}
			for _, path := range args {
				f, err := os.Open(path)
				if err != nil {
					return fmt.Errorf("trust: %w", err)
				}
				var k trust.Key
				if root {
					k, err = ks.AddRoot(f)
				} else {
					k, err = ks.Add(prefix, f)
				}
				f.Close()
				if err != nil {
					return fmt.Errorf("trust %s: %w", path, err)
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
	fs.StringVar(&remove, "remove", "", "stop trusting the key with this fingerprint (for --prefix, or root keys)")
	return cmd
}
