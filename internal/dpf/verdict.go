package dpf

import (
	"fmt"
	"strings"
)

// LogVerdict is how one pod's dms-init (or host agent) log says the work
// failed, comparable across nodes: the last error line's site (func:line)
// and the first words of its message, "completed" when the script
// finished, a klog error's first words for the v25.10 host agent, else "".
// Two logs with the same verdict fail the same way, so evidence uses it to
// decide when sampled logs of one failure signature agree, and diagnose to
// decide when unread pods may share their peers' class: one rule for both.
func LogVerdict(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if e, ok := ParseErrorLine(strings.TrimSpace(lines[i])); ok {
			return fmt.Sprintf("%s:%d %s", e.Func, e.Line, firstWords(e.Message))
		}
	}
	for _, l := range lines {
		if strings.Contains(l, MsgCompleted) {
			return "completed"
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if msg, ok := klogError(lines[i]); ok {
			return "klog " + firstWords(msg)
		}
	}
	return ""
}

// firstWords keeps a message's first four words: enough to tell failures
// apart, before node names and addresses.
func firstWords(msg string) string {
	words := strings.Fields(msg)
	if len(words) > 4 {
		words = words[:4]
	}
	return strings.Join(words, " ")
}

// klogError returns the message of a klog error line ("E1125 10:00:00.000000
// 1 file.go:97] msg"), as the v25.10 host agent, a Go program, logs.
func klogError(line string) (string, bool) {
	if len(line) < 2 || (line[0] != 'E' && line[0] != 'F') || line[1] < '0' || line[1] > '9' {
		return "", false
	}
	_, msg, ok := strings.Cut(line, "] ")
	return msg, ok
}
