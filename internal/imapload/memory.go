package imapload

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/mailstead/mailstead/internal/loadgen"
)

// Memory is the memory of a server process and all its descendants: one
// process for mailstead, a master with many children for Dovecot (one imap
// process per session, login, auth, log, ...).
type Memory struct {
	Procs int
	// RSS is the sum of the processes' resident set sizes. It counts
	// pages shared between processes (libraries, shared mappings) once
	// per process, so for a multi-process server it overstates.
	RSS int64
	// PSS is the sum of proportional set sizes (shared pages divided
	// among the processes sharing them): the fair total for comparing a
	// single-process with a multi-process server. 0 if unreadable.
	PSS int64
}

// TreeMemory measures process pid and its descendants, from /proc.
func TreeMemory(pid int) (Memory, error) {
	if pid <= 0 {
		return Memory{}, fmt.Errorf("invalid pid %d", pid)
	}
	pids := descendants(pid)
	var m Memory
	for _, p := range pids {
		rss, err := loadgen.ReadRSS(p)
		if err != nil {
			if p == pid {
				return Memory{}, err
			}
			continue // exited meanwhile
		}
		m.Procs++
		m.RSS += rss
		if pss, err := readPSS(p); err == nil {
			m.PSS += pss
		}
	}
	return m, nil
}

// descendants returns pid and every process below it, found through the
// parent pid in /proc/*/stat.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, e := range entries {
		b, err := os.ReadFile(e)
		if err != nil {
			continue
		}
		p, ppid, ok := parseStat(b)
		if ok {
			children[ppid] = append(children[ppid], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out) && i < 1<<20; i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// parseStat extracts the pid and parent pid from /proc/PID/stat. The
// command name (field 2) is in parentheses and may itself contain spaces
// and parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (pid, ppid int, ok bool) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return 0, 0, false
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return 0, 0, false
	}
	f := bytes.Fields(b[end+1:]) // state, ppid, ...
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, 0, false
	}
	return pid, ppid, true
}

// readPSS returns the Pss line of /proc/pid/smaps_rollup in bytes.
func readPSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("Pss:"))
		if !ok {
			continue
		}
		fs := bytes.Fields(rest)
		if len(fs) != 2 || string(fs[1]) != "kB" {
			return 0, fmt.Errorf("unexpected Pss line %q", sc.Bytes())
		}
		kb, err := strconv.ParseInt(string(fs[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("Pss value %q: %w", fs[0], err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no Pss in smaps_rollup of %d", pid)
}

// memoryProbe measures pid when set; errors are kept for the report
// rather than failing a benchmark run.
type memoryProbe struct {
	pid int
	err string
}

func (p *memoryProbe) read() Memory {
	if p.pid == 0 {
		return Memory{}
	}
	m, err := TreeMemory(p.pid)
	if err != nil && p.err == "" {
		p.err = err.Error()
	}
	return m
}
