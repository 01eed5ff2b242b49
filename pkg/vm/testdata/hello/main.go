// Command hello is run inside the guest by the e2e test: it prints its
// arguments, writes a file into the share and exits with len(args).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Println("hello from the share, args:", os.Args[1:])
	if err := os.WriteFile("/written-by-guest", []byte("guest was here\n"), 0o644); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	os.Exit(len(os.Args) - 1)
}
