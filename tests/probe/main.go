// Command probe runs inside a pod as the app and reports what it sees, so
// end-to-end tests can check the isolation skiff set up (after rkt's
// tests/inspect). It is static (CGO_ENABLED=0) and needs nothing from the image.
//
// Every report is one line KEY=value on stdout; tests grep for them. Reports
// run in the order below, then servers start, readiness is sent, the HTTP GET
// is made, and probe waits (-sleep, or forever while serving) before exiting.
// A failing step prints "probe: <step>: <error>" on stderr and exits 1.
//
//	-print-env              every variable: NAME=value, sorted
//	-print-env=NAME         NAME=value (nothing if unset); may be repeated
//	-print-user             UID= GID= GROUPS=a,b USERNAME= GROUPNAME= (names from /etc/passwd, /etc/group)
//	-print-caps             CAPINH CAPPRM CAPEFF CAPBND CAPAMB =hex, and *_NAMES=CAP_X,CAP_Y
//	-print-nnp              NONEWPRIVS=0|1
//	-print-seccomp          SECCOMP=0|1|2 (mode from /proc/self/status), SECCOMP_FILTERS=n where shown
//	-print-memlimit         MEMLIMIT=bytes|max MEMLIMIT_FILE=path (cgroup v1 or v2)
//	-print-cwd              CWD=
//	-print-hostname         HOSTNAME=
//	-print-pid              PID= PPID=
//	-print-args             ARGC=n, then ARG=value per argument after --
//	-write-file=PATH        writes -content=X, WRITE_FILE=PATH
//	-read-file=PATH         READ_FILE=content
//	-check-masked=PATH      MASKED_EXISTS MASKED_TYPE MASKED_READABLE MASKED_EMPTY MASKED_WRITABLE
//	-stat=PATH              STAT_TYPE STAT_MODE STAT_PERM STAT_UID STAT_GID STAT_SIZE [STAT_LINK] (lstat)
//	-print-mounts           MOUNT=mountpoint fstype source options, one per mount
//	-listen-fds             LISTENERS=n; serves HTTP "hello from probe" on the LISTEN_FDS sockets
//	-serve=ADDR             SERVING=addr; serves the same on a TCP address
//	-notify-ready           NOTIFY_READY=1 after READY=1 was sent to NOTIFY_SOCKET
//	-http-get=URL           HTTP_STATUS= HTTP_BODY=
//	-sleep=DURATION         wait this long before exiting (SIGTERM/SIGINT end it: SIGNAL=name)
//	-exit=N                 exit status on success
//	-try-syscalls           TRY_USERNS TRY_KEYCTL TRY_ADD_KEY TRY_VSOCK TRY_MOUNT =ok|ERRNO (unshare(CLONE_NEWUSER)
//	                        in a child, keyctl, add_key, socket(AF_VSOCK), a bind remount of /)
//	-fork-bomb=N            FORK_COUNT=n FORK_ERR=ERRNO|none: forks up to N waiting children, then kills them
//
// Each request served prints SERVED=METHOD PATH.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
