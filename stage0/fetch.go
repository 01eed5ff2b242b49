package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/policy"
)

func newFetchCmd(g *globals) *cobra.Command {
	var pullPolicy string
	var sigs []string
	var full bool
	cmd := &cobra.Command{
		Use:   "fetch IMAGE...",
		Short: "Fetch images into the store, verifying their signatures; prints their IDs",
		Long: `Fetch images into the store and print their image IDs. An IMAGE is an ACI
file (a path: /x, ./x, ../x, or x.aci), an https:// URL (http:// with
--insecure-options=http), or an appc name with optional labels, from the store
or by appc discovery (never a file of that name in the current directory):

  skiff fetch bin/images/busybox.aci
  skiff fetch https://example.com/app-1.0-linux-amd64.aci
  skiff fetch example.com/app:1.0
  skiff fetch example.com/app,version=1.0,arch=amd64

The detached signature (IMAGE.asc, or --signature) must be made by a key
trusted for the image's name ('skiff trust'); --insecure-options=image skips it,
and the image is then recorded as insecure: it runs by name only with
--insecure-options=image on the run too (docs/policy.md).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(sigs) > len(args) {
				return usagef("%d --signature flags for %d images", len(sigs), len(args))
			}
			s, err := g.openStore()
			if err != nil {
				return err
			}
			pol, err := policy.Load(g.localConfig)
			if err != nil {
				return err
			}
			f, err := g.fetcher(s, pol, pullPolicy, g.stderr)
			if err != nil {
				return err
			}
			for i, ref := range args {
				sig := ""
				if i < len(sigs) {
					sig = sigs[i]
				}
				id, err := resolveImage(cmd.Context(), g, s, f, ref, sig)
				if err != nil {
					return err
				}
				if !full && len(id) > 19 {
					id = id[:19]
				}
				fmt.Fprintln(g.stdout, id)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&pullPolicy, "pull-policy", "new", "new (only if not in the store), update (check for a newer one), never (store only)")
	fs.StringArrayVar(&sigs, "signature", nil, "detached signature for the image at the same position")
	fs.BoolVar(&full, "full", false, "print full image IDs")
	return cmd
}
