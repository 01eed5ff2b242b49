package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/pod"
)

func newAppSandboxCmd(g *globals) *cobra.Command {
	f := podFlags{sandbox: true}
	cmd := &cobra.Command{
		Use:   "sandbox [POD FLAGS]",
		Short: "Run a pod with no apps, in the foreground, until it is stopped; skiff app add gives it apps",
		Long: `Run an app sandbox: a pod with no apps that lives until skiff stop (or a
signal) ends it. It takes run's pod flags (--stage1, --net, --volume,
--hostname, --uuid-file-save, ...) but no images: skiff app add adds apps,
which may mount the sandbox's volumes.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, help, err := parseRunArgs(cmd, &f, args); err != nil || help {
				return err
			}
			p, err := preparePod(cmd.Context(), g, &f, nil)
			if err != nil {
				return err
			}
			if s1, err := pod.ReadStage1(p.Path()); err != nil || !s1.SupportsApps() {
				if err == nil {
					err = fmt.Errorf("app sandbox: stage1 %s has no app entrypoints (interface version %d)", s1.Name, s1.Version)
				}
				if p.Transition(pod.Garbage) == nil {
					err = errors.Join(err, g.pods().Delete(p))
				}
				p.Unlock()
				return err
			}
			return execPod(g, p, &f)
		},
	}
	f.register(cmd.Flags())
	return cmd
}
