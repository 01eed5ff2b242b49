// Command imagebin is the one static program inside the critest images that
// busybox cannot play (tests/cri/images.sh): it acts by the name it is run as.
//
//	nginx [-p PORT]  an HTTP server answering 200 on PORT (80), writing
//	                 /var/run/nginx.pid as nginx does (critest's HostPID spec reads it)
//	nnp              prints "Effective uid: N" (critest's NoNewPrivs specs run it setuid root)
//	pause            waits for SIGTERM or SIGINT, as the Kubernetes pause container
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "nginx":
		port := flag.Int("p", 80, "port to serve on")
		flag.Parse()
		os.MkdirAll("/var/run", 0o755)
		os.WriteFile("/var/run/nginx.pid", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
		fmt.Printf("nginx: serving on :%d\n", *port)
		err := http.ListenAndServe(fmt.Sprintf(":%d", *port), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "<h1>Welcome to nginx!</h1>")
		}))
		fmt.Fprintln(os.Stderr, "nginx:", err)
		os.Exit(1)
	case "nnp":
		fmt.Printf("Effective uid: %d\n", os.Geteuid())
	case "pause":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
	default:
		fmt.Fprintf(os.Stderr, "imagebin: run as nginx, nnp or pause, not %q\n", os.Args[0])
		os.Exit(2)
	}
}
