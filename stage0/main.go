// Command skiff is stage0: it fetches and verifies images, keeps them in a
// content-addressed store, prepares pod directories and starts the chosen
// stage1. See README.md and docs/.
package main

import "os"

func main() { os.Exit(run(os.Args[1:])) }
