package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/stage1"
	"github.com/skiffpod/skiff/pkg/toolsimage"
)

// debugCaps are the capabilities --cap-add may give (docs/debug.md).
var debugCaps = []string{"CAP_SYS_PTRACE"}

func newDebugCmd(g *globals) *cobra.Command {
	var app, image string
	var capAdd []string
	cmd := &cobra.Command{
		Use:   "debug UUID [--app NAME] [--image ACI] [--cap-add=SYS_PTRACE] [-- CMD [ARGS...]]",
		Short: "Run tools from a tools image inside a running app that has none",
		Long: `Mount a tools image read-only at ` + pod.DebugMountPoint + ` for CMD alone, and run
CMD from it inside an app of a running pod, with the app's namespaces, cgroup,
user, capabilities and seccomp. Without CMD, runs sh. The default tools image is
` + toolsimage.DefaultFile + ` beside skiff or in /usr/lib/skiff (a shell, ps, ls, ip, ss,
nc, strace); --image names another ACI file. --cap-add=SYS_PTRACE gives CMD
CAP_SYS_PTRACE on top of the app's, for strace. See docs/debug.md.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var caps []string
			for _, c := range capAdd {
				c = "CAP_" + strings.TrimPrefix(strings.ToUpper(c), "CAP_")
				if !slices.Contains(debugCaps, c) {
					return usagef("--cap-add=%s: only %s may be added", c, strings.Join(debugCaps, ", "))
				}
				caps = append(caps, c)
			}
			p, st, err := g.pods().Running("debug", args[0])
			if err != nil {
				return err
			}
			switch {
			case app == "" && len(st.AppList) != 1:
				return usagef("pod %s has %d apps (%s): pick one with --app", p.UUID, len(st.AppList), strings.Join(st.AppList, ", "))
			case app == "":
				app = st.AppList[0]
			case !slices.Contains(st.AppList, app):
				return fmt.Errorf("debug pod %s: %w: %q (it has %s)", p.UUID, pod.ErrNoApp, app, strings.Join(st.AppList, ", "))
			}
			if image == "" {
				if image, err = toolsimage.Default(stage1.DefaultDirs()); err != nil {
					return err
				}
			}
			s, err := g.openStore()
			if err != nil {
				return err
			}
			rootfs, err := toolsimage.Rootfs(context.Background(), s, image)
			if err != nil {
				return err
			}
			in, err := g.pods().Invocation(p)
			if err != nil {
				return err
			}
			command := args[1:]
			if len(command) == 0 {
				command = []string{"sh"}
			}
			if len(caps) > 0 {
				g.log.Warn("debug: the command gets capabilities the app does not hold", "pod", p.UUID, "app", app, "cap-add", strings.Join(caps, ","))
			}
			// ^C and ^\ are for the command; skiff waits for it.
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, unix.SIGINT, unix.SIGQUIT)
			defer signal.Stop(sigs)
			code, err := in.Enter(app, command, stage1.EnterOptions{MountImage: rootfs, CapAdd: strings.Join(caps, ",")})
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitCode{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the app to debug")
	cmd.Flags().StringVar(&image, "image", "", "the tools image, an ACI file (default "+toolsimage.DefaultFile+")")
	cmd.Flags().StringSliceVar(&capAdd, "cap-add", nil, "a capability for the command beyond the app's: only SYS_PTRACE")
	return cmd
}
