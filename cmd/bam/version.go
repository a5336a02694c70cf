package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version says which bam this is, from what the Go toolchain recorded in
// the binary: the module's version ("(devel)" for a build from a
// checkout), the commit it was built from and whether the tree had
// changes, and the Go that built it.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (built without module information), " + runtime.Version()
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var commit, at string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	out := v
	if commit != "" {
		if len(commit) > 12 {
			commit = commit[:12]
		}
		out += ", commit " + commit
		if modified {
			out += " with uncommitted changes"
		}
		if at != "" {
			out += " of " + at
		}
	}
	return fmt.Sprintf("%s, %s %s/%s", out, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// userAgent is what bam's own HTTP requests (webhook deliveries) say they
// are: "bam/<module version>".
func userAgent() string {
	v := "(devel)"
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		v = info.Main.Version
	}
	return "bam/" + v
}
