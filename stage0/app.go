package main

import "github.com/spf13/cobra"

func newAppCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "app",
		Short: "The app sandbox: a running pod whose apps are added, started, stopped and removed",
		Long: `The app sandbox (docs/app-sandbox.md): skiff app sandbox runs a pod with no
apps that lives until it is stopped; the other app commands change its apps
while it runs.

  skiff app sandbox --uuid-file-save=/run/pod.uuid &
  skiff app add $(cat /run/pod.uuid) bin/images/busybox.aci --name=nap --exec=/bin/sleep -- 600
  skiff app start $(cat /run/pod.uuid) --app=nap
  skiff app status $(cat /run/pod.uuid) --app=nap
  skiff app stop $(cat /run/pod.uuid) --app=nap
  skiff app rm $(cat /run/pod.uuid) --app=nap`,
	}
	cmd.AddCommand(newAppSandboxCmd(g), newAppAddCmd(g), newAppStartCmd(g), newAppStopCmd(g),
		newAppRmCmd(g), newAppListCmd(g), newAppStatusCmd(g))
	return cmd
}
