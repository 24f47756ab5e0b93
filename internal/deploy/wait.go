package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmatool/vmatool/internal/pve"
)

// StepWait waits for the VM's QEMU guest agent (Target.Wait), then reads
// its addresses.
const StepWait Step = "wait"

// ErrAgentTimeout means the VM's guest agent did not answer within the
// target's WaitTimeout.
var ErrAgentTimeout = errors.New("deploy: the guest agent did not answer in time")

// minAgentPoll spaces the questions to a guest agent: each goes through
// QEMU into the guest (and over SSH, is a session of its own), and a
// booting VM gains nothing from more than a few a second.
const minAgentPoll = 100 * time.Millisecond

// afterFinish runs what follows a made and started VM: the wait for its
// guest agent, then HA. When either fails, the VM stays as it is unless
// DestroyOnFailure, which stops and removes the VM this run created as
// a failed restore, template or start always does.
func (j *job) afterFinish(ctx context.Context) error {
	err := j.waitAgent(ctx)
	if err == nil {
		err = j.addHA(ctx)
	}
	if err == nil {
		return nil
	}
	vmid := j.t.VMID
	if !j.t.DestroyOnFailure {
		return fmt.Errorf("%w; VM %d is left as it is (destroy-on-failure removes it)", err, vmid)
	}
	if j.t.starts() && !j.existed {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		serr := j.do(StepUndo, fmt.Sprintf("stop VM %d, to remove it", vmid), func() error { return j.ctl.stop(sctx, vmid) })
		if serr != nil {
			j.warn(fmt.Sprintf("VM %d was left behind: stopping it failed: %v", vmid, serr))
			return err
		}
	}
	return j.undo(ctx, err)
}

// waitAgent asks the guest agent for a ping until it answers or
// WaitTimeout passes, then asks for the network interfaces until one
// has an address other than loopback and link-local (DHCP may take a
// moment after the agent starts); an agent that answers but reports no
// such address by the deadline is only a warning.
func (j *job) waitAgent(ctx context.Context) error {
	if j.t.Wait != WaitAgent {
		return nil
	}
	vmid, timeout := j.t.VMID, time.Duration(j.t.WaitTimeout)
	poll := j.opts.PollInterval
	if poll == 0 {
		poll = pve.DefaultPollInterval
	}
	poll = max(poll, minAgentPoll)
	_, api := j.ctl.(controlAPI)
	return j.do(StepWait, waitStep(j.t, api), func() error {
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		// ask calls fn until it reports done; last keeps the error of the
		// last call the deadline did not cut short.
		var last error
		ask := func(fn func() (bool, error)) error {
			for {
				done, err := fn()
				if done {
					return nil
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if wctx.Err() == nil {
					last = err
				}
				select {
				case <-wctx.Done():
					if ctx.Err() != nil {
						return ctx.Err()
					}
					return wctx.Err()
				case <-time.After(poll):
				}
			}
		}
		err := ask(func() (bool, error) {
			err := j.ctl.agentPing(wctx, vmid)
			return err == nil, err
		})
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			msg := "never asked"
			if last != nil {
				msg = errorDetail(last)
			}
			return fmt.Errorf("%w: VM %d's guest agent did not answer within %s (last answer: %s)", ErrAgentTimeout, vmid, timeout, msg)
		case err != nil:
			return err
		}
		last = nil
		err = ask(func() (bool, error) {
			ifs, err := j.ctl.agentInterfaces(wctx, vmid)
			if err == nil {
				j.addresses = usableAddresses(ifs)
			}
			return len(j.addresses) > 0, err
		})
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			msg := fmt.Sprintf("VM %d's guest agent answered, but reported no address other than loopback and link-local within %s", vmid, timeout)
			if last != nil {
				msg += fmt.Sprintf(" (last answer: %s)", errorDetail(last))
			}
			j.warn(msg)
		case err != nil:
			return err
		}
		return nil
	})
}

