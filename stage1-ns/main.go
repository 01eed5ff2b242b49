// Command stage1-ns is the namespace stage1's one program: installed in
// the stage1 image as /skiff/run with enter, stop, gc, hook and the app
// entrypoints (app-add, app-start, app-stop, app-rm) linked to it, it
// acts as the entrypoint it is called by (see docs/stage1-abi.md).
// The entrypoints are pkg/stage1kit's around the isolator in
// stage1-ns/nspawn.
package main

import (
	"os"

	"github.com/skiffpod/skiff/pkg/stage1kit"
	"github.com/skiffpod/skiff/stage1-ns/nspawn"
)

func main() {
	os.Exit(stage1kit.Main(stage1kit.Stage1{Name: "stage1-ns", Isolator: nspawn.Isolator{},
		Entrypoints: map[string]func([]string) int{"hook": nspawn.HookMain, "systemd": nspawn.InitMain}}, os.Args))
}
