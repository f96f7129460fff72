//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package main

import "time"

// processCPU returns 0: this system has no getrusage, so `knit bench`
// reports no CPU time of its own.
func processCPU() time.Duration { return 0 }
