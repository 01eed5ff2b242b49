package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/stage1"
)

func newEnterCmd(g *globals) *cobra.Command {
	var app string
	var tty bool
	var uf uuidFile
	cmd := &cobra.Command{
		Use:   "enter UUID [--app NAME] [-- CMD [ARGS...]] | enter --uuid-file=FILE [--app NAME] [-- CMD [ARGS...]]",
		Short: "Run a command inside a running app, with the app's own restrictions",
		Long: `Run a command inside an app of a running pod. The command gets the same
restrictions as the app: its namespaces, root, user, capabilities, cgroup,
no_new_privs and seccomp. Without CMD, runs /bin/sh. --app is needed when the
pod has more than one app. With --uuid-file, CMD must follow "--".
With -t, CMD runs on a terminal of its own (as podman exec -t): skiff copies
its stdin and stdout to and from it and passes on the size of its own
terminal, which is in raw mode meanwhile.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			// With --uuid-file, everything after "--" is the command and
			// anything before it a UUID too many.
			named, command := args, []string(nil)
			if uf != "" {
				dash := cmd.ArgsLenAtDash()
				if dash < 0 && len(args) > 0 {
					return usagef("with --uuid-file, put the command after --: skiff enter --uuid-file=%s -- %s", string(uf), strings.Join(args, " "))
				}
				if dash >= 0 {
					named, command = args[:dash], args[dash:]
				}
			} else if len(args) > 0 {
				named, command = args[:1], args[1:]
			}
			ids, err := uf.pods(named)
			if err != nil {
				return err
			}
			p, st, err := g.pods().Running("enter", ids[0])
			if err != nil {
				return err
			}
			if app, err = onlyApp(p, st, app); err != nil {
				return err
			}
			if len(command) == 0 {
				command = []string{"/bin/sh"}
			}
			in, err := g.pods().Invocation(p)
			if err != nil {
				return err
			}
			code, err := in.Enter(app, command, stage1.EnterOptions{TTY: tty})
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitCode{code: code}
			}
			return nil
		},
	}
	uf.register(cmd.Flags())
	cmd.Flags().StringVar(&app, "app", "", "the app to enter")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "run the command on a terminal of its own")
	return cmd
}

// onlyApp is app, or when it is "" the pod's one app; a pod with several
// needs --app.
func onlyApp(p *pod.Pod, st pod.Status, app string) (string, error) {
	if app != "" {
		return app, nil
	}
	if len(st.AppList) != 1 {
		return "", usagef("pod %s has %d apps (%s): pick one with --app", p.UUID, len(st.AppList), strings.Join(st.AppList, ", "))
	}
	return st.AppList[0], nil
}