// waitStep says what waitAgent does, for plans and events.
func waitStep(t *Target, api bool) string {
	how := fmt.Sprintf("qm guest cmd %d ping over SSH", t.VMID)
	if api {
		how = "agent/ping through the API"
	}
	return fmt.Sprintf("wait up to %s for VM %d's QEMU guest agent to answer (%s), then read its IP addresses", t.WaitTimeout, t.VMID, how)
}

// usableAddresses are the interfaces' addresses without loopback,
// link-local and unspecified ones, which say nothing about how to reach
// the VM, in the order the agent gave them.
func usableAddresses(ifs []pve.Interface) []string {
	var out []string
	for _, i := range ifs {
		for _, a := range i.Addresses {
			ip, err := netip.ParseAddr(a.Address)
			if err != nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
				continue
			}
			if s := ip.String(); !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// afterDetail is what the result says of the wait and HA.
func (j *job) afterDetail() string {
	var s string
	if j.t.Wait == WaitAgent {
		s += ", agent answered"
	}
	if j.t.HA {
		s += ", under HA"
		if j.t.HAGroup != "" {
			s += " (group " + j.t.HAGroup + ")"
		}
	}
	return s
}

func (a controlAPI) stop(ctx context.Context, vmid int) error {
	upid, err := a.c.StopVM(ctx, a.node, vmid)
	if err != nil {
		return err
	}
	return a.wait(ctx, upid)
}

func (a controlAPI) agentPing(ctx context.Context, vmid int) error {
	return a.c.AgentPing(ctx, a.node, vmid)
}

func (a controlAPI) agentInterfaces(ctx context.Context, vmid int) ([]pve.Interface, error) {
	return a.c.AgentInterfaces(ctx, a.node, vmid)
}

// stop runs qm stop, which waits until the VM is off.
func (s controlSSH) stop(ctx context.Context, vmid int) error {
	if err := s.c.Run(ctx, []string{"qm", "stop", strconv.Itoa(vmid)}, nil, io.Discard, io.Discard); err != nil {
		return fmt.Errorf("qm stop: %w", err)
	}
	return nil
}

// agentPing runs qm guest cmd VMID ping, which exits non-zero while the
// agent is not configured, the VM not running or the agent not
// answering (qemu-server src/PVE/CLI/qm.pm, src/PVE/API2/Qemu/Agent.pm).
func (s controlSSH) agentPing(ctx context.Context, vmid int) error {
	if err := s.c.Run(ctx, []string{"qm", "guest", "cmd", strconv.Itoa(vmid), "ping"}, nil, io.Discard, io.Discard); err != nil {
		return fmt.Errorf("qm guest cmd %d ping: %w", vmid, err)
	}
	return nil
}

// agentInterfaces runs qm guest cmd VMID network-get-interfaces, which
// prints the agent's result as JSON.
func (s controlSSH) agentInterfaces(ctx context.Context, vmid int) ([]pve.Interface, error) {
	var out bytes.Buffer
	if err := s.c.Run(ctx, []string{"qm", "guest", "cmd", strconv.Itoa(vmid), "network-get-interfaces"}, nil, &out, io.Discard); err != nil {
		return nil, fmt.Errorf("qm guest cmd %d network-get-interfaces: %w", vmid, err)
	}
	var raw []struct {
		Name  string `json:"name"`
		MAC   string `json:"hardware-address"`
		Addrs []struct {
			IP     string `json:"ip-address"`
			Type   string `json:"ip-address-type"`
			Prefix int    `json:"prefix"`
		} `json:"ip-addresses"`
	}
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		return nil, fmt.Errorf("qm guest cmd %d network-get-interfaces printed something that is not JSON: %v", vmid, strings.TrimSpace(err.Error()))
	}
	ifs := make([]pve.Interface, 0, len(raw))
	for _, r := range raw {
		it := pve.Interface{Name: r.Name, MAC: r.MAC}
		for _, a := range r.Addrs {
			it.Addresses = append(it.Addresses, pve.IPAddress{Address: a.IP, Type: a.Type, Prefix: a.Prefix})
		}
		ifs = append(ifs, it)
	}
	return ifs, nil
}
