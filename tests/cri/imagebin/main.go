// Command imagebin is the one static program inside the critest images that
// busybox cannot play (tests/cri/images.sh): it acts by the name it is run as.
//
//	nginx [-p PORT]  an HTTP server answering 200 on PORT (80), writing
//	                 /var/run/nginx.pid and titled "nginx: master process" as
//	                 nginx is (critest's HostPID and ContainerPID specs look)
//	ipcs [-m]        the System V shared memory segments, as util-linux prints
//	                 them (Debian's busybox has no ipcs; the HostIpc specs run it)
//	pgrep PATTERN    the pids of processes whose name matches PATTERN (a regular
//	                 expression), exit 1 if none (nor pgrep: the execSync timeout spec)
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
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// nginxPath is where images.sh puts the nginx link.
const nginxPath = "/usr/sbin/nginx"

// pgrep prints the pids whose /proc/PID/comm matches args[0].
func pgrep(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: pgrep PATTERN")
		return 2
	}
	re, err := regexp.Compile(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgrep:", err)
		return 2
	}
	found := 1
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, c := range comms {
		b, err := os.ReadFile(c)
		pid := filepath.Base(filepath.Dir(c))
		if err == nil && pid != strconv.Itoa(os.Getpid()) && re.MatchString(strings.TrimSpace(string(b))) {
			fmt.Println(pid)
			found = 0
		}
	}
	return found
}

// ipcs prints /proc/sysvipc/shm as `ipcs -m` does: key, shmid, owner,
// perms, bytes, nattch.
func ipcs() {
	fmt.Printf("\n------ Shared Memory Segments --------\n%-10s %-10s %-10s %-10s %-10s %-10s %-10s\n",
		"key", "shmid", "owner", "perms", "bytes", "nattch", "status")
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipcs:", err)
		os.Exit(1)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines[1:] { // key shmid perms size cpid lpid nattch uid ...
		f := strings.Fields(l)
		if len(f) < 8 {
			continue
		}
		key, _ := strconv.ParseInt(f[0], 10, 64)
		perms := f[2] // octal already
		if len(perms) > 3 {
			perms = perms[len(perms)-3:]
		}
		fmt.Printf("0x%08x %-10s %-10s %-10s %-10s %-10s\n", uint32(key), f[1], f[7], perms, f[3], f[6])
	}
	fmt.Println()
}

func main() {
	name := filepath.Base(os.Args[0])
	switch {
	case strings.HasPrefix(name, "nginx"):
		if !strings.Contains(os.Args[0], "master process") {
			// Re-run under nginx's process title; same file, same name.
			err := syscall.Exec(nginxPath, append([]string{"nginx: master process " + nginxPath}, os.Args[1:]...), os.Environ())
			fmt.Fprintln(os.Stderr, "nginx:", err)
			os.Exit(1)
		}
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
	case name == "ipcs":
		ipcs()
	case name == "pgrep":
		os.Exit(pgrep(os.Args[1:]))
	case name == "nnp":
		fmt.Printf("Effective uid: %d\n", os.Geteuid())
	case name == "pause":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
	default:
		fmt.Fprintf(os.Stderr, "imagebin: run as nginx, nnp or pause, not %q\n", os.Args[0])
		os.Exit(2)
	}
}
