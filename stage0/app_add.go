package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/policy"
)

func newAppAddCmd(g *globals) *cobra.Command {
	var signature, pullPolicy string
	cmd := &cobra.Command{
		Use:   "add UUID IMAGE [APP FLAGS] [-- ARGS...]",
		Short: "Add an app to a running app sandbox (it is not started: skiff app start)",
		Long: `Add an app to a running app sandbox: its image is fetched and checked against
the run policy as run does, its rootfs prepared in the pod, and the pod's
stage1 told of it. It does not start: skiff app start does. Prints the app's
name. The app may mount the sandbox's volumes only.
` + appUsage,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			fs.SetInterspersed(false)
			cmd.DisableFlagParsing = false
			err := cmd.ParseFlags(args)
			cmd.DisableFlagParsing = true
			if err != nil {
				return usageError{err}
			}
			if h, _ := fs.GetBool("help"); h {
				return cmd.Help()
			}
			if pre := cmd.Root().PersistentPreRunE; pre != nil {
				if err := pre(cmd, nil); err != nil {
					return err
				}
			}
			rest := fs.Args()
			if len(rest) < 2 {
				return usagef("app add needs a pod UUID and an image")
			}
			apps, err := parseApps(rest[1:], appFlags{})
			if err != nil {
				return err
			}
			if len(apps) != 1 {
				return usagef("app add adds one app, got %d", len(apps))
			}
			if _, err := pod.Load(g.dir, rest[0]); err != nil {
				return err
			}
			s, err := g.openStore()
			if err != nil {
				return err
			}
			pol, err := policy.Load(g.localConfig)
			if err != nil {
				return err
			}
			fe, err := g.fetcher(s, pol, pullPolicy, g.stderr)
			if err != nil {
				return err
			}
			release, err := s.Hold()
			if err != nil {
				return err
			}
			defer release()
			resolved, err := resolveApps(cmd.Context(), g, s, fe, pol, apps, []string{signature})
			if err != nil {
				return err
			}
			name, err := g.pods().AppAdd(cmd.Context(), s, rest[0], resolved[0], nil)
			if err != nil {
				return err
			}
			s.Touch(resolved[0].Image)
			fmt.Fprintln(g.stdout, name)
			return nil
		},
	}
	cmd.Flags().StringVar(&signature, "signature", "", "detached signature of the image")
	cmd.Flags().StringVar(&pullPolicy, "pull-policy", "new", "when to fetch a remote image: new, update or never")
	var defaults appFlags
	defaults.register(cmd.Flags()) // only for --help: app flags follow the image
	return cmd
}
