package deploy

import "time"

// Event is something Run reports while it works: StepStarted,
// StepFinished, BytesSent, RestoreProgress or Warning. A caller renders
// them; Run never prints.
type Event interface {
	// TargetName is the name of the target the event is about.
	TargetName() string
}

// Step names a stage of a deployment.
type Step string

// The steps of a deployment, in the order they run. Not every path has
// every step.
const (
	StepConnect  Step = "connect"  // SSH and/or the API
	StepCheck    Step = "check"    // the VM ID is free; the node can take the path
	StepTransfer Step = "transfer" // the archive or disk images go to the node
	StepRestore  Step = "restore"  // the VM is made from them
	StepTemplate Step = "template" // and converted to a template, confirmed
	StepStart    Step = "start"    // or started, confirmed
	StepCleanup  Step = "cleanup"  // what the transfer left on the node is deleted
	StepUndo     Step = "undo"     // after a failure: the VM this run made is removed
)

// StepStarted says a step began. Detail says what it does, e.g. the
// remote command or the file uploaded.
type StepStarted struct {
	Target string
	Step   Step
	Detail string
}

// StepFinished says a step ended, with its error if it failed.
type StepFinished struct {
	Target  string
	Step    Step
	Err     error
	Elapsed time.Duration
}

// BytesSent reports progress of a transfer: Sent bytes have gone to the
// node so far (compressed, as on the wire), and Read bytes of the source,
// out of Total, have been processed.
type BytesSent struct {
	Target     string
	Sent, Read int64
	Total      int64
}

// Warning is something the user should know that does not fail the
// target: a start that could not be confirmed, a config line left out, a
// VM removed after a failure.
type Warning struct {
	Target  string
	Message string
}

func (e StepStarted) TargetName() string  { return e.Target }
func (e StepFinished) TargetName() string { return e.Target }
func (e BytesSent) TargetName() string    { return e.Target }
func (e Warning) TargetName() string      { return e.Target }
