//go:build !linux

package engine

import (
	"os"
	"syscall"
)

func newLogFile(dir int, name string) (*os.File, error) { return unlinkedTempAt(dir, name) }

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func spreadSubfolders(string) {}
