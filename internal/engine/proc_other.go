//go:build !linux

package engine

import (
	"os"
	"syscall"
)

func newLogFile(dir, name string) (*os.File, error) { return unlinkedTemp(dir, name) }

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func spreadSubfolders(string) {}
