package main

import (
	"fmt"
	"os"

	"github.com/skiffpod/skiff/pkg/podunit"
)

// hookMain runs inside the pod, called by its systemd units.
func hookMain(args []string) int {
	if err := podunit.Hook("/", args); err != nil {
		fmt.Fprintln(os.Stderr, "stage1-ns hook:", err)
		return 1
	}
	return 0
}
