package dpf

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
)

// LogPrefix starts every line dmsinit.sh prints through log() or error().
const LogPrefix = "[dmsinit] "

var errorLine = regexp.MustCompile(`^\[dmsinit\] Error \(([A-Za-z_][A-Za-z0-9_]*):(\d+)\): (.*)$`)

// ScriptError is a parsed "[dmsinit] Error (func:line): msg" line.
type ScriptError struct {
	Func    string `json:"func"`
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// ParseErrorLine parses one dmsinit error line.
func ParseErrorLine(line string) (ScriptError, bool) {
	m := errorLine.FindStringSubmatch(strings.TrimRight(line, "\r\n"))
	if m == nil {
		return ScriptError{}, false
	}
	n, err := strconv.Atoi(m[2])
	if err != nil {
		return ScriptError{}, false
	}
	return ScriptError{Func: m[1], Line: n, Message: m[3]}, true
}

// FormatError renders an error line exactly as dmsinit.sh's error() does.
func FormatError(fn string, line int, msg string) string {
	return LogPrefix + "Error (" + fn + ":" + strconv.Itoa(line) + "): " + msg
}

// Messages dmsinit.sh prints that classifiers look for.
const (
	MsgVersionFailed         = "Failed to check kubectl version: "
	MsgNoDPUs                = "No DPUs found on this system"
	MsgSecretTimeoutB        = "Timed out waiting for certificate secret to be created"
	MsgSecretTimeoutC        = "Timed out waiting for secret "
	MsgWaitingSecretB        = "Waiting for certificate secret to be created..."
	MsgWaitingSecretC        = "Waiting for secret "
	MsgUpdatePCIFailed       = "Failed to update PCI address for DPUDevice "
	MsgCreateDPUDeviceFailed = "Failed to create DPUDevice "
	MsgCreateDPUNodeFailed   = "Failed to create DPUNode "
	MsgCreateCertFailed      = "Failed to create certificate "
	MsgNodeUIDFailed         = "Failed to get UID for node "
	MsgSerialFailed          = "Failed to get serial number for PCI address "
	MsgCompleted             = "Main function completed successfully"
)

// forbidden matches the API server's Forbidden message as kubectl prints it,
// anywhere in a line:
//
//	secrets "x" is forbidden: User "u" cannot get resource "secrets" in API group "" in the namespace "ns"
//	dpunodes.provisioning.dpu.nvidia.com is forbidden: User "u" cannot create resource "dpunodes" in API group "provisioning.dpu.nvidia.com" in the namespace "ns"
//	nodes "n" is forbidden: User "u" cannot get resource "nodes" in API group "" at the cluster scope
var forbidden = regexp.MustCompile(`(?:([a-z0-9][a-z0-9.-]*)(?: "([^"]*)")? is forbidden: )?User "([^"]+)" cannot ([a-z]+) resource "([^"/]+)(?:/([^"]+))?" in API group "([^"]*)"(?: in the namespace "([^"]+)"| at the cluster scope)`)

// Forbidden is one parsed Forbidden message.
type Forbidden struct {
	User    string         `json:"user"`
	Request access.Request `json:"request"`
}

// ParseForbidden finds an API server Forbidden message in a line.
func ParseForbidden(line string) (Forbidden, bool) {
	m := forbidden.FindStringSubmatch(line)
	if m == nil {
		return Forbidden{}, false
	}
	return Forbidden{User: m[3], Request: access.Request{
		Verb: m[4], Resource: m[5], Subresource: m[6], Group: m[7], Namespace: m[8], Name: m[2],
	}}, true
}

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
