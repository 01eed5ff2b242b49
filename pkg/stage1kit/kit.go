// Package stage1kit is what every stage1 program shares around the way it
// isolates a pod: the entrypoint dispatch on the name it is called by, the
// arguments through pkg/pod's codecs, the logger, the inherited lock fd,
// the pid file, and run's loop (signals become a clean stop, the ready
// marker becomes sd_notify READY=1, the apps' statuses the exit status).
// A stage1 implements Isolator, and its main is one call to Main.
package stage1kit
